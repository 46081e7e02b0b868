"""The distribution keeps the README's word: `pip install the-eye` is the Python SDK alone,
the server and its drivers are extras that say how to install them when missing, and
requirements.lock pins every dependency within pyproject.toml's bounds."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.helpers import fetch_all
from the_eye.extras import SERVER_MODULES

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
SERVER_MISSING = "The Eye's server needs its dependencies: pip install 'the-eye[server]'"


def declared_requirements() -> list[Requirement]:
    """Every third-party requirement pyproject.toml declares (the build's included), not the
    extras that name The Eye itself."""
    specs = [*PYPROJECT["build-system"]["requires"], *PYPROJECT["project"]["dependencies"]]
    specs += [spec for extra in EXTRAS.values() for spec in extra]
    return [r for r in map(Requirement, specs) if canonicalize_name(r.name) != "the-eye"]


def locked_versions() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if "==" in line and not line.startswith((" ", "#")):
            name, version = line.split(" ", 1)[0].split("==")
            pins[canonicalize_name(name)] = version
    return pins


def run_python(python: str | Path, code: str, *args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(python), "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def test_base_distribution_has_no_dependencies():
    assert PYPROJECT["project"]["dependencies"] == []


# Distributions of the server extra whose top-level module is named otherwise.
MODULE_OF = {"google_re2": "re2"}


def test_server_modules_are_the_server_extra():
    names = tuple(Requirement(spec).name.lower().replace("-", "_") for spec in EXTRAS["server"])
    assert tuple(MODULE_OF.get(name, name) for name in names) == SERVER_MODULES


def test_every_dependency_has_an_upper_bound():
    unbounded = [
        str(r)
        for r in declared_requirements()
        if not any(s.operator in ("<", "<=", "==", "~=") for s in r.specifier)
    ]
    assert unbounded == []


def test_lock_pins_every_dependency_within_its_bounds():
    pins = locked_versions()
    for requirement in declared_requirements():
        version = pins.get(canonicalize_name(requirement.name))
        assert version is not None, f"{requirement.name} is not in requirements.lock: make lock"
        assert requirement.specifier.contains(version, prereleases=True), (
            f"requirements.lock has {requirement.name}=={version}, outside {requirement}"
        )


@pytest.mark.parametrize(
    ("absent", "database_url", "queue_url", "message"),
    [
        pytest.param(
            "psycopg",
            "postgresql://eye@127.0.0.1/eye",
            "db",
            "A PostgreSQL database needs the psycopg driver: pip install 'the-eye[postgres]'",
            id="postgresql",
        ),
        pytest.param(
            "redis",
            "sqlite:///{tmp}/the-eye.db",
            "redis://127.0.0.1:6379/0",
            "A Redis queue needs the redis client: pip install 'the-eye[redis]'",
            id="redis",
        ),
    ],
)
def test_backend_without_its_driver_names_the_extra(
    absent, database_url, queue_url, message, tmp_path
):
    result = run_python(
        sys.executable,
        f"""
        import sys
        sys.modules[{absent!r}] = None  # as if its extra were not installed
        from the_eye.config import Settings
        from the_eye.queue import open_queue
        from the_eye.store.engine import create_engine
        settings = Settings(
            database_url={database_url.format(tmp=tmp_path)!r},
            queue_url={queue_url!r},
            _env_file=None,
        )
        try:
            open_queue(settings, create_engine(settings))
        except ModuleNotFoundError as exc:
            print(exc)
        """,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == message


def test_command_with_a_missing_driver_says_what_to_install_without_a_traceback(tmp_path):
    result = run_python(
        sys.executable,
        """
        import sys
        sys.modules["psycopg"] = None
        sys.argv = ["the-eye", "migrate"]
        from the_eye.__main__ import main
        main()
        """,
        env={**os.environ, "THE_EYE_DATABASE_URL": "postgresql://eye@127.0.0.1/eye"},
        cwd=tmp_path,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "A PostgreSQL database needs the psycopg driver: pip install 'the-eye[postgres]'"
    )


@pytest.fixture(scope="module")
def sdk_venv(tmp_path_factory) -> Path:
    """A fresh virtual environment holding The Eye's wheel and nothing else, built and
    installed offline."""
    base = tmp_path_factory.mktemp("sdk-only")
    # A copy of the sources, so that no stale build directory of the checkout is packaged.
    project = base / "project"
    project.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project)
    shutil.copytree(
        ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info")
    )
    wheels = base / "wheels"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"]
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-w", wheels, project],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("the_eye-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    subprocess.run(
        [venv / "bin" / "python", *pip[1:], "install", "--no-deps", "--no-index", wheel],
        check=True,
        capture_output=True,
        timeout=300,
    )
    return venv


def sdk_env() -> dict[str, str]:
    """The environment minus anything that would reach this checkout's packages."""
    return {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}


@pytest.mark.slow
def test_sdk_only_install_imports_none_of_the_server(sdk_venv, tmp_path):
    result = run_python(
        sdk_venv / "bin" / "python",
        """
        import importlib.util, json
        import the_eye.client
        absent = [m for m in ("fastapi", "sqlalchemy", "msgspec") if importlib.util.find_spec(m)]
        print(json.dumps({"client": the_eye.client.__file__, "server_modules": absent}))
        """,
        env=sdk_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["client"].startswith(str(sdk_venv))
    assert found["server_modules"] == []


@pytest.mark.slow
def test_sdk_only_install_command_says_how_to_install_the_server(sdk_venv, tmp_path):
    result = subprocess.run(
        [sdk_venv / "bin" / "the-eye", "serve"],
        capture_output=True,
        text=True,
        env=sdk_env(),
        cwd=tmp_path,
        timeout=60,
    )
    assert result.returncode != 0
    assert result.stderr.splitlines()[0] == SERVER_MISSING
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sdk_only_install_sends_events_that_are_stored(
    sdk_venv, tmp_path, server, creds, processor, reader
):
    result = run_python(
        sdk_venv / "bin" / "python",
        """
        import json, sys
        from the_eye.client import EyeClient

        with EyeClient(sys.argv[1], host=sys.argv[2], batch_size=3) as eye:
            ids = [
                eye.track("sdk-only", "page interaction", "pageview", {"path": f"/{n}"})
                for n in range(7)
            ]
            eye.flush(timeout=30)
            stats = eye.stats()
        print(json.dumps({"ids": ids, "sent": stats.sent, "failed": stats.failed}))
        """,
        creds.write_key,
        server.url,
        env=sdk_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    sent = json.loads(result.stdout)
    assert (sent["sent"], sent["failed"]) == (7, 0)
    processor.drain()
    stored = fetch_all(reader, "/events/", session="sdk-only")
    assert fetch_all(reader, "/errors/") == []
    assert sorted(e["event_id"] for e in stored) == sorted(sent["ids"])
    assert {e["data"]["path"] for e in stored} == {f"/{n}" for n in range(7)}


@pytest.mark.slow
def test_the_wheel_ships_the_swagger_ui_console_and_browser_tracker_assets(sdk_venv, tmp_path):
    result = run_python(
        sdk_venv / "bin" / "python",
        """
        import importlib.resources
        static = importlib.resources.files("the_eye.api") / "static"
        for folder in ("swagger-ui", "sdk"):
            print(sorted(p.name for p in (static / folder).iterdir()))
        console = importlib.resources.files("the_eye") / "console"
        for folder in ("templates", "static", "static/vendor"):
            print(sorted(p.name for p in (console / folder).iterdir()))
        """,
        env=sdk_env(),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr
    for name in ("swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE"):
        assert name in result.stdout
    for name in ("base.html", "console.css", "console.js", "htmx-LICENSE.txt", "uplot-LICENSE.txt"):
        assert name in result.stdout
    assert "['eye.js', 'eye.mjs']" in result.stdout

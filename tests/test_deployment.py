"""The deployment files stay correct on paper: no Docker engine runs here, so the compose
file is parsed and every command and setting it names is checked against The Eye itself."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from the_eye.cli import main
from the_eye.config import Settings

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parent.parent
DEFAULTS = re.compile(r"\$\{(\w+)(?::-([^}]*))?\}")


@pytest.fixture(scope="module")
def compose() -> dict:
    # Interpolate `${NAME:-default}` with its default, as Compose does with NAME unset.
    text = DEFAULTS.sub(lambda m: m.group(2) or "", (ROOT / "docker-compose.yml").read_text())
    return yaml.safe_load(text)


def parse_command(args: list[str]) -> None:
    """Parse `the-eye ARGS` as the CLI would, without running it; raise if it would refuse."""
    command = main.get_command(None, args[0])
    assert command is not None, f"no command {args[0]!r}"
    command.make_context(args[0], list(args[1:]))


def test_compose_has_every_part_of_the_production_profile(compose):
    services = compose["services"]
    assert set(services) == {"postgres", "redis", "migrate", "api", "worker"}
    assert services["migrate"]["restart"] == "no"
    for role in ("api", "worker"):
        waits_for = services[role]["depends_on"]
        assert waits_for["migrate"]["condition"] == "service_completed_successfully"
        assert waits_for["postgres"]["condition"] == "service_healthy"
        assert waits_for["redis"]["condition"] == "service_healthy"
    assert services["worker"]["deploy"]["replicas"] >= 2
    redis_command = services["redis"]["command"]
    for option, value in (("--appendonly", "yes"), ("--maxmemory-policy", "noeviction")):
        assert redis_command[redis_command.index(option) + 1] == value


def test_compose_commands_are_commands_the_cli_accepts(compose):
    for role in ("migrate", "api", "worker"):
        parse_command(compose["services"][role]["command"])


def test_compose_sets_only_settings_the_eye_reads(compose):
    known = {f"THE_EYE_{name.upper()}" for name in Settings.model_fields}
    for role in ("migrate", "api", "worker"):
        environment = compose["services"][role]["environment"]
        assert set(environment) <= known
        assert environment["THE_EYE_QUEUE_URL"].startswith("redis://")
        assert environment["THE_EYE_DATABASE_URL"].startswith("postgresql://")


def test_dockerfile_runs_the_cli():
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    (entrypoint,) = [
        json.loads(line.split(None, 1)[1]) for line in lines if line.startswith("ENTRYPOINT")
    ]
    (cmd,) = [json.loads(line.split(None, 1)[1]) for line in lines if line.startswith("CMD")]
    assert entrypoint == ["the-eye"]
    parse_command(cmd)


def dockerfile_instructions() -> list[tuple[str, str]]:
    """(instruction, arguments) of each Dockerfile line, continuation lines joined."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [tuple(line.split(None, 1)) for line in lines if line and not line.startswith("#")]


def test_dockerfile_installs_hash_checked_locked_versions_only():
    instructions = dockerfile_instructions()
    copied = [args.split()[0] for name, args in instructions if name == "COPY"]
    assert "requirements.lock" in copied
    runs = [args for name, args in instructions if name == "RUN"]
    (from_lock,) = [run for run in runs if "-r requirements.lock" in run]
    assert "--require-hashes" in from_lock
    (install,) = [run for run in runs if "pip install" in run]
    # Offline: only the wheels checked against the lock can be installed.
    assert "--no-index" in install
    (extras,) = re.findall(r"the-eye\[([\w,]+)\]", install)
    assert set(extras.split(",")) == {"server", "postgres", "redis"}


def test_image_runs_the_python_the_lock_is_resolved_for():
    images = [args for name, args in dockerfile_instructions() if name == "FROM"]
    (locked,) = re.findall(r"--python-version (\S+)", (ROOT / "Makefile").read_text())
    assert images and all(image.startswith(f"python:{locked}-") for image in images)


def test_docker_build_context_has_what_the_dockerfile_copies():
    ignored = (ROOT / ".dockerignore").read_text().split()
    for needed in ("requirements.lock", "pyproject.toml", "README.md", "src"):
        assert needed not in ignored

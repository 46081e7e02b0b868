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

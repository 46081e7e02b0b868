"""Real `the-eye` processes for tests that kill, restart and wait on them.

Started, stopped and waited on by the benchmark's own process helper, so that tests and
`the-eye bench` run The Eye the same way.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

from the_eye_bench.processes import EyeProcess, free_port, the_eye_command

__all__ = ["ServeProcess", "WorkerProcess", "free_port", "the_eye_env", "wait_until"]

_FIRST_START = {
    "write_key": re.compile(r"write key:\s*(\S+)"),
    "admin_token": re.compile(r"admin API token:\s*(\S+)"),
}


def the_eye_env(settings, **overrides: object) -> dict[str, str]:
    """The environment that gives a `the-eye` process the same store and queue as `settings`."""
    env = {
        "THE_EYE_DATABASE_URL": settings.database_url,
        "THE_EYE_QUEUE_URL": settings.queue_url,
        "THE_EYE_REDIS_STREAM": settings.redis_stream,
        "THE_EYE_REDIS_GROUP": settings.redis_group,
    }
    env.update({f"THE_EYE_{name.upper()}": str(value) for name, value in overrides.items()})
    return env


class ServeProcess(EyeProcess):
    """`the-eye serve` on a free port (or `port`), ready once `/health/` answers."""

    def __init__(self, env: dict[str, str], *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        command = the_eye_command("serve", "--port", str(self.port), *args)
        super().__init__("the-eye serve", command, {**os.environ, **env})

    def start(self, timeout: float = 30) -> ServeProcess:
        super().start()
        self.wait_http("127.0.0.1", self.port, "/health/", timeout)
        return self

    def read_first_start(self) -> dict[str, str]:
        """The write key and admin token printed once on the first start."""
        text = self.log()
        found = {name: pattern.search(text) for name, pattern in _FIRST_START.items()}
        return {name: match.group(1) for name, match in found.items() if match}


class WorkerProcess(EyeProcess):
    """`the-eye worker`, its log kept in a file to read afterwards."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        super().__init__(
            "the-eye worker", the_eye_command("worker"), {**os.environ, **env}, log_path
        )

    def start(self) -> WorkerProcess:
        super().start()
        self.wait_log("processor started", timeout=30)
        return self


def wait_until(predicate, timeout: float = 30, interval: float = 0.1):
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")

"""Real `the-eye` processes for tests that kill, restart and wait on them."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time

import httpx


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


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServeProcess:
    """`the-eye serve` as a subprocess in its own process group."""

    def __init__(self, env: dict[str, str], *args: str, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, **env}
        self.args = args
        self.proc: subprocess.Popen | None = None
        self.first_start: dict[str, str] = {}

    def start(self, timeout: float = 30) -> ServeProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "the_eye", "serve", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"serve exited: {self.proc.stdout.read()}")
            try:
                if httpx.get(f"{self.url}/health/", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise RuntimeError("serve did not become healthy")
        return self

    def read_first_start(self) -> dict[str, str]:
        """The write key and admin token printed once on the first start."""
        while len(self.first_start) < 2:
            line = self.proc.stdout.readline()
            if not line:
                break
            if "write key:" in line:
                self.first_start["write_key"] = line.split()[-1]
            elif "admin API token:" in line:
                self.first_start["admin_token"] = line.split()[-1]
        return self.first_start

    def kill(self) -> None:
        """SIGKILL the whole process group: the server and its processor, mid-whatever."""
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()


def wait_until(predicate, timeout: float = 30, interval: float = 0.1):
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


class WorkerProcess:
    """`the-eye worker` as a subprocess, its log kept in a file to read afterwards."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        self.env = {**os.environ, **env}
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> WorkerProcess:
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "the_eye", "worker"],
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_until(lambda: "processor started" in self.log(), timeout=30)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    @property
    def pid(self) -> int:
        return self.proc.pid

    def kill(self) -> None:
        """SIGKILL: no chance to finish, roll back or acknowledge anything."""
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, then wait for the exit (the batch in hand is finished first)."""
        self.proc.terminate()
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()
        if self.proc:
            self._log.close()

"""Processes of The Eye (and the limit app) started for a benchmark or a test, always stopped.

Each runs in a new process session so that stopping it reaches every process it forked
(uvicorn workers, processors), and so that a Ctrl-C in the terminal reaches only the
benchmark, which then stops them in order. Its output goes to a log file, read to wait
for a line, to tell API processes apart, and to say why a process failed.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

_API_STARTED = re.compile(r"Started server process \[(\d+)\]")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def http_get(
    host: str, port: int, target: str, headers: dict[str, str] | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """One blocking GET, for setup and polling where latency is not being measured."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", target, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def the_eye_command(*arguments: str) -> list[str]:
    """The command line of `the-eye ARGUMENTS` run by this interpreter."""
    return [sys.executable, "-m", "the_eye", *arguments]


class ProcessFailed(RuntimeError):
    """A process exited or never became ready."""


@dataclass(slots=True)
class ProcessMemory:
    """Peak resident memory of one process of a server's tree."""

    pid: int
    role: str
    peak_mb: float


class EyeProcess:
    """A subprocess in its own session, with its output in a log file.

    Without a `log` path, the log is a temporary file removed when the process is stopped
    or killed.
    """

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log: Path | None = None
    ) -> None:
        self.name, self.command = name, command
        # Unbuffered, so the log shows each line as soon as it is printed.
        self.env = {**env, "PYTHONUNBUFFERED": "1"}
        self._own_log = log is None
        self.log_path = log or Path(tempfile.mkstemp(prefix="the-eye-", suffix=".log")[1])
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def check_alive(self) -> None:
        """Raise `ProcessFailed`, with the end of its log, when the process has exited."""
        if self.proc is None or self.proc.poll() is not None:
            code = None if self.proc is None else self.proc.returncode
            raise ProcessFailed(f"{self.name} exited (code {code}):\n{self.log_tail()}")

    def wait_until(self, ready: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
        """Wait until `ready()`, failing at once if the process exits first."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            if ready():
                return
            if time.monotonic() > deadline:
                raise ProcessFailed(f"{self.name}: no {what} in {timeout:.0f}s:\n{self.log_tail()}")
            time.sleep(0.05)

    def wait_http(self, host: str, port: int, path: str, timeout: float = 60.0) -> None:
        """Wait until `GET path` answers below 500."""

        def answers() -> bool:
            try:
                return http_get(host, port, path, timeout=2)[0] < 500
            except OSError:
                return False

        self.wait_until(answers, f"answer below 500 to GET {path}", timeout)

    def wait_log(self, text: str, timeout: float = 60.0) -> None:
        """Wait until the log holds `text`."""
        self.wait_until(lambda: text in self.log(), repr(text), timeout)

    def log(self) -> str:
        """Everything the process has printed so far."""
        try:
            return self.log_path.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    def roles(
        self, root_role: str, child_role: str = "processor"
    ) -> list[tuple[psutil.Process, str]]:
        """Each process of the tree still running, with the role it plays.

        uvicorn logs "Started server process [pid]" for each process that serves HTTP; the
        other children of `the-eye serve` are processors and multiprocessing's helper.
        """
        if self.proc is None or self.proc.poll() is not None:
            return []
        api = {int(pid) for pid in _API_STARTED.findall(self.log())}
        found = []
        with contextlib.suppress(psutil.NoSuchProcess):
            root = psutil.Process(self.pid)
            for process in [root, *root.children(recursive=True)]:
                try:
                    helper = any("resource_tracker" in part for part in process.cmdline())
                except (psutil.NoSuchProcess, OSError):
                    continue
                if process.pid in api:
                    role = "api"
                elif process.pid == self.pid:
                    role = root_role
                else:
                    role = "helper" if helper else child_role
                found.append((process, role))
        return found

    def memory(self, root_role: str, child_role: str = "processor") -> list[ProcessMemory]:
        """Peak RSS of each process of the tree still running, with the role it plays."""
        found = []
        for process, role in self.roles(root_role, child_role):
            try:
                found.append(ProcessMemory(process.pid, role, _peak_rss_mb(process.pid)))
            except OSError:
                continue
        return found

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM, then wait for the exit (a processor finishes the batch in hand first)."""
        assert self.proc is not None
        self.proc.terminate()
        return self.proc.wait(timeout)

    def kill(self) -> None:
        """SIGKILL the whole session: no chance to finish, roll back or acknowledge anything."""
        if self.proc is not None:
            self._kill_group()
            self.proc.wait(10)
        self._remove_log()

    def stop(self, grace: float = 30.0) -> None:
        """SIGTERM, so servers and processors finish what they hold; SIGKILL what is left."""
        if self.proc is not None:
            if self.proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.proc.wait(grace)
            # Children that outlived their parent (or a parent that ignored SIGTERM).
            self._kill_group()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(5)
        self._remove_log()

    def _kill_group(self) -> None:
        # The process leads its own session and process group, so its pid names the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    def _remove_log(self) -> None:
        if self._own_log:
            self.log_path.unlink(missing_ok=True)


def _peak_rss_mb(pid: int) -> float:
    """VmHWM, the most resident memory the process ever had, in MiB.

    psutil has the current RSS only; Linux keeps the high-water mark in /proc/PID/status.
    """
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise OSError(f"no VmHWM for process {pid}")

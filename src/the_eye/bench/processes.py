"""The server processes a benchmark starts: started in their own session, always stopped.

Each runs in a new process session so that stopping it reaches every process it forked
(uvicorn workers, processors), and so that a Ctrl-C in the terminal reaches only the
benchmark, which then stops them in order.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import re
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

_API_STARTED = re.compile(rb"Started server process \[(\d+)\]")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


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


class ProcessFailed(RuntimeError):
    """A server process exited or never became ready."""


@dataclass(slots=True)
class ProcessMemory:
    """Peak resident memory of one process of a server's tree."""

    pid: int
    role: str
    peak_mb: float


class ServerProcess:
    """A subprocess serving HTTP (or working beside a server), with its log in a file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name, self.command, self.env, self.log = name, command, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def check_alive(self) -> None:
        """Raise `ProcessFailed`, with the end of its log, when the process has exited."""
        if self.process is None or self.process.poll() is not None:
            code = None if self.process is None else self.process.returncode
            raise ProcessFailed(f"{self.name} exited (code {code}):\n{self.log_tail()}")

    def wait_http(self, host: str, port: int, path: str, timeout: float = 60.0) -> None:
        """Wait until `GET path` answers below 500."""
        deadline = time.monotonic() + timeout
        while True:
            self.check_alive()
            try:
                status, _ = http_get(host, port, path, timeout=2)
                if status < 500:
                    return
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise ProcessFailed(
                    f"{self.name} was not ready in {timeout:.0f}s:\n{self.log_tail()}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log.read_bytes().decode("utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def tree(self) -> list[int]:
        """This process and every descendant still running."""
        if self.process is None or self.process.poll() is not None:
            return []
        return [self.pid, *descendants(self.pid)]

    def memory(self, root_role: str, child_role: str = "processor") -> list[ProcessMemory]:
        """Peak RSS of each process of the tree, with the role it plays.

        uvicorn logs "Started server process [pid]" for each process that serves HTTP; the
        other children of `the-eye serve` are processors and multiprocessing's helper.
        """
        api = {int(pid) for pid in _API_STARTED.findall(self._log_bytes())}
        found = []
        for pid in self.tree():
            if pid in api:
                role = "api"
            elif pid == self.pid:
                role = root_role
            elif b"resource_tracker" in _cmdline(pid):
                role = "helper"
            else:
                role = child_role
            peak = peak_rss_mb(pid)
            if peak is not None:
                found.append(ProcessMemory(pid, role, peak))
        return found

    def _log_bytes(self) -> bytes:
        try:
            return self.log.read_bytes()
        except OSError:
            return b""

    def stop(self, grace: float = 20.0) -> None:
        """SIGTERM, so servers and processors finish what they hold; SIGKILL what is left."""
        if self.process is None:
            return
        pgid = self.pid  # the leader of its own session and process group
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(grace)
        # Children that outlived their parent (or a parent that ignored SIGTERM).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pgid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, found through /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # The command name may hold spaces and parentheses; fields resume after the last ')'.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found, stack = [], [pid]
    while stack:
        for child in children.get(stack.pop(), []):
            found.append(child)
            stack.append(child)
    return found


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM, the most resident memory the process ever had, in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""

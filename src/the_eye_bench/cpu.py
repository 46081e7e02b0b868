"""CPU time the measured processes spent over a load window, by role, from their own accounting.

Throughput on a shared machine moves with whatever else runs on it; the CPU a process
spends on the same work moves much less. A reading holds each process's user + system
seconds, and, where it forks, those of its children that exited and were waited for; the
difference of two readings is what each role spent in between. The database and Redis
servers are found by process name, and only when their URL points at this machine.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import psutil
from sqlalchemy.engine import make_url

from the_eye_bench.processes import EyeProcess

LOCAL_HOSTS = ("", "localhost", "127.0.0.1", "::1")
PROCESSOR_ROLES = ("processor", "worker")
# A backend's title: "postgres: [cluster: ]user database host(port) activity".
_BACKEND_TITLE = re.compile(r"^postgres: (?:\S+: )?\S+ (\S+) (?:\S+\(\d+\)|\[local\])")

Roles = tuple[str, str]


@dataclass(frozen=True, slots=True)
class ProcessCpu:
    """One process's CPU seconds so far; `reaped_s` is None where its children are not counted."""

    pid: int
    role: str
    own_s: float
    reaped_s: float | None


def read_cpu(
    processes: Iterable[tuple[psutil.Process, str]], reaped: bool = True
) -> list[ProcessCpu]:
    """Read each process still running; with `reaped`, its waited-for children's time too."""
    found = []
    for process, role in processes:
        try:
            times = process.cpu_times()
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            continue
        children = times.children_user + times.children_system if reaped else None
        found.append(ProcessCpu(process.pid, role, times.user + times.system, children))
    return found


def cpu_spent(before: list[ProcessCpu], after: list[ProcessCpu]) -> dict[str, float]:
    """CPU seconds each role spent between two readings.

    A process that started in between counts from zero. One that exited in between is in
    its parent's reaped time for its whole life, so what it had spent before the first
    reading comes off; where reaped time is not counted, it simply drops out.
    """
    earlier = {p.pid: p for p in before}
    spent: dict[str, float] = {}
    for now in after:
        was = earlier.pop(now.pid, None)
        used = _total(now) - (0.0 if was is None else _total(was))
        spent[now.role] = spent.get(now.role, 0.0) + used
    for gone in earlier.values():
        if gone.reaped_s is not None:
            spent[gone.role] = spent.get(gone.role, 0.0) - _total(gone)
    return spent


def _total(cpu: ProcessCpu) -> float:
    return cpu.own_s + (cpu.reaped_s or 0.0)


def us_per(seconds: float, count: int) -> float:
    """Microseconds per unit of work, 0 when there was none."""
    return seconds * 1e6 / count if count > 0 else 0.0


def is_local(url: str) -> bool:
    """Whether a database or queue URL names this machine (a Unix socket included)."""
    host = urlsplit(url).hostname or ""
    return host in LOCAL_HOSTS or host.startswith("/")


def postgresql_processes(database: str) -> list[tuple[psutil.Process, str]]:
    """The local PostgreSQL server's processes, less the backends of other databases.

    Backends come and go with their connections, and the postmaster's reaped time holds
    every database's, so the server is read without reaped time.
    """
    found = []
    for process in psutil.process_iter(["name", "cmdline"]):
        if process.info["name"] not in ("postgres", "postmaster"):
            continue
        backend = _BACKEND_TITLE.match(" ".join(process.info["cmdline"] or []))
        if backend is None or backend.group(1) == database:
            found.append((process, "postgres"))
    return found


def redis_processes() -> list[tuple[psutil.Process, str]]:
    """The local redis-server processes (the whole server: other clients' work counts too)."""
    return [
        (process, "redis")
        for process in psutil.process_iter(["name"])
        if process.info["name"] == "redis-server"
    ]


@dataclass(slots=True)
class CpuMeter:
    """The processes whose CPU a phase reads: servers started by the run, with the roles of
    their root and children, and the local PostgreSQL (its database) and Redis, if any."""

    servers: list[tuple[EyeProcess, Roles]]
    postgres_database: str | None = None
    redis: bool = False
    # By service: how it is read, or why it is not.
    services: dict[str, str] = field(default_factory=dict)

    def read(self) -> list[ProcessCpu]:
        own = read_cpu(p for server, roles in self.servers for p in server.roles(*roles))
        if self.postgres_database is not None:
            own += read_cpu(postgresql_processes(self.postgres_database), reaped=False)
        if self.redis:
            own += read_cpu(redis_processes())
        return own

    def spent_since(self, before: list[ProcessCpu]) -> dict[str, float]:
        """CPU seconds by role from the reading `before` until now."""
        return cpu_spent(before, self.read())


def service_meter(
    servers: list[tuple[EyeProcess, Roles]], database_url: str, queue_url: str
) -> CpuMeter:
    """A meter of `servers` and of the PostgreSQL and Redis servers they use, where those
    run on this machine."""
    meter = CpuMeter(servers)
    how = meter.services
    if make_url(database_url).get_backend_name() == "postgresql":
        database = make_url(database_url).database or ""
        if is_local(database_url) and read_cpu(postgresql_processes(database), reaped=False):
            meter.postgres_database = database
            how["postgres"] = f"the local server's processes, less other databases' than {database}"
        else:
            how["postgres"] = "not on this machine (or not readable by this user): not measured"
    if queue_url.startswith(("redis://", "rediss://")):
        if is_local(queue_url) and read_cpu(redis_processes()):
            meter.redis = True
            how["redis"] = "the local redis-server: every client's work counts"
        else:
            how["redis"] = "not on this machine (or not readable by this user): not measured"
    return meter

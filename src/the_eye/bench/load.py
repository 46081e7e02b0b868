"""What a load generator is asked to do and what it reports, and the choice between generators."""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from the_eye.bench.generator import BodyFile

GENERATORS = ("auto", "wrk", "python")

StopCheck = Callable[[], bool]
# How often a running generator asks its stop check.
STOP_CHECK_INTERVAL = 0.1


@dataclass(slots=True)
class LoadSpec:
    """Replay a body file as POSTs over `connections` keep-alive connections for `duration` s."""

    host: str
    port: int
    path: str
    authorization: str
    bodies: BodyFile
    connections: int
    duration: float


@dataclass(slots=True)
class LoadResult:
    """What one load run measured on the client side."""

    ok: int
    failed: int
    socket_errors: int
    duration_s: float
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        """Successful (2xx) requests per second."""
        return self.ok / self.duration_s if self.duration_s > 0 else 0.0


class LoadGenerator(ABC):
    """Sends load as fast as the server answers it, without being the bottleneck itself."""

    name: str

    @property
    @abstractmethod
    def detail(self) -> str:
        """A short description of how it runs, for the report."""

    @abstractmethod
    def run(self, spec: LoadSpec, stop_when: StopCheck | None = None) -> LoadResult:
        """Run `spec` until its duration is over or `stop_when()` (asked ~10 times/s) says so."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Stop any process the generator keeps."""


def open_generator(choice: str, workdir: Path, cpus: int) -> LoadGenerator:
    """The generator `choice` names; `auto` is wrk when it is on PATH, else our own."""
    wrk = shutil.which("wrk")
    if choice == "wrk" and wrk is None:
        raise RuntimeError("wrk is not on PATH; install it with `apt-get install wrk`.")
    if choice in ("auto", "wrk") and wrk is not None:
        from the_eye.bench.wrk import WrkGenerator

        return WrkGenerator(wrk, workdir, threads=cpus)
    from the_eye.bench.pyload import PythonGenerator

    return PythonGenerator(processes=cpus)

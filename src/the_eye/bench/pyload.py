"""Our own load generator, for machines without wrk: processes each running an asyncio loop.

The processes are started once and kept for every run of the benchmark; each holds its
share of the connections and sends prepared request bytes (see `client.LoadConnection`).
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import signal
import time
from array import array
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from the_eye.bench.client import Deadline, LoadConnection, build_request
from the_eye.bench.generator import read_bodies
from the_eye.bench.load import STOP_CHECK_INTERVAL, LoadGenerator, LoadResult, LoadSpec, StopCheck
from the_eye.bench.stats import percentile

# Time the processes get to open their connections before the run starts together.
_START_DELAY = 0.3


@dataclass(slots=True)
class _Job:
    host: str
    port: int
    path: str
    authorization: str
    bodies: Path
    connections: int
    first_connection: int
    all_connections: int
    duration: float
    start_at: float


class PythonGenerator(LoadGenerator):
    """A few processes with an asyncio loop each, on uvloop when it is installed."""

    name = "python"

    def __init__(self, processes: int) -> None:
        self.processes = max(1, processes)
        context = multiprocessing.get_context("spawn")
        self._stop = context.Event()
        self._workers: list[tuple[BaseProcess, Connection]] = []
        for _ in range(self.processes):
            parent_end, child_end = context.Pipe()
            process = context.Process(
                target=_worker_main, args=(child_end, self._stop), daemon=True
            )
            process.start()
            child_end.close()
            self._workers.append((process, parent_end))

    @property
    def detail(self) -> str:
        return f"{self.processes} processes, asyncio"

    def run(self, spec: LoadSpec, stop_when: StopCheck | None = None) -> LoadResult:
        self._stop.clear()
        start_at = time.time() + _START_DELAY
        share, extra = divmod(spec.connections, self.processes)
        first = 0
        for i, (_, pipe) in enumerate(self._workers):
            count = share + (1 if i < extra else 0)
            pipe.send(
                _Job(
                    spec.host,
                    spec.port,
                    spec.path,
                    spec.authorization,
                    spec.bodies.path,
                    count,
                    first,
                    spec.connections,
                    spec.duration,
                    start_at,
                )
            )
            first += count
        waiting = {pipe for _, pipe in self._workers}
        replies: dict[Connection, dict[str, Any]] = {}
        while waiting:
            for pipe in wait(list(waiting), STOP_CHECK_INTERVAL):
                assert isinstance(pipe, Connection)
                replies[pipe] = pipe.recv()
                waiting.discard(pipe)
            if waiting and stop_when is not None and stop_when():
                self._stop.set()
                stop_when = None
        results = list(replies.values())
        latencies = array("d")
        for result in results:
            latencies.frombytes(result["latencies"])
        ordered = sorted(latencies)
        return LoadResult(
            ok=sum(r["ok"] for r in results),
            failed=sum(r["failed"] for r in results),
            socket_errors=sum(r["socket_errors"] for r in results),
            duration_s=max(r["elapsed"] for r in results),
            p50_ms=percentile(ordered, 50) * 1000,
            p99_ms=percentile(ordered, 99) * 1000,
        )

    def close(self) -> None:
        for process, pipe in self._workers:
            with contextlib.suppress(OSError):
                pipe.send(None)
            pipe.close()
            process.join(2)
            if process.is_alive():
                process.kill()
                process.join()
        self._workers = []


def _worker_main(pipe: Connection, stop: Any) -> None:
    """A generator process: run jobs from the parent until it sends None or goes away."""
    # Ctrl-C reaches the whole process group; the parent decides when its workers stop.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    prepared: dict[tuple[Any, ...], list[bytes]] = {}
    while True:
        try:
            job = pipe.recv()
        except EOFError:
            return
        if job is None:
            return
        key = (job.bodies, job.host, job.port, job.path, job.authorization)
        if key not in prepared:
            headers = {"Authorization": job.authorization, "Content-Type": "application/json"}
            host = f"{job.host}:{job.port}"
            prepared[key] = [
                build_request("POST", job.path, host, body, headers)
                for body in read_bodies(job.bodies)
            ]
        pipe.send(asyncio.run(_run(job, prepared[key], stop)))


async def _run(job: _Job, requests: list[bytes], stop: Any) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    latencies = array("d")
    counts = {"ok": 0, "failed": 0, "socket_errors": 0}

    def on_response(status: int, latency: float) -> None:
        if status == 0:
            counts["socket_errors"] += 1
        elif 200 <= status < 300:
            counts["ok"] += 1
            latencies.append(latency)
        else:
            counts["failed"] += 1

    begin = loop.time() + max(0.0, job.start_at - time.time())
    deadline = Deadline(begin + job.duration)
    finished: list[asyncio.Future[None]] = []
    connections: list[LoadConnection] = []
    for i in range(job.connections):
        done: asyncio.Future[None] = loop.create_future()

        def factory(i: int = i, done: asyncio.Future[None] = done) -> LoadConnection:
            # Connections start at different bodies so they do not send the same ones.
            first = ((job.first_connection + i) * 7919) % len(requests)
            return LoadConnection(requests, first, deadline, on_response, done)

        _, protocol = await loop.create_connection(factory, job.host, job.port)
        connections.append(protocol)
        finished.append(done)
    await asyncio.sleep(max(0.0, begin - loop.time()))
    for connection in connections:
        connection.start()
    everything = asyncio.gather(*finished)
    while not everything.done():
        # The parent sets `stop` to end the run early; connections end after their request.
        if stop.is_set():
            deadline.at = loop.time()
        await asyncio.wait([everything], timeout=0.02)
    # Connections finish the request in flight at the deadline, and that time counts too.
    return {**counts, "elapsed": loop.time() - begin, "latencies": latencies.tobytes()}

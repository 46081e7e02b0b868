"""One run of `the-eye bench`: start The Eye on a fresh database, measure it phase by phase.

The phases run one after the other so that none disturbs another's numbers, and each one
that queues events waits until the processor has settled them before the next begins.
Everything started is stopped, and the temporary directory removed, however the run ends.
"""

from __future__ import annotations

import os
import platform
import secrets
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from the_eye import __version__
from the_eye.config import Settings
from the_eye.store.engine import create_engine
from the_eye.store.migrate import migrate
from the_eye.timestamps import utcnow
from the_eye_bench.console import ConsoleLatency, console_targets, measure_console
from the_eye_bench.cpu import PROCESSOR_ROLES, CpuMeter, service_meter, us_per
from the_eye_bench.export import measure_export
from the_eye_bench.floor import FLOOR_EVENTS, FLOOR_ROUNDS, floor_rows, measure_floor
from the_eye_bench.lag import LagPlan, LagResult, measure_lag
from the_eye_bench.launch import eye_env, limit_app_command, serve_command, serve_details
from the_eye_bench.metrics import Counters, read_counters
from the_eye_bench.processes import EyeProcess, ProcessMemory, free_port, the_eye_command
from the_eye_bench.queries import QueryLatency, measure_queries
from the_eye_bench.report import Report
from the_eye_bench.seed import SeededStore, create_credentials, revoke_credentials, seed_store
from the_eye_bench.traffic import BodyFile, write_bodies
from the_eye_bench.wrk import Load, Wrk

CONNECTIONS = 64
BATCH_EVENTS = 100
STEADY_EVENTS_PER_S = 2_000
STEADY_EVENTS_PER_BODY = 10
LAG_CONNECTIONS = 8
LAG_PROBES_PER_S = 10


class Progress(Protocol):
    """Where the run says what it is doing."""

    def phase(self, description: str, total: float | None = None) -> None: ...

    def update(self, completed: float) -> None: ...


@dataclass(slots=True)
class LoadPlan:
    """The load generator and the request bodies the load phases send."""

    wrk: Wrk
    single: BodyFile
    batch: BodyFile
    steady: BodyFile


@dataclass(slots=True)
class BenchOptions:
    """What to run: the profile, how big, how many processes, with which wrk."""

    profile: str
    quick: bool
    e2e_events: int
    store_events: int
    wrk: str | None
    workers: int
    processors: int
    database_url: str | None = None
    queue_url: str | None = None
    host: str = "127.0.0.1"
    # "queries": only the API queries and the console's pages over the seeded store;
    # "export": only the Parquet export of the seeded store.
    only: str | None = None
    # Also the Parquet export of the seeded store.
    export: bool = False

    @property
    def load_seconds(self) -> float:
        return 3.0 if self.quick else 10.0

    @property
    def lag_seconds(self) -> float:
        return 4.0 if self.quick else 15.0

    @property
    def query_samples(self) -> int:
        return 50 if self.quick else 200

    @property
    def console_samples(self) -> int:
        return 20 if self.quick else 100

    @property
    def e2e_min_seconds(self) -> float:
        """The shortest the e2e run sends, so that batch_events_per_s is a steady rate."""
        return 1.0 if self.quick else 5.0

    @property
    def e2e_cap_seconds(self) -> float:
        """The longest the e2e run sends, so a slow server cannot stall the benchmark."""
        return 15.0 if self.quick else 600.0

    @property
    def settle_timeout(self) -> float:
        return 20.0 if self.quick else 900.0


class BenchRun:
    """Runs the phases of the benchmark and fills a `Report`."""

    def __init__(self, options: BenchOptions, progress: Progress) -> None:
        self.options = options
        self.progress = progress
        self.report = Report(cpu=os.cpu_count() or 1)
        self.port = 0
        self.application_id = 0
        self.write_key = ""
        self.token = ""
        self.admin_token = secrets.token_urlsafe(32)
        # CPU seconds by role over each load window.
        self.cpu_seconds: dict[str, dict[str, float]] = {}

    def run(self) -> Report:
        options, report = self.options, self.report
        started = time.perf_counter()
        with ExitStack() as stack:
            work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="the-eye-bench-")))
            database_url = options.database_url or f"sqlite:///{work / 'bench.db'}"
            queue_url = options.queue_url or "db"
            now = utcnow()
            if options.only == "export":  # no server, no load: the store and its export
                self._export(database_url, work, self._seed(stack, database_url, queue_url, now))
                report.details["only"] = "export"
                report.details["duration_s"] = round(time.perf_counter() - started, 1)
                return report
            load = None if options.only else self._prepare_load(work, now)

            # The store comes first, so that an unreachable database fails the run at once.
            seeded = self._seed(stack, database_url, queue_url, now)

            if load is not None:
                self.progress.phase("limit: empty ASGI app under uvicorn")
                report.limit_rps = self._limit(stack, load.wrk, load.single, work)

            servers = self._start_eye(stack, work, database_url, queue_url)
            meter = service_meter(servers, database_url, queue_url)
            queries = self._queries(seeded)
            if options.export:
                self._export(database_url, work, seeded)
            console = self._console(seeded)
            # Read after the console's few invalid events, which are not the load's.
            base = read_counters(options.host, self.port)
            measured = {}
            if load is not None:
                measured = self._load_phases(load, base, meter)
                measured |= self._floor(load.batch, database_url)

            # Peak memory is read while the processes still run, just before they stop.
            memory = [m for server, roles in servers for m in server.memory(*roles)]
            report.rss_mb = max((m.peak_mb for m in memory if m.role != "helper"), default=0.0)
            self.progress.phase("stopping The Eye")

            report.details = {
                **report.details,
                "profile": options.profile,
                "quick": options.quick,
                "only": options.only,
                "serve": serve_details(options.profile, options.workers, options.processors),
                **measured,
                "store_events": seeded.events,
                "store_seeded_by": seeded.method,
                "store_seed_seconds": round(seeded.seconds, 1),
                "query_samples": queries.samples,
                "query_session_rows": round(queries.session_rows, 1),
                "query_range_rows": round(queries.range_rows, 1),
                "query_token": "a stored read token",
                "console_samples": console.samples,
                "console_sign_in": "the sign-in form, with the admin token",
                "console_pages_missing": console.missing,
                "rss_mb_by_process": [_memory_json(m) for m in memory],
                "the_eye_version": __version__,
                "python": platform.python_version(),
                "machine": platform.machine(),
            }
        report.details["duration_s"] = round(time.perf_counter() - started, 1)
        return report

    def _prepare_load(self, work: Path, now: datetime) -> LoadPlan:
        self.progress.phase("writing request bodies")
        if self.options.wrk is None:
            raise RuntimeError("the load phases need wrk")
        wrk = Wrk(self.options.wrk, work, self.report.cpu)
        self.report.generator = wrk.name
        return LoadPlan(
            wrk,
            single=write_bodies(work / "single.txt", 20_000, 1, now, seed=1),
            batch=write_bodies(work / "batch.txt", 400, BATCH_EVENTS, now, seed=2),
            steady=write_bodies(work / "steady.txt", 1_000, STEADY_EVENTS_PER_BODY, now, seed=4),
        )

    def _load_phases(self, load: LoadPlan, base: Counters, meter: CpuMeter) -> dict[str, object]:
        """Single events, batches end to end, then the lag under steady load: their details."""
        single, failed_single = self._single(load.wrk, load.single, base, meter)
        failed = {"single": failed_single}
        e2e, failed["batch"] = self._e2e(load.wrk, load.batch, meter)
        lag = self._lag(load.wrk, load.steady, base)
        failed["steady"] = lag.failed_requests
        errored = read_counters(self.options.host, self.port).errored - base.errored
        return {
            "generator_detail": load.wrk.detail,
            "connections": CONNECTIONS,
            "limit_app": "the_eye_bench.limit_app under uvicorn with the serve options",
            "event_bytes_mean": round(load.single.mean_event_bytes, 1),
            "batch_events_per_request": BATCH_EVENTS,
            **single,
            **e2e,
            "lag_p50_ms": round(lag.p50_ms, 2),
            "lag_probes": lag.probes,
            "lag_lost_probes": lag.lost_probes,
            "lag_events_per_s": round(lag.events_per_s, 1),
            "lag_events_per_request": STEADY_EVENTS_PER_BODY,
            "lag_method": "probe in its own session; 202 until GET /events/?session= has it",
            "failed_requests": failed,
            "errored_events": errored,
            "cpu_method": "psutil cpu_times, user + system, of every process of each role "
            "(its children that exited included), read before and after each load window",
            "cpu_seconds_by_role": {
                phase: {role: round(s, 3) for role, s in sorted(spent.items())}
                for phase, spent in self.cpu_seconds.items()
            },
            "cpu_services": meter.services,
        }

    def _console(self, seeded: SeededStore) -> ConsoleLatency:
        self.progress.phase("console: every page, signed in")
        options = self.options
        targets = console_targets(options.host, self.port, self.write_key, self.token, seeded)
        console = measure_console(
            options.host, self.port, self.admin_token, targets, options.console_samples
        )
        self.report.console_ms = console.pages
        return console

    def _export(self, database_url: str, work: Path, seeded: SeededStore) -> None:
        """The Parquet export of every stored event, in a process of its own."""
        self.progress.phase(f"export: {seeded.events:,} stored events to Parquet")
        result = measure_export(database_url, work / "export")
        self.report.export_events_per_s = result.events_per_s
        self.report.export_rss_mb = result.peak_rss_mb
        self.report.details.update(
            {
                "profile": self.options.profile,
                "quick": self.options.quick,
                "store_events": seeded.events,
                "export_events": result.events,
                "export_seconds": round(result.seconds, 2),
                "export_files": result.files,
                "export_method": "the_eye.export.incremental.export_events, parquet, "
                "first run over the whole store, in a process of its own (ru_maxrss)",
            }
        )

    def _queries(self, seeded: SeededStore) -> QueryLatency:
        self.progress.phase("queries: session timelines and time ranges")
        options, report = self.options, self.report
        queries = measure_queries(
            options.host, self.port, self.token, seeded, options.query_samples
        )
        report.query_session_ms, report.query_range_ms = queries.session_ms, queries.range_ms
        return queries

    def _single(
        self, wrk: Wrk, single: BodyFile, base: Counters, meter: CpuMeter
    ) -> tuple[dict[str, object], int]:
        """One event per request as fast as it is answered; returns the failed requests."""
        self.progress.phase("single: one event per request")
        before = meter.read()
        result = wrk.run(self._load(single, self.options.load_seconds))
        api_s = meter.spent_since(before).get("api", 0.0)
        report = self.report
        report.single_rps = result.rps
        report.single_p50_ms, report.single_p99_ms = result.p50_ms, result.p99_ms
        report.api_cpu_us_per_request = us_per(api_s, result.ok)
        _, _, counters = self._wait_settled(base, "single: processing what was accepted")
        # The processor's share runs on until the last accepted event is stored.
        spent = self.cpu_seconds["single"] = meter.spent_since(before)
        processor_s = sum(spent.get(role, 0.0) for role in PROCESSOR_ROLES)
        settled = counters.settled - base.settled
        details: dict[str, object] = {
            "single_processor_cpu_us_per_event": round(us_per(processor_s, settled), 1)
        }
        return details, result.failed + result.socket_errors

    def _lag(self, wrk: Wrk, steady: BodyFile, base: Counters) -> LagResult:
        self.progress.phase(f"lag: steady {STEADY_EVENTS_PER_S:,} events/s with probes")
        load = replace(
            self._load(steady, self.options.lag_seconds),
            connections=LAG_CONNECTIONS,
            requests_per_s=STEADY_EVENTS_PER_S / STEADY_EVENTS_PER_BODY,
        )
        plan = LagPlan(load, STEADY_EVENTS_PER_BODY, self.token, LAG_PROBES_PER_S)
        lag = measure_lag(wrk, plan)
        self.report.lag_p99_ms = lag.p99_ms
        self._wait_settled(base, "lag: processing what was accepted")
        return lag

    def _load(self, bodies: BodyFile, duration: float) -> Load:
        return Load(
            self.options.host,
            self.port,
            "/events/",
            f"Bearer {self.write_key}",
            bodies,
            CONNECTIONS,
            duration,
        )

    def _limit(self, stack: ExitStack, wrk: Wrk, bodies: BodyFile, work: Path) -> float:
        options = self.options
        self.port = free_port(options.host)
        command = limit_app_command(options.host, self.port, options.workers)
        limit = EyeProcess("the limit app", command, dict(os.environ), work / "limit.log")
        stack.callback(limit.stop)
        limit.start()
        limit.wait_http(options.host, self.port, "/")
        meter = CpuMeter([(limit, ("limit", "limit"))])
        before = meter.read()
        result = wrk.run(self._load(bodies, options.load_seconds))
        spent = self.cpu_seconds["limit"] = meter.spent_since(before)
        self.report.limit_cpu_us_per_request = us_per(sum(spent.values()), result.ok)
        limit.stop()
        return result.rps

    def _seed(
        self, stack: ExitStack, database_url: str, queue_url: str, now: datetime
    ) -> SeededStore:
        """Migrate, make the bench's credentials, write the history the queries run over."""
        total = self.options.store_events
        self.progress.phase(f"seeding the store with {total:,} events", total=total)
        engine = create_engine(Settings(database_url=database_url, queue_url=queue_url))
        stack.callback(engine.dispose)
        migrate(engine)
        credentials = create_credentials(engine)
        self.application_id = credentials.application_id
        self.write_key, self.token = credentials.write_key, credentials.token
        if self.options.profile == "production":
            stack.callback(revoke_credentials, engine, credentials)
        return seed_store(engine, credentials.application_id, total, now, self.progress.update)

    def _start_eye(
        self, stack: ExitStack, work: Path, database_url: str, queue_url: str
    ) -> list[tuple[EyeProcess, tuple[str, str]]]:
        """`the-eye serve`, and in production `the-eye worker`s beside it, ready to measure."""
        options = self.options
        self.progress.phase("starting The Eye")
        env = eye_env(database_url, queue_url, self.admin_token)
        self.port = free_port(options.host)
        command = serve_command(
            options.profile, options.host, self.port, options.workers, options.processors
        )
        serve = EyeProcess("the-eye serve", command, env, work / "serve.log")
        stack.callback(serve.stop)
        serve.start()
        servers = [(serve, ("supervisor", "processor"))]
        if options.profile == "production":
            for i in range(options.processors):
                log = work / f"worker{i}.log"
                worker = EyeProcess(f"the-eye worker {i}", the_eye_command("worker"), env, log)
                stack.callback(worker.stop)
                worker.start()
                servers.append((worker, ("worker", "worker")))
        serve.wait_http(options.host, self.port, "/ready/")
        for worker, _ in servers[1:]:
            worker.check_alive()
        return servers

    def _e2e(self, wrk: Wrk, batch: BodyFile, meter: CpuMeter) -> tuple[dict[str, object], int]:
        """Send batches until `e2e_events` are accepted, then wait until all are stored."""
        options, report = self.options, self.report
        target = options.e2e_events
        self.progress.phase(f"batch + e2e: sending {target:,}+ events in batches", total=target)
        base = read_counters(options.host, self.port)
        started = time.perf_counter()

        def enough() -> bool:
            received = read_counters(options.host, self.port).received - base.received
            self.progress.update(min(received, target))
            long_enough = time.perf_counter() - started >= options.e2e_min_seconds
            return received >= target and long_enough

        before = meter.read()
        result = wrk.run(self._load(batch, options.e2e_cap_seconds), stop_when=enough)
        first_request = time.perf_counter() - result.duration_s
        # The API's share ends with the last answer: while the processors catch up it only
        # answers this benchmark's polling of /metrics.
        sending = self.cpu_seconds["batch"] = meter.spent_since(before)
        report.batch_events_per_s = result.ok * BATCH_EVENTS / result.duration_s
        report.api_cpu_us_per_event = us_per(sending.get("api", 0.0), result.ok * BATCH_EVENTS)
        settled_at, complete, counters = self._wait_settled(
            base, "e2e: waiting until every event is stored"
        )
        spent = self.cpu_seconds["e2e"] = meter.spent_since(before)
        received = counters.received - base.received
        settled = counters.settled - base.settled
        report.e2e_events_per_s = settled / (settled_at - first_request)
        processor_s = sum(spent.get(role, 0.0) for role in PROCESSOR_ROLES)
        report.processor_cpu_us_per_event = us_per(processor_s, settled)
        if meter.postgres_database is not None:
            report.postgres_cpu_us_per_event = us_per(spent.get("postgres", 0.0), settled)
        if meter.redis:
            report.redis_cpu_us_per_event = us_per(spent.get("redis", 0.0), settled)
        details: dict[str, object] = {
            "e2e_events": received,
            "e2e_complete": complete,
            "e2e_seconds": round(settled_at - first_request, 2),
            "e2e_sending_seconds": round(result.duration_s, 2),
        }
        return details, result.failed + result.socket_errors

    def _floor(self, batch: BodyFile, database_url: str) -> dict[str, object]:
        """The bare inserts of the batch events into the store as the load left it, after the
        load so that they disturb none of it."""
        self.progress.phase(f"floor: {FLOOR_EVENTS:,} batch events, bare inserts, {FLOOR_ROUNDS}x")
        rows = floor_rows(batch, FLOOR_EVENTS, self.application_id, utcnow())
        floors = measure_floor(database_url, rows)
        floor = floors[0]
        self.report.floor_cpu_us_per_event = floor.cpu_us_per_event
        return {
            "floor_method": f"the least of {len(floors)} rounds of: {floor.method}",
            "floor_events": floor.events,
            "floor_rounds_cpu_us_per_event": [round(f.cpu_us_per_event, 1) for f in floors],
            "floor_cpu_seconds": round(floor.cpu_s, 3),
            "floor_server_cpu_seconds": None
            if floor.server_cpu_s is None
            else round(floor.server_cpu_s, 3),
        }

    def _wait_settled(self, base: Counters, description: str) -> tuple[float, bool, Counters]:
        """Wait until every event received since `base` is stored, errored or a duplicate."""
        host, port = self.options.host, self.port
        first = read_counters(host, port)
        todo = first.received - base.received
        self.progress.phase(description, total=max(todo, 1))
        deadline = time.perf_counter() + self.options.settle_timeout
        while True:
            counters = read_counters(host, port)
            done = counters.settled - base.settled
            self.progress.update(min(done, todo))
            if counters.queue_depth == 0 and done >= counters.received - base.received:
                at = time.perf_counter()
                # Requests still in flight when the generator stopped may publish just after;
                # settled means nothing new arrived a moment later either.
                time.sleep(0.1)
                if read_counters(host, port).received == counters.received:
                    return at, True, counters
                continue
            if time.perf_counter() > deadline:
                return time.perf_counter(), False, counters
            # Often enough to time the end of e2e closely, seldom enough not to load the server.
            time.sleep(0.05)


def _memory_json(memory: ProcessMemory) -> dict[str, object]:
    return {"pid": memory.pid, "role": memory.role, "peak_mb": round(memory.peak_mb, 1)}

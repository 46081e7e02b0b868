"""`the-eye bench`: the command line over `BenchRun`, with a progress display and the report."""

from __future__ import annotations

import shutil
import signal
import time
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from the_eye.config import get_settings
from the_eye_bench.runner import BenchOptions, BenchRun
from the_eye_bench.wrk import WRK_MISSING

PROFILES = ("embedded", "production")


@click.command()
@click.option(
    "--profile",
    type=click.Choice(PROFILES),
    default="embedded",
    show_default=True,
    help="embedded: SQLite and the inbox queue in a temporary directory. production: the "
    "PostgreSQL and Redis of THE_EYE_DATABASE_URL and THE_EYE_QUEUE_URL, with worker processes.",
)
@click.option(
    "--events",
    type=click.IntRange(1000),
    default=None,
    help="Events of the end-to-end run [200,000; --quick: 30,000].",
)
@click.option(
    "--store-events",
    type=click.IntRange(1000),
    default=None,
    help="Events in the store the queries run over [1,000,000; --quick: 100,000].",
)
@click.option("--quick", is_flag=True, help="Shorter runs and a smaller store: under a minute.")
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, writable=True, path_type=Path),
    default=None,
    help="Also write the report as JSON to this file.",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="API processes (`serve --workers`); the limit app runs with as many.",
)
@click.option(
    "--processors",
    type=click.IntRange(1),
    default=1,
    show_default=True,
    help="Processor processes: `serve --processors` (embedded) or `the-eye worker`s (production).",
)
@click.option(
    "--only",
    type=click.Choice(("queries", "export")),
    default=None,
    help="queries: only seed the store and time the API queries and the console's pages "
    "(no load, no wrk needed). export: only seed the store and time its Parquet export "
    "(no server either).",
)
@click.option(
    "--export",
    "export",
    is_flag=True,
    help="Also time the Parquet export of the seeded store (export_events_per_s, export_rss_mb).",
)
def bench(
    profile: str,
    events: int | None,
    store_events: int | None,
    quick: bool,
    json_path: Path | None,
    workers: int,
    processors: int,
    only: str | None,
    export: bool,
) -> None:
    """Start The Eye on a fresh database, load it over HTTP on 127.0.0.1, report the numbers.

    Measures limit_rps, single_rps/p50/p99, batch_events_per_s, e2e_events_per_s,
    lag_p99_ms, query_session_ms, query_range_ms, console_ms (each console page) and rss_mb,
    sending the load with wrk; and the CPU each role spent per request and per event, read
    against the empty app and against a floor of bare inserts measured in the same run.
    Every process it starts is stopped at the end, also on Ctrl-C.
    """
    database_url = queue_url = None
    if profile == "production":
        settings = get_settings()
        database_url, queue_url = settings.database_url, settings.queue_url
        problems = []
        if not database_url.startswith(("postgresql", "postgres:")):
            problems.append(
                f"THE_EYE_DATABASE_URL must be a postgresql:// URL (is {database_url!r})"
            )
        if not queue_url.startswith(("redis://", "rediss://")):
            problems.append(f"THE_EYE_QUEUE_URL must be a redis:// URL (is {queue_url!r})")
        if problems:
            raise click.UsageError(
                "the production profile needs PostgreSQL and Redis: "
                + "; ".join(problems)
                + ". It writes its test data to the database it is given, so point it at a "
                "throwaway one."
            )
    wrk = shutil.which("wrk")
    if wrk is None and only is None:
        raise click.ClickException(WRK_MISSING)
    options = BenchOptions(
        profile=profile,
        quick=quick,
        e2e_events=events or (30_000 if quick else 200_000),
        store_events=store_events or (100_000 if quick else 1_000_000),
        wrk=wrk,
        workers=workers,
        processors=processors,
        database_url=database_url,
        queue_url=queue_url,
        only=only,
        export=export or only == "export",
    )
    console = Console()
    if not console.is_terminal:
        # Piped or captured output is read in full, not in an 80-column terminal.
        console = Console(width=120)
    status = Console(stderr=True)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with _RichProgress(status) as progress:
            report = BenchRun(options, progress).run()
    except KeyboardInterrupt:
        status.print("[yellow]interrupted[/]: every process the benchmark started is stopped")
        raise SystemExit(130) from None
    except Exception as exc:
        # The run has already stopped its processes; say what failed without a traceback.
        raise click.ClickException(f"the benchmark failed: {exc}") from exc
    finally:
        signal.signal(signal.SIGTERM, previous)
    report.print_table(console)
    if json_path is not None:
        report.write_json(json_path)
        status.print(f"report written to {json_path}")


def _interrupt(signum: int, frame: Any) -> None:
    # SIGTERM unwinds like Ctrl-C, so the run stops what it started on the way out.
    raise KeyboardInterrupt


class _RichProgress:
    """A progress bar for the current phase, and a line for each phase that finished."""

    def __init__(self, console: Any) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._console = console
        self._progress = Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self._task = self._progress.add_task("starting", total=None)
        self._description: str | None = None
        self._began = time.perf_counter()

    def __enter__(self) -> _RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._finish_phase()
        self._progress.stop()

    def phase(self, description: str, total: float | None = None) -> None:
        self._finish_phase()
        self._description, self._began = description, time.perf_counter()
        self._progress.reset(self._task, total=total, completed=0, description=description)

    def update(self, completed: float) -> None:
        self._progress.update(self._task, completed=completed)

    def _finish_phase(self) -> None:
        if self._description is not None:
            elapsed = time.perf_counter() - self._began
            self._progress.console.print(f"  [dim]{self._description}: {elapsed:.1f}s[/]")
            self._description = None

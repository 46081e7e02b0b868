"""The benchmark's result: its numbers, how they were measured, a table and a JSON file."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


@dataclass
class Report:
    """Every number of one `the-eye bench` run, all measured in that run."""

    limit_rps: float = 0.0
    single_rps: float = 0.0
    single_p50_ms: float = 0.0
    single_p99_ms: float = 0.0
    batch_events_per_s: float = 0.0
    e2e_events_per_s: float = 0.0
    lag_p99_ms: float = 0.0
    # CPU (user + system) in µs per unit of work, over the window of the load it goes with.
    limit_cpu_us_per_request: float = 0.0
    api_cpu_us_per_request: float = 0.0
    api_cpu_us_per_event: float = 0.0
    processor_cpu_us_per_event: float = 0.0
    # The same events as bare inserts into the same table, measured in the same run.
    floor_cpu_us_per_event: float = 0.0
    # The database and Redis servers' share of the e2e run; None unless on this machine.
    postgres_cpu_us_per_event: float | None = None
    redis_cpu_us_per_event: float | None = None
    query_session_ms: float = 0.0
    query_range_ms: float = 0.0
    rss_mb: float = 0.0
    # Per console page: its path, and the median and p95 of its server time in ms.
    console_ms: dict[str, dict[str, float | str]] = field(default_factory=dict)
    # The Parquet export of the stored events (`--export`); None when not measured.
    export_events_per_s: float | None = None
    export_rss_mb: float | None = None
    cpu: int = 0
    generator: str = ""
    # How the numbers were obtained: enough to rerun the same benchmark and compare.
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def processor_cpu_floor_ratio(self) -> float:
        """The processors' CPU per event over the floor's: 1 would be the bare inserts.

        Where the floor counts the PostgreSQL backend's CPU (a local server), the
        processors' side counts the server's too, so that like is read against like.
        """
        server = self.postgres_cpu_us_per_event or 0.0
        if self.details.get("floor_server_cpu_seconds") is None:
            server = 0.0  # the floor could not read its backend: the client side alone
        stored = self.processor_cpu_us_per_event + server
        return _ratio(stored, self.floor_cpu_us_per_event)

    @property
    def api_cpu_limit_ratio(self) -> float:
        """The API's CPU per request over the empty app's."""
        return _ratio(self.api_cpu_us_per_request, self.limit_cpu_us_per_request)

    def to_json(self) -> dict[str, Any]:
        """The numbers at the top level, rounded, then the details beside them."""
        data = asdict(self)
        details = data.pop("details")
        data["processor_cpu_floor_ratio"] = self.processor_cpu_floor_ratio
        data["api_cpu_limit_ratio"] = self.api_cpu_limit_ratio
        rounded = {k: round(v, 2) if isinstance(v, float) else v for k, v in data.items()}
        return {**rounded, **details}

    def write_json(self, path: Path) -> None:
        path.write_text(json.dumps(self.to_json(), indent=2) + "\n")

    def print_table(self, console: Console) -> None:
        table = Table(title=self._title(), title_justify="left")
        table.add_column("metric")
        table.add_column("value", justify="right")
        table.add_column("target", justify="right")
        table.add_column("how")
        for name, value, target, met, how in self._rows():
            mark = "" if met is None else (" [green]ok[/]" if met else " [red]missed[/]")
            table.add_row(name, value, target + mark, how)
        console.print(table)

    def _title(self) -> str:
        d = self.details
        if d.get("only") == "export":
            store = f"{d.get('profile')} store"
            return f"the-eye bench, the Parquet export alone, {store}, {self.cpu} cores"
        return (
            f"the-eye bench, {d.get('profile')} profile{' (quick)' if d.get('quick') else ''}: "
            f"{d.get('serve', {}).get('command')}, {self.cpu} cores, "
            + (
                f"only {d['only']}"
                if d.get("only")
                else f"generator {self.generator} ({d.get('generator_detail')})"
            )
        )

    def _rows(self) -> list[tuple[str, str, str, bool | None, str]]:
        if self.details.get("only") == "export":
            return self._export_rows()
        return [
            *self._load_rows(),
            *self._cpu_rows(),
            *self._query_rows(),
            *self._console_rows(),
            self._rss_row(),
            *self._export_rows(),
        ]

    def _export_rows(self) -> list[tuple[str, str, str, bool | None, str]]:
        if self.export_events_per_s is None or self.export_rss_mb is None:
            return []
        events = self.details.get("export_events", 0)
        return [
            (
                "export_events_per_s",
                f"{self.export_events_per_s:,.0f}",
                ">= 200,000",
                self.export_events_per_s >= 200_000,
                f"{events:,} stored events to Parquet",
            ),
            (
                "export_rss_mb",
                f"{self.export_rss_mb:.0f}",
                "< 300",
                self.export_rss_mb < 300,
                "peak, the export's process",
            ),
        ]

    def _console_rows(self) -> list[tuple[str, str, str, bool | None, str]]:
        rows: list[tuple[str, str, str, bool | None, str]] = []
        for name, page in self.console_ms.items():
            median, p95 = float(page["median"]), float(page["p95"])
            how = f"median / p95, {page['path']}"
            rows.append((f"console {name}", f"{median:.2f} / {p95:.2f}", "< 200", p95 < 200, how))
        for name, path in self.details.get("console_pages_missing", {}).items():
            rows.append((f"console {name}", "not built", "", None, f"{path} answered 404"))
        return rows

    def _rss_row(self) -> tuple[str, str, str, bool | None, str]:
        return ("rss_mb", f"{self.rss_mb:.0f}", "< 200", self.rss_mb < 200, "peak, largest process")

    def _load_rows(self) -> list[tuple[str, str, str, bool | None, str]]:
        d = self.details
        if d.get("only") == "queries":
            return []
        ratio = self.single_rps / self.limit_rps if self.limit_rps else 0.0
        connections = d.get("connections")
        # The targets of each profile: one machine's SQLite, or a PostgreSQL and Redis.
        embedded = d.get("profile") != "production"
        batch_target = 150_000 if embedded else 200_000
        e2e_target = 30_000 if embedded else 50_000
        return [
            (
                "limit_rps",
                f"{self.limit_rps:,.0f}",
                "",
                None,
                f"empty ASGI app, {connections} conns",
            ),
            (
                "single_rps",
                f"{self.single_rps:,.0f} ({ratio:.2f}x limit)",
                ">= 0.5x limit",
                ratio >= 0.5,
                f"1 event per request, {connections} conns",
            ),
            ("single_p50_ms", f"{self.single_p50_ms:.2f}", "", None, ""),
            ("single_p99_ms", f"{self.single_p99_ms:.2f}", "< 25", self.single_p99_ms < 25, ""),
            (
                "batch_events_per_s",
                f"{self.batch_events_per_s:,.0f}",
                f">= {batch_target:,}",
                self.batch_events_per_s >= batch_target,
                "accepted, 100 events per request, processors running",
            ),
            (
                "e2e_events_per_s",
                f"{self.e2e_events_per_s:,.0f}",
                f">= {e2e_target:,}",
                self.e2e_events_per_s >= e2e_target,
                f"{d.get('e2e_events', 0):,} events, first request to last stored",
            ),
            (
                "lag_p99_ms",
                f"{self.lag_p99_ms:.0f}",
                "< 500",
                self.lag_p99_ms < 500,
                f"{d.get('lag_probes')} probes at {d.get('lag_events_per_s', 0):,.0f} events/s",
            ),
        ]

    def _cpu_rows(self) -> list[tuple[str, str, str, bool | None, str]]:
        if self.details.get("only") == "queries":
            return []
        floor_ratio = self.processor_cpu_floor_ratio
        processor = f"{self.processor_cpu_us_per_event:.1f}"
        if self.postgres_cpu_us_per_event is not None:
            processor += f" + {self.postgres_cpu_us_per_event:.1f} postgres"
        rows: list[tuple[str, str, str, bool | None, str]] = [
            (
                "limit_cpu_us_per_request",
                f"{self.limit_cpu_us_per_request:.0f}",
                "",
                None,
                "CPU, the limit app's processes, its load",
            ),
            (
                "api_cpu_us_per_request",
                f"{self.api_cpu_us_per_request:.0f} ({self.api_cpu_limit_ratio:.1f}x limit app)",
                "",
                None,
                "CPU, API processes, single's load",
            ),
            (
                "api_cpu_us_per_event",
                f"{self.api_cpu_us_per_event:.1f}",
                "",
                None,
                "CPU, API processes, batches, per event accepted",
            ),
            (
                "processor_cpu_us_per_event",
                f"{processor} ({floor_ratio:.1f}x floor)",
                "<= 2x floor",
                0 < floor_ratio <= 2,
                "CPU, every processor, e2e, per event settled",
            ),
            (
                "floor_cpu_us_per_event",
                f"{self.floor_cpu_us_per_event:.1f}",
                "",
                None,
                f"{self.details.get('floor_events', 0):,} batch events, bare inserts",
            ),
        ]
        for service, value in (
            ("postgres", self.postgres_cpu_us_per_event),
            ("redis", self.redis_cpu_us_per_event),
        ):
            if value is not None:
                how = f"CPU, the {service} server, e2e, per event settled"
                rows.append((f"{service}_cpu_us_per_event", f"{value:.1f}", "", None, how))
        return rows

    def _query_rows(self) -> list[tuple[str, str, str, bool | None, str]]:
        d = self.details
        return [
            (
                "query_session_ms",
                f"{self.query_session_ms:.2f}",
                "< 10",
                self.query_session_ms < 10,
                f"median, {d.get('store_events', 0):,} events stored",
            ),
            (
                "query_range_ms",
                f"{self.query_range_ms:.2f}",
                "< 20",
                self.query_range_ms < 20,
                "median, category + 1 h, limit 100",
            ),
        ]


def _ratio(value: float, reference: float) -> float:
    return value / reference if reference > 0 else 0.0

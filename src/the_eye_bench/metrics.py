"""The server's own counters from `GET /metrics`, to know when everything accepted is processed."""

from __future__ import annotations

from dataclasses import dataclass

from the_eye_bench.processes import http_get


@dataclass(slots=True)
class Counters:
    """One reading of /metrics."""

    received: int
    stored: int
    errored: int
    duplicates: int
    queue_depth: int

    @property
    def settled(self) -> int:
        """Events that reached their end: stored, kept as errors, or dropped as repeats."""
        return self.stored + self.errored + self.duplicates


def read_counters(host: str, port: int) -> Counters:
    """Read /metrics once."""
    status, body = http_get(host, port, "/metrics")
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    values: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition(" ")
            values[name] = float(value)

    def get(name: str) -> int:
        return int(values.get(name, 0))

    return Counters(
        received=get("the_eye_events_received_total"),
        stored=get("the_eye_events_stored_total"),
        errored=get("the_eye_events_errored_total"),
        duplicates=get("the_eye_events_duplicates_total"),
        queue_depth=get("the_eye_queue_depth"),
    )

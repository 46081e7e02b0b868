"""Processing lag: how long after its 202 an event can be read back, under a steady load.

wrk keeps a constant rate of events; a few times a second a probe event, alone in a fresh
session, is sent and then looked for with `GET /events/?session=...` until it shows up.
The lag of a probe is from its 202 to the answer that contained it, so it is an upper
bound, by at most one poll interval and one query.

Probes are not load: each reads the answers to its own requests one at a time, which wrk
cannot, so they go over the standard library's HTTP client, from a few threads.
"""

from __future__ import annotations

import http.client
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlencode

import msgspec

from the_eye.timestamps import format_timestamp, utcnow
from the_eye_bench.stats import percentile
from the_eye_bench.wrk import Load, Wrk

# Enough for probes to overlap when lag is long, as they are sent on a schedule.
PROBE_THREADS = 16
POLL_INTERVAL = 0.02
PROBE_TIMEOUT = 10.0


@dataclass(slots=True)
class LagResult:
    """Lag percentiles of the probes, and the load that was really kept up."""

    p50_ms: float
    p99_ms: float
    probes: int
    lost_probes: int
    events_per_s: float
    failed_requests: int


@dataclass(slots=True)
class LagPlan:
    """Where to send, with which credentials, at what rate and for how long."""

    load: Load
    events_per_body: int
    token: str
    probes_per_s: float


@dataclass(slots=True)
class _Probe:
    """What became of one probe: its lag, or why it has none."""

    lag: float | None = None
    timed_out: bool = False
    failed: bool = False


def measure_lag(wrk: Wrk, plan: LagPlan) -> LagResult:
    """Run the steady load with probes for `plan.load.duration` seconds."""
    load = plan.load
    running = wrk.start(load)
    began = time.monotonic()
    count = int(load.duration * plan.probes_per_s)
    try:
        with ThreadPoolExecutor(PROBE_THREADS) as pool:
            probes = list(
                pool.map(lambda i: _probe(plan, began + i / plan.probes_per_s, i), range(count))
            )
    finally:
        sent = running.wait()
    found = [p.lag for p in probes if p.lag is not None]
    # A probe never seen counts with the timeout, so losing events cannot look fast.
    lags = sorted(found + [PROBE_TIMEOUT for p in probes if p.timed_out])
    failed_probes = sum(p.failed for p in probes)
    return LagResult(
        p50_ms=percentile(lags, 50) * 1000,
        p99_ms=percentile(lags, 99) * 1000,
        probes=len(found),
        lost_probes=len(probes) - len(found),
        events_per_s=sent.ok * plan.events_per_body / load.duration,
        failed_requests=sent.failed + sent.socket_errors + failed_probes,
    )


def _probe(plan: LagPlan, due: float, index: int) -> _Probe:
    """At `due`, send one event in a session of its own and poll until it can be read."""
    time.sleep(max(0.0, due - time.monotonic()))
    session_id = f"lag-probe-{uuid.uuid4()}"
    stamp = format_timestamp(utcnow() - timedelta(seconds=1))
    body = msgspec.json.encode(
        {
            "session_id": session_id,
            "category": "page interaction",
            "name": "pageview",
            "data": {"host": "probe.the-eye.local", "path": f"/probe/{index}"},
            "timestamp": stamp,
        }
    )
    load = plan.load
    conn = http.client.HTTPConnection(load.host, load.port, timeout=PROBE_TIMEOUT)
    try:
        headers = {"Authorization": load.authorization, "Content-Type": "application/json"}
        conn.request("POST", load.path, body, headers)
        response = conn.getresponse()
        response.read()
        acked = time.monotonic()
        if response.status != 202:
            return _Probe(failed=True)
        target = f"/events/?{urlencode({'session': session_id, 'limit': 1})}"
        read_headers = {"Authorization": f"Bearer {plan.token}"}
        while time.monotonic() - acked < PROBE_TIMEOUT:
            conn.request("GET", target, headers=read_headers)
            found = conn.getresponse()
            answer = found.read()
            if found.status == 200 and msgspec.json.decode(answer)["results"]:
                return _Probe(lag=time.monotonic() - acked)
            time.sleep(POLL_INTERVAL)
        return _Probe(timed_out=True)
    finally:
        conn.close()

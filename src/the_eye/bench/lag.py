"""Processing lag: how long after its 202 an event can be read back, under a steady load.

A background sender keeps a constant rate of events; a few times a second a probe event,
alone in a fresh session, is sent and then looked for with `GET /events/?session=...` until
it shows up. The lag of a probe is from its 202 to the answer that contained it, so it
is an upper bound, by at most one poll interval and one query.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from the_eye.bench.client import Client, build_request, query_target
from the_eye.bench.stats import percentile

SENDER_CONNECTIONS = 8
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

    host: str
    port: int
    write_key: str
    token: str
    bodies: list[bytes]
    events_per_body: int
    events_per_s: float
    duration: float
    probes_per_s: float


async def measure_lag(plan: LagPlan) -> LagResult:
    """Run the steady load with probes for `plan.duration` seconds."""
    host = f"{plan.host}:{plan.port}"
    ingest_headers = {
        "Authorization": f"Bearer {plan.write_key}",
        "Content-Type": "application/json",
    }
    requests = [build_request("POST", "/events/", host, b, ingest_headers) for b in plan.bodies]
    interval = plan.events_per_body / plan.events_per_s
    began = time.perf_counter()
    stop_at = began + plan.duration
    slots = itertools.count()
    sent = {"events": 0, "failed": 0}

    async def sender() -> None:
        client = Client(plan.host, plan.port)
        try:
            while True:
                # Requests go out on a fixed schedule, whichever connection is free.
                slot = next(slots)
                due = began + slot * interval
                if due >= stop_at:
                    return
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                response = await client.send(requests[slot % len(requests)])
                if response.status == 202:
                    sent["events"] += plan.events_per_body
                else:
                    sent["failed"] += 1
        finally:
            client.close()

    lags: list[float] = []
    lost = 0

    async def probe(index: int) -> None:
        nonlocal lost
        await asyncio.sleep(index / plan.probes_per_s)
        session_id = f"lag-probe-{uuid.uuid4()}"
        stamp = (datetime.utcnow() - timedelta(seconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        body = orjson.dumps(
            {
                "session_id": session_id,
                "category": "page interaction",
                "name": "pageview",
                "data": {"host": "probe.the-eye.local", "path": f"/probe/{index}"},
                "timestamp": stamp,
            }
        )
        client = Client(plan.host, plan.port)
        try:
            response = await client.send(
                build_request("POST", "/events/", host, body, ingest_headers)
            )
            acked = time.perf_counter()
            if response.status != 202:
                sent["failed"] += 1
                lost += 1
                return
            target = query_target("/events/", {"session": session_id, "limit": 1})
            read_headers = {"Authorization": f"Bearer {plan.token}"}
            while time.perf_counter() - acked < PROBE_TIMEOUT:
                found = await client.get(target, read_headers)
                if found.status == 200 and orjson.loads(found.body)["results"]:
                    lags.append(time.perf_counter() - acked)
                    return
                await asyncio.sleep(POLL_INTERVAL)
            # A probe never seen counts with the timeout, so losing events cannot look fast.
            lags.append(PROBE_TIMEOUT)
            lost += 1
        finally:
            client.close()

    probes = int(plan.duration * plan.probes_per_s)
    await asyncio.gather(
        *(sender() for _ in range(SENDER_CONNECTIONS)), *(probe(i) for i in range(probes))
    )
    ordered = sorted(lags)
    return LagResult(
        p50_ms=percentile(ordered, 50) * 1000,
        p99_ms=percentile(ordered, 99) * 1000,
        probes=len(lags) - lost,
        lost_probes=lost,
        events_per_s=sent["events"] / plan.duration,
        failed_requests=sent["failed"],
    )

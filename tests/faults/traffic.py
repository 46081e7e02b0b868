"""Sending events to a real `the-eye serve` and reading what the store ended with."""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa

from tests.helpers import client_as, make_event
from the_eye.store.tables import events, sessions


def event_batches(
    count: int, per_request: int, sessions_: int, prefix: str = "ev"
) -> list[list[dict]]:
    """`count` events with ids `{prefix}-{i}`, spread round-robin over `sessions_` sessions,
    with distinct timestamps, cut into requests of `per_request`."""
    batch = [
        make_event(
            session=f"s-{i % sessions_}",
            event_id=f"{prefix}-{i}",
            timestamp=f"2021-01-01T{(i // 3600) % 24:02d}:{(i // 60) % 60:02d}:{i % 60:02d}",
        )
        for i in range(count)
    ]
    return [batch[i : i + per_request] for i in range(0, count, per_request)]


def post_all(url: str, write_key: str, batches: Iterable[list[dict]], threads: int = 4) -> int:
    """Post every batch, requiring a 202 each; return how many events were accepted."""
    local = threading.local()

    def post(batch: list[dict]) -> int:
        if not hasattr(local, "client"):
            local.client = client_as(url, write_key, timeout=60)
        response = local.client.post("/events/", json=batch)
        assert response.status_code == 202, response.text
        return response.json()["accepted"]

    with ThreadPoolExecutor(threads) as pool:
        return sum(pool.map(post, batches))


def stored_ids(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(events.c.event_id)).scalars())


def session_counts(engine) -> dict[str, tuple[int, int]]:
    """Per session: the count its row says, and the events really stored for it."""
    with engine.connect() as conn:
        said = dict(conn.execute(sa.select(sessions.c.id, sessions.c.event_count)).all())
        real = dict(
            conn.execute(
                sa.select(events.c.session_id, sa.func.count()).group_by(events.c.session_id)
            ).all()
        )
    return {sid: (said.get(sid, 0), real.get(sid, 0)) for sid in said.keys() | real.keys()}


class Flow:
    """Requests of `per_request` events sent one after another from a thread until stopped
    (or `max_requests`), remembering which events got a 202 and what every other answer was."""

    def __init__(
        self, url: str, write_key: str, per_request: int = 10, max_requests: int = 20_000
    ) -> None:
        self.client = client_as(url, write_key)
        self.per_request = per_request
        self.max_requests = max_requests
        self.accepted: list[str] = []
        self.unavailable = 0
        self.wrong: list[str] = []  # answers that break the contract
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run)

    def start(self) -> Flow:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)
        self.client.close()

    def _run(self) -> None:
        for n in range(self.max_requests):
            if self._stop.is_set():
                return
            batch = [
                make_event(session=f"flow-{n % 7}", event_id=f"flow-{n}-{i}")
                for i in range(self.per_request)
            ]
            try:
                response = self.client.post("/events/", json=batch)
            except httpx.TransportError as exc:
                self.wrong.append(f"transport error: {exc}")
                continue
            if response.status_code == 202:
                self.accepted.extend(response.json()["event_ids"])
            elif response.status_code == 503:
                self.unavailable += 1
                if not response.headers.get("Retry-After"):
                    self.wrong.append("503 without Retry-After")
                if response.json()["error"]["code"] != "unavailable":
                    self.wrong.append(response.text)
                self._stop.wait(0.02)
            else:
                self.wrong.append(f"{response.status_code}: {response.text}")

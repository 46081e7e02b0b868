"""Realistic events for the benchmark: three kinds of event, many sessions, recent timestamps.

Traffic is simulated as sessions that overlap in time: each session is a short visit to one
host (page views, clicks on calls to action, now and then a form), and the events of all
sessions come out interleaved in timestamp order, as a collector receives them.
"""

from __future__ import annotations

import heapq
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

from the_eye.timestamps import format_timestamp

HOSTS = (
    "www.consumeraffairs.com",
    "shop.example-outfitters.com",
    "blog.northwind-travel.io",
    "app.contoso-insurance.com",
    "www.fabrikam-homes.co.uk",
)
SECTIONS = ("reviews", "products", "guides", "compare", "deals", "help", "account")
WORDS = (
    "home-insurance",
    "electric-bikes",
    "mattress",
    "solar-panels",
    "pet-food",
    "credit-cards",
    "moving-companies",
    "hearing-aids",
    "meal-kits",
    "car-warranty",
)
ELEMENTS = (
    "button#get-quote",
    "a.cta-primary",
    "button.read-more",
    "a#compare-now",
    "button.subscribe",
)
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson")

MEAN_EVENTS_PER_SESSION = 20

PAGE = "page interaction"
FORM = "form interaction"


@dataclass(slots=True)
class Event:
    """One generated event, before it is written as JSON or as a store row."""

    session_id: str
    category: str
    name: str
    data: dict[str, Any]
    timestamp: datetime

    def to_json(self, rng: random.Random) -> dict[str, Any]:
        """The event as an application sends it, in one of the two timestamp spellings."""
        if rng.random() < 0.5:
            stamp = self.timestamp.strftime("%Y-%m-%d %H:%M:%S.%f")
        else:
            stamp = format_timestamp(self.timestamp)
        return {
            "session_id": self.session_id,
            "category": self.category,
            "name": self.name,
            "data": self.data,
            "timestamp": stamp,
        }


def _path(rng: random.Random) -> str:
    section, word = rng.choice(SECTIONS), rng.choice(WORDS)
    return f"/{section}/{word}/{rng.randrange(1, 5000)}-{rng.choice(WORDS)}-review?utm_source=news"


def _session_events(rng: random.Random, session_id: str, start: datetime) -> Iterator[Event]:
    """One visit: a landing page view, then page views and CTA clicks, sometimes a form."""
    host = rng.choice(HOSTS)
    when = start
    count = rng.randint(MEAN_EVENTS_PER_SESSION - 10, MEAN_EVENTS_PER_SESSION + 10)
    for i in range(count):
        path = _path(rng)
        roll = rng.random()
        if i == 0 or roll < 0.6:
            yield Event(session_id, PAGE, "pageview", {"host": host, "path": path}, when)
        elif roll < 0.9:
            data: dict[str, Any] = {"host": host, "path": path, "element": rng.choice(ELEMENTS)}
            yield Event(session_id, PAGE, "cta click", data, when)
        else:
            form = {"first_name": rng.choice(FIRST_NAMES), "last_name": rng.choice(LAST_NAMES)}
            data = {"host": host, "path": path, "form": form}
            yield Event(session_id, FORM, "submit", data, when)
        when += timedelta(seconds=rng.uniform(1.0, 30.0), microseconds=rng.randrange(1000000))


def traffic(count: int, start: datetime, end: datetime, seed: int = 1) -> Iterator[Event]:
    """`count` events of overlapping sessions, in timestamp order, from `start` to `end`."""
    rng = random.Random(seed)
    # Sessions start at random (Poisson) moments, at a pace that reaches `count` events at
    # about 80% of the window, leaving room for chance; no event is ever later than `end`.
    span = 0.8 * (end - start).total_seconds()
    gap = span / max(1.0, count / MEAN_EVENTS_PER_SESSION)
    next_start = start
    heap: list[tuple[datetime, int, Event, Iterator[Event]]] = []
    order = 0
    for _ in range(count):
        # Open sessions lazily, only when their start comes next, so memory stays flat.
        while not heap or next_start <= heap[0][0]:
            # Fresh ids every run, so that runs against one database never share sessions.
            session_id = str(uuid.uuid4())
            session = _session_events(rng, session_id, next_start)
            first = next(session)
            heapq.heappush(heap, (first.timestamp, order, first, session))
            order += 1
            next_start += timedelta(seconds=rng.expovariate(1.0 / gap))
        _, _, event, session = heapq.heappop(heap)
        if event.timestamp > end:
            event.timestamp = end
        yield event
        following = next(session, None)
        if following is not None:
            heapq.heappush(heap, (following.timestamp, order, following, session))
            order += 1


@dataclass(slots=True)
class BodyFile:
    """Request bodies written one per line, ready for wrk to replay."""

    path: Path
    bodies: int
    events_per_body: int
    mean_event_bytes: float


def write_bodies(
    path: Path, bodies: int, events_per_body: int, now: datetime, seed: int
) -> BodyFile:
    """Write `bodies` request bodies of `events_per_body` events from the last hour.

    A single event is sent bare; more are sent as `{"batch": [...]}`, as SDKs batch them.
    """
    rng = random.Random(seed)
    encode = msgspec.json.Encoder().encode
    total = bodies * events_per_body
    # Everything happened between an hour and a minute ago, so no event is ever "future".
    stream = traffic(total, now - timedelta(hours=1), now - timedelta(minutes=1), seed)
    event_bytes = 0
    with path.open("wb") as out:
        for _ in range(bodies):
            events = [next(stream).to_json(rng) for _ in range(events_per_body)]
            event_bytes += sum(len(encode(e)) for e in events)
            document: Any = events[0] if events_per_body == 1 else {"batch": events}
            # JSON escapes every newline inside strings, so one line is one body.
            out.write(encode(document) + b"\n")
    return BodyFile(path, bodies, events_per_body, event_bytes / max(total, 1))

"""Server time of the console's pages over a big store: sign in through the form with the
admin token, as a person does, then GET each page in turn.

Requests go one at a time over one keep-alive connection (as the API queries do), so each
latency is the server's alone. A page that answers 404 is not built in this version: it is
listed by path rather than timed, so the same run times it once it exists.
"""

from __future__ import annotations

import http.client
import random
import re
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import msgspec

from the_eye_bench.processes import http_get
from the_eye_bench.seed import SeededStore
from the_eye_bench.stats import percentile
from the_eye_bench.traffic import FORM, PAGE

WARMUP = 3
COOKIE = "eye_console"
SIGN_IN_COOKIE = "eye_console_sign_in"
_CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')


@dataclass(slots=True)
class ConsoleLatency:
    """Median and 95th percentile in ms per page name, the pages not there yet by path,
    and the samples taken of each page."""

    pages: dict[str, dict[str, float | str]] = field(default_factory=dict)
    missing: dict[str, str] = field(default_factory=dict)
    samples: int = 0


def _cookie(response: http.client.HTTPResponse, name: str) -> str:
    for header in response.headers.get_all("set-cookie") or []:
        key, _, rest = header.partition("=")
        if key.strip() == name:
            return rest.split(";", 1)[0]
    raise RuntimeError(f"the console set no {name} cookie (answered {response.status})")


def sign_in(conn: http.client.HTTPConnection, admin_token: str) -> str:
    """The session cookie of a sign-in through the console's form."""
    conn.request("GET", "/console/sign-in/")
    page = conn.getresponse()
    html = page.read().decode()
    form_cookie = _cookie(page, SIGN_IN_COOKIE)
    found = _CSRF_FIELD.search(html)
    if page.status != 200 or found is None:
        raise RuntimeError(f"the sign-in page answered {page.status} without its form")
    body = urlencode({"token": admin_token, "csrf_token": found.group(1), "next": "/console/"})
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "Cookie": f"{SIGN_IN_COOKIE}={form_cookie}",
    }
    conn.request("POST", "/console/sign-in/", body=body, headers=headers)
    answer = conn.getresponse()
    answer.read()
    if answer.status != 303:
        raise RuntimeError(f"signing in to the console answered {answer.status}")
    return _cookie(answer, COOKIE)


def measure_console(
    host: str, port: int, admin_token: str, targets: dict[str, str], samples: int
) -> ConsoleLatency:
    """Time `samples` GETs of each page of `targets` (name: path), after a few unmeasured."""
    result = ConsoleLatency(samples=samples)
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        headers = {"Cookie": f"{COOKIE}={sign_in(conn, admin_token)}"}
        for name, path in targets.items():
            latencies = _time_page(conn, path, headers, samples)
            if latencies is None:
                result.missing[name] = path
                continue
            ordered = sorted(latencies)
            result.pages[name] = {
                "path": path,
                "median": round(percentile(ordered, 50), 2),
                "p95": round(percentile(ordered, 95), 2),
            }
    finally:
        conn.close()
    return result


def _time_page(
    conn: http.client.HTTPConnection, path: str, headers: dict[str, str], samples: int
) -> list[float] | None:
    """The latencies in ms, or None when the page does not exist (404)."""
    latencies: list[float] = []
    for i in range(samples + WARMUP):
        began = time.perf_counter()
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - began
        if response.status == 404 and i == 0:
            return None
        if response.status != 200:
            raise RuntimeError(f"GET {path} answered {response.status}: {body[:300]!r}")
        if i >= WARMUP:
            latencies.append(elapsed * 1000)
    return latencies


def _json(host: str, port: int, target: str, token: str) -> Any:
    status, body = http_get(host, port, target, {"Authorization": f"Bearer {token}"})
    if status != 200:
        raise RuntimeError(f"GET {target} answered {status}: {body[:300]!r}")
    return msgspec.json.decode(body)


def _send_invalid_events(host: str, port: int, write_key: str, count: int) -> None:
    """Events the processor keeps as errors (a timestamp that is not one), so that the
    error pages have something to show."""
    batch = [
        {
            "session_id": "bench-errors",
            "category": PAGE,
            "name": "pageview",
            "data": {},
            "timestamp": "not a time",
        }
        for _ in range(count)
    ]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    try:
        headers = {"Authorization": f"Bearer {write_key}", "Content-Type": "application/json"}
        conn.request("POST", "/events/", body=msgspec.json.encode(batch), headers=headers)
        answer = conn.getresponse()
        answer.read()
    finally:
        conn.close()
    if answer.status != 202:
        raise RuntimeError(f"POST /events/ answered {answer.status}")


def console_targets(
    host: str, port: int, write_key: str, token: str, store: SeededStore, timeout: float = 60
) -> dict[str, str]:
    """Every console page, by name, with a real session, event and error of the store in
    the paths that take one; sends a few invalid events first and waits for their errors."""
    _send_invalid_events(host, port, write_key, 10)
    deadline = time.monotonic() + timeout
    while not (errors := _json(host, port, "/errors/?limit=1", token)["results"]):
        if time.monotonic() > deadline:
            raise RuntimeError("the invalid events sent did not become errors in time")
        time.sleep(0.1)
    (session,) = store.sample_sessions(1, random.Random(5))
    event = _json(host, port, "/events/?" + urlencode({"session": session, "limit": 1}), token)
    event_id = event["results"][0]["id"]
    return {
        "overview": "/console/",
        "live": "/console/live/",
        "live_poll": f"/console/live/rows/?after={event_id}",
        # A type with no events: the filtered live view's worst case, its whole look-back.
        "live_filtered": "/console/live/?" + urlencode({"category": "no such category"}),
        "events": "/console/events/",
        "events_by_category": "/console/events/?" + urlencode({"category": FORM}),
        "events_by_session": "/console/events/?" + urlencode({"session": session}),
        "event": f"/console/events/{event_id}/",
        "session": f"/console/sessions/{quote(session, safe='')}/",
        "errors": "/console/errors/",
        "error": f"/console/errors/{errors[0]['id']}/",
        "types": "/console/types/",
        "type": "/console/types/schema/?" + urlencode({"category": PAGE, "name": "pageview"}),
        "applications": "/console/applications/",
        "tokens": "/console/tokens/",
    }

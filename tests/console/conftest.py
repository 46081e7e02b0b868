"""The console in a real headless Chromium (Debian's, driven by Playwright) against a live
server on SQLite with a processor running beside it, as `the-eye serve` runs them. Pages are
the same on every backend; the queries behind them are tested on each by the API's tests.

Screenshots go to `build/screenshots/console-<name>.png` for a person to look at."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import Engine

from tests.helpers import LiveServer, client_as, fetch_all
from tests.processes import wait_until
from the_eye.config import Settings
from the_eye.processor.worker import Processor
from the_eye.store.credentials import create_application, create_token
from the_eye.store.engine import create_engine

SCREENSHOTS = Path(__file__).resolve().parents[2] / "build" / "screenshots"


@dataclass
class Console:
    """A live The Eye: its URL, the admin token of its settings, a read-scope token, an
    application's write key, clients of its API for seeding, and its store."""

    url: str
    admin_token: str
    read_token: str
    write_key: str
    api: httpx.Client
    sender: httpx.Client
    engine: Engine
    settings: Settings


@pytest.fixture
def console(empty_store_url) -> Iterator[Console]:
    settings = Settings(
        database_url=empty_store_url("sqlite"),
        admin_token="console-admin-" + uuid.uuid4().hex,
        poll_interval=0.01,
        key_cache_seconds=0.5,
        # As in the store tests: no stall of a loaded machine turns a schema violation that a
        # page counts into `check_budget_exceeded`.
        schema_check_budget_ms=30_000,
        _env_file=None,
    )
    engine = create_engine(settings)
    with engine.begin() as conn:
        write_key = create_application(conn, "web").write_key
        read_token = create_token(conn, "analyst", "read")
    assert write_key is not None and settings.admin_token is not None
    processor = Processor.from_settings(settings)
    stop = threading.Event()
    processing = threading.Thread(
        target=processor.run, args=(stop,), kwargs={"poll_interval": 0.02}
    )
    processing.start()
    try:
        with (
            LiveServer(settings) as live,
            client_as(live, settings.admin_token) as api,
            client_as(live, write_key) as sender,
        ):
            yield Console(
                live.url, settings.admin_token, read_token, write_key, api, sender, engine, settings
            )
    finally:
        stop.set()
        processing.join(30)
        processor.close()
        engine.dispose()


@pytest.fixture(scope="module")
def browser(chromium_browser):
    """The shared headless Chromium (`chromium_browser`: one per module, so that Playwright's
    event loop is gone before tests that run their own)."""
    return chromium_browser


def _page(browser, width: int, height: int):
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    # Any script error on a console page is a failed test, whatever the test looks at.
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.set_default_timeout(10_000)
    return context, page, errors


@pytest.fixture
def page(browser):
    """A fresh browser tab (its own cookies), 1280 pixels wide."""
    context, tab, errors = _page(browser, 1280, 900)
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"


@pytest.fixture
def narrow_page(browser):
    """A fresh browser tab 390 pixels wide, as a phone shows it."""
    context, tab, errors = _page(browser, 390, 844)
    yield tab
    context.close()
    assert not errors, f"script errors on the page: {errors}"


def sign_in(page, console: Console, token: str | None = None) -> None:
    """Sign in on the sign-in page with `token` (the admin token by default)."""
    page.goto(f"{console.url}/console/sign-in/")
    page.get_by_label("API token").fill(token or console.admin_token)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{console.url}/console/")


def shoot(page, name: str) -> Path:
    """Save a screenshot of the whole page as build/screenshots/console-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def store_events(console: Console, events: list[dict]) -> list[dict]:
    """Send `events` with the console's write key and wait until the processor stored them;
    every stored event of their sessions, as `GET /events/` shows them, oldest first."""
    assert console.sender.post("/events/", json=events).status_code == 202
    sessions = sorted({event["session_id"] for event in events})

    def stored() -> list[dict] | None:
        found = [
            row
            for session in sessions
            for row in fetch_all(console.api, "/events/", session=session, ordering="timestamp")
        ]
        return found if len(found) >= len(events) else None

    found = wait_until(stored, timeout=20)
    return sorted(found, key=lambda row: (row["timestamp"], row["id"]))


@contextmanager
def signed_in_client(console: Console, token: str | None = None) -> Iterator[httpx.Client]:
    """An HTTP client signed in to the console through its form, as a browser would be;
    for requests a browser would not make (forged or malformed ones)."""
    with httpx.Client(base_url=console.url, timeout=30) as client:
        form = client.get("/console/sign-in/").text
        csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        answer = client.post(
            "/console/sign-in/", data={"token": token or console.admin_token, "csrf_token": csrf}
        )
        assert answer.status_code == 303, answer.text
        yield client

"""What an API process holds from start-up to shutdown, as one typed object.

`create_app`'s start-up builds one `AppState` and attaches it to the application; routes
reach it with `state_of(request)`. It is shared by every request of the process and holds
only things that are safe to share between threads (the engine's pool, the queue, caches
with their own locking, the event checker).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fastapi import Request
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from the_eye.config import Settings
from the_eye.processor.checker import EventChecker
from the_eye.queue import Queue

if TYPE_CHECKING:
    from the_eye.api.auth import CachedLookup
    from the_eye.api.limits import RateLimiter
    from the_eye.api.routes.ingest import Ingest


@dataclass(slots=True, frozen=True)
class AppState:
    """The settings, the store, the queue, the credential caches, the failed authentications
    by client address, the ingest endpoint and the event checker (for edits and replays) of
    one API process."""

    settings: Settings
    engine: Engine
    queue: Queue
    write_keys: CachedLookup[int]
    api_tokens: CachedLookup[str]
    auth_failures: RateLimiter
    ingest: Ingest
    checker: EventChecker

    def attach(self, app: Starlette) -> None:
        """Make this the state `app_state(app)` and `state_of(request)` answer."""
        app.state.the_eye = self

    async def aclose(self) -> None:
        """Close the queue and the store's connections."""
        await self.queue.aclose()
        self.engine.dispose()


def app_state(app: Starlette) -> AppState:
    """The state attached to `app` at start-up."""
    state = app.state.the_eye
    if not isinstance(state, AppState):
        raise TypeError(f"the application's state is a {type(state).__name__}, not an AppState")
    return state


def state_of(request: Request) -> AppState:
    """The state of the application serving `request`."""
    return app_state(request.app)

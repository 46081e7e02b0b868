"""The HTTP application: FastAPI routes grouped by resource, one error shape, no redirects."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from the_eye import __version__, console
from the_eye.api import problems
from the_eye.api.auth import api_tokens, write_keys
from the_eye.api.limits import AddressLimiter
from the_eye.api.openapi import complete_document
from the_eye.api.routes import (
    applications,
    errors,
    events,
    ingest,
    operations,
    schemas,
    sdk,
    sessions,
    stats,
    tokens,
)
from the_eye.api.routes.ingest import EXPOSED_HEADERS, INGEST_PATHS, SEGMENT_PATHS, Ingest
from the_eye.api.state import AppState, app_state
from the_eye.config import Settings, get_settings
from the_eye.processor.checker import EventChecker
from the_eye.queue import open_queue
from the_eye.runtime import freeze_startup_objects, thaw_startup_objects
from the_eye.store.engine import create_engine

# How `the-eye serve` runs the app under uvicorn (the benchmark's ceiling app uses the same):
# uvicorn's httptools protocol with bounds on the time and size of a request's headers and
# the time of its body (`the_eye.api.server`).
SERVER_OPTIONS: dict[str, Any] = {
    "loop": "uvloop",
    "http": "the_eye.api.server:BoundedHttpToolsProtocol",
    "access_log": False,
}

# Paths that are exact, without the trailing slash every other path has: Segment's calls
# are `/v1/track` (and `/v1/t`), not `/v1/track/`; files are named as files.
_EXACT_PATHS = frozenset(
    {
        "/metrics",
        "/openapi.json",
        *SEGMENT_PATHS,
        *(f"/sdk/{name}" for name in sdk.TRACKER_FILES),
    }
)

# The Swagger UI's scripts, style and icon, served from the package (swagger-ui-dist, whose
# version and licence are in the folder) so that `/docs/` works without internet.
SWAGGER_UI_ASSETS = Path(__file__).parent / "static" / "swagger-ui"
SWAGGER_UI_PREFIX = "/docs/assets/"
# Files, served under their own names (no trailing slash added).
_ASSET_PREFIXES = (SWAGGER_UI_PREFIX, console.STATIC_PREFIX)


class ServeIngestFirst:
    """Hand `POST /events/` (and Segment's `/v1/*`) straight to the ingest endpoint, ahead of
    FastAPI's routing and middleware, which would otherwise cost more than the endpoint itself."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST" and scope["path"] in INGEST_PATHS:
            await app_state(self.app).ingest(scope, receive, send)
        else:
            await self.app(scope, receive, send)


class TrailingSlash:
    """Serve `/events` as `/events/` (and `/metrics/` as `/metrics`) without a redirect,
    which would make clients re-send a POST body or drop it."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not scope["path"].startswith(_ASSET_PREFIXES):
            path: str = scope["path"]
            if path.endswith("/"):
                if path[:-1] in _EXACT_PATHS:
                    scope = {**scope, "path": path[:-1]}
            elif path not in _EXACT_PATHS:
                scope = {**scope, "path": path + "/"}
        await self.app(scope, receive, send)


def open_state(settings: Settings) -> AppState:
    """What one API process holds: its store, queue, credential caches, ingest endpoint, and
    the event checker that edits and replays run in this process."""
    engine = create_engine(settings)
    queue = open_queue(settings, engine)
    keys = write_keys(engine, settings.key_cache_seconds)
    per_minute = settings.auth_failures_per_address
    auth_failures = AddressLimiter(per_minute / 60, per_minute)
    return AppState(
        settings=settings,
        engine=engine,
        queue=queue,
        write_keys=keys,
        api_tokens=api_tokens(engine, settings.key_cache_seconds),
        auth_failures=auth_failures,
        ingest=Ingest(settings, queue, keys, auth_failures),
        checker=EventChecker.from_settings(settings, engine),
    )


def serve_docs(app: FastAPI) -> None:
    """The Swagger UI at `/docs/`, with its assets under `/docs/assets/`."""
    app.mount(
        SWAGGER_UI_PREFIX.rstrip("/"), StaticFiles(directory=SWAGGER_UI_ASSETS), name="docs-assets"
    )

    @app.get("/docs/", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{SWAGGER_UI_PREFIX}swagger-ui-bundle.js",
            swagger_css_url=f"{SWAGGER_UI_PREFIX}swagger-ui.css",
            swagger_favicon_url=f"{SWAGGER_UI_PREFIX}favicon-32x32.png",
            oauth2_redirect_url=None,
        )


class _TheEyeAPI(FastAPI):
    """FastAPI, with the OpenAPI document completed by `api.openapi.complete_document`."""

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is None:
            self.openapi_schema = complete_document(super().openapi())
        return self.openapi_schema


def create_app(settings: Settings | None = None) -> ASGIApp:
    """The Eye's ASGI application; `uvicorn --factory the_eye.api.app:create_app` serves it."""
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = open_state(settings)
        state.attach(app)
        freeze_startup_objects()
        try:
            yield
        finally:
            thaw_startup_objects()
            await state.aclose()

    app = _TheEyeAPI(
        title="The Eye",
        version=__version__,
        summary="Collects user-behaviour events and serves them to the data team.",
        docs_url=None,
        redoc_url=None,
        redirect_slashes=False,
        lifespan=lifespan,
    )
    problems.install(app)
    for module in (
        ingest,
        events,
        sessions,
        errors,
        schemas,
        stats,
        applications,
        tokens,
        operations,
        sdk,
    ):
        app.include_router(module.router)

    serve_docs(app)
    console.install(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        """A person who opens The Eye in a browser lands on the console."""
        return RedirectResponse(console.PREFIX, status_code=307)

    if settings.cors_origin_list:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origin_list,
            allow_methods=["*"],
            allow_headers=["*"],
            expose_headers=[EXPOSED_HEADERS],
            max_age=3600,
        )
    app.add_middleware(TrailingSlash)
    return ServeIngestFirst(app)

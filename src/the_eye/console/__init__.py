"""The data team's console: server-rendered pages at `/console/` for seeing, searching and
fixing the data in a browser.

Pages are Jinja2 templates (escaped by default) made lively by htmx, with uPlot for charts;
both are vendored under `static/vendor/` with their licences, so the console needs no
internet and no build step. Pages call the same library functions as the HTTP API, never the
API over HTTP. Failures on a console path answer an HTML page, not the API's JSON body.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from the_eye.console.auth import SignInRequired
from the_eye.console.pages import PAGES
from the_eye.console.templating import is_htmx, render

STATIC = Path(__file__).parent / "static"
PREFIX = "/console/"
STATIC_PREFIX = "/console/static/"
# Headers of the API's failure answers that a failure page keeps.
_KEPT_HEADERS = frozenset({"retry-after", "allow"})


def sign_in_redirect(request: Request, next_path: str) -> Response:
    """To the sign-in page, coming back to `next_path` afterwards (htmx follows `HX-Redirect`)."""
    target = f"{PREFIX}sign-in/?next={quote(next_path)}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def problem_page(
    request: Request, status: int, title: str, message: str, headers: dict[str, str]
) -> Response:
    return render(
        request,
        None,
        "problem.html",
        {"status": status, "title": title, "message": message},
        status_code=status,
        headers=headers,
    )


async def _answer(handler: Callable[..., Any], request: Request, exc: Exception) -> Response:
    """What the API's own handler answers, outside the console."""
    answer = handler(request, exc)
    if inspect.isawaitable(answer):
        answer = await answer
    assert isinstance(answer, Response)
    return answer


def install(app: FastAPI) -> None:
    """Serve the console's pages and assets, and answer failures on its paths with a page."""
    app.mount(STATIC_PREFIX.rstrip("/"), StaticFiles(directory=STATIC), name="console-static")
    for page in PAGES:
        app.include_router(page.router)

    # Every failure the API answers with its JSON body answers a page on console paths: the
    # API's handler runs first (it logs, picks the status and the message), then its answer
    # is shown as a page with the same status and headers (`Retry-After`, `Allow`).
    for kind, handler in list(app.exception_handlers.items()):
        app.add_exception_handler(kind, _as_page_on_console_paths(handler))

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(request, exc.next_path)


def _as_page_on_console_paths(handler: Callable[..., Any]) -> Callable[..., Any]:
    async def answer(request: Request, exc: Exception) -> Response:
        response = await _answer(handler, request, exc)
        if not request.url.path.startswith(PREFIX) or not response.headers.get(
            "content-type", ""
        ).startswith("application/json"):
            return response
        error = json.loads(bytes(response.body))["error"]
        status = response.status_code
        headers = {k: v for k, v in response.headers.items() if k in _KEPT_HEADERS}
        return problem_page(request, status, HTTPStatus(status).phrase, error["message"], headers)

    return answer

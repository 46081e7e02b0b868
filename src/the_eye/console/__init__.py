"""The data team's console: server-rendered pages at `/console/` for seeing, searching and
fixing the data in a browser.

Pages are Jinja2 templates (escaped by default) made lively by htmx, with uPlot for charts;
both are vendored under `static/vendor/` with their licences, so the console needs no
internet and no build step. Pages call the same library functions as the HTTP API, never the
API over HTTP. Failures on a console path answer an HTML page, not the API's JSON body.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.staticfiles import StaticFiles

from the_eye.api.problems import ApiError
from the_eye.console.auth import SignInRequired
from the_eye.console.pages import PAGES
from the_eye.console.templating import is_htmx, render

STATIC = Path(__file__).parent / "static"
PREFIX = "/console/"
STATIC_PREFIX = "/console/static/"


def sign_in_redirect(request: Request, next_path: str) -> Response:
    """To the sign-in page, coming back to `next_path` afterwards (htmx follows `HX-Redirect`)."""
    target = f"{PREFIX}sign-in/?next={quote(next_path)}"
    if is_htmx(request):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return RedirectResponse(target, status_code=303)


def problem_page(request: Request, status: int, title: str, message: str) -> Response:
    return render(
        request,
        None,
        "problem.html",
        {"status": status, "title": title, "message": message},
        status_code=status,
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

    api_error = app.exception_handlers[ApiError]
    http_error = app.exception_handlers[StarletteHTTPException]
    invalid = app.exception_handlers[RequestValidationError]

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        return sign_in_redirect(request, exc.next_path)

    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if not request.url.path.startswith(PREFIX):
            return await _answer(api_error, request, exc)
        return problem_page(request, exc.status, exc.code.replace("_", " "), exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if not request.url.path.startswith(PREFIX):
            return await _answer(http_error, request, exc)
        message = "No such page." if exc.status_code == 404 else str(exc.detail)
        return problem_page(request, exc.status_code, "Not found", message)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> Response:
        if not request.url.path.startswith(PREFIX):
            return await _answer(invalid, request, exc)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or e['loc'][0]}: {e['msg']}"
            for e in exc.errors()
        )
        return problem_page(request, 400, "Invalid request", problems)

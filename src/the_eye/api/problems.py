"""Every error answer has one shape: `{"error": {"code", "message", "details"?}}`.

Every `503` also carries `Retry-After`, and its message says the same number of seconds.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from the_eye.api.responses import JSONBody
from the_eye.queue.base import QueueUnavailable

log = logging.getLogger(__name__)

# Store errors that mean an outage (or, on SQLite, a writer that waited out its busy
# timeout), not a bug: answered 503, the client comes back later.
STORE_OUTAGES = (OperationalError, InterfaceError)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}


class ApiError(Exception):
    """Raised anywhere in a request to answer with the standard error body."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.details, self.headers = details, headers

    def body(self) -> dict[str, Any]:
        """The answer's JSON document."""
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.details is not None:
            error["details"] = self.details
        return {"error": error}

    def response(self) -> JSONBody:
        return JSONBody(self.body(), status_code=self.status, headers=self.headers)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
) -> JSONBody:
    return ApiError(status, code, message, details, headers).response()


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"No {what} with that id.")


def unavailable(reason: str, retry_after: int, details: Any = None) -> ApiError:
    """A `503`: `reason` says what cannot be done now, and both the message and the
    `Retry-After` header say when to come back."""
    return ApiError(
        503,
        "unavailable",
        f"{reason}; retry in {retry_after} s.",
        details,
        {"Retry-After": str(retry_after)},
    )


# The wait after a store or queue that is down or stays locked: such outages seldom end
# within a second.
OUTAGE_RETRY_AFTER = 5


def part_unavailable(part: str) -> ApiError:
    """The `503` for a store or queue that is down or, on SQLite, busy past its timeout."""
    return unavailable(f"The {part} is busy or cannot be reached now", OUTAGE_RETRY_AFTER)


@functools.cache
def _path_pattern(template: str) -> re.Pattern[str]:
    return re.compile(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)))


def allowed_methods(request: Request) -> str | None:
    """Every method the OpenAPI document serves at the request's path, for a `405`'s
    `Allow`: FastAPI makes one route per method, and the one that refused names only its own.
    The path's most literal templates win (`/errors/replay/` over `/errors/{error_id}/`).
    None for a path the document does not describe."""
    matches = [
        (template.count("{"), operations)
        for template, operations in request.app.openapi()["paths"].items()
        if _path_pattern(template).fullmatch(request.url.path)
    ]
    fewest = min((params for params, _ in matches), default=0)
    methods = {m.upper() for params, ops in matches if params == fewest for m in ops}
    return ", ".join(sorted(methods)) or None


def install(app: FastAPI) -> None:
    """Answer every failure, expected or not, with the standard body and never a traceback."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> Response:
        details = [
            {"field": ".".join(str(p) for p in e["loc"][1:]) or e["loc"][0], "problem": e["msg"]}
            for e in exc.errors()
        ]
        first = details[0] if details else {"field": "request", "problem": "invalid"}
        return error_response(
            400, "invalid_request", f"`{first['field']}`: {first['problem']}.", details
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = _CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = exc.headers
        if exc.status_code == 404:
            message = "No such resource."
        elif exc.status_code == 405 and (allowed := allowed_methods(request)):
            headers = {**(headers or {}), "Allow": allowed}
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(OperationalError)
    @app.exception_handler(InterfaceError)
    @app.exception_handler(QueueUnavailable)
    async def _unreachable(request: Request, exc: Exception) -> Response:
        # An outage, not a bug: the client should come back, as after a full queue.
        # On SQLite, also a writer that waited out its busy timeout.
        part = "queue" if isinstance(exc, QueueUnavailable) else "store"
        log.warning("%s unavailable on %s %s: %s", part, request.method, request.url.path, exc)
        return part_unavailable(part).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "internal_error", "The Eye failed to answer this request.")

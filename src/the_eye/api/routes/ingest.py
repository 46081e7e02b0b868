"""`POST /events/`: the hot path. Authenticate, bound, parse, queue durably, answer 202.

No per-event validation and no store writes happen here; the processor does both. The
endpoint is plain ASGI, served ahead of FastAPI's routing (see `api.app`); the FastAPI
route below only documents it and serves it when called through the router.
"""

from __future__ import annotations

import itertools
import secrets
import zlib
from collections.abc import AsyncIterator, Mapping

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from the_eye.api.auth import CachedLookup, credential_from_header
from the_eye.api.openapi import INGEST_OPENAPI
from the_eye.api.problems import ApiError
from the_eye.config import Settings
from the_eye.queue import EVENTS, INVALID_BODY, Message, Queue, QueueUnavailable
from the_eye.timestamps import utcnow
from the_eye.wire import BodyRejected, client_event_id, decode_body, events_in, write_key_in

router = APIRouter(tags=["ingest"])

# Server-made event ids: a random per-process prefix and a counter, unique without a
# system call per request.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count()


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The body is larger than {limit} bytes.")


async def read_body(headers: Mapping[str, str], chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The request body, gzip-decoded, refused once it passes `limit` bytes."""
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        parts.append(chunk)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(415, "unsupported_encoding", "Only gzip bodies are accepted.")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        body = inflater.decompress(body, limit + 1)
    except zlib.error:
        raise ApiError(400, "invalid_json", "The body is not valid gzip.") from None
    if len(body) > limit or inflater.unconsumed_tail:
        raise _too_large(limit)
    if not inflater.eof:
        raise ApiError(400, "invalid_json", "The gzip body is truncated.")
    return body


def _unavailable(reason: str) -> ApiError:
    return ApiError(
        503,
        "unavailable",
        f"The queue cannot take events now ({reason}); nothing was accepted, retry later.",
        headers={"Retry-After": "1"},
    )


class Ingest:
    """The ingest endpoint, free of any web framework so it can be served as bare ASGI."""

    def __init__(self, settings: Settings, queue: Queue, write_keys: CachedLookup[int]) -> None:
        self.settings, self.queue, self.keys = settings, queue, write_keys
        self.cors_origins = frozenset(settings.cors_origin_list)

    async def _application(self, key: str) -> int:
        app_id = self.keys.cached(key) or await run_in_threadpool(self.keys.lookup, key)
        if app_id is None:
            raise ApiError(401, "unauthorized", "Unknown or revoked write key.")
        return app_id

    async def _publish(self, message: Message) -> None:
        try:
            await self.queue.publish([message])
        except QueueUnavailable as exc:
            raise _unavailable(str(exc)) from None

    async def accept(self, headers: Mapping[str, str], chunks: AsyncIterator[bytes]) -> bytes:
        """Queue one request's events; the 202 body, or an `ApiError`."""
        header_key = credential_from_header(headers.get("authorization"))
        app_id = None if header_key is None else await self._application(header_key)

        body = await read_body(headers, chunks, self.settings.max_body_bytes)
        received_at = utcnow()
        try:
            document = decode_body(body)
            raws = events_in(document)
            rejection = None
        except BodyRejected as exc:
            document, raws, rejection = None, [], exc

        if app_id is None:
            key = write_key_in(document)
            if key is None:
                raise ApiError(
                    401, "unauthorized", "A write key is required: `Authorization: Bearer <key>`."
                )
            app_id = await self._application(key)

        if rejection is not None:
            kept = body[: self.settings.max_error_payload_bytes]
            await self._publish(Message(app_id, INVALID_BODY, received_at, [], kept))
            raise ApiError(400, "invalid_json", str(rejection))

        serial = next(_id_counter)
        event_ids = [
            client_event_id(raw) or f"{_ID_PREFIX}{serial:x}-{i}" for i, raw in enumerate(raws)
        ]
        if event_ids:
            await self._publish(Message(app_id, EVENTS, received_at, event_ids, body))
        return orjson.dumps({"accepted": len(event_ids), "event_ids": event_ids})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        extra: list[tuple[bytes, bytes]] = []
        try:
            status, body = 202, await self.accept(headers, chunks())
        except ApiError as exc:
            status, body = exc.status, error_body(exc)
            extra = [(k.lower().encode(), v.encode()) for k, v in (exc.headers or {}).items()]
        origin = headers.get("origin")
        if origin and (origin in self.cors_origins or "*" in self.cors_origins):
            extra += [(b"access-control-allow-origin", origin.encode()), (b"vary", b"Origin")]
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def error_body(exc: ApiError) -> bytes:
    error = {"code": exc.code, "message": exc.message}
    if exc.details is not None:
        error["details"] = exc.details
    return orjson.dumps({"error": error})


@router.post(
    "/events/",
    status_code=202,
    summary="Send events",
    openapi_extra=INGEST_OPENAPI,
    response_class=Response,
)
async def ingest(request: Request) -> Response:
    body = await request.app.state.ingest.accept(request.headers, request.stream())
    return Response(body, status_code=202, media_type="application/json")

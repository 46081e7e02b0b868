"""`POST /events/` and Segment's `/v1/*`: the hot path. Authenticate, bound, parse, queue
durably, answer.

No per-event validation and no store writes happen here; the processor does both. The
endpoint is plain ASGI, served ahead of FastAPI's routing (see `api.app`); the FastAPI
routes below only document it and serve it when called through the router. Each route
differs from the others only in its `BodyFormat`: how it reads a body and answers.
"""

from __future__ import annotations

import itertools
import logging
import secrets
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping

from fastapi import APIRouter, Request, Response
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from the_eye.api.auth import CachedLookup, credential_from_header
from the_eye.api.openapi import INGEST_OPENAPI, segment_openapi
from the_eye.api.problems import ApiError, part_unavailable, unavailable
from the_eye.api.responses import encode_json
from the_eye.api.state import state_of
from the_eye.config import Settings
from the_eye.queue import EVENTS, Message, Queue, QueueUnavailable, rejected_message
from the_eye.segment_wire import BATCH, CALLS, MessageTooLarge, read_segment_body, segment_kind
from the_eye.timestamps import utcnow
from the_eye.wire import BodyRejected, client_event_id, decode_body, events_in, write_key_in

router = APIRouter(tags=["ingest"])
log = logging.getLogger(__name__)

# Server-made event ids: a random per-process prefix and a counter, unique without a
# system call per request.
_ID_PREFIX = secrets.token_hex(8)
_id_counter = itertools.count()


def _too_large(limit: int, status: int = 413) -> ApiError:
    return ApiError(status, "payload_too_large", f"The body is larger than {limit} bytes.")


async def read_body(
    headers: Mapping[str, str],
    chunks: AsyncIterator[bytes],
    limit: int,
    too_large_status: int = 413,
) -> bytes:
    """The request body, gzip-decoded, refused once it passes `limit` bytes."""
    length = headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise _too_large(limit, too_large_status)
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit, too_large_status)
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
        raise _too_large(limit, too_large_status)
    if not inflater.eof:
        raise ApiError(400, "invalid_json", "The gzip body is truncated.")
    return body


# A queue that refused a request may take it a moment later (a full one drains), and
# clients back off further by themselves while it keeps refusing.
QUEUE_RETRY_AFTER = 1


def _queue_unavailable(reason: str) -> ApiError:
    return unavailable(
        f"The queue cannot take events now ({reason}); nothing was accepted", QUEUE_RETRY_AFTER
    )


class BodyFormat(ABC):
    """How one ingest route reads its bodies and answers once they are queued."""

    kind: str  # of the queue messages it publishes
    status: int  # of the answer once queued
    too_large_status: int = 413

    @abstractmethod
    def limit(self, settings: Settings) -> int:
        """The largest body, after gzip decoding."""

    @abstractmethod
    def read(self, body: bytes, settings: Settings) -> tuple[list[str | None], str | None]:
        """Each event's client id (None: the server makes one) and a write key in the body.

        Raises `BodyRejected` for a body to answer 400 and keep as an error record.
        """

    @abstractmethod
    def answer(self, event_ids: list[str]) -> bytes:
        """The answer's body once the events are queued."""


class EyeEvents(BodyFormat):
    """`POST /events/`: one event, an array, or `{"batch": [...]}`; answered 202."""

    kind, status = EVENTS, 202

    def limit(self, settings: Settings) -> int:
        return settings.max_body_bytes

    def read(self, body: bytes, settings: Settings) -> tuple[list[str | None], str | None]:
        document = decode_body(body)
        return [client_event_id(raw) for raw in events_in(document)], write_key_in(document)

    def answer(self, event_ids: list[str]) -> bytes:
        return encode_json({"accepted": len(event_ids), "event_ids": event_ids})


class SegmentCall(BodyFormat):
    """`POST /v1/<call>`: Segment's HTTP Tracking API, answered as Segment does."""

    status, too_large_status = 200, 400  # Segment's SDKs expect 400 for oversized bodies
    SUCCESS = b'{"success":true}'

    def __init__(self, call: str) -> None:
        self.call, self.kind = call, segment_kind(call)

    def limit(self, settings: Settings) -> int:
        if self.call == BATCH:
            return settings.segment_max_batch_bytes
        return settings.segment_max_message_bytes

    def read(self, body: bytes, settings: Settings) -> tuple[list[str | None], str | None]:
        try:
            return read_segment_body(body, self.call, settings.segment_max_message_bytes)
        except MessageTooLarge as exc:
            raise ApiError(400, "payload_too_large", str(exc)) from None

    def answer(self, event_ids: list[str]) -> bytes:
        return self.SUCCESS


EYE_EVENTS = EyeEvents()
SEGMENT_CALLS = {call: SegmentCall(call) for call in CALLS}

# Every path the bare ASGI endpoint serves, with and without the trailing slash.
INGEST_PATHS: dict[str, BodyFormat] = {
    "/events/": EYE_EVENTS,
    "/events": EYE_EVENTS,
    **{f"/v1/{call}": f for call, f in SEGMENT_CALLS.items()},
    **{f"/v1/{call}/": f for call, f in SEGMENT_CALLS.items()},
}


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
            raise _queue_unavailable(str(exc)) from None

    async def accept(
        self,
        headers: Mapping[str, str],
        chunks: AsyncIterator[bytes],
        body_format: BodyFormat = EYE_EVENTS,
    ) -> bytes:
        """Queue one request's events; the answer's body, or an `ApiError`."""
        header_key = credential_from_header(headers.get("authorization"))
        app_id = None if header_key is None else await self._application(header_key)

        body = await read_body(
            headers, chunks, body_format.limit(self.settings), body_format.too_large_status
        )
        received_at = utcnow()
        try:
            client_ids, body_key = body_format.read(body, self.settings)
            rejection = None
        except BodyRejected as exc:
            client_ids, body_key, rejection = [], None, exc

        if app_id is None:
            if body_key is None:
                raise ApiError(
                    401, "unauthorized", "A write key is required: `Authorization: Bearer <key>`."
                )
            app_id = await self._application(body_key)

        if rejection is not None:
            kept = body[: self.settings.max_error_payload_bytes]
            await self._publish(rejected_message(app_id, received_at, kept, str(rejection)))
            raise ApiError(400, "invalid_json", str(rejection))

        serial = next(_id_counter)
        event_ids = [key or f"{_ID_PREFIX}{serial:x}-{i}" for i, key in enumerate(client_ids)]
        if event_ids:
            await self._publish(Message(app_id, body_format.kind, received_at, event_ids, body))
        return body_format.answer(event_ids)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }

        async def chunks() -> AsyncIterator[bytes]:
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    return

        body_format = INGEST_PATHS.get(scope["path"], EYE_EVENTS)
        try:
            status, body = body_format.status, await self.accept(headers, chunks(), body_format)
            extra: list[tuple[bytes, bytes]] = []
        except ClientGone:
            return  # half a body is not a request: nothing queued, nobody to answer
        except Exception as exc:
            status, body, extra = _error_answer(exc)
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


class ClientGone(Exception):
    """The client disconnected before its body had arrived."""


def _error_answer(exc: Exception) -> tuple[int, bytes, list[tuple[bytes, bytes]]]:
    """The status, body and extra headers that answer a request `accept` failed."""
    if isinstance(exc, ApiError):
        error = exc
    elif isinstance(exc, DBAPIError):
        # The store (a write-key lookup) is down or busy: come back later.
        log.warning("ingest unavailable: %s", exc)
        error = part_unavailable("store")
    else:
        log.exception("ingest failed", exc_info=exc)
        error = ApiError(500, "internal_error", "The Eye failed to take this request.")
    headers = [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    return error.status, encode_json(error.body()), headers


@router.post(
    "/events/",
    status_code=202,
    summary="Send events",
    openapi_extra=INGEST_OPENAPI,
    response_class=Response,
)
async def ingest(request: Request) -> Response:
    body = await state_of(request).ingest.accept(request.headers, request.stream())
    return Response(body, status_code=202, media_type="application/json")


def _segment_endpoint(body_format: SegmentCall):
    async def segment(request: Request) -> Response:
        body = await state_of(request).ingest.accept(request.headers, request.stream(), body_format)
        return Response(body, status_code=200, media_type="application/json")

    return segment


for _call, _format in SEGMENT_CALLS.items():
    router.add_api_route(
        f"/v1/{_call}",
        _segment_endpoint(_format),
        methods=["POST"],
        status_code=200,
        summary=f"Segment `{_call}`",
        tags=["segment"],
        operation_id=f"segment_{_call}",
        openapi_extra=segment_openapi(_call),
        response_class=Response,
    )

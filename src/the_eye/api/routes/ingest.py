"""`POST /events/` and Segment's `/v1/*` (with analytics.js's short paths, `/v1/t` for
`/v1/track`...): the hot path. Authenticate, bound, parse, queue
durably, answer.

No per-event validation and no store writes happen here; the processor does both. The
endpoint is plain ASGI, served ahead of FastAPI's routing (see `api.app`); the FastAPI
routes below only document it and serve it when called through the router. Each route
differs from the others only in its `BodyFormat`: how it reads a body and answers.

Work before authentication is bounded: a key in `Authorization` is checked before the body
is read; a body without one is read, gunzipped and parsed only up to
`THE_EYE_BODY_KEY_MAX_BYTES`. Bodies larger than `INLINE_BYTES` are gunzipped and parsed
in a thread, never on the event loop. The body bytes held at once are bounded per process
(`THE_EYE_MAX_BODY_BYTES_IN_FLIGHT`, reserved before they arrive; `503` past it), so slow
bodies cannot fill the memory. Failed authentications are counted per client
address and answered `429` past their budget; a write key may be rate-limited too. A
request is refused whole (`413 too_many_events`) past `THE_EYE_MAX_EVENTS_PER_REQUEST`, so
its answer is bounded too. An answer given before the body was read whole closes the
connection. Server-made event ids are random (128 bits), so nobody can take one in advance.
"""

from __future__ import annotations

import logging
import os
import time
import zlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from the_eye.api.auth import CachedLookup, credential_from_header
from the_eye.api.limits import RateLimiter, refuse_failing_address, too_many_requests
from the_eye.api.openapi import ingest_operation, segment_operation
from the_eye.api.problems import STORE_OUTAGES, ApiError, part_unavailable, unavailable
from the_eye.api.responses import encode_json
from the_eye.api.state import state_of
from the_eye.config import Settings
from the_eye.queue import EVENTS, Message, Queue, QueueUnavailable, rejected_message
from the_eye.segment_wire import (
    BATCH,
    CALLS,
    SHORT_CALLS,
    MessageTooLarge,
    read_segment_body,
    segment_kind,
)
from the_eye.timestamps import utcnow
from the_eye.wire import BodyRejected, client_event_id, decode_body, events_in, write_key_in

router = APIRouter(tags=["ingest"])
log = logging.getLogger(__name__)

# Bodies up to this size (after gzip) are decoded on the event loop: well under a
# millisecond. Larger ones go to a thread.
INLINE_BYTES = 64 * 1024


def server_event_ids(count: int) -> list[str]:
    """`count` event ids of 32 hex digits: the time in milliseconds (48 bits), then 80 random
    bits, drawn with one system call in all.

    Ids made later sort later, so the store's unique index on them grows at its end instead
    of at random pages: a batch dirties a few index pages rather than most of them, which
    made a quarter of an event's storing cost. The random bits keep them unguessable: a
    holder of the public write key cannot take the ids the server makes next.
    """
    prefix = f"{time.time_ns() // 1_000_000:012x}"
    digits = os.urandom(10 * count).hex()
    return [prefix + digits[i : i + 20] for i in range(0, 20 * count, 20)]


def _too_large(limit: int, status: int = 413) -> ApiError:
    return ApiError(status, "payload_too_large", f"The body is larger than {limit} bytes.")


TooLarge = Callable[[], ApiError]

# A process short of body memory frees some as soon as one slow body ends or times out.
BODY_BYTES_RETRY_AFTER = 1


class BodyBytes:
    """The request-body bytes one API process holds at once, bounded by `limit`.

    Used on the event loop only. A request reserves its body's bytes before they arrive
    (its declared `Content-Length`; a chunked body chunk by chunk) through a `Reservation`,
    and gives them back once answered, whatever the answer.
    """

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0

    def reservation(self) -> Reservation:
        return Reservation(self)


class Reservation:
    """One request's share of a `BodyBytes`: grows as its body needs, released once."""

    def __init__(self, pool: BodyBytes) -> None:
        self.pool, self.size = pool, 0

    def grow_to(self, size: int) -> None:
        """Hold `size` bytes in all; a `503` when the process cannot hold them now."""
        more = size - self.size
        if more <= 0:
            return
        if self.pool.held + more > self.pool.limit:
            raise unavailable(
                "The Eye holds as many request bodies as it can now; nothing was accepted",
                BODY_BYTES_RETRY_AFTER,
            )
        self.pool.held += more
        self.size = size

    def release(self) -> None:
        self.pool.held -= self.size
        self.size = 0


async def read_body(
    headers: Mapping[str, str],
    chunks: AsyncIterator[bytes],
    limit: int,
    too_large: TooLarge,
    reservation: Reservation,
) -> bytes:
    """The request body, gzip-decoded, refused with `too_large()` once it passes `limit`
    bytes; gunzipped in a thread when it inflates past `INLINE_BYTES`.

    Its bytes are reserved in `reservation` before they are read (a `503` when the process
    holds too many already); the caller releases them once the request is answered.
    """
    length = headers.get("content-length")
    if length and length.isdigit():
        if int(length) > limit:
            raise too_large()
        reservation.grow_to(int(length))
    parts, size = [], 0
    async for chunk in chunks:
        size += len(chunk)
        if size > limit:
            raise too_large()
        reservation.grow_to(size)
        parts.append(chunk)
    body = parts[0] if len(parts) == 1 else b"".join(parts)
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding not in ("gzip", "x-gzip"):
        raise ApiError(415, "unsupported_encoding", "Only gzip bodies are accepted.")
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    decoded = _inflate(inflater, body, min(limit, INLINE_BYTES) + 1)
    if len(decoded) > INLINE_BYTES and limit > INLINE_BYTES:
        rest = inflater.unconsumed_tail
        decoded += await run_in_threadpool(_inflate, inflater, rest, limit + 1 - len(decoded))
    if len(decoded) > limit or inflater.unconsumed_tail:
        raise too_large()
    if not inflater.eof:
        raise ApiError(400, "invalid_json", "The gzip body is truncated.")
    if inflater.unused_data:
        raise ApiError(400, "invalid_json", "The body has bytes after its gzip stream.")
    return decoded


def _inflate(inflater: zlib._Decompress, data: bytes, max_length: int) -> bytes:
    try:
        return inflater.decompress(data, max_length)
    except zlib.error:
        raise ApiError(400, "invalid_json", "The body is not valid gzip.") from None


# A queue that refused a request may take it a moment later (a full one drains), and
# clients back off further by themselves while it keeps refusing.
QUEUE_RETRY_AFTER = 1


def _queue_unavailable(reason: str) -> ApiError:
    return unavailable(
        f"The queue cannot take events now ({reason}); nothing was accepted", QUEUE_RETRY_AFTER
    )


def _key_required() -> ApiError:
    return ApiError(401, "unauthorized", "A write key is required: `Authorization: Bearer <key>`.")


def _key_in_header_required(limit: int) -> Callable[[], ApiError]:
    def error() -> ApiError:
        return ApiError(
            401,
            "unauthorized",
            f"A body larger than {limit} bytes must send its write key in the header: "
            "`Authorization: Bearer <key>`.",
        )

    return error


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

# Each Segment path, long and short (analytics.js posts `track` to `/v1/t`), and its call.
SEGMENT_PATHS = {
    **{f"/v1/{call}": SEGMENT_CALLS[call] for call in CALLS},
    **{f"/v1/{short}": SEGMENT_CALLS[call] for short, call in SHORT_CALLS.items()},
}

# Every path the bare ASGI endpoint serves, with and without the trailing slash.
INGEST_PATHS: dict[str, BodyFormat] = {
    "/events/": EYE_EVENTS,
    "/events": EYE_EVENTS,
    **SEGMENT_PATHS,
    **{f"{path}/": f for path, f in SEGMENT_PATHS.items()},
}

# Answer headers a page on an allowed origin may read: a browser's sender backs off by them.
EXPOSED_HEADERS = "Retry-After"


class Ingest:
    """The ingest endpoint, free of any web framework so it can be served as bare ASGI."""

    def __init__(
        self,
        settings: Settings,
        queue: Queue,
        write_keys: CachedLookup[int],
        auth_failures: RateLimiter,
    ) -> None:
        self.settings, self.queue, self.keys = settings, queue, write_keys
        self.auth_failures = auth_failures
        self.per_key = RateLimiter(
            settings.rate_limit_per_key, settings.rate_limit_burst or settings.rate_limit_per_key
        )
        self.cors_origins = frozenset(settings.cors_origin_list)
        self.any_origin = "*" in self.cors_origins
        self.body_bytes = BodyBytes(settings.max_body_bytes_in_flight)

    async def _application(self, key: str, client: str | None) -> int:
        app_id = self.keys.cached(key)
        if app_id is None:
            if not self.keys.known(key):  # a key seen valid before may always be checked
                refuse_failing_address(self.auth_failures, client)
            if not self.keys.missed(key):
                app_id = await run_in_threadpool(self.keys.lookup, key)
            if app_id is None:
                raise ApiError(401, "unauthorized", "Unknown or revoked write key.")
        wait = self.per_key.take(app_id)
        if wait:
            raise too_many_requests("Too many requests for this write key", wait)
        return app_id

    async def _publish(self, message: Message) -> None:
        try:
            await self.queue.publish([message])
        except QueueUnavailable as exc:
            log.warning("queue unavailable: %s", exc)
            raise _queue_unavailable(exc.reason) from None

    async def _decode(
        self, body_format: BodyFormat, body: bytes
    ) -> tuple[list[str | None], str | None, BodyRejected | None]:
        """The body's event ids, its write key, and why it cannot be read, if it cannot."""
        try:
            if len(body) > INLINE_BYTES:
                client_ids, body_key = await run_in_threadpool(
                    body_format.read, body, self.settings
                )
            else:
                client_ids, body_key = body_format.read(body, self.settings)
        except BodyRejected as exc:
            return [], None, exc
        return client_ids, body_key, None

    async def accept(
        self,
        headers: Mapping[str, str],
        chunks: AsyncIterator[bytes],
        body_format: BodyFormat = EYE_EVENTS,
        client: str | None = None,
    ) -> bytes:
        """Queue one request's events; the answer's body, or an `ApiError`.

        `client` is the sender's address, which failed authentications are counted by.
        """
        reservation = self.body_bytes.reservation()
        try:
            return await self._accept(headers, chunks, body_format, client, reservation)
        except ApiError as exc:
            if exc.status == 401:
                self.auth_failures.take(client)
            raise
        finally:
            reservation.release()

    async def _accept(
        self,
        headers: Mapping[str, str],
        chunks: AsyncIterator[bytes],
        body_format: BodyFormat,
        client: str | None,
        reservation: Reservation,
    ) -> bytes:
        settings = self.settings
        header_key = credential_from_header(headers.get("authorization"))
        if header_key is not None:
            app_id: int | None = await self._application(header_key, client)
            limit = body_format.limit(settings)
            status = body_format.too_large_status
            too_large: TooLarge = lambda: _too_large(limit, status)  # noqa: E731
        else:
            refuse_failing_address(self.auth_failures, client)
            app_id, limit = None, min(body_format.limit(settings), settings.body_key_max_bytes)
            too_large = _key_in_header_required(limit)

        body = await read_body(headers, chunks, limit, too_large, reservation)
        received_at = utcnow()
        client_ids, body_key, rejection = await self._decode(body_format, body)
        if app_id is None:
            if body_key is None:
                raise _key_required()
            app_id = await self._application(body_key, client)

        if rejection is not None:
            # Queued whole, like any accepted body: the error record keeps a bounded prefix
            # and the body's size.
            await self._publish(rejected_message(app_id, received_at, body, str(rejection)))
            raise ApiError(400, "invalid_json", str(rejection))
        if len(client_ids) > settings.max_events_per_request:
            raise ApiError(
                413,
                "too_many_events",
                f"The request carries {len(client_ids)} events; at most "
                f"{settings.max_events_per_request} are accepted per request.",
            )

        made = iter(server_event_ids(client_ids.count(None)))
        event_ids = [key or next(made) for key in client_ids]
        if event_ids:
            await self._publish(Message(app_id, body_format.kind, received_at, event_ids, body))
        return body_format.answer(event_ids)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = {
            name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
        }
        body_read = False

        async def chunks() -> AsyncIterator[bytes]:
            nonlocal body_read
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    raise ClientGone
                yield message.get("body", b"")
                if not message.get("more_body", False):
                    body_read = True
                    return

        body_format = INGEST_PATHS[scope["path"]]
        client = scope.get("client")
        try:
            status = body_format.status
            body = await self.accept(headers, chunks(), body_format, client and client[0])
            extra: list[tuple[bytes, bytes]] = []
        except ClientGone:
            return  # half a body is not a request: nothing queued, nobody to answer
        except Exception as exc:
            status, body, extra = _error_answer(exc)
        if not body_read:
            # Answered before the body arrived whole: whatever follows is not read.
            extra.append((b"connection", b"close"))
        origin = headers.get("origin")
        if origin and (self.any_origin or origin in self.cors_origins):
            extra += [
                (b"access-control-allow-origin", origin.encode()),
                (b"access-control-expose-headers", EXPOSED_HEADERS.encode()),
                (b"vary", b"Origin"),
            ]
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
    elif isinstance(exc, STORE_OUTAGES):
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
    openapi_extra=ingest_operation(),
    response_class=Response,
)
async def ingest(request: Request) -> Response:
    client = request.client and request.client.host
    body = await state_of(request).ingest.accept(
        request.headers, request.stream(), EYE_EVENTS, client
    )
    return Response(body, status_code=202, media_type="application/json")


def _segment_endpoint(body_format: SegmentCall) -> Callable[[Request], Awaitable[Response]]:
    async def segment(request: Request) -> Response:
        client = request.client and request.client.host
        ingest = state_of(request).ingest
        body = await ingest.accept(request.headers, request.stream(), body_format, client)
        return Response(body, status_code=200, media_type="application/json")

    return segment


for _call, _format in SEGMENT_CALLS.items():
    router.add_api_route(
        f"/v1/{_call}",
        _segment_endpoint(_format),
        methods=["POST"],
        status_code=200,
        summary=f"Segment {_call}",
        tags=["segment"],
        operation_id=f"segment_{_call}",
        openapi_extra=segment_operation(_call),
        response_class=Response,
    )

# analytics.js's short paths: the same endpoints, left out of the OpenAPI document, which
# names each call once.
for _short, _call in SHORT_CALLS.items():
    router.add_api_route(
        f"/v1/{_short}",
        _segment_endpoint(SEGMENT_CALLS[_call]),
        methods=["POST"],
        status_code=200,
        include_in_schema=False,
        response_class=Response,
    )

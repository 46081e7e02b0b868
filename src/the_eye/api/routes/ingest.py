"""`POST /events/`: the hot path. Authenticate, bound, parse, queue durably, answer 202.

No per-event validation and no store writes happen here; the processor does both.
"""

from __future__ import annotations

import secrets
import zlib
from datetime import datetime

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from the_eye.api.auth import WriteKeys, credential_from_header
from the_eye.api.openapi import INGEST_OPENAPI
from the_eye.api.problems import ApiError
from the_eye.queue import EVENTS, INVALID_BODY, Message, Queue, QueueUnavailable
from the_eye.wire import BodyRejected, client_event_id, decode_body, events_in, write_key_in

router = APIRouter(tags=["ingest"])


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"The body is larger than {limit} bytes.")


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, gzip-decoded, refused once it passes `limit` bytes."""
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > limit:
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    body = b"".join(chunks)
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
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


async def _publish(queue: Queue, message: Message) -> None:
    try:
        await queue.publish([message])
    except QueueUnavailable as exc:
        raise _unavailable(str(exc)) from None


@router.post(
    "/events/",
    status_code=202,
    summary="Send events",
    openapi_extra=INGEST_OPENAPI,
    response_class=Response,
)
async def ingest(request: Request) -> Response:
    state = request.app.state
    header_key = credential_from_header(request.headers.get("authorization"))
    keys: WriteKeys = state.write_keys
    app_id = None
    if header_key is not None:
        app_id = keys.cached(header_key) or await run_in_threadpool(keys.lookup, header_key)
        if app_id is None:
            raise ApiError(401, "unauthorized", "Unknown or revoked write key.")

    limit = state.settings.max_body_bytes
    body = await read_body(request, limit)
    received_at = datetime.utcnow()
    try:
        document = decode_body(body)
        rejection = None
    except BodyRejected as exc:
        document, rejection = None, exc

    if app_id is None:
        key = write_key_in(document)
        if key is None:
            raise ApiError(
                401, "unauthorized", "A write key is required: `Authorization: Bearer <key>`."
            )
        app_id = keys.cached(key) or await run_in_threadpool(keys.lookup, key)
        if app_id is None:
            raise ApiError(401, "unauthorized", "Unknown or revoked write key.")

    if rejection is None:
        try:
            raws = events_in(document)
        except BodyRejected as exc:
            rejection = exc
    if rejection is not None:
        kept = body[: state.settings.max_error_payload_bytes]
        await _publish(state.queue, Message(app_id, INVALID_BODY, received_at, [], kept))
        raise ApiError(400, "invalid_json", str(rejection))

    prefix = secrets.token_hex(12)
    event_ids = [client_event_id(raw) or f"{prefix}-{i}" for i, raw in enumerate(raws)]
    if event_ids:
        await _publish(state.queue, Message(app_id, EVENTS, received_at, event_ids, body))
    return Response(
        orjson.dumps({"accepted": len(event_ids), "event_ids": event_ids}),
        status_code=202,
        media_type="application/json",
    )

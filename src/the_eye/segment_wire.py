"""Segment's HTTP Tracking API bodies: how they carry messages, shared by the API and processor.

`/v1/batch` takes `{"batch": [messages], "context"?, "sentAt"?, "writeKey"?}`; the other calls
(`/v1/track`, `/v1/page`, ...) take one message. Segment's browser library (analytics.js)
posts to short paths (`/v1/t`, `/v1/b`, ...): the same calls under the first letter of
their names. A queued Segment request keeps its body as
sent; its queue kind (`segment/<call>`) says which of the two shapes it is and, for a single
call, the message type its path implies.
"""

from __future__ import annotations

from typing import Any

import msgspec

from the_eye.queue.base import SEGMENT
from the_eye.wire import MAX_KEY_LENGTH, BodyRejected

BATCH = "batch"
# The calls of the Tracking API, each a message type of its own, and `batch`, which is not.
MESSAGE_TYPES = ("track", "page", "screen", "identify", "group", "alias")
CALLS = (BATCH, *MESSAGE_TYPES)
# The path analytics.js posts each call to: `/v1/<first letter>`.
SHORT_CALLS = {call[0]: call for call in CALLS}


class MessageTooLarge(ValueError):
    """A message of a Segment body over the per-message limit."""


def segment_kind(call: str) -> str:
    """The queue kind of a request sent to `/v1/<call>`."""
    return f"{SEGMENT}/{call}"


def segment_call(kind: str) -> str | None:
    """The call a queue kind was sent to, or None when it is no Segment kind."""
    prefix, _, call = kind.partition("/")
    return call if prefix == SEGMENT and call in CALLS else None


class _Batch(msgspec.Struct):
    # Raw keeps each message's bytes as sent, to measure it without decoding it twice.
    batch: list[msgspec.Raw]
    writeKey: Any = None


class _Message(msgspec.Struct):
    messageId: Any = None
    writeKey: Any = None


_batch_decoder = msgspec.json.Decoder(_Batch)
_message_decoder = msgspec.json.Decoder(_Message)


def _decode(decoder: msgspec.json.Decoder[Any], body: bytes, shape: str) -> Any:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BodyRejected(f"The body must be {shape}: {exc}.") from None
    except msgspec.DecodeError as exc:
        raise BodyRejected(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise BodyRejected("The body nests JSON too deeply.") from None


def message_id(value: Any) -> str | None:
    """A Segment `messageId` usable as The Eye's idempotency key, if it is one."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if isinstance(value, str) and 0 < len(value) <= MAX_KEY_LENGTH and "\x00" not in value:
        return value
    return None


def _write_key(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def read_segment_body(
    body: bytes, call: str, max_message_bytes: int
) -> tuple[list[str | None], str | None]:
    """Each message's `messageId` (None when unusable) and the body's `writeKey`, if any.

    Raises `BodyRejected` for a body of the wrong shape and `MessageTooLarge` for a message
    over `max_message_bytes`; checks nothing else, the processor does.
    """
    if call != BATCH:
        if len(body) > max_message_bytes:
            raise MessageTooLarge(f"The message is larger than {max_message_bytes} bytes.")
        single = _decode(_message_decoder, body, "a JSON object (one message)")
        return [message_id(single.messageId)], _write_key(single.writeKey)
    batch = _decode(_batch_decoder, body, 'a JSON object with a "batch" array')
    ids: list[str | None] = []
    for index, raw in enumerate(batch.batch):
        if len(raw) > max_message_bytes:
            raise MessageTooLarge(
                f"Message {index} of the batch is larger than {max_message_bytes} bytes."
            )
        try:
            ids.append(message_id(_message_decoder.decode(raw).messageId))
        except msgspec.DecodeError:
            ids.append(None)  # not an object: the processor keeps it as an error
    return ids, _write_key(batch.writeKey)


def segment_messages(document: Any, call: str) -> tuple[list[Any], dict[str, Any], Any]:
    """The messages of a decoded body, with the batch's `context` and `sentAt` (or `{}`, None).

    The body passed `read_segment_body` at ingest; `BodyRejected` is for one that did not.
    """
    if call != BATCH:
        if not isinstance(document, dict):
            raise BodyRejected("The body must be a JSON object (one message).")
        return [document], {}, None
    if not isinstance(document, dict) or not isinstance(document.get("batch"), list):
        raise BodyRejected('The body must be a JSON object with a "batch" array.')
    context = document.get("context")
    return document["batch"], context if isinstance(context, dict) else {}, document.get("sentAt")

"""The ingest wire format: how a request body carries events, shared by the API and processor."""

from __future__ import annotations

from typing import Any

import msgspec

MAX_KEY_LENGTH = 128

_decoder = msgspec.json.Decoder()


class BodyRejected(ValueError):
    """A request body that holds no events The Eye can read."""


def decode_body(body: bytes) -> Any:
    """Parse a JSON body; raise `BodyRejected` when it is not JSON."""
    try:
        return _decoder.decode(body)
    except msgspec.DecodeError as exc:
        raise BodyRejected(f"The body is not valid JSON: {exc}.") from None
    except RecursionError:
        raise BodyRejected("The body nests JSON too deeply.") from None


def events_in(document: Any) -> list[Any]:
    """The events of a decoded body: one event, an array, or `{"batch": [...]}`."""
    if isinstance(document, list):
        return document
    if isinstance(document, dict):
        batch = document.get("batch")
        if isinstance(batch, list):
            return batch
        return [document]
    raise BodyRejected("The body must be a JSON object or an array of events.")


def write_key_in(document: Any) -> str | None:
    """A write key sent in a batch body (`writeKey` or `write_key`), if any."""
    if isinstance(document, dict):
        key = document.get("writeKey", document.get("write_key"))
        if isinstance(key, str) and key:
            return key
    return None


def client_event_id(event: Any) -> str | None:
    """The idempotency key a client set on an event, when it is usable as one."""
    if isinstance(event, dict):
        key = event.get("event_id")
        if isinstance(key, str) and 0 < len(key) <= MAX_KEY_LENGTH and "\x00" not in key:
            return key
    return None

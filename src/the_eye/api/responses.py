"""JSON answers, encoded with msgspec: fast, and exact for integers of any size."""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.responses import Response

# The one JSON encoder of the server's answers, also for the bare ASGI ingest endpoint.
encode_json = msgspec.json.Encoder().encode


class JSONBody(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return encode_json(content)

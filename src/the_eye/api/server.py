"""uvicorn's httptools protocol, bounded: how long a request may take to arrive, and how large
its headers may be.

uvicorn bounds idle keep-alive connections but not a request in progress: a client that
sends its headers a byte at a time, or never finishes its body, holds a connection (and
the header bytes httptools buffers) for as long as it likes. This protocol gives each
connection one timer: from its first byte (or its opening) to the end of the headers,
`THE_EYE_HEADER_TIMEOUT`; from there to the end of the body, `THE_EYE_BODY_TIMEOUT`. A
request still unfinished at its deadline is answered `408` (when no answer has begun) and
its connection closed. Answers keep the order of pipelined requests: a request queued
behind an earlier one (uvicorn stops reading meanwhile) gets its body time once it runs,
and a request whose headers come too late while an earlier one is still being answered
gets its `408` after that answer. Headers and request line larger than `THE_EYE_MAX_HEADER_BYTES`
are answered `431` and the connection closed, after at most one read past the bound.

The limits are read from the process's settings (`get_settings()`), as uvicorn builds the
protocol itself, in every worker process. `the-eye serve` passes this class to uvicorn
(`http=`); a bare `uvicorn` run can too: `--http the_eye.api.server:BoundedHttpToolsProtocol`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import httptools
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from the_eye.api.problems import ApiError
from the_eye.api.responses import encode_json
from the_eye.config import get_settings

log = logging.getLogger(__name__)


def _error_response(status: int, code: str, message: str) -> bytes:
    body = encode_json(ApiError(status, code, message).body())
    return b"".join(
        [
            STATUS_LINE[status],
            b"content-type: application/json\r\ncontent-length: ",
            str(len(body)).encode(),
            b"\r\nconnection: close\r\n\r\n",
            body,
        ]
    )


class _Refused(Exception):
    """Raised from a parser callback to answer `status` and close the connection."""

    def __init__(self, response: bytes) -> None:
        self.response = response


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol` with a deadline on each request's arrival and a bound on its
    headers' size."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = get_settings()
        self.header_timeout, self.body_timeout = settings.header_timeout, settings.body_timeout
        self.max_header_bytes = settings.max_header_bytes
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline = 0.0  # loop time; the timer may fire before it and sleep again
        self._in_headers = True  # receiving a request line and headers, or waiting for one
        self._header_bytes = 0  # bytes received while `_in_headers`
        self._header_size = 0  # of the request line and headers parsed so far
        self._expired = False  # a late request waits for earlier answers before its 408

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm(self.header_timeout)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self, seconds: float) -> None:
        self._deadline = self.loop.time() + seconds
        if self._deadline_timer is None:
            self._deadline_timer = self.loop.call_at(self._deadline, self._deadline_reached)

    def _disarm(self) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None

    def _deadline_reached(self) -> None:
        self._deadline_timer = None
        if self.loop.time() < self._deadline:  # the body's deadline, set after the headers
            self._deadline_timer = self.loop.call_at(self._deadline, self._deadline_reached)
            return
        if self.transport.is_closing():
            return
        if self._in_headers and not (self.cycle is None or self.cycle.response_complete):
            # An earlier request is still being answered: its answer goes first, then the
            # 408 (`on_response_complete`). Nothing more is read meanwhile.
            self._expired = True
            self.flow.pause_reading()
            return
        self._expire()

    def _expire(self) -> None:
        """Answer 408 (unless an answer has begun) and close: the request came too slowly."""
        if self._in_headers:
            phase, seconds = "headers", self.header_timeout
            answer = True
        else:
            phase, seconds = "body", self.body_timeout
            answer = not self.cycle.response_started
            self.cycle.disconnected = True  # the application may answer no more
            self.cycle.message_event.set()
        if answer:
            message = f"The request's {phase} did not arrive within {seconds:g} s."
            self.transport.write(_error_response(408, "request_timeout", message))
        log.info("closed a connection whose request %s came too slowly", phase)
        self.transport.close()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # starts the next pipelined request, if one waits
        if self.transport.is_closing():
            return
        if not self.cycle.response_complete:  # a pipelined request has started
            if self._expired:
                self.flow.pause_reading()  # still nothing more before the 408
            elif not self._in_headers and self._deadline_timer is None:
                self._arm(self.body_timeout)  # its body is unfinished: its time runs now
            return
        if self._expired:  # every earlier answer is out: the late request's 408 follows
            self._expired = False
            self._expire()

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        if self._in_headers:
            self._header_bytes += len(data)
        try:
            self.parser.feed_data(data)
            if self._in_headers and self._header_bytes > self.max_header_bytes:
                raise _Refused(self._headers_too_large())
        except httptools.HttpParserCallbackError as exc:
            refused = exc.__context__
            if not isinstance(refused, _Refused):
                self._bad_request()
                return
            self._refuse(refused)
        except _Refused as refused:
            self._refuse(refused)
        except httptools.HttpParserError:
            self._bad_request()
        except httptools.HttpParserUpgrade:
            if self._should_upgrade():
                self.handle_websocket_upgrade()
            else:
                self._unsupported_upgrade_warning()

    def _bad_request(self) -> None:
        msg = "Invalid HTTP request received."
        self.logger.warning(msg)
        self.send_400_response(msg)

    def _refuse(self, refused: _Refused) -> None:
        if not self.transport.is_closing():
            self.transport.write(refused.response)
            self.transport.close()

    def _headers_too_large(self) -> bytes:
        return _error_response(
            431,
            "headers_too_large",
            f"The request line and headers are larger than {self.max_header_bytes} bytes.",
        )

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_size = 0
        if self._deadline_timer is None:  # else it runs from the connection's opening
            self._arm(self.header_timeout)

    def on_url(self, url: bytes) -> None:
        super().on_url(url)
        self._header_size += len(url)
        if self._header_size > self.max_header_bytes:
            raise _Refused(self._headers_too_large())

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_size += len(name) + len(value) + 4
        if self._header_size > self.max_header_bytes:
            raise _Refused(self._headers_too_large())
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._in_headers = False
        self._arm(self.body_timeout)
        super().on_headers_complete()
        if self.pipeline and self.pipeline[0][0] is self.cycle:
            # Queued behind an earlier request, with reading paused until that one is
            # answered: the body cannot arrive meanwhile, so its time starts once it runs.
            self._disarm()

    def on_message_complete(self) -> None:
        self._disarm()
        self._in_headers, self._header_bytes = True, 0
        super().on_message_complete()

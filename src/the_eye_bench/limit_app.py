"""The ceiling of the machine: an ASGI app that reads each request and answers 202, nothing more.

Served by uvicorn with the options `the-eye serve` uses, it measures what the server stack and
the load generator cost on their own, so The Eye's numbers can be read against it.

Run as `python -m the_eye_bench.limit_app --port P --workers N`.
"""

from __future__ import annotations

import argparse
from typing import Any

from the_eye.api.app import SERVER_OPTIONS

_BODY = b'{"accepted":1}'
_START = {
    "type": "http.response.start",
    "status": 202,
    "headers": [(b"content-type", b"application/json"), (b"content-length", b"14")],
}
_END = {"type": "http.response.body", "body": _BODY}


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Answer every HTTP request 202 after reading its body; accept lifespan events."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    # Read the whole body, as any real endpoint must before it answers.
    while (await receive()).get("more_body"):
        pass
    await send(_START)
    await send(_END)


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    uvicorn.run(
        "the_eye_bench.limit_app:app",
        host=args.host,
        port=args.port,
        workers=args.workers,
        log_level="warning",
        **SERVER_OPTIONS,
    )


if __name__ == "__main__":
    main()

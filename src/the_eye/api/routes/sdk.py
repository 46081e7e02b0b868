"""`GET /sdk/eye.js` and `/sdk/eye.mjs`: The Eye's browser tracker, served from the package.

The files are built from `sdk/js/` of the repository and shipped in the package, so no build
runs here. They are public and the same for everyone: any origin may load them (a module
script is always fetched with CORS), browsers and proxies may keep them for a week, and an
`ETag` lets them check for a new version cheaply after that.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path

from fastapi import APIRouter, Request, Response

router = APIRouter(tags=["sdk"])

SDK_FILES = Path(__file__).resolve().parents[1] / "static" / "sdk"
# The classic script (`window.theEye`) and the ES module for bundlers.
TRACKER_FILES = ("eye.js", "eye.mjs")
CACHE_CONTROL = "public, max-age=604800"
MEDIA_TYPE = "text/javascript; charset=utf-8"


@cache
def _tracker(name: str) -> tuple[bytes, str]:
    """A tracker file's bytes and its entity tag, read once per process."""
    content = (SDK_FILES / name).read_bytes()
    return content, '"' + hashlib.sha256(content).hexdigest()[:32] + '"'


def _serve(name: str) -> None:
    def tracker_file(request: Request) -> Response:
        content, etag = _tracker(name)
        headers = {
            "cache-control": CACHE_CONTROL,
            "etag": etag,
            "access-control-allow-origin": "*",
        }
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(content, media_type=MEDIA_TYPE, headers=headers)

    router.add_api_route(
        f"/sdk/{name}", tracker_file, methods=["GET", "HEAD"], include_in_schema=False
    )


for _name in TRACKER_FILES:
    _serve(_name)

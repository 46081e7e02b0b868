"""`GET /sdk/eye.js` and `/sdk/eye.mjs`: the browser tracker, served from the package as built
from `sdk/js/`, for any origin, cached for a week and revalidated by its ETag."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

SERVED = Path(__file__).resolve().parents[2] / "src" / "the_eye" / "api" / "static" / "sdk"


@pytest.fixture
def anonymous(server):
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("name", ["eye.js", "eye.mjs"])
def test_the_tracker_is_served_as_javascript_with_a_long_cache(anonymous, settings, name):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the files are the same on every backend")
    answer = anonymous.get(f"/sdk/{name}", headers={"Origin": "https://shop.example"})
    assert answer.status_code == 200
    assert answer.content == (SERVED / name).read_bytes()
    assert answer.headers["content-type"] == "text/javascript; charset=utf-8"
    assert answer.headers["cache-control"] == "public, max-age=604800"
    # A module script is always fetched with CORS, from any site.
    assert answer.headers["access-control-allow-origin"] == "*"
    again = anonymous.get(f"/sdk/{name}", headers={"If-None-Match": answer.headers["etag"]})
    assert again.status_code == 304 and again.content == b""
    assert anonymous.get(f"/sdk/{name}/").content == answer.content
    assert anonymous.head(f"/sdk/{name}").status_code == 200


def test_the_two_files_have_their_own_etags_and_others_are_not_found(anonymous, settings):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the files are the same on every backend")
    script, module = anonymous.get("/sdk/eye.js"), anonymous.get("/sdk/eye.mjs")
    assert script.headers["etag"] != module.headers["etag"]
    stale = anonymous.get("/sdk/eye.js", headers={"If-None-Match": module.headers["etag"]})
    assert stale.status_code == 200
    assert anonymous.get("/sdk/other.js").status_code == 404
    assert anonymous.get("/sdk/../config.py").status_code == 404

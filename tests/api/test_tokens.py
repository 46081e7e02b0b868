"""`/tokens/`: API tokens listed, made and revoked; and bearer tokens compared safely."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import LiveServer, client_as
from tests.processes import wait_until
from the_eye.store.credentials import bootstrap, list_tokens, revoke_token


def test_a_token_is_made_listed_and_revoked_at_once(server, admin):
    made = admin.post("/tokens/", json={"name": "ci", "scope": "read"})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["token"].startswith("eye_tk_")
    assert {k: body[k] for k in ("name", "scope", "active")} == {
        "name": "ci",
        "scope": "read",
        "active": True,
    }
    with client_as(server, body["token"]) as ci:
        assert ci.get("/events/").status_code == 200
        listed = admin.get("/tokens/").json()["results"]
        assert [t["name"] for t in listed] == ["admin", "analyst", "ci"]
        assert all("token" not in t for t in listed)

        assert admin.delete(f"/tokens/{body['id']}/").status_code == 204
        # Refused at once by the process that revoked it, cache or not.
        refused = ci.get("/events/")
        assert refused.status_code == 401
        assert refused.json()["error"]["code"] == "unauthorized"
    listed = {t["id"]: t for t in admin.get("/tokens/").json()["results"]}
    assert listed[body["id"]]["active"] is False
    assert admin.delete(f"/tokens/{body['id']}/").status_code == 204  # already revoked
    missing = admin.delete("/tokens/999999/")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"


def test_managing_tokens_needs_an_admin_token(server, creds, admin):
    with client_as(server, creds.read_token) as analyst:
        assert analyst.get("/tokens/").status_code == 403
        assert analyst.post("/tokens/", json={"name": "x", "scope": "admin"}).status_code == 403
        assert analyst.delete("/tokens/1/").status_code == 403
    assert httpx.get(f"{server.url}/tokens/").status_code == 401
    bad = admin.post("/tokens/", json={"name": "x", "scope": "owner"})
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_request"
    assert admin.post("/tokens/", json={"name": "", "scope": "read"}).status_code == 400


def test_the_bootstrap_admin_token_can_be_revoked(server, engine):
    _, first_admin = bootstrap(engine)
    with client_as(server, first_admin) as admin:
        made = admin.post("/tokens/", json={"name": "successor", "scope": "admin"}).json()
        listed = admin.get("/tokens/").json()["results"]
        (first,) = [t for t in listed if t["name"] == "bootstrap"]
        with client_as(server, made["token"]) as successor:
            assert successor.delete(f"/tokens/{first['id']}/").status_code == 204
            assert successor.get("/tokens/").status_code == 200
        assert admin.get("/tokens/").status_code == 401


def test_a_revocation_made_elsewhere_is_refused_within_the_cache_time(server, engine, creds):
    with client_as(server, creds.read_token) as analyst:
        assert analyst.get("/events/").status_code == 200  # now cached
        with engine.begin() as conn:
            (token_id,) = [t.id for t in list_tokens(conn) if t.name == "analyst"]
            assert revoke_token(conn, token_id)
        # The test server caches credentials for 0.5 s.
        wait_until(lambda: analyst.get("/events/").status_code == 401, timeout=5, interval=0.05)


@pytest.mark.parametrize("secret", ["é", "tøken", "\xff" * 40])
def test_a_non_ascii_bearer_token_is_401_when_an_admin_token_is_set(settings, secret):
    with LiveServer(settings.model_copy(update={"admin_token": "eye-admin-secret"})) as live:
        header = f"Bearer {secret}".encode("latin-1")
        answer = httpx.get(f"{live.url}/events/", headers={"Authorization": header})
        assert answer.status_code == 401, answer.text
        assert answer.json()["error"]["code"] == "unauthorized"
        admin = httpx.get(
            f"{live.url}/events/", headers={"Authorization": "Bearer eye-admin-secret"}
        )
        assert admin.status_code == 200

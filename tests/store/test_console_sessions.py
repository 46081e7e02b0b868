"""Console sessions: found while live, gone once expired, closed, or their credential revoked
or changed."""

from __future__ import annotations

from datetime import timedelta

from the_eye.store.console import close_session, find_session, open_session
from the_eye.store.credentials import issue_token, revoke_token

HOUR = timedelta(hours=1)


def test_a_session_lives_until_closed(engine):
    with engine.begin() as conn:
        token = issue_token(conn, "analyst", "read")
        assert token.secret is not None
        secret = open_session(conn, token.secret, None, HOUR)
    assert secret is not None
    with engine.begin() as conn:
        session = find_session(conn, secret, None)
        assert session is not None
        assert (session.name, session.scope) == ("analyst", "read")
        assert find_session(conn, secret + "x", None) is None
        close_session(conn, secret)
        assert find_session(conn, secret, None) is None


def test_an_expired_session_is_not_found(engine):
    with engine.begin() as conn:
        secret = open_session(conn, "the-admin-token", "the-admin-token", -HOUR)
        assert secret is not None
        assert find_session(conn, secret, "the-admin-token") is None


def test_unknown_and_revoked_tokens_open_nothing_and_revoking_ends_sessions(engine):
    with engine.begin() as conn:
        token = issue_token(conn, "analyst", "admin")
        assert token.secret is not None
        assert open_session(conn, "eye_tk_unknown", None, HOUR) is None
        secret = open_session(conn, token.secret, None, HOUR)
        assert secret is not None
        revoke_token(conn, token.id)
        assert find_session(conn, secret, None) is None
        assert open_session(conn, token.secret, None, HOUR) is None


def test_changing_the_admin_token_ends_its_sessions(engine):
    with engine.begin() as conn:
        secret = open_session(conn, "old-admin-token", "old-admin-token", HOUR)
        assert secret is not None
        session = find_session(conn, secret, "old-admin-token")
        assert session is not None and session.scope == "admin"
        assert find_session(conn, secret, "new-admin-token") is None
        assert find_session(conn, secret, None) is None

"""Console sessions: who is signed in to the console, stored by the hash of their cookie.

A session is opened with an API token (or `THE_EYE_ADMIN_TOKEN`) and lives until it expires,
is closed by signing out, or loses its credential: a session opened with a token ends when the
token is revoked, one opened with the admin token when that setting changes. Each carries its
own CSRF token, which every change made in the console must present.
"""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store.credentials import hash_secret
from the_eye.store.tables import api_tokens, console_sessions
from the_eye.timestamps import utcnow

ADMIN_TOKEN_NAME = "admin token (THE_EYE_ADMIN_TOKEN)"


@dataclass(frozen=True, slots=True)
class ConsoleSession:
    """A signed-in person: the name of the credential they used, its scope, the session's CSRF
    token and when it expires."""

    name: str
    scope: str
    csrf_token: str
    expires_at: datetime


def open_session(
    conn: Connection, token: str, admin_token: str | None, lifetime: timedelta
) -> str | None:
    """A new session for whoever holds `token` (an active API token or the admin token): the
    secret its cookie carries, or None when the token is no credential."""
    token_id: int | None = None
    admin_hash: str | None = None
    # Bytes: `compare_digest` refuses str with non-ASCII characters, which a form can hold.
    if admin_token and hmac.compare_digest(token.encode(), admin_token.encode()):
        admin_hash, name, scope = hash_secret(admin_token), ADMIN_TOKEN_NAME, "admin"
    else:
        row = conn.execute(
            sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.scope).where(
                api_tokens.c.token_hash == hash_secret(token), api_tokens.c.active
            )
        ).first()
        if row is None:
            return None
        token_id, name, scope = row.id, row.name, row.scope
    now = utcnow()
    conn.execute(console_sessions.delete().where(console_sessions.c.expires_at <= now))
    secret = secrets.token_urlsafe(32)
    conn.execute(
        console_sessions.insert(),
        {
            "id_hash": hash_secret(secret),
            "token_id": token_id,
            "admin_token_hash": admin_hash,
            "name": name,
            "scope": scope,
            "csrf_token": secrets.token_urlsafe(32),
            "created_at": now,
            "expires_at": now + lifetime,
        },
    )
    return secret


def find_session(conn: Connection, secret: str, admin_token: str | None) -> ConsoleSession | None:
    """The live session whose cookie secret this is, or None (unknown, expired, or its
    credential revoked or changed)."""
    s = console_sessions.c
    row = conn.execute(
        sa.select(s.token_id, s.admin_token_hash, s.name, s.scope, s.csrf_token, s.expires_at)
        .add_columns(api_tokens.c.active)
        .select_from(
            console_sessions.outerjoin(api_tokens, api_tokens.c.id == console_sessions.c.token_id)
        )
        .where(s.id_hash == hash_secret(secret), s.expires_at > utcnow())
    ).first()
    if row is None:
        return None
    if row.token_id is not None:
        if not row.active:
            return None
    elif admin_token is None or not hmac.compare_digest(
        row.admin_token_hash or "", hash_secret(admin_token)
    ):
        return None
    return ConsoleSession(row.name, row.scope, row.csrf_token, row.expires_at)


def close_session(conn: Connection, secret: str) -> None:
    """End the session whose cookie secret this is (signing out)."""
    conn.execute(console_sessions.delete().where(console_sessions.c.id_hash == hash_secret(secret)))

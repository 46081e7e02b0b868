"""Applications' write keys and the data team's API tokens: made once, stored hashed."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from the_eye.store.tables import AnyRow, api_tokens, applications
from the_eye.timestamps import utcnow

WRITE_KEY_PREFIX = "eye_wk_"
TOKEN_PREFIX = "eye_tk_"
SCOPES = ("read", "admin")


def hash_secret(secret: str) -> str:
    """Keys are long and random, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_secret(prefix: str) -> str:
    return prefix + secrets.token_urlsafe(24)


@dataclass(slots=True)
class Application:
    id: int
    name: str
    active: bool
    created_at: datetime
    write_key: str | None = None
    strict: bool = False


class NameTaken(ValueError):
    """An application with that name exists already."""


def create_application(conn: Connection, name: str, strict: bool = False) -> Application:
    """A new application and its write key, which is shown only in the returned value.

    A strict application may send only event types that have a schema.
    """
    if conn.execute(sa.select(applications.c.id).where(applications.c.name == name)).first():
        raise NameTaken(f"An application named {name!r} exists already.")
    key = new_secret(WRITE_KEY_PREFIX)
    now = utcnow()
    app_id = conn.execute(
        applications.insert().returning(applications.c.id),
        {
            "name": name,
            "write_key_hash": hash_secret(key),
            "active": True,
            "strict": strict,
            "created_at": now,
        },
    ).scalar_one()
    return Application(app_id, name, True, now, key, strict)


_APPLICATION_FIELDS = (
    applications.c.id,
    applications.c.name,
    applications.c.active,
    applications.c.created_at,
    applications.c.strict,
)


def _listed(row: AnyRow) -> Application:
    return Application(row.id, row.name, row.active, row.created_at, strict=row.strict)


def list_applications(conn: Connection) -> list[Application]:
    """Every application, revoked ones included, without write keys, oldest first."""
    rows = conn.execute(sa.select(*_APPLICATION_FIELDS).order_by(applications.c.id)).all()
    return [_listed(row) for row in rows]


def _is_row_id(text: str) -> bool:
    # Ids are positive 64-bit integers; a longer string of digits can only be a name.
    return text.isascii() and text.isdigit() and len(text) <= 19 and 0 < int(text) < 2**63


def find_application(conn: Connection, name_or_id: str) -> Application | None:
    """The application with this name, or else the one whose id this is."""
    by_name = applications.c.name == name_or_id
    row = conn.execute(sa.select(*_APPLICATION_FIELDS).where(by_name)).first()
    if row is None and _is_row_id(name_or_id):
        by_id = applications.c.id == int(name_or_id)
        row = conn.execute(sa.select(*_APPLICATION_FIELDS).where(by_id)).first()
    return None if row is None else _listed(row)


def rotate_write_key(conn: Connection, app_id: int) -> Application | None:
    key = new_secret(WRITE_KEY_PREFIX)
    row = conn.execute(
        applications.update()
        .where(applications.c.id == app_id)
        .values(write_key_hash=hash_secret(key), active=True)
        .returning(applications.c.name, applications.c.created_at, applications.c.strict)
    ).first()
    if row is None:
        return None
    return Application(app_id, row.name, True, row.created_at, key, row.strict)


def set_strict(conn: Connection, app_id: int, strict: bool) -> Application | None:
    """Turn an application's strict mode on or off; processors follow within seconds."""
    row = conn.execute(
        applications.update()
        .where(applications.c.id == app_id)
        .values(strict=strict)
        .returning(applications.c.name, applications.c.active, applications.c.created_at)
    ).first()
    if row is None:
        return None
    return Application(app_id, row.name, row.active, row.created_at, strict=strict)


def revoke_application(conn: Connection, app_id: int) -> bool:
    result = conn.execute(
        applications.update().where(applications.c.id == app_id).values(active=False)
    )
    return result.rowcount > 0


def application_for_key(conn: Connection, key: str) -> int | None:
    """The id of the active application whose write key this is."""
    return conn.execute(
        sa.select(applications.c.id).where(
            applications.c.write_key_hash == hash_secret(key), applications.c.active
        )
    ).scalar()


@dataclass(slots=True)
class Token:
    """An API token's record; `secret` is set only when the token was just made."""

    id: int
    name: str
    scope: str
    active: bool
    created_at: datetime
    secret: str | None = None


def issue_token(conn: Connection, name: str, scope: str) -> Token:
    """A new API token, whose secret is shown only in the returned value."""
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {', '.join(SCOPES)}")
    secret = new_secret(TOKEN_PREFIX)
    now = utcnow()
    token_id = conn.execute(
        api_tokens.insert().returning(api_tokens.c.id),
        {
            "name": name,
            "token_hash": hash_secret(secret),
            "scope": scope,
            "active": True,
            "created_at": now,
        },
    ).scalar_one()
    return Token(token_id, name, scope, True, now, secret)


def create_token(conn: Connection, name: str, scope: str) -> str:
    """A new API token's secret (see `issue_token`)."""
    secret = issue_token(conn, name, scope).secret
    assert secret is not None  # a token just issued always carries it
    return secret


def list_tokens(conn: Connection) -> list[Token]:
    """Every API token, revoked ones included, without their secrets, oldest first."""
    rows = conn.execute(
        sa.select(
            api_tokens.c.id,
            api_tokens.c.name,
            api_tokens.c.scope,
            api_tokens.c.active,
            api_tokens.c.created_at,
        ).order_by(api_tokens.c.id)
    ).all()
    return [Token(r.id, r.name, r.scope, r.active, r.created_at) for r in rows]


def revoke_token(conn: Connection, token_id: int) -> bool:
    """Refuse the token from now on (API processes follow within their key cache time);
    False when no token has that id. Revoking a revoked token changes nothing."""
    result = conn.execute(
        api_tokens.update().where(api_tokens.c.id == token_id).values(active=False)
    )
    return result.rowcount > 0


def token_scope(conn: Connection, token: str) -> str | None:
    return conn.execute(
        sa.select(api_tokens.c.scope).where(
            api_tokens.c.token_hash == hash_secret(token), api_tokens.c.active
        )
    ).scalar()


def bootstrap(engine: Engine) -> tuple[Application, str] | None:
    """On an empty database, the `default` application and a first admin token."""
    with engine.begin() as conn:
        has_apps = conn.execute(sa.select(applications.c.id).limit(1)).first()
        has_tokens = conn.execute(sa.select(api_tokens.c.id).limit(1)).first()
        if has_apps or has_tokens:
            return None
        return create_application(conn, "default"), create_token(conn, "bootstrap", "admin")

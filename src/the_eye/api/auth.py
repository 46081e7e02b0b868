"""Who may call: applications by write key (ingest), the data team by API token (the rest)."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine

from the_eye.api.problems import ApiError
from the_eye.store.credentials import application_for_key, token_scope

bearer = HTTPBearer(auto_error=False, description="An API token (read or admin scope).")


def credential_from_header(authorization: str | None) -> str | None:
    """The secret in `Bearer <secret>`, or in HTTP Basic as the user name (Segment style)."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    scheme = scheme.lower()
    value = value.strip()
    if scheme == "bearer" and value:
        return value
    if scheme == "basic" and value:
        try:
            decoded = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            return None
        user = decoded.partition(":")[0]
        return user or None
    return None


class WriteKeys:
    """Write-key lookups for the ingest path, cached briefly so a request rarely touches the store.

    A revocation made through this process takes effect at once; one made elsewhere within
    `ttl` seconds.
    """

    def __init__(self, engine: Engine, ttl: float) -> None:
        self.engine, self.ttl = engine, ttl
        self._cache: dict[str, tuple[int, float]] = {}

    def cached(self, key: str) -> int | None:
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def lookup(self, key: str) -> int | None:
        """The application id for `key`, asking the store (blocking) when not cached."""
        app_id = self.cached(key)
        if app_id is not None:
            return app_id
        with self.engine.connect() as conn:
            app_id = application_for_key(conn, key)
        if app_id is not None:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[key] = (app_id, time.monotonic() + self.ttl)
        return app_id

    def forget(self) -> None:
        self._cache.clear()


def _scope(request: Request, credentials: HTTPAuthorizationCredentials | None) -> str:
    secret = credential_from_header(request.headers.get("authorization"))
    if secret is None:
        raise ApiError(
            401, "unauthorized", "An API token is required: `Authorization: Bearer <token>`."
        )
    settings = request.app.state.settings
    if settings.admin_token and hmac.compare_digest(secret, settings.admin_token):
        return "admin"
    engine: Engine = request.app.state.engine
    with engine.connect() as conn:
        scope = token_scope(conn, secret)
        if scope is None and application_for_key(conn, secret) is not None:
            raise ApiError(403, "forbidden", "A write key can only send events; use an API token.")
    if scope is None:
        raise ApiError(401, "unauthorized", "Unknown or revoked API token.")
    return scope


def require_read(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """Any API token (read or admin)."""
    return _scope(request, credentials)


def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """An admin API token."""
    scope = _scope(request, credentials)
    if scope != "admin":
        raise ApiError(403, "forbidden", "This needs an API token with the admin scope.")
    return scope


ReadAccess = Depends(require_read)
AdminAccess = Depends(require_admin)


def require_sender(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """An application's write key, or any API token: who may ask for a new session id."""
    secret = credential_from_header(request.headers.get("authorization"))
    if secret is not None and request.app.state.write_keys.lookup(secret) is not None:
        return "write"
    return _scope(request, credentials)


SenderAccess = Depends(require_sender)

"""Who may call: applications by write key (ingest), the data team by API token (the rest)."""

from __future__ import annotations

import base64
import binascii
import hmac
import time
from collections.abc import Callable
from typing import Annotated, Any, Generic, TypeVar

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Connection, Engine

from the_eye.api.limits import refuse_failing_address
from the_eye.api.problems import ApiError
from the_eye.api.state import state_of
from the_eye.store.credentials import application_for_key, token_scope

V = TypeVar("V")

bearer = HTTPBearer(
    auto_error=False, scheme_name="apiToken", description="An API token (read or admin scope)."
)


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


class CachedLookup(Generic[V]):
    """A credential lookup cached briefly, so a request rarely touches the store.

    Hits and misses are both cached for `ttl` seconds (an unknown key sent again and again
    costs one lookup per `ttl`). A change made through this process (`forget`) takes effect
    at once; one made elsewhere within `ttl` seconds. Each cache holds at most `max_keys`
    entries and starts afresh past that, so random keys cost memory once.
    """

    def __init__(
        self,
        engine: Engine,
        ttl: float,
        fetch: Callable[[Connection, str], V | None],
        max_keys: int = 10_000,
    ) -> None:
        self.engine, self.ttl, self.fetch, self.max_keys = engine, ttl, fetch, max_keys
        self._cache: dict[str, tuple[V, float]] = {}
        # Expired hits stay until the cache starts afresh: a key seen valid is no stranger.
        self._misses: dict[str, float] = {}

    def cached(self, key: str) -> V | None:
        """The value for `key` when a hit is cached and fresh."""
        hit = self._cache.get(key)
        if hit is not None and hit[1] > time.monotonic():
            return hit[0]
        return None

    def missed(self, key: str) -> bool:
        """Whether `key` was looked up and found nothing, within `ttl` seconds."""
        until = self._misses.get(key)
        return until is not None and until > time.monotonic()

    def known(self, key: str) -> bool:
        """Whether `key` was valid when last looked up, however long ago."""
        return key in self._cache

    def lookup(self, key: str) -> V | None:
        """The value for `key`, asking the store (blocking) when not cached."""
        value = self.cached(key)
        if value is not None or self.missed(key):
            return value
        with self.engine.connect() as conn:
            value = self.fetch(conn, key)
        expires = time.monotonic() + self.ttl
        if value is None:
            self._cache.pop(key, None)
            _bounded(self._misses, self.max_keys)[key] = expires
        else:
            _bounded(self._cache, self.max_keys)[key] = (value, expires)
        return value

    def forget(self) -> None:
        self._cache.clear()
        self._misses.clear()


def _bounded(cache: dict[str, Any], max_keys: int) -> dict[str, Any]:
    if len(cache) >= max_keys:
        cache.clear()
    return cache


def write_keys(engine: Engine, ttl: float) -> CachedLookup[int]:
    """Application ids by write key."""
    return CachedLookup(engine, ttl, application_for_key)


def api_tokens(engine: Engine, ttl: float) -> CachedLookup[str]:
    """Scopes by API token."""
    return CachedLookup(engine, ttl, token_scope)


def _scope(request: Request) -> str:
    secret = credential_from_header(request.headers.get("authorization"))
    if secret is None:
        raise ApiError(
            401, "unauthorized", "An API token is required: `Authorization: Bearer <token>`."
        )
    state = state_of(request)
    admin_token = state.settings.admin_token
    # Bytes: `compare_digest` refuses str with non-ASCII characters, which a header can hold.
    if admin_token and hmac.compare_digest(secret.encode(), admin_token.encode()):
        return "admin"
    client = request.client and request.client.host
    tokens = state.api_tokens
    if tokens.cached(secret) is None and not tokens.known(secret):
        refuse_failing_address(state.auth_failures, client)
    scope = tokens.lookup(secret)
    if scope is None:
        if state.write_keys.lookup(secret) is not None:
            raise ApiError(403, "forbidden", "A write key can only send events; use an API token.")
        state.auth_failures.take(client)
        raise ApiError(401, "unauthorized", "Unknown or revoked API token.")
    return scope


# The `credentials` parameters below put the bearer scheme in the OpenAPI document; the
# secret itself is read by `_scope`, which also takes it from HTTP Basic.


def require_read(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """Any API token (read or admin)."""
    return _scope(request)


def require_admin(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """An admin API token."""
    scope = _scope(request)
    if scope != "admin":
        raise ApiError(403, "forbidden", "This needs an API token with the admin scope.")
    return scope


ReadAccess = Security(require_read, scopes=["read"])
AdminAccess = Security(require_admin, scopes=["admin"])


def require_sender(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]
) -> str:
    """An application's write key, or any API token: who may ask for a new session id."""
    secret = credential_from_header(request.headers.get("authorization"))
    if secret is not None and state_of(request).write_keys.lookup(secret) is not None:
        return "write"
    return _scope(request)


SenderAccess = Security(require_sender, scopes=["write"])

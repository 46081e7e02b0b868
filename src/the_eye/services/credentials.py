"""Applications and API tokens as the API, the console and the command line manage them.

Each change is one transaction. A process that caches credentials or rules (an API
process: its `AppState`) passes itself as `caches`, and forgets at once what the change made
stale: a rotated or revoked write key, a revoked API token, a strict flag. Processes that do
not pass their caches (other API processes, processors) follow within
`THE_EYE_KEY_CACHE_SECONDS` for keys and tokens, and within the checker's refresh interval
for strict mode.
"""

from __future__ import annotations

from typing import Protocol

from sqlalchemy.engine import Engine

from the_eye.store import credentials as store
from the_eye.store.credentials import SCOPES, Application, NameTaken, Token

__all__ = [
    "SCOPES",
    "Application",
    "ApplicationNotFound",
    "CredentialCaches",
    "NameTaken",
    "Token",
    "TokenNotFound",
    "create_application",
    "find_application",
    "issue_token",
    "list_applications",
    "list_tokens",
    "revoke_application",
    "revoke_token",
    "rotate_write_key",
    "set_strict",
]


class _Forgets(Protocol):
    def forget(self) -> None: ...


class _Refreshes(Protocol):
    def refresh(self, force: bool = False) -> None: ...


class CredentialCaches(Protocol):
    """What a process caches that a change of credentials or strict mode makes stale."""

    @property
    def write_keys(self) -> _Forgets: ...

    @property
    def api_tokens(self) -> _Forgets: ...

    @property
    def checker(self) -> _Refreshes: ...


class ApplicationNotFound(LookupError):
    """No application has that id or name."""


class TokenNotFound(LookupError):
    """No API token has that id."""


def list_applications(engine: Engine) -> list[Application]:
    """Every application, revoked ones included, without write keys, oldest first."""
    with engine.connect() as conn:
        return store.list_applications(conn)


def find_application(engine: Engine, name_or_id: str) -> Application:
    """The application with this name, or else with this id (a name wins over an id)."""
    with engine.connect() as conn:
        found = store.find_application(conn, name_or_id)
    if found is None:
        raise ApplicationNotFound(f"No application is named {name_or_id!r} or has that id.")
    return found


def create_application(engine: Engine, name: str, strict: bool = False) -> Application:
    """A new application and its write key, shown only in the returned value; `NameTaken`
    when the name is in use."""
    with engine.begin() as conn:
        return store.create_application(conn, name, strict)


def rotate_write_key(
    engine: Engine, app_id: int, caches: CredentialCaches | None = None
) -> Application:
    """A new write key for the application (shown only in the returned value), which is
    active again if it was revoked; the old key is refused from now on."""
    with engine.begin() as conn:
        app = store.rotate_write_key(conn, app_id)
    if app is None:
        raise ApplicationNotFound("No application has that id.")
    if caches is not None:
        caches.write_keys.forget()
    return app


def revoke_application(engine: Engine, app_id: int, caches: CredentialCaches | None = None) -> None:
    """Refuse the application's write key from now on (until a rotation gives it a new one)."""
    with engine.begin() as conn:
        if not store.revoke_application(conn, app_id):
            raise ApplicationNotFound("No application has that id.")
    if caches is not None:
        caches.write_keys.forget()


def set_strict(
    engine: Engine, app_id: int, strict: bool, caches: CredentialCaches | None = None
) -> Application:
    """Turn the application's strict mode on or off."""
    with engine.begin() as conn:
        app = store.set_strict(conn, app_id, strict)
    if app is None:
        raise ApplicationNotFound("No application has that id.")
    if caches is not None:
        caches.checker.refresh(force=True)
    return app


def list_tokens(engine: Engine) -> list[Token]:
    """Every API token, revoked ones included, without their secrets, oldest first."""
    with engine.connect() as conn:
        return store.list_tokens(conn)


def issue_token(engine: Engine, name: str, scope: str) -> Token:
    """A new API token, whose secret is shown only in the returned value."""
    with engine.begin() as conn:
        return store.issue_token(conn, name, scope)


def revoke_token(engine: Engine, token_id: int, caches: CredentialCaches | None = None) -> None:
    """Refuse the API token from now on; revoking a revoked token changes nothing."""
    with engine.begin() as conn:
        if not store.revoke_token(conn, token_id):
            raise TokenNotFound(f"No API token has the id {token_id}.")
    if caches is not None:
        caches.api_tokens.forget()

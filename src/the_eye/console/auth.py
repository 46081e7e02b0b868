"""Who is signed in to the console, and what they may do.

Signing in takes an API token (read or admin scope) once, in a form; the console then holds
a session in a cookie (`HttpOnly`, `SameSite=Strict`, `Secure` over HTTPS) that expires after
`THE_EYE_CONSOLE_SESSION_HOURS`. Pages take `Viewer` (anyone signed in); changes take `Editor`
(admin scope). Both refuse an unsafe request (POST) without the session's CSRF token, sent as
the form field `csrf_token` or the header `X-CSRF-Token`: a page of another site cannot make a
signed-in browser change anything.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

from fastapi import Depends, Request
from starlette.concurrency import run_in_threadpool

from the_eye.api.problems import ApiError
from the_eye.api.state import state_of
from the_eye.store.console import ConsoleSession, find_session

COOKIE = "eye_console"
COOKIE_PATH = "/console/"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
_SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class ConsoleUser:
    """The person behind a console request: the credential's name and scope, and the CSRF
    token their forms carry."""

    name: str
    scope: str
    csrf_token: str

    @property
    def is_admin(self) -> bool:
        return self.scope == "admin"


class SignInRequired(Exception):
    """Raised for a console request without a live session: answered by a redirect to the
    sign-in page, which comes back to `next_path` afterwards."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def session_of(request: Request) -> ConsoleSession | None:
    """The live console session of this request's cookie, if any (reads the store)."""
    secret = request.cookies.get(COOKIE)
    if not secret:
        return None
    state = state_of(request)
    with state.engine.connect() as conn:
        return find_session(conn, secret, state.settings.admin_token)


def same_secret(given: str | None, expected: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


async def require_viewer(request: Request) -> ConsoleUser:
    """Anyone signed in; for an unsafe method, only with the session's CSRF token."""
    session = await run_in_threadpool(session_of, request)
    if session is None:
        query = request.url.query
        raise SignInRequired(request.url.path + (f"?{query}" if query else ""))
    if request.method not in _SAFE_METHODS:
        given = request.headers.get(CSRF_HEADER)
        if given is None:
            field = (await request.form()).get(CSRF_FIELD)
            given = field if isinstance(field, str) else None
        if not same_secret(given, session.csrf_token):
            raise ApiError(
                403,
                "csrf_failed",
                "This change came without the page's CSRF token; reload the page and try again.",
            )
    return ConsoleUser(session.name, session.scope, session.csrf_token)


async def require_editor(user: ConsoleUser = Depends(require_viewer)) -> ConsoleUser:
    """An admin, with the CSRF token for a change."""
    if not user.is_admin:
        raise ApiError(403, "forbidden", "This needs an API token with the admin scope.")
    return user


Viewer = Depends(require_viewer)
Editor = Depends(require_editor)

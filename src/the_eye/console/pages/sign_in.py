"""Signing in to the console with an API token, and signing out.

The sign-in form carries its own CSRF token in a short-lived cookie (there is no session yet
to hold it), so another site cannot sign a browser in under a token of its choosing. Failed
sign-ins count against the address like failed API authentications.
"""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from the_eye.api.limits import refuse_failing_address
from the_eye.api.state import state_of
from the_eye.console.auth import COOKIE, COOKIE_PATH, ConsoleUser, Viewer, same_secret, session_of
from the_eye.console.templating import render
from the_eye.store.console import close_session, open_session
from the_eye.store.credentials import application_for_key

router = APIRouter(prefix="/console", include_in_schema=False)

SIGN_IN_COOKIE = "eye_console_sign_in"
HOME = "/console/"


def safe_next(next_path: str | None) -> str:
    """Where to go after signing in: a console path only, never another site."""
    if next_path and next_path.startswith(HOME) and not next_path.startswith("//"):
        return next_path
    return HOME


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _form(request: Request, next_path: str, message: str | None, status: int) -> HTMLResponse:
    sign_in_csrf = secrets.token_urlsafe(32)
    page = render(
        request,
        None,
        "sign_in.html",
        {"next": safe_next(next_path), "message": message, "sign_in_csrf": sign_in_csrf},
        status_code=status,
    )
    page.set_cookie(
        SIGN_IN_COOKIE,
        sign_in_csrf,
        max_age=3600,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    return page


@router.get("/sign-in/")
async def sign_in_page(request: Request, next: str = HOME) -> Response:
    if await run_in_threadpool(session_of, request) is not None:
        return RedirectResponse(safe_next(next), status_code=303)
    return _form(request, next, None, 200)


@router.post("/sign-in/")
def sign_in(
    request: Request,
    token: str = Form("", max_length=200),
    csrf_token: str = Form(""),
    next: str = Form(HOME),
) -> Response:
    state = state_of(request)
    if not same_secret(request.cookies.get(SIGN_IN_COOKIE), csrf_token):
        return _form(request, next, "The form expired; sign in again.", 403)
    client = request.client and request.client.host
    refuse_failing_address(state.auth_failures, client)
    token = token.strip()
    lifetime = timedelta(hours=state.settings.console_session_hours)
    secret = None
    if token:
        with state.engine.begin() as conn:
            secret = open_session(conn, token, state.settings.admin_token, lifetime)
    if secret is None:
        state.auth_failures.take(client)
        message = "Unknown or revoked API token."
        if token:
            with state.engine.connect() as conn:
                if application_for_key(conn, token) is not None:
                    message = "That is an application's write key; sign in with an API token."
        return _form(request, next, message, 401)
    answer = RedirectResponse(safe_next(next), status_code=303)
    answer.set_cookie(
        COOKIE,
        secret,
        max_age=int(lifetime.total_seconds()),
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=_secure(request),
    )
    answer.delete_cookie(SIGN_IN_COOKIE, path=COOKIE_PATH)
    return answer


@router.post("/sign-out/")
def sign_out(request: Request, user: ConsoleUser = Viewer) -> Response:
    secret = request.cookies.get(COOKIE)
    if secret:
        with state_of(request).engine.begin() as conn:
            close_session(conn, secret)
    answer = RedirectResponse(f"{HOME}sign-in/", status_code=303)
    answer.delete_cookie(COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")
    return answer

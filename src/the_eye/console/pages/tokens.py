"""`/console/tokens/`: the data team's API tokens.

Anyone signed in sees the list (names, scopes, states; never a secret). Admins create a token,
shown once in the answer to the form that made it, and revoke one, through the functions
`/tokens/` calls: the token is refused at once by this process, and the console sessions
opened with it end. `THE_EYE_ADMIN_TOKEN` is no stored token and is not listed.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from the_eye.api.pagination import RowId
from the_eye.api.problems import not_found
from the_eye.api.routes.tokens import NewToken
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Editor, Viewer
from the_eye.console.forms import FormInvalid, check_form
from the_eye.console.templating import render
from the_eye.services import credentials

router = APIRouter(prefix="/console/tokens", include_in_schema=False)


def _page(
    request: Request,
    user: ConsoleUser,
    *,
    made: credentials.Token | None = None,
    problem: str | None = None,
    form: dict[str, str] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        user,
        "tokens.html",
        {
            "nav": "tokens",
            "tokens": credentials.list_tokens(state_of(request).engine),
            "scopes": credentials.SCOPES,
            "made": made,
            "problem": problem,
            "form": form or {"name": "", "scope": "read"},
        },
        status_code=status_code,
    )


@router.get("/")
def list_tokens(request: Request, user: ConsoleUser = Viewer) -> HTMLResponse:
    return _page(request, user)


@router.post("/")
def create_token(
    request: Request,
    name: str = Form(""),
    scope: str = Form("read"),
    user: ConsoleUser = Editor,
) -> HTMLResponse:
    try:
        body = check_form(NewToken, name=name, scope=scope)
    except FormInvalid as exc:
        form = {"name": name, "scope": scope}
        return _page(request, user, problem=str(exc), form=form, status_code=400)
    made = credentials.issue_token(state_of(request).engine, body.name, body.scope)
    return _page(request, user, made=made, status_code=201)


@router.post("/{token_id}/revoke/")
def revoke_token(request: Request, token_id: RowId, user: ConsoleUser = Editor) -> RedirectResponse:
    state = state_of(request)
    try:
        credentials.revoke_token(state.engine, token_id, state)
    except credentials.TokenNotFound:
        raise not_found("API token") from None
    return RedirectResponse(f"/console/tokens/#token-{token_id}", status_code=303)

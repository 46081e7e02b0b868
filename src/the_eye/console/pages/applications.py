"""`/console/applications/`: the applications that send events, and their write keys.

Anyone signed in sees the list. Admins create an application, rotate its write key, revoke it
and switch its strict mode through the functions `/applications/` calls, with this process's
caches, so a change applies here at once. A write key is shown once, in the answer to the form
that made it, never in a URL; the other changes answer with a redirect to the list, so that
reloading the page repeats nothing.
"""

from __future__ import annotations

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse

from the_eye.api.pagination import RowId
from the_eye.api.problems import not_found
from the_eye.api.routes.applications import NewApplication
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Editor, Viewer
from the_eye.console.forms import FormInvalid, check_form
from the_eye.console.templating import render
from the_eye.services import credentials

router = APIRouter(prefix="/console/applications", include_in_schema=False)

LIST = "/console/applications/"


def _page(
    request: Request,
    user: ConsoleUser,
    *,
    made: credentials.Application | None = None,
    notice: str | None = None,
    problem: str | None = None,
    form: dict[str, object] | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    return render(
        request,
        user,
        "applications.html",
        {
            "nav": "applications",
            "apps": credentials.list_applications(state_of(request).engine),
            "made": made,
            "notice": notice,
            "problem": problem,
            "form": form or {"name": "", "strict": False},
        },
        status_code=status_code,
    )


def _back_to(app_id: int) -> RedirectResponse:
    return RedirectResponse(f"{LIST}#app-{app_id}", status_code=303)


@router.get("/")
def list_applications(request: Request, user: ConsoleUser = Viewer) -> HTMLResponse:
    return _page(request, user)


@router.post("/")
def create_application(
    request: Request,
    name: str = Form(""),
    strict: bool = Form(False),
    user: ConsoleUser = Editor,
) -> HTMLResponse:
    form: dict[str, object] = {"name": name, "strict": strict}
    try:
        body = check_form(NewApplication, name=name, strict=strict)
        made = credentials.create_application(state_of(request).engine, body.name, body.strict)
    except FormInvalid as exc:
        return _page(request, user, problem=str(exc), form=form, status_code=400)
    except credentials.NameTaken as exc:
        return _page(request, user, problem=str(exc), form=form, status_code=409)
    notice = f"Application {made.name!r} created."
    return _page(request, user, made=made, notice=notice, status_code=201)


@router.post("/{app_id}/rotate-key/")
def rotate_key(request: Request, app_id: RowId, user: ConsoleUser = Editor) -> HTMLResponse:
    state = state_of(request)
    try:
        rotated = credentials.rotate_write_key(state.engine, app_id, state)
    except credentials.ApplicationNotFound:
        raise not_found("application") from None
    notice = f"Application {rotated.name!r} has a new write key; the old one is refused."
    return _page(request, user, made=rotated, notice=notice)


@router.post("/{app_id}/revoke/")
def revoke(request: Request, app_id: RowId, user: ConsoleUser = Editor) -> RedirectResponse:
    state = state_of(request)
    try:
        credentials.revoke_application(state.engine, app_id, state)
    except credentials.ApplicationNotFound:
        raise not_found("application") from None
    return _back_to(app_id)


@router.post("/{app_id}/strict/")
def switch_strict(
    request: Request, app_id: RowId, strict: bool = Form(), user: ConsoleUser = Editor
) -> RedirectResponse:
    state = state_of(request)
    try:
        credentials.set_strict(state.engine, app_id, strict, state)
    except credentials.ApplicationNotFound:
        raise not_found("application") from None
    return _back_to(app_id)

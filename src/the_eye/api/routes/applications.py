"""`/applications/`: who may send events, and their write keys (admin).

The changes go through `the_eye.services.credentials`, with this process's caches, so a
rotated or revoked key is refused at once here and a strict flag applies at once here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field, StrictBool

from the_eye.api import bodies
from the_eye.api.auth import AdminAccess
from the_eye.api.openapi import answers
from the_eye.api.pagination import RowId, iso
from the_eye.api.problems import ApiError, not_found
from the_eye.api.responses import JSONBody
from the_eye.api.state import state_of
from the_eye.services import credentials

router = APIRouter(tags=["applications"], dependencies=[AdminAccess])


class NewApplication(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    strict: StrictBool = Field(False, description="Only event types that have a schema.")


class ApplicationChanges(BaseModel):
    strict: StrictBool = Field(
        description="In strict mode, events of a type with no schema become "
        "`unknown_event_type` errors."
    )


def application_json(app: credentials.Application) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": app.id,
        "name": app.name,
        "active": app.active,
        "strict": app.strict,
        "created_at": iso(app.created_at),
    }
    if app.write_key is not None:
        body["write_key"] = app.write_key
    return body


@router.get("/applications/", summary="List applications", response_model=bodies.ApplicationList)
def list_applications(request: Request) -> JSONBody:
    apps = credentials.list_applications(state_of(request).engine)
    return JSONBody({"results": [application_json(a) for a in apps], "next": None})


@router.post(
    "/applications/",
    status_code=201,
    summary="Create an application",
    response_model=bodies.Application,
    responses=answers({409: "`conflict`: the name is taken."}),
)
def create_application(request: Request, body: NewApplication) -> JSONBody:
    """The answer holds the write key; it is never shown again."""
    try:
        app = credentials.create_application(state_of(request).engine, body.name, body.strict)
    except credentials.NameTaken as exc:
        raise ApiError(409, "conflict", str(exc)) from None
    return JSONBody(application_json(app), status_code=201)


@router.patch(
    "/applications/{app_id}/",
    summary="Change an application's strict mode",
    response_model=bodies.Application,
)
def change_application(request: Request, app_id: RowId, body: ApplicationChanges) -> JSONBody:
    state = state_of(request)
    try:
        app = credentials.set_strict(state.engine, app_id, body.strict, state)
    except credentials.ApplicationNotFound:
        raise not_found("application") from None
    return JSONBody(application_json(app))


@router.post(
    "/applications/{app_id}/rotate-key/",
    summary="Replace an application's write key",
    response_model=bodies.Application,
)
def rotate_key(request: Request, app_id: RowId) -> JSONBody:
    state = state_of(request)
    try:
        app = credentials.rotate_write_key(state.engine, app_id, state)
    except credentials.ApplicationNotFound:
        raise not_found("application") from None
    return JSONBody(application_json(app))


@router.delete("/applications/{app_id}/", status_code=204, summary="Revoke an application's key")
def revoke(request: Request, app_id: RowId) -> Response:
    state = state_of(request)
    try:
        credentials.revoke_application(state.engine, app_id, state)
    except credentials.ApplicationNotFound:
        raise not_found("application") from None
    return Response(status_code=204)

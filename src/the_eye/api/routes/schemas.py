"""`/schemas/`: JSON Schemas for the `data` of each event type, with versions."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from the_eye.api.auth import AdminAccess, ReadAccess
from the_eye.api.pagination import iso
from the_eye.api.problems import ApiError
from the_eye.api.responses import JSONBody
from the_eye.api.state import state_of
from the_eye.processor.schemas import SchemaInvalid
from the_eye.services.schemas import register_schema
from the_eye.store import schemas as store
from the_eye.store.tables import AnyRow

router = APIRouter(tags=["schemas"])


class NewSchema(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    category: str = Field(min_length=1, max_length=100, examples=["form interaction"])
    name: str = Field(min_length=1, max_length=100, examples=["submit"])
    json_schema: dict[str, Any] | StrictBool = Field(
        alias="schema",
        description="A JSON Schema (draft 2020-12) for the events' `data`.",
        examples=[{"type": "object", "required": ["form"]}],
    )


def schema_json(row: AnyRow) -> dict[str, Any]:
    return {
        "category": row.category,
        "name": row.name,
        "version": row.version,
        "schema": row.schema,
        "source": row.source,
        "created_at": iso(row.created_at),
    }


@router.post(
    "/schemas/",
    status_code=201,
    summary="Register a schema version for an event type",
    dependencies=[AdminAccess],
)
def create_schema(request: Request, body: NewSchema) -> JSONBody:
    """The new version supersedes the type's previous ones at once for new events (processors
    notice it within a few seconds)."""
    state = state_of(request)
    try:
        with state.engine.begin() as conn:
            row = register_schema(conn, body.category, body.name, body.json_schema)
    except SchemaInvalid as exc:
        raise ApiError(400, "invalid_schema", exc.message, exc.details) from None
    state.checker.refresh(force=True)
    return JSONBody(schema_json(row), status_code=201)


@router.get(
    "/schemas/", summary="The version in force of every event type", dependencies=[ReadAccess]
)
def list_schemas(request: Request) -> JSONBody:
    with state_of(request).engine.connect() as conn:
        rows = store.newest_versions(conn)
    return JSONBody({"results": [schema_json(r) for r in rows], "next": None})


@router.get(
    "/schemas/{category}/{name}/",
    summary="Every version of one event type's schema, newest first",
    dependencies=[ReadAccess],
)
def schema_versions(request: Request, category: str, name: str) -> JSONBody:
    with state_of(request).engine.connect() as conn:
        rows = store.versions_of(conn, category, name)
    if not rows:
        raise ApiError(404, "not_found", f"No schema is registered for ({category!r}, {name!r}).")
    return JSONBody({"results": [schema_json(r) for r in rows], "next": None})

"""`/schemas/`: JSON Schemas for the `data` of each event type, with versions."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from the_eye.api import bodies
from the_eye.api.auth import AdminAccess, ReadAccess
from the_eye.api.openapi import answers
from the_eye.api.pagination import iso
from the_eye.api.problems import ApiError
from the_eye.api.responses import JSONBody
from the_eye.api.state import AppState, state_of
from the_eye.processor.schemas import SchemaInvalid
from the_eye.services.dry_run import DEFAULT_LIMIT, MAX_LIMIT, dry_run
from the_eye.services.schemas import register_schema
from the_eye.store import schemas as store
from the_eye.store.engine import write_transaction
from the_eye.store.tables import AnyRow

router = APIRouter(tags=["schemas"])

INVALID_SCHEMA = answers({400: "`invalid_schema`: not a valid JSON Schema, with the reason."})


class NewSchema(BaseModel):
    model_config = ConfigDict(populate_by_name=True)

    category: str = Field(min_length=1, max_length=100, examples=["form interaction"])
    name: str = Field(min_length=1, max_length=100, examples=["submit"])
    json_schema: dict[str, Any] | StrictBool = Field(
        alias="schema",
        description="A JSON Schema (draft 2020-12) for the events' `data`.",
        examples=[{"type": "object", "required": ["form"]}],
    )


class NewSchemaDryRun(NewSchema):
    limit: int = Field(
        DEFAULT_LIMIT,
        ge=1,
        le=MAX_LIMIT,
        description="How many of the type's newest events, and of its newest errors, to check.",
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


def put_in_force(state: AppState, category: str, name: str, schema: Any) -> AnyRow:
    """Register `schema` as the next version of (category, name) and apply it in this
    process at once (others notice it at their next refresh); return the new row. Raises
    SchemaInvalid, and then stores nothing. What `POST /schemas/` and the console do."""
    # It reads the newest version before it writes the next: on SQLite a plain BEGIN would
    # fail at once, not wait, when a processor commits in between.
    with write_transaction(state.engine) as conn:
        row = register_schema(conn, category, name, schema)
    state.checker.refresh(force=True)
    return row


@router.post(
    "/schemas/",
    status_code=201,
    summary="Register a schema version for an event type",
    dependencies=[AdminAccess],
    response_model=bodies.SchemaVersion,
    responses=INVALID_SCHEMA,
)
def create_schema(request: Request, body: NewSchema) -> JSONBody:
    """The new version supersedes the type's previous ones at once for new events (processors
    notice it within a few seconds)."""
    try:
        row = put_in_force(state_of(request), body.category, body.name, body.json_schema)
    except SchemaInvalid as exc:
        raise ApiError(400, "invalid_schema", exc.message, exc.details) from None
    return JSONBody(schema_json(row), status_code=201)


@router.get(
    "/schemas/",
    summary="The version in force of every event type",
    dependencies=[ReadAccess],
    response_model=bodies.SchemaVersionList,
)
def list_schemas(request: Request) -> JSONBody:
    with state_of(request).engine.connect() as conn:
        rows = store.newest_versions(conn)
    return JSONBody({"results": [schema_json(r) for r in rows], "next": None})


@router.get(
    "/schemas/{category}/{name}/",
    summary="Every version of one event type's schema, newest first",
    dependencies=[ReadAccess],
    response_model=bodies.SchemaVersionList,
)
def schema_versions(request: Request, category: str, name: str) -> JSONBody:
    with state_of(request).engine.connect() as conn:
        rows = store.versions_of(conn, category, name)
    if not rows:
        raise ApiError(404, "not_found", f"No schema is registered for ({category!r}, {name!r}).")
    return JSONBody({"results": [schema_json(r) for r in rows], "next": None})


@router.post(
    "/schemas/dry-run/",
    summary="Check a schema against an event type's newest events and errors, storing nothing",
    dependencies=[ReadAccess],
    response_model=bodies.SchemaDryRun,
    responses=INVALID_SCHEMA,
)
def dry_run_schema(request: Request, body: NewSchemaDryRun) -> JSONBody:
    """Runs the checks of processing with `schema` as the type's version in force over its
    newest `limit` stored events and its newest `limit` open errors, and answers how many
    would pass and fail, with up to 10 failures of each and their paths. It changes nothing,
    so a read token may run it."""
    state = state_of(request)
    try:
        report = dry_run(
            state.engine, state.settings, body.category, body.name, body.json_schema, body.limit
        )
    except SchemaInvalid as exc:
        raise ApiError(400, "invalid_schema", exc.message, exc.details) from None
    return JSONBody(asdict(report))  # its fields are the answer's, by design

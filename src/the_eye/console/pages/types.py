"""Event types and their schemas in the console: every type seen, with its event count and the
version in force; one type's versions, a diff between two of them, and a new version written
in the page, tried in a dry run before it is put in force.

Counts come from the rollups (`read_stats` over all time: a few rows per day and type, never a
count over the events table). A type is named by query parameters (`?category=&name=`), since
a category or a name may hold slashes, spaces or anything else a path cannot carry safely.
The dry run is `POST /schemas/dry-run/`'s own function and putting a version in force
`POST /schemas/`'s, so the console and the API cannot judge a schema differently. A dry run
changes nothing, so read-scope users may run one; putting a version in force needs an admin.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

import msgspec
from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import BaseModel, Field

from the_eye.api.routes.schemas import put_in_force
from the_eye.api.state import state_of
from the_eye.console.auth import ConsoleUser, Editor, Viewer
from the_eye.console.templating import is_htmx, pretty_json, render
from the_eye.processor.checks import MAX_NAME_LENGTH
from the_eye.processor.schemas import SchemaInvalid
from the_eye.services.dry_run import DEFAULT_LIMIT, MAX_LIMIT, DryRunReport, dry_run
from the_eye.store import schemas as schema_store
from the_eye.store.stats import read_stats
from the_eye.store.tables import AnyRow

router = APIRouter(prefix="/console/types", include_in_schema=False)

TYPE_PAGE = "/console/types/schema/"
NEW_TYPE_DRAFT = '{\n  "type": "object"\n}'

# A type's names, as the API takes them.
TypeName = Annotated[str, Query(min_length=1, max_length=MAX_NAME_LENGTH)]


def type_url(category: str, name: str, **more: Any) -> str:
    """The page of one event type (names in the query, encoded)."""
    return TYPE_PAGE + "?" + urlencode({"category": category, "name": name, **more})


@dataclass(slots=True, frozen=True)
class TypeRow:
    category: str
    name: str
    events: int
    version: int | None  # in force, or None: no schema
    url: str


@router.get("/")
def types(request: Request, user: ConsoleUser = Viewer) -> HTMLResponse:
    with state_of(request).engine.connect() as conn:
        counts, _ = read_stats(
            conn, timestamp_gte=None, timestamp_lte=None, application_id=None, bucket=None
        ).totals()
        in_force = {(r.category, r.name): r.version for r in schema_store.newest_versions(conn)}
    rows = [
        TypeRow(
            category,
            name,
            counts.get((category, name), 0),
            in_force.get((category, name)),
            type_url(category, name),
        )
        for category, name in sorted(set(counts) | set(in_force))
    ]
    return render(request, user, "types.html", {"nav": "types", "types": rows})


@dataclass(slots=True, frozen=True)
class DiffLine:
    kind: str  # `head` (file names), `hunk`, `add`, `del` or `same`
    text: str


def schema_diff(older: AnyRow, newer: AnyRow) -> list[DiffLine]:
    """A unified line diff of two versions' JSON, indented with sorted keys so that only real
    changes show."""
    before, after = (
        json.dumps(v.schema, indent=2, sort_keys=True).splitlines() for v in (older, newer)
    )
    lines = difflib.unified_diff(
        before, after, f"version {older.version}", f"version {newer.version}", lineterm=""
    )
    kinds = {"@": "hunk", "+": "add", "-": "del"}
    # The first two lines name the versions (`---`, `+++`), whatever the lines after hold.
    return [
        DiffLine("head" if number < 2 else kinds.get(line[:1], "same"), line)
        for number, line in enumerate(lines)
    ]


def _type_page(
    request: Request,
    user: ConsoleUser,
    category: str,
    name: str,
    *,
    compare: tuple[int | None, int | None] = (None, None),
    draft: str | None = None,
    limit: str = str(DEFAULT_LIMIT),
    outcome: dict[str, Any] | None = None,
    created: int | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    with state_of(request).engine.connect() as conn:
        versions = schema_store.versions_of(conn, category, name)  # newest first
    by_number = {v.version: v for v in versions}
    older_number, newer_number = compare
    if newer_number is None and versions:
        newer_number = versions[0].version
    if older_number is None and len(versions) > 1:
        older_number = versions[1].version
    diff, diff_problem = None, None
    if older_number is not None and newer_number is not None:
        missing = [n for n in (older_number, newer_number) if n not in by_number]
        if missing:
            diff_problem = f"This type has no version {missing[0]}."
        else:
            diff = schema_diff(by_number[older_number], by_number[newer_number])
    if draft is None:
        draft = pretty_json(versions[0].schema) if versions else NEW_TYPE_DRAFT
    return render(
        request,
        user,
        "type.html",
        {
            "nav": "types",
            "category": category,
            "name": name,
            "versions": versions,
            "older": older_number,
            "newer": newer_number,
            "diff": diff,
            "diff_problem": diff_problem,
            "draft": draft,
            "limit": limit,
            "max_limit": MAX_LIMIT,
            "created": created if created in by_number else None,
            **(outcome or NO_OUTCOME),
        },
        status_code=status_code,
    )


@router.get("/schema/")
def type_page(
    request: Request,
    category: TypeName,
    name: TypeName,
    older: int | None = Query(None, alias="from"),
    newer: int | None = Query(None, alias="to"),
    created: int | None = None,
    user: ConsoleUser = Viewer,
) -> HTMLResponse:
    return _type_page(request, user, category, name, compare=(older, newer), created=created)


def _read_schema(draft: str) -> Any:
    """The schema written in the form, or ValueError saying why it is not JSON."""
    try:
        return msgspec.json.decode(draft)
    except msgspec.DecodeError as exc:
        raise ValueError(f"The schema is not JSON: {exc}.") from None
    except RecursionError:
        raise ValueError(
            "The schema is not JSON The Eye can read: it is nested too deeply."
        ) from None


def _read_limit(limit: str) -> int:
    """The dry run's N, or ValueError."""
    number = int(limit) if limit.strip().isdigit() else 0
    if not 1 <= number <= MAX_LIMIT:
        raise ValueError(f"N must be a whole number from 1 to {MAX_LIMIT:,}.")
    return number


NO_OUTCOME: dict[str, Any] = {"report": None, "problem": None, "failures": []}


def _outcome(report: DryRunReport) -> dict[str, Any]:
    """The dry run's context: the report, and its failures as (kind, page, failure)."""
    failures = [("event", f"/console/events/{f.id}/", f) for f in report.events.examples]
    failures += [("error", f"/console/errors/{f.id}/", f) for f in report.errors.examples]
    return {"report": report, "problem": None, "failures": failures}


def _problem(exc: SchemaInvalid | ValueError) -> dict[str, Any]:
    message = exc.message if isinstance(exc, SchemaInvalid) else str(exc)
    return {**NO_OUTCOME, "problem": message}


class Draft(BaseModel):
    """The form of a type's page: the type, the schema as written and the dry run's N, both
    kept as written so that a page showing a problem gives them back unchanged."""

    category: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)
    draft: str = ""
    limit: str = str(DEFAULT_LIMIT)


DraftForm = Annotated[Draft, Form()]


def _written_page(
    request: Request, user: ConsoleUser, form: Draft, outcome: dict[str, Any], status: int = 200
) -> HTMLResponse:
    """The type's page with the form as written and the outcome of what it asked for."""
    return _type_page(
        request,
        user,
        form.category,
        form.name,
        draft=form.draft,
        limit=form.limit,
        outcome=outcome,
        status_code=status,
    )


@router.post("/schema/dry-run/")
def dry_run_page(request: Request, form: DraftForm, user: ConsoleUser = Viewer) -> HTMLResponse:
    """The dry run's outcome: a fragment for htmx, else the type's page holding it."""
    state = state_of(request)
    outcome: dict[str, Any]
    try:
        limit, schema = _read_limit(form.limit), _read_schema(form.draft)
        outcome = _outcome(
            dry_run(state.engine, state.settings, form.category, form.name, schema, limit)
        )
    except (SchemaInvalid, ValueError) as exc:
        outcome = _problem(exc)
    if is_htmx(request):
        return render(request, user, "type_dry_run.html", outcome)
    return _written_page(request, user, form, outcome)


@router.post("/schema/put-in-force/")
def put_in_force_page(request: Request, form: DraftForm, user: ConsoleUser = Editor) -> Response:
    """Register the written schema as the type's next version, then show the type's page."""
    try:
        row = put_in_force(state_of(request), form.category, form.name, _read_schema(form.draft))
    except (SchemaInvalid, ValueError) as exc:
        return _written_page(request, user, form, _problem(exc), status=400)
    return RedirectResponse(
        type_url(form.category, form.name, created=row.version), status_code=303
    )

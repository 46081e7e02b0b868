"""The schema registry: JSON Schemas (draft 2020-12) for the `data` of each event type.

Versions live in the store; each process keeps the version in force of every type compiled
once, in a `SchemaRegistry`, and notices new versions (and applications' strict flags) with
one cheap query every few seconds. The registry's `check` is the `SchemaCheck` that
`check_event` runs last; it does bounded work (see `the_eye.processor.validator`) and turns a
check that cannot finish within its budget into that event's own `check_budget_exceeded`.
`CandidateSchema` applies a schema not yet registered the same way, for a dry run.
A schema is refused (`SchemaInvalid`) when it refers outside itself, holds a pattern RE2
cannot run, or a number that JSON cannot carry exactly (not finite, or an integer beyond
64 bits). `digest_of` names a schema's content whatever its key order, so that loading an
unchanged schema file makes no new version.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
import re2  # type: ignore[import-untyped]
from jsonschema import Draft202012Validator
from jsonschema.exceptions import SchemaError, ValidationError, best_match
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable
from sqlalchemy.engine import Engine

from the_eye.processor.checks import MAX_NAME_LENGTH, Violation
from the_eye.processor.validator import (
    FORMAT_CHECKER,
    MAX_CHECKED_DEPTH,
    CheckBudgetExceeded,
    deadline,
    first_unresolvable,
    new_validator,
    regex_problem,
    too_deep,
)
from the_eye.store import schemas as store
from the_eye.store.tables import AnyRow

log = logging.getLogger(__name__)

DRAFT = "https://json-schema.org/draft/2020-12/schema"

_encode = msgspec.json.encode


class SchemaInvalid(ValueError):
    """A schema The Eye cannot use: not JSON Schema draft 2020-12, or a bad event type."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message, self.details = message, details


def json_path(root: str, parts: Iterable[Any]) -> str:
    """A JSONPath like `$.data.form['first name'][0]` for a sequence of keys and indexes."""
    path = root
    for part in parts:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and part.isidentifier():
            path += f".{part}"
        else:
            path += "[" + _encode(str(part)).decode().replace('"', "'") + "]"
    return path


def _pointer(parts: Sequence[Any]) -> str:
    escaped = (str(p).replace("~", "~0").replace("/", "~1") for p in parts)
    return "#/" + "/".join(escaped) if parts else "#"


def compile_schema(schema: Any) -> Validator:
    """A validator for `schema`, or SchemaInvalid with the reason and where it lies."""
    if not isinstance(schema, dict | bool):
        raise SchemaInvalid("A JSON Schema must be an object (or true or false).")
    if isinstance(schema, dict):
        declared = schema.get("$schema")
        if declared is not None and declared.rstrip("#") != DRAFT:
            raise SchemaInvalid(
                f"The Eye reads JSON Schema draft 2020-12; this one declares {declared!r}.",
                {"path": "$.$schema", "rule": "$schema"},
            )
    try:
        Draft202012Validator.check_schema(schema, format_checker=FORMAT_CHECKER)
    except SchemaError as exc:
        raise _schema_error(exc) from None
    ref = first_unresolvable(schema)
    if ref is not None:
        raise SchemaInvalid(
            f"The schema refers to {ref!r}, which is not inside it; The Eye resolves only "
            "references within the schema (such as `#/$defs/...`) and never fetches one.",
            {"rule": "$ref", "ref": ref},
        )
    return new_validator(schema)


def _schema_error(exc: SchemaError) -> SchemaInvalid:
    path = json_path("$", exc.absolute_path)
    if exc.validator == "format" and exc.validator_value == "regex":
        pattern = str(exc.instance)
        return SchemaInvalid(
            f"`{path}`: RE2, the linear-time engine The Eye checks patterns with, cannot "
            f"compile {pattern!r} ({regex_problem(pattern)}); backreferences and lookaround "
            "are not supported.",
            {"path": path, "rule": "pattern", "pattern": pattern},
        )
    return SchemaInvalid(
        f"Not a valid JSON Schema (draft 2020-12): {exc.message}.",
        {"path": path, "rule": exc.validator},
    )


# The widest integers a schema may hold (64 bits, signed or not): what every store keeps
# exactly, and the range schema files' integers were always read in (wider ones as floats).
SCHEMA_INT_RANGE = (-(2**63), 2**64 - 1)


def _number_problem(value: Any) -> tuple[list[Any], str] | None:
    """Where `value` holds a number JSON cannot carry exactly, and why, or None."""
    stack: list[tuple[list[Any], Any]] = [([], value)]
    while stack:
        parts, item = stack.pop()
        if isinstance(item, float) and not math.isfinite(item):
            return parts, "a number that is not finite (such as `1e400`, `NaN` or `Infinity`)"
        if isinstance(item, int) and not isinstance(item, bool):
            if not SCHEMA_INT_RANGE[0] <= item <= SCHEMA_INT_RANGE[1]:
                return parts, "an integer beyond 64 bits"
        elif isinstance(item, dict):
            stack.extend(([*parts, key], child) for key, child in item.items())
        elif isinstance(item, list):
            stack.extend(([*parts, index], child) for index, child in enumerate(item))
    return None


def check_schema(category: Any, name: Any, schema: Any) -> Validator:
    """A validator for `schema` as the schema of the event type (category, name), or
    SchemaInvalid when the type's names or the schema cannot be used."""
    for label, value in (("category", category), ("name", name)):
        if not isinstance(value, str) or not 0 < len(value) <= MAX_NAME_LENGTH:
            raise SchemaInvalid(
                f"`{label}` must be a string of 1 to {MAX_NAME_LENGTH} characters.",
                {"field": label},
            )
    problem = _number_problem(schema)
    if problem is not None:
        parts, what = problem
        path = json_path("$", parts)
        raise SchemaInvalid(
            f"`{path}` holds {what}, which would not be stored as written.", {"path": path}
        )
    return compile_schema(schema)


def digest_of(schema: Any) -> str:
    """The same for the same schema however its keys are ordered or spaced: the SHA-256 of
    its JSON with sorted keys and no spaces, as every stored version's digest was made."""
    return hashlib.sha256(_encode(_signed_exponents(schema), order="sorted")).hexdigest()


def _signed_exponents(value: Any) -> Any:
    """`value` with every float whose JSON has a positive exponent written with its sign
    (`1e+16`, where msgspec writes `1e16`): the form the stored digests were made with.
    Everything else (strings, integers, other floats, key order) already encodes alike."""
    if isinstance(value, float):
        text = _encode(value)
        if b"e" in text and b"e-" not in text:
            return msgspec.Raw(text.replace(b"e", b"e+"))
        return value
    if isinstance(value, dict):
        return {key: _signed_exponents(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_signed_exponents(item) for item in value]
    return value


def _as_stored(schema: Any) -> Validator | None:
    """A validator for a version stored before references outside the schema and patterns
    RE2 cannot run were refused, or None when it is not even valid under the rules it was
    stored under. It still never fetches: what it cannot check fails the event."""
    try:
        Draft202012Validator.check_schema(schema)
    except SchemaError:
        return None
    return new_validator(schema)


@dataclass(slots=True, frozen=True)
class CompiledSchema:
    """One version of a type's schema, compiled once."""

    id: int
    version: int
    validator: Validator


def _violation(error: ValidationError, schema: CompiledSchema) -> Violation:
    parts = list(error.absolute_path)
    if (
        error.validator == "required"
        and isinstance(error.instance, dict)
        and isinstance(error.validator_value, list)
    ):
        # Name the missing member itself rather than the object that lacks it.
        missing = [p for p in error.validator_value if p not in error.instance]
        if missing:
            parts.append(missing[0])
    path = json_path("$.data", parts)
    return Violation(
        f"`{path}`: {error.message} (schema version {schema.version}).",
        {
            "field": "data",
            "path": path,
            "rule": error.validator,
            "schema_path": _pointer(list(error.absolute_schema_path)),
            "schema_version": schema.version,
        },
    )


@dataclass
class SchemaRegistry:
    """The schemas in force and the strict applications, as one process sees them.

    `refresh` is cheap when nothing changed (one small query); call it often. `check` does
    no I/O.
    """

    engine: Engine
    refresh_seconds: float = 2.0
    budget_seconds: float = 0.1
    _schemas: dict[tuple[str, str], CompiledSchema] = field(default_factory=dict, init=False)
    _strict: frozenset[int] = field(default=frozenset(), init=False)
    _fingerprint: tuple[int, int] | None = field(default=None, init=False)
    _due: float = field(default=0.0, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def refresh(self, force: bool = False) -> None:
        """Load new versions and strict flags, at most every `refresh_seconds` unless forced."""
        if not force and time.monotonic() < self._due:
            return
        with self._lock:
            self._due = time.monotonic() + self.refresh_seconds
            with self.engine.connect() as conn:
                self._strict = store.strict_application_ids(conn)
                fingerprint = store.fingerprint(conn)
                if fingerprint == self._fingerprint:
                    return
                rows = store.newest_versions(conn)
            self._schemas = self._compile(rows)
            self._fingerprint = fingerprint

    def _compile(self, rows: Sequence[AnyRow]) -> dict[tuple[str, str], CompiledSchema]:
        compiled = {}
        for row in rows:
            key = (row.category, row.name)
            known = self._schemas.get(key)
            if known is not None and known.id == row.id:
                compiled[key] = known
                continue
            try:
                validator = compile_schema(row.schema)
            except SchemaInvalid as exc:  # stored before a rule got stricter
                older = _as_stored(row.schema)
                if older is None:  # unusable: keep the version this process had
                    log.error("schema %s/%s v%s unusable: %s", *key, row.version, exc.message)
                    if known is not None:
                        compiled[key] = known
                    continue
                log.error(
                    "schema %s/%s v%s applied, but events it cannot check become errors: %s",
                    *key,
                    row.version,
                    exc.message,
                )
                validator = older
            compiled[key] = CompiledSchema(row.id, row.version, validator)
        return compiled

    def version_of(self, category: str, name: str) -> int | None:
        schema = self._schemas.get((category, name))
        return None if schema is None else schema.version

    def check(
        self, application_id: int, category: str, name: str, data: dict[str, Any]
    ) -> Violation | None:
        """The `SchemaCheck`: the version in force validates `data`; strict applications
        may send only types that have a schema."""
        schema = self._schemas.get((category, name))
        if schema is None:
            if application_id in self._strict:
                return Violation(
                    f"No schema is registered for ({category!r}, {name!r}), and this "
                    "application only sends event types that have one (strict mode).",
                    {"field": "category", "category": category, "name": name},
                    reason="unknown_event_type",
                )
            return None
        return check_data(schema, data, self.budget_seconds)


def check_data(
    schema: CompiledSchema, data: dict[str, Any], budget_seconds: float
) -> Violation | None:
    """None when `data` satisfies `schema`, else the Violation that keeps its event out: the
    one schema check of processing, replay, edits and dry runs. Does bounded work and no I/O."""
    if too_deep(data):
        return _unchecked(
            schema,
            f"`data` nests more than {MAX_CHECKED_DEPTH} levels deep, deeper than The Eye "
            "checks against a schema.",
            limit=MAX_CHECKED_DEPTH,
        )
    try:
        with deadline(budget_seconds):
            error = best_match(schema.validator.iter_errors(data))
    except CheckBudgetExceeded:
        return _unchecked(
            schema,
            f"Checking `data` took longer than its budget of "
            f"{budget_seconds * 1000:g} ms (THE_EYE_SCHEMA_CHECK_BUDGET_MS).",
            budget_ms=budget_seconds * 1000,
        )
    except RecursionError:
        return _unchecked(
            schema, "Checking `data` recursed deeper than The Eye can follow.", limit=None
        )
    except re2.error:
        return Violation(
            f"The schema (version {schema.version}) holds a pattern that RE2 cannot run; "
            "register a new version without it.",
            {
                "field": "data",
                "path": "$.data",
                "rule": "pattern",
                "schema_version": schema.version,
            },
        )
    except Unresolvable as exc:
        return Violation(
            f"The schema (version {schema.version}) refers to {exc.ref!r}, "
            "which The Eye cannot resolve.",
            {
                "field": "data",
                "path": "$.data",
                "rule": "$ref",
                "schema_version": schema.version,
            },
        )
    if error is None:
        return None
    return _violation(error, schema)


@dataclass(slots=True, frozen=True)
class CandidateSchema:
    """A schema tried out before it is registered: the rules of one event type as if
    `schema` were its version in force, for checks that store nothing (a dry run). It has
    the registry's `refresh` and `check`, so an `EventChecker` runs the same checks with it."""

    category: str
    name: str
    schema: CompiledSchema
    budget_seconds: float = 0.1

    def refresh(self, force: bool = False) -> None:
        """Nothing to load: the candidate never changes."""

    def check(
        self, application_id: int, category: str, name: str, data: dict[str, Any]
    ) -> Violation | None:
        """The candidate checks `data` of its own type; other types pass unchecked."""
        if (category, name) != (self.category, self.name):
            return None
        return check_data(self.schema, data, self.budget_seconds)


def _unchecked(schema: CompiledSchema, why: str, **details: Any) -> Violation:
    """The Violation of an event whose `data` could not be checked within the bounds."""
    return Violation(
        f"{why} The event was not stored (schema version {schema.version}).",
        {"field": "data", "path": "$.data", "schema_version": schema.version, **details},
        reason="check_budget_exceeded",
    )

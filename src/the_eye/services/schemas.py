"""Registering schema versions: one from the API, or a directory of schema files.

Every version is checked (a usable JSON Schema draft 2020-12, a valid event type) before it
is stored, and is in force from the moment its transaction commits; processes notice it at
their next registry refresh. Loading a directory is all or nothing, and a file whose schema
equals its type's newest version (by `digest_of`, whatever its key order or spacing) makes
no new version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
from sqlalchemy.engine import Connection, Engine

from the_eye.processor.schemas import SCHEMA_INT_RANGE, SchemaInvalid, check_schema, digest_of
from the_eye.store import schemas as store
from the_eye.store.engine import write_transaction
from the_eye.store.tables import AnyRow
from the_eye.timestamps import utcnow


def register_schema(
    conn: Connection, category: str, name: str, schema: Any, source: str = "api"
) -> AnyRow:
    """Check `schema` and store it as the next version of (category, name), in force from
    the commit; return the new row. Raises SchemaInvalid, and then stores nothing."""
    check_schema(category, name, schema)
    return store.add_version(conn, category, name, schema, digest_of(schema), source, utcnow())


class SchemaFileInvalid(ValueError):
    """A file of THE_EYE_SCHEMAS_DIR that cannot be loaded; nothing of the directory is."""


@dataclass(slots=True)
class LoadReport:
    """What loading a directory of schema files did."""

    created: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def read_schema_dir(directory: Path) -> list[tuple[str, str, Any, str]]:
    """(category, name, schema, relative path) of every `<category>/<name>.json` file.

    Hidden files and folders and files of other kinds are ignored; a JSON file elsewhere,
    or one that is not a valid schema, raises SchemaFileInvalid.
    """
    if not directory.is_dir():
        raise SchemaFileInvalid(f"{directory} is not a directory")
    found = []
    for path in sorted(directory.rglob("*.json")):
        relative = path.relative_to(directory)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if len(relative.parts) != 2:
            raise SchemaFileInvalid(f"{relative}: schema files go in <dir>/<category>/<name>.json")
        category, name = relative.parts[0], path.stem
        try:
            schema = _wide_ints_as_floats(msgspec.json.decode(path.read_bytes()))
            check_schema(category, name, schema)
        except msgspec.DecodeError as exc:
            raise SchemaFileInvalid(f"{relative}: not JSON ({exc})") from None
        except SchemaInvalid as exc:
            raise SchemaFileInvalid(f"{relative}: {exc.message}") from None
        found.append((category, name, schema, relative.as_posix()))
    return found


def _wide_ints_as_floats(value: Any) -> Any:
    """`value` with integers beyond the 64-bit range as floats, as schema files have always
    been read: versions stored from such files hold floats, and their digests were made
    from them, so an unchanged file must read the same to make no new version."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value if SCHEMA_INT_RANGE[0] <= value <= SCHEMA_INT_RANGE[1] else float(value)
    if isinstance(value, dict):
        return {key: _wide_ints_as_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_wide_ints_as_floats(item) for item in value]
    return value


def load_schema_dir(engine: Engine, directory: Path) -> LoadReport:
    """Register every changed or new file of `directory` as a new version, all or nothing."""
    files = read_schema_dir(directory)
    report = LoadReport()
    with write_transaction(engine) as conn:  # reads the newest versions, then writes
        for category, name, schema, relative in files:
            digest = digest_of(schema)
            newest = store.newest_version(conn, category, name)
            if newest is not None and newest.digest == digest:
                report.unchanged.append(relative)
                continue
            store.add_version(conn, category, name, schema, digest, f"file:{relative}", utcnow())
            report.created.append(relative)
    return report

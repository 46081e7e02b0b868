"""The schema registry's rows: versions of a JSON Schema per event type (category, name)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from the_eye.store.tables import AnyRow, applications, schemas

_newer = schemas.alias("newer")

# A version is the newest of its type when no higher version of that type exists.
_NEWEST = ~sa.exists().where(
    _newer.c.category == schemas.c.category,
    _newer.c.name == schemas.c.name,
    _newer.c.version > schemas.c.version,
)


def fingerprint(conn: Connection) -> tuple[int, int]:
    """(row count, highest id): changes whenever a version is added, in any commit order."""
    count, top = conn.execute(sa.select(sa.func.count(), sa.func.max(schemas.c.id))).one()
    return int(count), int(top or 0)


def newest_versions(conn: Connection) -> Sequence[AnyRow]:
    """The version in force of every event type, by category and name."""
    return conn.execute(
        sa.select(schemas).where(_NEWEST).order_by(schemas.c.category, schemas.c.name)
    ).all()


def newest_version(conn: Connection, category: str, name: str) -> AnyRow | None:
    return conn.execute(
        sa.select(schemas)
        .where(schemas.c.category == category, schemas.c.name == name)
        .order_by(schemas.c.version.desc())
        .limit(1)
    ).first()


def versions_of(conn: Connection, category: str, name: str) -> Sequence[AnyRow]:
    """Every version of one event type, newest first."""
    return conn.execute(
        sa.select(schemas)
        .where(schemas.c.category == category, schemas.c.name == name)
        .order_by(schemas.c.version.desc())
    ).all()


def add_version(
    conn: Connection,
    category: str,
    name: str,
    schema: Any,
    digest: str,
    source: str,
    now: datetime,
) -> AnyRow:
    """Store `schema` as the next version of its type and return the new row.

    Two writers may pick the same number at once; the unique (category, name, version)
    refuses the second, which then takes the next number.
    """
    for _ in range(10):
        current = conn.execute(
            sa.select(sa.func.max(schemas.c.version)).where(
                schemas.c.category == category, schemas.c.name == name
            )
        ).scalar()
        try:
            with conn.begin_nested():
                return conn.execute(
                    schemas.insert().returning(*schemas.c),
                    {
                        "category": category,
                        "name": name,
                        "version": (current or 0) + 1,
                        "schema": schema,
                        "digest": digest,
                        "source": source[:255],
                        "created_at": now,
                    },
                ).one()
        except IntegrityError:
            continue
    raise RuntimeError(f"could not number a new version of {category!r}/{name!r}")


def strict_application_ids(conn: Connection) -> frozenset[int]:
    return frozenset(
        conn.execute(sa.select(applications.c.id).where(applications.c.strict)).scalars()
    )

"""What differs between the store's two databases when SQL is written by hand.

The rest of the store writes the same SQL for SQLite and PostgreSQL; only the
`INSERT ... ON CONFLICT` construct (each dialect has its own) and the parameter marks of
raw SQL (`?` for sqlite3, `%s` for psycopg) depend on which one a connection has.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

_INSERTS: dict[str, Callable[[sa.Table], sqlite.Insert | postgresql.Insert]] = {
    "sqlite": sqlite.insert,
    "postgresql": postgresql.insert,
}


def insert(bind: Connection | Engine, table: sa.Table) -> sqlite.Insert | postgresql.Insert:
    """An INSERT into `table` that offers `on_conflict_do_nothing` / `on_conflict_do_update`
    in the dialect of `bind`."""
    return _INSERTS[bind.dialect.name](table)


def param_mark(bind: Connection | Engine) -> str:
    """The mark of one positional parameter in raw SQL run through `exec_driver_sql`."""
    return "?" if bind.dialect.paramstyle == "qmark" else "%s"

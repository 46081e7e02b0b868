"""The store's engine: a SQLite file private to its owner."""

from __future__ import annotations

import stat

from the_eye.config import Settings
from the_eye.store.engine import create_engine
from the_eye.store.migrate import migrate


def test_a_new_sqlite_store_is_readable_by_its_owner_only(tmp_path):
    path = tmp_path / "private.db"
    engine = create_engine(Settings(database_url=f"sqlite:///{path}", _env_file=None))
    try:
        migrate(engine)
        with engine.connect() as conn:  # WAL mode: the -wal and -shm files exist now
            conn.exec_driver_sql("SELECT 1")
            files = [path, *tmp_path.glob("private.db-*")]
            assert len(files) == 3
            assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}
    finally:
        engine.dispose()

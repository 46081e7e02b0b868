"""The store's engine: a SQLite file private to its owner, and the processor's larger page
cache."""

from __future__ import annotations

import stat

import pytest

from the_eye.config import Settings
from the_eye.processor.worker import Processor
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


def test_the_processors_sqlite_connections_keep_a_larger_page_cache(settings):
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's page cache")
    processor = Processor.from_settings(settings)
    try:
        with processor.engine.connect() as conn:
            cache = conn.exec_driver_sql("PRAGMA cache_size").scalar()
    finally:
        processor.close()
    assert cache == -settings.sqlite_processor_cache_mb * 1024
    api_engine = create_engine(settings)
    try:
        with api_engine.connect() as conn:
            assert conn.exec_driver_sql("PRAGMA cache_size").scalar() == -2000  # SQLite's own
    finally:
        api_engine.dispose()

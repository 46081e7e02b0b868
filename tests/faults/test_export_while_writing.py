"""Incremental exports run again and again while three workers store events concurrently
(their ids committed out of order): the union of every run's files is the store, each
event once."""

from __future__ import annotations

import threading

import pyarrow.dataset as ds
import pytest

from tests.faults.traffic import event_batches, post_all, stored_ids
from tests.helpers import count_rows, queue_depth
from tests.processes import ServeProcess, WorkerProcess, the_eye_env
from the_eye.export.incremental import export_events
from the_eye.store.tables import events

pytestmark = pytest.mark.slow

TOTAL, PER_REQUEST, SESSIONS = 6_000, 20, 50


def test_exports_during_concurrent_writes_hold_each_event_exactly_once(
    pg_settings, store, write_key, tmp_path
):
    env = the_eye_env(pg_settings, batch_size=2)
    workers = [WorkerProcess(env, tmp_path / f"worker-{i}.log").start() for i in range(3)]
    serve = ServeProcess(env, "--no-processor").start()
    out = tmp_path / "export"
    sent: dict[str, object] = {}

    def send() -> None:
        try:
            sent["accepted"] = post_all(
                serve.url, write_key, event_batches(TOTAL, PER_REQUEST, SESSIONS), threads=6
            )
        except Exception as exc:  # reported by the assertion below
            sent["failed"] = exc

    def all_stored() -> bool:
        return queue_depth(pg_settings, store) == 0 and count_rows(store, events) == TOTAL

    runs_while_writing = 0
    try:
        sender = threading.Thread(target=send)
        sender.start()
        while sender.is_alive() or not all_stored():
            assert "failed" not in sent, sent.get("failed")
            export_events(store, out)
            runs_while_writing += 1
            assert runs_while_writing < 2000, "the workers did not store every event"
        sender.join()
        export_events(store, out)  # whatever the last run could not see yet
    finally:
        serve.stop()
        for worker in workers:
            worker.stop()

    assert sent.get("accepted") == TOTAL
    assert runs_while_writing >= 3
    dataset = ds.dataset(out / "events", format="parquet", partitioning="hive")
    exported = dataset.to_table(columns=["event_id"]).column("event_id").to_pylist()
    assert len(exported) == len(set(exported)), "an event was exported twice"
    assert sorted(exported) == sorted(stored_ids(store))

"""The SDK against a real `the-eye serve` that is killed and started again."""

from __future__ import annotations

import pytest

from tests.client.conftest import FAST_RETRY
from tests.helpers import client_as, fetch_all
from tests.processes import ServeProcess, wait_until
from the_eye.client import EyeClient

pytestmark = pytest.mark.slow


def stored_ids(url: str, admin_token: str) -> list[str]:
    """Every stored event's id, duplicates included."""
    with client_as(url, admin_token) as client:
        return [e["event_id"] for e in fetch_all(client, "/events/", limit=1000)]


def test_events_queued_while_the_server_is_down_arrive_once_it_is_back(process_env):
    serve = ServeProcess(process_env).start()
    keys = serve.read_first_start()
    client = EyeClient(keys["write_key"], serve.url, retry=FAST_RETRY, batch_size=7)
    restarted = None
    try:
        ids = [client.track("s-1", "c", "before", {"i": i}) for i in range(5)]
        assert client.flush()
        serve.kill()
        ids += [client.track("s-1", "c", "while down", {"i": i}) for i in range(20)]
        wait_until(lambda: client.stats().retries >= 1)
        restarted = ServeProcess(process_env, port=serve.port).start()
        assert client.flush()
        stats = client.stats()
        assert (stats.sent, stats.failed, stats.dropped) == (25, 0, 0)

        def all_stored() -> list[str] | None:
            found = stored_ids(restarted.url, keys["admin_token"])
            return found if len(found) >= 25 else None

        found = wait_until(all_stored, timeout=60)
        assert sorted(found) == sorted(ids)  # each once
    finally:
        client.shutdown(timeout=5)
        for process in (serve, restarted):
            if process is not None:
                process.stop()

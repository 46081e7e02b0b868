"""Fork safety and the exit flush: after `fork()` parent and child each send their own events,
once, and whatever is queued at interpreter exit is sent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import httpx

from tests.helpers import fetch_all


def received_total(url: str) -> int:
    """How many events the server accepted, copies included."""
    metrics = httpx.get(f"{url}/metrics").text
    line = next(x for x in metrics.splitlines() if x.startswith("the_eye_events_received_total"))
    return int(line.split()[1])


def test_after_fork_parent_and_child_each_send_their_own_events_once(
    server, make_client, processor, admin
):
    # Nothing is sent before a flush, so the parent's events are still queued at the fork.
    client = make_client(flush_interval=3600, batch_size=1000)
    before = [client.track("parent", "fork", "before", {"i": i}) for i in range(3)]
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its event ids, and exit without running pytest's code
        status = 1
        try:
            os.close(read_end)
            ids = [client.track("child", "fork", "in child", {"i": i}) for i in range(2)]
            flushed = client.flush(timeout=30)
            os.write(write_end, json.dumps({"ids": ids, "sent": client.stats().sent}).encode())
            status = 0 if flushed else 2
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        child = json.loads(pipe.read())
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert child["sent"] == 2  # the child sent its own events, not the parent's

    after = client.track("parent", "fork", "after", {"i": 0})
    assert client.flush()
    assert client.stats().sent == 4
    assert received_total(server.url) == 6  # nothing was sent twice
    processor.drain()
    stored = [e["event_id"] for e in fetch_all(admin, "/events/")]
    assert sorted(stored) == sorted([*before, after, *child["ids"]])


EXITING_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from the_eye.client import EyeClient

    url, key = sys.argv[1:3]
    client = EyeClient(key, url, flush_interval=3600, batch_size=1000)
    client.track("parent", "exit", "before fork", {"i": 0}, event_id="parent-before")
    pid = os.fork()
    if pid == 0:
        client.track("child", "exit", "in child", {"i": 0}, event_id="child")
        sys.exit(0)  # no flush: the child's interpreter exit sends its event
    os.waitpid(pid, 0)
    client.track("parent", "exit", "after fork", {"i": 0}, event_id="parent-after")
    # no flush: the parent's interpreter exit sends both of its events
    """
)


def test_events_queued_at_interpreter_exit_are_sent_in_parent_and_child(
    server, creds, processor, admin
):
    subprocess.run(
        [sys.executable, "-c", EXITING_SCRIPT, server.url, creds.write_key],
        check=True,
        timeout=60,
    )
    assert received_total(server.url) == 3
    processor.drain()
    stored = sorted(e["event_id"] for e in fetch_all(admin, "/events/"))
    assert stored == ["child", "parent-after", "parent-before"]

"""The supervisor keeps its processes running, even when starting one fails for a while."""

from __future__ import annotations

import time
from multiprocessing.process import BaseProcess

from the_eye.processor.supervisor import Supervisor


def test_a_failed_restart_is_tried_again():
    """The first restart cannot start its process (as when file descriptors run out): the
    watch goes on and a later try starts it."""
    starts = []

    def start(process: BaseProcess) -> None:
        starts.append(process)
        if len(starts) == 2:
            raise OSError(24, "Too many open files")
        process.start()

    supervisor = Supervisor(time.sleep, (0.05,), 1, first_backoff=0.05, start_process=start)
    supervisor.start()
    try:
        deadline = time.monotonic() + 60
        while supervisor.restarts < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        supervisor.stop()
    assert supervisor.restarts >= 1
    assert len(starts) >= 3

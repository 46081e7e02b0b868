"""Process-wide tuning: the API keeps what it built at start-up out of the garbage
collector's full collections while it serves, and hands it back when it stops."""

from __future__ import annotations

import gc

from tests.helpers import LiveServer


def test_the_api_freezes_its_startup_objects_while_it_serves(settings):
    assert gc.get_freeze_count() == 0
    with LiveServer(settings) as live:
        assert live.url
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0

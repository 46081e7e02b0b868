"""How /stats/ splits a range into rollup slots and leftover stretches: a partition, always."""

from __future__ import annotations

from datetime import datetime, timedelta
from itertools import pairwise

from hypothesis import given
from hypothesis import strategies as st

from the_eye.store.stats import Rows, Slots, cover, minute_of, start_of

BASE = datetime(2021, 1, 1)
moments = st.integers(0, 10 * 86400 * 10**6).map(lambda us: BASE + timedelta(microseconds=us))


def intervals(parts) -> list[tuple[datetime, datetime]]:
    spans = []
    for part in parts:
        if isinstance(part, Slots):
            assert part.first % part.width == 0 and part.end % part.width == 0
            spans.append((start_of(part.first), start_of(part.end)))
        else:
            assert isinstance(part, Rows)
            # A stretch read from the rows lies inside one minute.
            assert minute_of(part.low) == minute_of(part.high - timedelta(microseconds=1))
            spans.append((part.low, part.high))
    return sorted(spans)


@given(moments, moments, st.sampled_from([(1440, 60, 1), (60, 1), (1,)]))
def test_cover_splits_a_range_into_disjoint_pieces_that_fill_it(a, b, widths):
    low, high = min(a, b), max(a, b)
    spans = intervals(cover(low, high, widths))
    if low == high:
        assert spans == []
        return
    assert spans[0][0] == low and spans[-1][1] == high
    for (_, end), (start, _) in pairwise(spans):
        assert end == start
    assert all(start < end for start, end in spans)


def test_cover_uses_the_widest_slots_that_fit():
    low = datetime(2021, 1, 1, 23, 59, 30)
    high = datetime(2021, 1, 4, 0, 1, 0)
    parts = cover(low, high, (1440, 60, 1))
    slots = {(p.width, start_of(p.first), start_of(p.end)) for p in parts if isinstance(p, Slots)}
    assert slots == {
        (1440, datetime(2021, 1, 2), datetime(2021, 1, 4)),
        (1, datetime(2021, 1, 4), datetime(2021, 1, 4, 0, 1)),
    }
    assert [p for p in parts if isinstance(p, Rows)] == [Rows(low, datetime(2021, 1, 2))]


def test_cover_without_bounds_is_every_slot():
    assert cover(None, None, (1440, 60, 1)) == [Slots(1440, None, None)]
    parts = cover(None, datetime(2021, 1, 1, 10, 30), (1440, 60, 1))
    assert parts[0] == Slots(1440, None, minute_of(datetime(2021, 1, 1)))

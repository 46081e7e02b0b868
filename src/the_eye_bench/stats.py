"""Percentiles of measured samples."""

from __future__ import annotations

import math
from collections.abc import Sequence


def percentile(ordered: Sequence[float], p: float) -> float:
    """The `p`th percentile (nearest rank) of samples sorted ascending; 0.0 when there are none."""
    if not ordered:
        return 0.0
    # The small epsilon keeps float noise (99 / 100 * 100 = 99.00000000000001) off the rank.
    rank = max(1, math.ceil(p * len(ordered) / 100 - 1e-9))
    return ordered[min(rank, len(ordered)) - 1]


def median(samples: Sequence[float]) -> float:
    """The 50th percentile of unsorted samples."""
    return percentile(sorted(samples), 50)

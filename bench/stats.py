"""Percentiles and the summaries every latency figure is given as."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = (50, 90, 99, 99.9)


def percentile(values: Sequence[float], p: float) -> float | None:
    """The nearest-rank percentile (None for no values): p99.9 of 10,000 values is the 9,990th."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def summary(values: Sequence[float], digits: int = 3) -> dict[str, float | int | None]:
    """{n, mean, p50, p90, p99, p99.9, max}; percentiles of fewer values than they need are still given."""
    ordered = sorted(values)
    out: dict[str, float | int | None] = {"n": len(ordered)}
    out["mean"] = round(sum(ordered) / len(ordered), digits) if ordered else None
    for p in PERCENTILES:
        value = percentile(ordered, p)
        out[f"p{p:g}"] = round(value, digits) if value is not None else None
    out["max"] = round(ordered[-1], digits) if ordered else None
    return out

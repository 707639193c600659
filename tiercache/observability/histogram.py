"""Latency histograms: log-linear (HDR-style) buckets, 4 linear sub-buckets per power of two from 2**-24 s
(60 ns) up, so any recorded latency is known to within 25 %; percentiles, summaries and window differences.

The compiled core's SampleHistogram uses the same buckets and the same float operations.
"""

from __future__ import annotations

import math
import threading
from typing import Any, Dict, List, Optional, Sequence, Tuple

__all__ = ["NBUCKETS", "Histogram", "bucket_of", "diff_histogram", "percentile", "summarize"]

_MIN = 2.0 ** -24  # seconds: the upper bound of bucket 0
_SUB = 4  # linear sub-buckets per power of two
_OCTAVES = 32  # up to 2**8 s
NBUCKETS = 1 + _OCTAVES * _SUB + 1  # [0, MIN], the log-linear buckets, then overflow
_BOUNDS: Tuple[float, ...] = (_MIN,) + tuple(
    _MIN * 2.0 ** o * (1 + (j + 1) / _SUB) for o in range(_OCTAVES) for j in range(_SUB)
) + (math.inf,)


def bucket_of(seconds: float) -> int:
    """The index of the bucket holding `seconds` (bucket i covers (BOUNDS[i-1], BOUNDS[i]])."""
    x = seconds / _MIN
    if not x > 1.0:  # (NaN included: clock trouble never raises)
        return 0
    m, e = math.frexp(x)  # x = m * 2**e, 0.5 <= m < 1
    j = math.ceil((2.0 * m - 1.0) * _SUB) - 1  # the sub-bucket whose upper bound is >= x
    if j < 0:  # x is exactly a power of two: the last sub-bucket of the octave below
        e, j = e - 1, _SUB - 1
    i = 1 + (e - 1) * _SUB + j
    return i if i < NBUCKETS - 1 else NBUCKETS - 1


class Histogram:
    """Latency histogram (seconds) with log-linear buckets; thread-safe."""

    BOUNDS = _BOUNDS

    __slots__ = ("_lock", "counts", "count", "sum", "max", "window_max")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.counts: List[int] = [0] * NBUCKETS
        self.count = 0
        self.sum = 0.0
        self.max = 0.0
        self.window_max = 0.0  # the largest since the last state(reset_window=True)

    def record(self, seconds: float) -> None:
        i = bucket_of(seconds)
        with self._lock:
            self.counts[i] += 1
            self.count += 1
            self.sum += seconds
            if seconds > self.max:
                self.max = seconds
            if seconds > self.window_max:
                self.window_max = seconds

    def state(self, reset_window: bool = False) -> Dict[str, Any]:
        """A copy: {counts, count, sum, max, window_max}; `reset_window` starts a new window's max."""
        with self._lock:
            out = {"counts": list(self.counts), "count": self.count, "sum": self.sum, "max": self.max,
                   "window_max": self.window_max}
            if reset_window:
                self.window_max = 0.0
            return out


def percentile(counts: Sequence[int], q: float, max_seen: float = math.inf) -> Optional[float]:
    """The q-quantile (0 < q <= 1) of bucketed counts: the upper bound of the bucket holding it (at most
    `max_seen`), None when empty."""
    total = sum(counts)
    if not total:
        return None
    rank = max(1, math.ceil(q * total))
    seen = 0
    for i, n in enumerate(counts):
        seen += n
        if seen >= rank:
            return min(_BOUNDS[i], max_seen)
    return max_seen  # (unreachable)


def summarize(state: Dict[str, Any]) -> Dict[str, Any]:
    """count, mean, p50, p90, p99 and max of a histogram state (seconds; None when empty)."""
    counts, n = state["counts"], state["count"]
    top = state.get("max") or math.inf
    return {
        "count": n,
        "mean": state["sum"] / n if n else None,
        "p50": percentile(counts, 0.50, top),
        "p90": percentile(counts, 0.90, top),
        "p99": percentile(counts, 0.99, top),
        "max": state.get("max") if n else None,
    }


def diff_histogram(new: Dict[str, Any], old: Optional[Dict[str, Any]], adjacent: bool = False) -> Dict[str, Any]:
    """The histogram of what was recorded between two states; its max is the window's (`window_max`:
    exact when `old` is the kept snapshot just before `new`, else None: not known)."""
    if old is None:
        return dict(new)
    return {"counts": [a - b for a, b in zip(new["counts"], old["counts"])], "count": new["count"] - old["count"],
            "sum": new["sum"] - old["sum"], "max": new.get("window_max") if adjacent else None}


# ----------------------------------------------------------------------------------------------- trends

"""The counters a manager keeps per namespace (L2 calls, loads, invalidations, promotions) and their names.

L1 hits, misses and evictions are not here: each namespace's HashCache counts those itself.
"""

from __future__ import annotations

import threading
from typing import Callable, Dict, Mapping, Optional

__all__ = ["COUNTERS", "GLOBAL_COUNTERS", "OPERATIONS", "Counters"]

# Counters kept per namespace by the manager (L1 hits/misses/evictions come from HashCache.stats()).
COUNTERS = (
    "sets", "deletes", "l2_hits", "l2_misses", "l2_errors", "l2_short_circuited", "l2_writes_dropped",
    "corrupt_values", "loader_calls", "loader_errors", "stale_served", "lock_timeouts", "invalidations_sent",
    "invalidations_dropped", "invalidations_received", "promotions", "promotions_skipped_stale",
    "promotions_declined", "refreshes", "tag_invalidations",
)
# Counters that belong to the manager as a whole.
GLOBAL_COUNTERS = ("invalidation_flushes", "repaired_after_outage", "global_cap_evictions")

# Histogram operations and the tier each belongs to (a Prometheus label).
OPERATIONS = {"l1_get": "l1", "l2_get": "l2", "l2_set": "l2", "loader": "loader"}


def _tally(table: Dict[str, Dict[str, int]], namespace: str, counts: Mapping[str, int]) -> None:
    """Add `counts` to `table[namespace]` (created with every counter at 0)."""
    values = table.get(namespace)
    if values is None:
        values = table[namespace] = dict.fromkeys(COUNTERS, 0)
    for name, n in counts.items():
        values[name] = values.get(name, 0) + n


class Counters:
    """Thread-safe integer counters per namespace ("" for the manager as a whole). `counted_elsewhere`, when
    given, returns {namespace: {counter: value}} kept by someone else (the read path counts its L2 hits
    and misses and its promotions itself, without a lock): they are added to what is read here."""

    def __init__(self, counted_elsewhere: Optional[Callable[[], Dict[str, Dict[str, int]]]] = None) -> None:
        self._lock = threading.Lock()
        self._values: Dict[str, Dict[str, int]] = {"": dict.fromkeys(GLOBAL_COUNTERS, 0)}
        self._elsewhere = counted_elsewhere

    def _merged(self) -> Dict[str, Dict[str, int]]:
        with self._lock:
            out = {ns: dict(v) for ns, v in self._values.items()}
        for ns, counts in (self._elsewhere() if self._elsewhere is not None else {}).items():
            _tally(out, ns, counts)
        return out

    def add(self, name: str, n: int = 1, namespace: str = "") -> None:
        with self._lock:
            values = self._values.get(namespace)
            if values is None:
                values = self._values[namespace] = dict.fromkeys(COUNTERS, 0)
            values[name] = values.get(name, 0) + n

    def add_many(self, namespace: str = "", **counts: int) -> None:
        with self._lock:
            _tally(self._values, namespace, counts)

    def add_pair(self, namespace: str, first: str, second: str) -> None:
        """One more of each of two counters of `namespace`, in one update."""
        counts = {first: 1}
        counts[second] = counts.get(second, 0) + 1
        self.add_many(namespace, **counts)

    def by_namespace(self) -> Dict[str, Dict[str, int]]:
        """{namespace: {counter: value}}, without the manager-wide entry."""
        return {ns: v for ns, v in self._merged().items() if ns}

    def totals(self) -> Dict[str, int]:
        """Every counter summed over the namespaces, with the manager-wide ones."""
        out = dict.fromkeys(COUNTERS, 0)
        for values in self._merged().values():
            for name, n in values.items():
                out[name] = out.get(name, 0) + n
        return out

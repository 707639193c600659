"""The L2 gate: every L2 call passes the circuit breaker, is counted and timed here, and writes that could
not reach L2 are remembered for repair.

Failures of L2 never raise out of the data calls unless `strict=True`: the call answers FAILED, reads fall
back to L1, writes are counted as dropped. Writes dropped during an outage leave L2 older than this
process's view (a deleted key, or the value before a set, would come back once L1 lets go): their keys are
removed from L2 as soon as it answers again, so other processes miss and reload instead.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any, Dict, Iterable, List, Optional, Set, Tuple

from .circuit import CLOSED, CircuitBreaker
from ..errors import CircuitOpenError, L2Error
from ..observability.counters import Counters
from ..observability.metrics import Metrics

__all__ = ["FAILED", "L2Gate"]

log = logging.getLogger("tiercache")

FAILED: Any = object()  # what a gated call answers when L2 failed or the circuit is open
MAX_DROPPED = 10_000  # keys remembered for repair after an outage; beyond that, whole namespaces
_perf_counter = time.perf_counter


class L2Gate:
    """The circuit breaker, the L2 counters and timings, strict mode and the repair list, for one manager."""

    def __init__(self, circuit: CircuitBreaker, counters: Counters, metrics: Optional[Metrics],
                 strict: bool) -> None:
        self.circuit = circuit
        self.counters = counters
        self.metrics = metrics
        self.strict = strict
        self._lock = threading.Lock()
        self._dropped_keys: Set[str] = set()
        self._dropped_prefixes: Set[str] = set()
        self._repairing = False
        self._in_repair: Tuple[Set[str], Set[str]] = (set(), set())  # taken by a repair under way
        self.owing = False  # some write awaits its repair (the read paths' one-compare check)
        self._recorders: Dict[Tuple[str, Optional[str]], Any] = {}  # (namespace, op): its histogram's record

    # ------------------------------------------------------------------ around one call

    def start(self, namespace: str, op: Optional[str]) -> Optional[float]:
        """None (counted) while the circuit is open: do not make the call; else its start time when it is
        timed (metrics on and an `op` histogram named) or 0.0. CircuitOpenError when strict."""
        if self.circuit.state is not CLOSED and not self.circuit.allow():
            self.counters.add("l2_short_circuited", 1, namespace)
            if self.strict:
                raise CircuitOpenError("L2 circuit is open")
            return None
        return _perf_counter() if op is not None and self.metrics is not None else 0.0

    def passed(self, namespace: str, op: Optional[str], t0: float, written: Iterable[str]) -> bool:
        """The call answered: time it, close the circuit; True when dropped writes are owed a repair."""
        if t0:
            record = self._recorders.get((namespace, op))
            if record is None:
                record = self._recorders[(namespace, op)] = self.metrics.histogram(namespace, op).record  # type: ignore[union-attr, arg-type]
            record(_perf_counter() - t0)
        if not self.circuit.healthy:
            self.circuit.success()
        if not (self._dropped_keys or self._dropped_prefixes):
            return False
        if written:
            with self._lock:  # keys just written are no longer owed a repair (it would delete the new value)
                self._dropped_keys.difference_update(written)
                self.owing = bool(self._dropped_keys or self._dropped_prefixes or self._repairing)
        return not self._repairing

    def failed(self, exc: BaseException, namespace: str) -> Any:
        """The call raised `exc`: count it against the circuit and the namespace; FAILED (or raise when
        strict). Backends wrap their client's errors in L2Error; anything else is unexpected, but an L2
        call must still not break the caller (nor leave a half-open probe unanswered): count, log, go on."""
        self.circuit.failure()
        self.counters.add("l2_errors", 1, namespace)
        if not isinstance(exc, (L2Error, OSError)):
            log.error("tiercache: unexpected error from the L2 backend", exc_info=exc)
        if self.strict:
            if isinstance(exc, L2Error):
                raise exc
            raise L2Error(f"{type(exc).__name__}: {exc}") from exc
        return FAILED

    def interrupted(self) -> None:
        """The call was cancelled or interrupted (KeyboardInterrupt, task cancellation): the server is not
        to blame, but a half-open probe must still be answered."""
        if self.circuit.state != CLOSED:
            self.circuit.failure()

    # ------------------------------------------------------------------ dropped writes

    def dropped(self, namespace: str, prefix: str, l2_keys: Iterable[str]) -> None:
        """Writes of `l2_keys` (in the namespace whose keys start with `prefix`) did not reach L2."""
        l2_keys = list(l2_keys)
        self.counters.add("l2_writes_dropped", len(l2_keys), namespace)
        with self._lock:
            if prefix in self._dropped_prefixes:
                return
            self._dropped_keys.update(l2_keys)
            self.owing = True
            if len(self._dropped_keys) > MAX_DROPPED:
                self._dropped_keys = {k for k in self._dropped_keys if not k.startswith(prefix)}
                self._dropped_prefixes.add(prefix)

    def dropped_namespace(self, namespace: str, prefix: str) -> None:
        """A clear of the namespace whose keys start with `prefix` did not reach L2."""
        self.counters.add("l2_writes_dropped", 1, namespace)
        with self._lock:
            self._dropped_prefixes.add(prefix)
            self.owing = True

    def owes(self, l2_key: str, prefix: str) -> bool:
        """Whether a write of `l2_key` (in the namespace whose keys start with `prefix`) did not reach L2 and
        is not repaired yet: L2 may still hold the value that write replaced, so a read must not serve it."""
        keys, prefixes = self._in_repair
        return (l2_key in self._dropped_keys or prefix in self._dropped_prefixes
                or l2_key in keys or prefix in prefixes)

    def owed(self) -> Tuple[int, int]:
        """(keys, namespaces) owed a repair."""
        return len(self._dropped_keys), len(self._dropped_prefixes)

    def take_repairs(self) -> Optional[Tuple[List[str], List[str]]]:
        """The keys and namespace prefixes to remove from L2 now (None when there are none, or a repair is
        under way); give them back with `repair_failed` if that fails."""
        with self._lock:
            if self._repairing or not (self._dropped_keys or self._dropped_prefixes):
                return None
            keys, prefixes = list(self._dropped_keys), list(self._dropped_prefixes)
            self._in_repair = (self._dropped_keys, self._dropped_prefixes)
            self._dropped_keys, self._dropped_prefixes = set(), set()
            self._repairing = True
            return keys, prefixes

    def repaired(self, keys: List[str], prefixes: List[str]) -> None:
        with self._lock:
            self._repairing = False
            self._in_repair = (set(), set())
            self.owing = bool(self._dropped_keys or self._dropped_prefixes)
        self.counters.add("repaired_after_outage", len(keys) + len(prefixes))

    def repair_failed(self, keys: List[str], prefixes: List[str]) -> None:
        """Still failing: keep what is left for the next success."""
        with self._lock:
            self._repairing = False
            self._in_repair = (set(), set())
            self._dropped_keys.update(keys)
            self._dropped_prefixes.update(prefixes)

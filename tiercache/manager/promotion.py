"""Promotion: should an L2 hit be copied into L1?

    L2 hit ──> room in L1 (nothing would be displaced)? ──yes──> promote ("room")
                 │ no
                 └──> strategy: is it a candidate? ──no──> stay in L2 ("skipped")
                          │ yes
                          └──> gate: is it hotter than the entry it would evict? ──no──> ("rejected")
                                    │ yes (or priority high: the gate is bypassed)
                                    └──> promote

Strategies (NamespaceConfig.promotion; "auto" picks by priority: high -> immediate, medium -> conditional,
low -> lazy):
  immediate    every L2 hit
  conditional  >= `min_hits` L2 hits of the key within about `window` seconds
  lazy         L2 hits in >= `min_buckets` of the last `buckets` time buckets of `bucket_seconds` each
               (consistent access over time, not a burst)
  predictive   an online logistic model of P(read again in L1 before it leaves) from recent frequency,
               consistency, size, remaining TTL and the namespace's priority, trained on what happened to
               the entries it promoted (HashCache records whether each promoted entry was hit)

Access tracking is O(1) per access and bounded in memory whatever the number of keys: counts live in the
compiled FrequencySketch (count-min, doorkeeper, aging), one per namespace, plus one small sketch per lazy
time bucket. The gate asks the namespace's L1 (W-TinyLFU when a namespace uses a gated strategy), whose
sketch also counts L1 hits, so residents are judged by all their uses.
"""

from __future__ import annotations

import collections
import math
import threading
import time
from typing import Any, Callable, Deque, Dict, List, Optional, Tuple

from .._compat import FrequencySketch

__all__ = ["STRATEGIES", "PromotionManager", "resolve_strategy"]

STRATEGIES = ("immediate", "conditional", "lazy", "predictive")
_AUTO = {"high": "immediate", "medium": "conditional", "low": "lazy"}
_PRIORITY = {"high": 1.0, "medium": 0.5, "low": 0.0}


def resolve_strategy(name: str, priority: str) -> str:
    """The strategy a namespace uses ("auto" resolved by priority)."""
    return _AUTO.get(priority, "conditional") if name == "auto" else name


class _Tracker:
    """L2 accesses of one namespace: a frequency sketch aged every `window` seconds (and by its own sample
    count), and for `lazy` a ring of per-bucket sketches."""

    def __init__(self, capacity: int, window: float, buckets: int, bucket_seconds: float) -> None:
        self.capacity = max(64, capacity)
        self.sketch = FrequencySketch(self.capacity)
        self.window = window
        self.epoch = -math.inf
        self.buckets: Deque[Tuple[int, Any]] = collections.deque(maxlen=buckets)
        self.bucket_seconds = bucket_seconds

    def touch(self, key: Any, now: float) -> Tuple[int, int]:
        """Count one L2 access; (frequency, distinct recent buckets seen) after it."""
        if now - self.epoch >= self.window:
            if self.epoch != -math.inf:
                self.sketch.reset()  # halve: older accesses count half, then fade
            self.epoch = now
        self.sketch.increment(key)
        bucket_id = int(now // self.bucket_seconds)
        if not self.buckets or self.buckets[-1][0] != bucket_id:
            self.buckets.append((bucket_id, FrequencySketch(max(64, self.capacity // 4))))
        self.buckets[-1][1].increment(key)
        oldest = bucket_id - (self.buckets.maxlen or 1) + 1
        seen = sum(1 for b, s in self.buckets if b >= oldest and s.frequency(key) > 0)
        return self.sketch.frequency(key), seen


class _Model:
    """Online logistic regression (SGD) over a handful of features; weights start favouring frequency."""

    FEATURES = ("bias", "log_frequency", "consistency", "log_size", "ttl_left", "priority")

    def __init__(self) -> None:
        self.w = [-1.6, 1.4, 1.0, -0.1, 0.3, 0.4]
        self.lr = 0.05
        self.updates = 0

    @staticmethod
    def features(freq: int, seen: int, buckets: int, size: int, remaining: Optional[float],
                 priority: str) -> List[float]:
        ttl_left = 1.0 if remaining is None else min(1.0, max(0.0, remaining) / 3600.0)
        return [1.0, math.log1p(freq), seen / max(1, buckets), math.log1p(size) / 10.0, ttl_left,
                _PRIORITY.get(priority, 0.5)]

    def p(self, x: List[float]) -> float:
        z = sum(w * v for w, v in zip(self.w, x))
        return 1.0 / (1.0 + math.exp(-max(-30.0, min(30.0, z))))

    def learn(self, x: List[float], y: float) -> None:
        g = y - self.p(x)
        self.w = [w + self.lr * g * v for w, v in zip(self.w, x)]
        self.updates += 1


class _Stats:
    __slots__ = ("strategy", "candidates", "promoted", "room", "skipped", "rejected", "bypassed", "seconds")

    def __init__(self, strategy: str) -> None:
        self.strategy = strategy
        self.candidates = self.promoted = self.room = self.skipped = self.rejected = self.bypassed = 0
        self.seconds = 0.0


class PromotionManager:
    """Promotion decisions for every namespace of a manager (thread-safe).

    `decide(namespace, cfg, l1, key, size, remaining)` -> bool, called on each L2 hit. Tunables:
    conditional `min_hits`/`window`, lazy `buckets`/`bucket_seconds`/`min_buckets`, predictive `horizon`
    (seconds after which a promoted entry's outcome is read) and `explore` (1 in N rejected candidates is
    promoted anyway, so the model keeps learning).
    """

    def __init__(self, *, timer: Optional[Callable[[], float]] = None, min_hits: int = 2, window: float = 60.0,
                 buckets: int = 4, bucket_seconds: float = 15.0, min_buckets: int = 2, horizon: float = 30.0,
                 explore: int = 20) -> None:
        self._timer = timer or time.monotonic
        self.min_hits, self.window = min_hits, window
        self.buckets, self.bucket_seconds, self.min_buckets = buckets, bucket_seconds, min_buckets
        self.horizon, self.explore = horizon, explore
        self._lock = threading.Lock()
        self._trackers: Dict[str, _Tracker] = {}
        self._stats: Dict[str, _Stats] = {}
        self._models: Dict[str, _Model] = {}
        self._pending: Dict[str, Deque[Tuple[float, Any, Any, List[float]]]] = {}
        self._explore_tick = 0

    def _tracker(self, namespace: str, cfg: Any) -> _Tracker:
        t = self._trackers.get(namespace)
        if t is None:
            t = self._trackers[namespace] = _Tracker(cfg.l1_max_entries or 1024, self.window, self.buckets,
                                                    self.bucket_seconds)
        return t

    def promoted_immediately(self, namespace: str, n: int = 1) -> None:
        """Count `n` L2 hits of an `immediate` namespace, promoted without a decision (nothing to track or
        weigh: the read path copies them straight into its LRU L1)."""
        with self._lock:
            stats = self._stats.get(namespace)
            if stats is None or stats.strategy != "immediate":
                stats = self._stats[namespace] = _Stats("immediate")
            stats.candidates += n
            stats.promoted += n

    def decide(self, namespace: str, cfg: Any, l1: Any, key: Any, size: int, remaining: Optional[float]) -> bool:
        strategy = resolve_strategy(cfg.promotion, cfg.priority)
        if strategy == "immediate":
            self.promoted_immediately(namespace)
            return True
        t0 = time.perf_counter()
        with self._lock:
            stats = self._stats.get(namespace)
            if stats is None or stats.strategy != strategy:
                stats = self._stats[namespace] = _Stats(strategy)
            stats.candidates += 1
            try:
                return self._decide(namespace, cfg, l1, key, size, remaining, strategy, stats)
            finally:
                stats.seconds += time.perf_counter() - t0

    def _decide(self, namespace: str, cfg: Any, l1: Any, key: Any, size: int, remaining: Optional[float],
                strategy: str, stats: _Stats) -> bool:
        """The gate for a conditional, lazy or predictive namespace (decide() promotes immediate ones)."""
        now = self._timer()
        freq, seen = self._tracker(namespace, cfg).touch(key, now)
        if strategy == "predictive":
            self._learn(namespace, l1, now)
        # room: nothing displaced (asked first: a duel lost here would spend one of the gate's random draws)
        if l1.has_room(size):
            stats.room += 1
            stats.promoted += 1
            return True
        l1.record_use(key)  # this L2 hit is a use: the gate weighs it against the residents' uses
        if strategy == "conditional":
            candidate = freq >= self.min_hits
        elif strategy == "lazy":
            candidate = seen >= self.min_buckets
        else:
            model = self._models.setdefault(namespace, _Model())
            x = _Model.features(freq, seen, self.buckets, size, remaining, cfg.priority)
            candidate = model.p(x) >= 0.5
            if not candidate:
                self._explore_tick += 1
                candidate = self._explore_tick % self.explore == 0
            if candidate:
                pending = self._pending.setdefault(namespace, collections.deque(maxlen=4096))
                pending.append((now, key, l1, x))
        if not candidate:
            stats.skipped += 1
            return False
        if cfg.priority == "high":
            stats.bypassed += 1
        elif not l1.admits(key, size):
            stats.rejected += 1
            return False
        stats.promoted += 1
        return True

    def _learn(self, namespace: str, l1: Any, now: float) -> None:
        """Read the outcome of promotions older than `horizon`: was the entry hit in L1 (y=1), or is it
        gone or unread (y=0)? A few per call: O(1) amortized."""
        pending = self._pending.get(namespace)
        if not pending:
            return
        model = self._models.setdefault(namespace, _Model())
        for _ in range(4):
            if not pending or now - pending[0][0] < self.horizon:
                break
            _, key, cache, x = pending.popleft()
            hit = cache.was_hit(key)
            model.learn(x, 1.0 if hit else 0.0)

    def stats(self, l1_stats: Optional[Dict[str, Dict[str, Any]]] = None,
              immediate: Optional[Dict[str, int]] = None) -> Dict[str, Dict[str, Any]]:
        """Per namespace: strategy, candidates, promoted (with room / bypassing the gate), skipped by the
        strategy, rejected by the gate, precision (promoted entries read again in L1, from HashCache),
        seconds spent deciding; predictive namespaces add the model's weights. `immediate`: {namespace: L2
        hits promoted without a decision}, which the read path counts itself."""
        out: Dict[str, Dict[str, Any]] = {}
        with self._lock:
            stats = dict(self._stats)
            for ns, n in (immediate or {}).items():
                old, s = stats.get(ns), _Stats("immediate")
                s.candidates = s.promoted = n + (old.promoted if old is not None and old.strategy == "immediate" else 0)
                stats[ns] = s
            for ns, s in stats.items():
                l1 = (l1_stats or {}).get(ns) or {}
                promoted_l1, hits_l1 = l1.get("promoted", 0), l1.get("promoted_hits", 0)
                entry: Dict[str, Any] = {
                    "strategy": s.strategy, "candidates": s.candidates, "promoted": s.promoted,
                    "promoted_with_room": s.room, "gate_bypassed": s.bypassed, "skipped_by_strategy": s.skipped,
                    "rejected_by_gate": s.rejected,
                    "promoted_then_hit": hits_l1,
                    "precision": hits_l1 / promoted_l1 if promoted_l1 else None,
                    "seconds": round(s.seconds, 6),
                }
                model = self._models.get(ns)
                if model is not None:
                    entry["model"] = {"weights": dict(zip(_Model.FEATURES, (round(w, 4) for w in model.w))),
                                      "updates": model.updates}
                out[ns] = entry
        return out

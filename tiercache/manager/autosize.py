"""Adaptive L1 budgets: the global L1 budget moves between namespaces toward where a byte buys the most hits.

With `CacheConfig(l1_max_bytes=B, l1_allocation="adaptive")` each namespace's L1 budget (its HashCache's
max_bytes) is a share of B, and the shares sum to B. Moving budget needs each namespace's hit-ratio curve
near its size: what it would gain with more bytes, and lose with fewer. The L1s measure it themselves: a
"tinylfu" HashCache already replays a sample of its lookups through small copies of itself to size its
window (tiercache.l1._minisim_py); two more copies, of half and twice its size with the window in use,
give the hit ratio at those sizes (`HashCache.size_curve()`). The estimate is the cache's own policy on the
namespace's own keys, so frequency-heavy, recency-heavy and looping namespaces are each judged right (an
earlier design counted hits on the keys L1 had evicted, "ghosts", as memcached's automover and Cliffhanger
do: under W-TinyLFU that misjudges, since much of what it evicts it turned away on frequency, which more
bytes would not change).

Every `period` L1 misses (over all namespaces), with each namespace's lookups, and its curve's counts, of
the last few periods (they halve each period):
- gain per byte = lookups x (hit ratio at twice its size - at its size) / (the bytes doubling adds),
- loss per byte = lookups x (hit ratio at its size - at half) / (the bytes halving removes),
each weighted by priority (a hit counts 2x in a high-priority namespace, 0.5x in a low one). `step` bytes
(B / 64) move from the namespace whose loss per byte is least, among those above their `l1_min_bytes` by
a step, to the one whose gain per byte is most, if the gain is larger. A namespace that does not fill 7/8
of its share gains nothing from more and loses nothing from less (its unused bytes go first), unless it is
still filling (a cold start: it keeps its share); one capped by its l1_max_entries receives nothing it
cannot use; one without a curve (fewer than 256 entries, or copies just made for a new size and not yet
filled) is judged as using what it has. A curve is evidence for the size it was measured at only: when
the copies are made again, what the old ones counted is dropped. No share is taken below room for 256
entries.

The same curves feed the health report's recommendations and /cache-metrics (CacheManager.l1_curves).
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple

__all__ = ["Autosizer", "Figures", "PRIORITY_WEIGHTS", "bytes_of"]

PRIORITY_WEIGHTS: Mapping[str, float] = {"high": 2.0, "medium": 1.0, "low": 0.5}
STEPS = 64  # one move shifts total / STEPS bytes
PERIOD = 2000  # L1 misses (over all namespaces) between moves
MAX_STEPS = 8  # steps one move may make
MIN_SIMULATED = 256  # entries an L1 needs for its curve (HashCache's simulations): no share is taken below

# What the manager reads from a namespace's L1: (hits, misses, bytes held, entries, HashCache.size_curve()).
Figures = Tuple[int, int, int, int, Optional[Dict[str, Any]]]


def bytes_of(count: int, held: int, entries: int) -> int:
    """The bytes `count` entries take in an L1 holding `entries` entries of `held` bytes (its average size):
    what a size curve's entries, or a floor in entries, come to in bytes."""
    return count * held // max(1, entries)


@dataclass
class _Space:
    """One namespace's share, floor and recent figures (decaying sums)."""

    share: int
    floor: int
    weight: float
    max_entries: Optional[int]
    wanted: int = 0  # its configured l1_max_bytes: its weight in the starting split
    lookups: float = 0.0  # L1 lookups
    hits: float = 0.0  # L1 hits
    sampled: float = 0.0  # lookups the copies saw
    size_hits: Tuple[float, float, float] = (0.0, 0.0, 0.0)  # theirs at half, one and twice the size
    stands_for: int = 0  # bytes the copies' size stands for
    held: int = 0  # bytes and entries its L1 held at the last reading
    entries: int = 0
    filling: bool = False  # it grew by more than 1/64 of its share between the last two readings
    last: Optional[Tuple[int, ...]] = None  # raw counts last read


class Autosizer:
    """The shares of the namespaces splitting `total` bytes of L1.

    `figures(ns)` reads a namespace's L1 (see Figures); `resize(ns, share)` applies a new share
    (HashCache.set_limits). Thread-safe; `resize` is called outside its lock.
    """

    def __init__(self, total: int, figures: Callable[[str], Figures], resize: Callable[[str, int], None],
                 period: int = PERIOD) -> None:
        self.total = total
        self.step = max(1, total // STEPS)
        self.period = period
        self._figures = figures
        self._resize = resize
        self._spaces: Dict[str, _Space] = {}
        self._misses = 0
        self._lock = threading.Lock()

    # ---------------------------------------------------------------- namespaces

    def add(self, namespace: str, wanted: int, floor: int, priority: str, max_entries: Optional[int]) -> int:
        """A namespace joins with its configured l1_max_bytes `wanted` and its `floor`; returns its share: the
        total split in proportion to the configured budgets of all namespaces so far (the others' shares,
        whatever they have become, shrink in proportion to make room)."""
        with self._lock:
            spaces = self._spaces
            held = sum(s.share for s in spaces.values())
            floors = sum(s.floor for s in spaces.values())
            floor = min(floor, self.total - floors)  # (the config checks its floors fit; later namespaces may not)
            share = self.total * wanted // max(1, sum(s.wanted for s in spaces.values()) + wanted)
            share = max(floor, min(share, self.total - floors))
            scale = (self.total - share) / max(1, held)
            for s in spaces.values():
                s.share = max(s.floor, int(s.share * scale))
            spaces[namespace] = _Space(share, floor, PRIORITY_WEIGHTS.get(priority, 1.0), max_entries, wanted)
            # the rounding's leftover goes to the largest share
            largest = max(spaces.values(), key=lambda s: s.share)
            largest.share += self.total - sum(s.share for s in spaces.values())
            resized = [(name, s.share) for name, s in spaces.items() if name != namespace]
            share = spaces[namespace].share
        for name, s_share in resized:
            self._resize(name, s_share)
        return share

    def update(self, namespace: str, floor: int, priority: str, max_entries: Optional[int]) -> int:
        """The namespace's settings changed; returns its share, raised to a new floor above it (the bytes
        taken from the shares furthest above their floors)."""
        moves: List[Tuple[str, int]] = []
        with self._lock:
            spaces = self._spaces
            s = spaces[namespace]
            others = sum(o.floor for n, o in spaces.items() if n != namespace)
            s.floor = min(floor, self.total - others)
            s.weight = PRIORITY_WEIGHTS.get(priority, 1.0)
            s.max_entries = max_entries
            while s.share < s.floor:
                donor = max((n for n in spaces if n != namespace), key=lambda n: spaces[n].share - spaces[n].floor)
                d = spaces[donor]
                take = min(s.floor - s.share, d.share - d.floor)
                if take <= 0:
                    break
                d.share -= take
                s.share += take
                moves.append((donor, d.share))
            share = s.share
        for name, donor_share in moves:
            self._resize(name, donor_share)
        return share

    def share(self, namespace: str) -> Optional[int]:
        s = self._spaces.get(namespace)
        return None if s is None else s.share

    def shares(self) -> Dict[str, int]:
        return {name: s.share for name, s in list(self._spaces.items())}

    # ---------------------------------------------------------------- the clock

    def missed(self, count: int) -> None:
        """`count` L1 misses happened; every `period` of them, budget may move."""
        moves: List[Tuple[str, int]] = []
        with self._lock:
            self._misses += count
            if self._misses < self.period:
                return
            self._misses = 0
            self._read()
            moves = self._move()
            self._decay()
        for name, share in moves:
            self._resize(name, share)

    # ---------------------------------------------------------------- internals

    def _read(self) -> None:
        """Add each L1's counts since the last reading."""
        for name, s in self._spaces.items():
            hits, misses, held, entries, curve = self._figures(name)
            s.filling = held > s.held + s.share // STEPS  # (a step's worth: not a few entries' churn)
            s.held, s.entries = held, entries
            raw = (hits, misses, 0, 0, 0, 0, 0)
            if curve is None:
                s.stands_for = 0
            else:
                half, one, double = curve["hits"]
                raw = (hits, misses, curve["lookups"], half, one, double, curve["entries"])
                s.stands_for = bytes_of(curve["entries"], held, entries)
            last = s.last or (0, 0, 0, 0, 0, 0, 0)
            if raw[0] < last[0] or raw[1] < last[1]:  # a new L1 (reconfigured): count from zero, its
                last = (0, 0, 0, 0, 0, 0, -1)  # curve (if it has one yet) new too
            if raw[2] < last[2] or raw[6] != last[6]:  # new copies, for another size: what the old ones saw
                last = last[:2] + (0, 0, 0, 0, raw[6])  # is of that size; count the new ones' from zero
                s.sampled, s.size_hits = 0.0, (0.0, 0.0, 0.0)
            s.hits += raw[0] - last[0]
            s.lookups += raw[0] - last[0] + raw[1] - last[1]
            s.sampled += raw[2] - last[2]
            s.size_hits = tuple(h + raw[3 + i] - last[3 + i] for i, h in enumerate(s.size_hits))  # type: ignore
            s.last = raw

    def _values(self, s: _Space) -> Tuple[float, float]:
        """(gain per byte of growing, loss per byte of shrinking), in weighted hits over the recent periods;
        (0, inf) without a curve: it neither receives nor gives."""
        if s.held * 8 < s.share * 7:
            if s.filling:
                return 0.0, float("inf")  # still filling (a cold start): its curve is not known yet
            return 0.0, 0.0  # it does not fill its share: more buys nothing, the unused part costs nothing
        if not s.sampled or not s.stands_for:
            return 0.0, float("inf")
        half, one, double = s.size_hits
        more, less = max(0.0, double - one), max(0.0, one - half)
        scale = s.weight * s.lookups / s.sampled
        gain = scale * more / s.stands_for
        loss = scale * less / (s.stands_for / 2)
        if s.max_entries is not None and s.entries >= s.max_entries:
            gain = 0.0  # capped by its entry limit: more bytes buy nothing
        return gain, loss

    def _move(self) -> List[Tuple[str, int]]:
        spaces = self._spaces
        if len(spaces) < 2:
            return []
        values = {name: self._values(s) for name, s in spaces.items()}
        receiver = max(spaces, key=lambda n: values[n][0])
        donors = [n for n, s in spaces.items() if n != receiver and s.share - self.step >= self._least(s)]
        if not donors:
            return []
        donor = min(donors, key=lambda n: (values[n][1], -spaces[n].share))
        gain, loss = values[receiver][0], values[donor][1]
        if gain <= loss:
            return []
        # a step, and one more for each doubling of gain over loss (up to MAX_STEPS): fast when it is clear
        # (nothing to lose is no evidence of much to gain: an idle namespace gives one step at a time)
        steps = 1 if loss <= 0 else min(MAX_STEPS, max(1, int(math.log2(gain / loss)) + 1))
        moved = min(steps * self.step, spaces[donor].share - self._least(spaces[donor]))
        spaces[donor].share -= moved
        spaces[receiver].share += moved
        return [(donor, spaces[donor].share), (receiver, spaces[receiver].share)]

    def _least(self, s: _Space) -> int:
        """The smallest share the namespace may be given: its floor, one step, and room for MIN_SIMULATED
        entries (at its average entry size), below which its L1 has no curve to claim bytes back with."""
        return max(s.floor, self.step, bytes_of(MIN_SIMULATED, s.held, s.entries))

    def _decay(self) -> None:
        for s in self._spaces.values():
            s.lookups /= 2
            s.hits /= 2
            s.sampled /= 2
            s.size_hits = tuple(h / 2 for h in s.size_hits)  # type: ignore[assignment]

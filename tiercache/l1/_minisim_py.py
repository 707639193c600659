"""Miniature simulations that choose W-TinyLFU's window size (twin of ext/tiercache/_minisim.pxi).

The best window depends on the workload: where how often a key was used predicts its next use, a window of
about 1 % wins (the main region's admission filter does the work); where a key's age predicts it (new keys
are the popular ones), most of the cache should be window, which is LRU; a loop wants no window at all. A
hill climber that compares one period's hit rate with the previous one's takes dozens of periods to cross
that range and is fooled by a workload that changes under it.

So the cache answers the question directly, as the miniature simulations of Einziger et al. ("Adaptive
Software Cache Management", Middleware 2018) and SHARDS-style sampling do: it keeps `len(PERCENTS)` small
copies of itself, each a W-TinyLFU over tags only with its own fixed window (0 % to 100 % of its capacity),
and feeds them the same sample of lookups: the keys whose tag has its sampling bits all 0 (one key in
2**shift, the copies 1/2**shift the cache's size, so each sees the cache's workload scaled down). The copies
share the cache's frequency sketch for their admission duels.

Each copy counts the sampled lookups it hit while the copy whose window the cache uses missed (wins), and the
other way round (losses). Every max(copy capacity, TARGET) sampled lookups (one cache capacity of lookups;
more for caches under 4,096 entries, whose small copies need the samples), the cache moves to the copy that
beats the one in use by the widest margin, if it does so significantly (McNemar's paired test at two standard
errors: (wins - losses)**2 > 4 (wins + losses)), and the counts restart; otherwise they lose an eighth
(rounded down), so evidence spans about eight such periods and a change of workload outweighs the old one
within a few. Until the copies fill, no copy evicts and none wins: the window stays.

When the window grows, the other window copies start again from what the copy of the new window holds
(_Copy.reseed): a larger window wins when the workload has changed under the cache, and the question is
then which window does best from the state the cache is now in. Left with their own histories, the copies
with small windows still held what the ended workload had made frequent (after a loop, its keys, whose
counts outlive it until the sketch ages) and kept losing to large windows long after those had flushed it
and stopped being right. When the window shrinks, the copies keep their histories: what a small-window
copy has kept (a loop's keys, say) is what it wins by.

The same question is asked of a copy that loses to the one in use significantly (the same test, the other
way): it too starts again from what the copy in use holds, its counts from zero. A window already at 100 %
cannot grow, so without this a copy whose history misleads it (after a loop the cache held whole with a
large window, a small-window copy's main region full of the loop's keys) lost until the sketch forgot them.
A copy that starts again this way does not duel until it has missed twice its capacity: until then it
holds what another window chose, which has the recent keys and the frequent ones together, and for a while
beats both that window and its own; counted at once, such copies won and moved the window where it then
did worse (docs/design.md). Copies that start again because the window grew duel at once; one still
waiting out a loss when that happens waits out the rest.

Cost: one AND on every lookup; a sampled lookup (at most one in 16) updates the seven copies (of 256 to 511
entries from 8,192 to about a million) and the two of half and twice that size; sampling stops at one in
2**MAX_SHIFT, so larger caches get larger copies. Caches too small for copies of MIN_ENTRIES keep their window. When max_bytes binds below the entry
limit, the copies are made again for the entries the cache holds (WTinyLfu._follow), filled from the old
ones (MiniSim.carry).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Callable, Optional, Tuple

__all__ = ["PERCENTS", "MiniSim", "sample_plan", "window_share"]

PERCENTS: Tuple[int, ...] = (0, 1, 5, 20, 50, 80, 100)  # the copies' windows, % of their capacity
START = 1  # index in PERCENTS of the window a cache starts with
SAMPLE_BIT = 10  # the sampled bits of a tag start here: above the table's control bits (4-9)
MIN_SHIFT = 4  # at most one lookup in 16 is simulated
MAX_SHIFT = 11  # (bits 10-20: below the home bits of copies of up to 1,023 entries)
TARGET = 256  # entries per copy, when the cache is large enough
MIN_ENTRIES = 16  # smaller copies would decide on noise
WARM = 4  # the size copies count after WARM x copy size sampled lookups, once the copy in use is full,
WARM_MAX = 16  # or after WARM_MAX x copy size (a workload whose sampled keys never fill it)
Z2 = 4  # a copy must beat the one in use by 2 standard errors: (wins - losses)**2 > Z2 * (wins + losses)
NEVER = 0xFFFFFFF0  # the sampling mask of a cache too small to simulate (only tag 0 passes, to no effect)


def window_share(cap: int, percent: int) -> int:
    """`percent` % of `cap` entries, rounded, and at least one entry for a window that is not 0 %."""
    share = (cap * percent + 50) // 100
    return max(1, share) if percent else share


def sample_plan(cap: int) -> Tuple[int, int]:
    """(copy capacity, sampling mask) for a cache of `cap` entries; (0, NEVER) when too small to simulate.
    A lookup is sampled when its tag AND the mask is 0."""
    shift = MIN_SHIFT
    while shift < MAX_SHIFT and (cap >> (shift + 1)) >= TARGET:
        shift += 1
    copy_cap = cap >> shift
    if copy_cap < MIN_ENTRIES:
        return 0, NEVER
    return copy_cap, ((1 << shift) - 1) << SAMPLE_BIT


class _Copy:
    """A W-TinyLFU over tags, `cap` entries, window `wmax`: the cache's own rules (ext/_wtinylfu), entries
    counted, the protected overflow demoted at once. OrderedDicts run least to most recently used."""

    __slots__ = ("window", "probation", "protected", "cap", "wmax", "pmax", "hit", "fresh")

    def __init__(self, cap: int, percent: int) -> None:
        self.window: "OrderedDict[int, None]" = OrderedDict()
        self.probation: "OrderedDict[int, None]" = OrderedDict()
        self.protected: "OrderedDict[int, None]" = OrderedDict()
        self.cap = cap
        self.set_window(percent)
        self.hit = False  # whether the last lookup hit
        self.fresh = 0  # misses still to take since it started again from another copy, before it duels

    def count(self) -> int:
        return len(self.window) + len(self.probation) + len(self.protected)

    def set_window(self, percent: int) -> None:
        """Give the window `percent` % of the copy (the lists follow on the next lookups)."""
        self.wmax = window_share(self.cap, percent)
        self.pmax = int((self.cap - self.wmax) * 0.8)

    def _carry_head(self, src: "_Copy", mask: int) -> int:
        """Into this empty copy, the most recent of `src`'s protected, then of its window, tags that `mask`
        samples, up to their shares and this copy's capacity; returns how many the window took."""
        for mine, theirs, share in ((self.protected, src.protected, self.pmax), (self.window, src.window, self.wmax)):
            most = min(share, self.cap - self.count())
            for tag in [tag for tag in theirs if not tag & mask][-most:] if most > 0 else []:
                mine[tag] = None
        return len(self.window)

    def carry(self, src: "_Copy", mask: int) -> None:
        """Fill this empty copy from `src`: its lists, protected first, take the most recent of their tags in
        `src` that `mask` samples, up to their shares and this copy's capacity."""
        self._carry_head(src, mask)
        most = self.cap - self.count()
        for tag in [tag for tag in src.probation if not tag & mask][-most:] if most > 0 else []:
            self.probation[tag] = None

    def reseed(self, src: "_Copy") -> None:
        """Start again from what `src` (of the same capacity) holds, in this copy's own lists' shares: its
        protected (the most recent that fit), the most recent of its window, then, in probation, the rest of
        its window at the recent end (where the window's overflow joins it) and its probation behind, up to the
        capacity."""
        for lru in (self.window, self.probation, self.protected):
            lru.clear()
        recent = self._carry_head(src, 0)
        room = self.cap - self.count()
        window = list(src.window)
        older = min(len(window) - recent, room)
        for tag in list(src.probation)[-(room - older):] if room - older > 0 else []:
            self.probation[tag] = None
        for tag in window[len(window) - recent - older:len(window) - recent]:
            self.probation[tag] = None

    def lookup(self, tag: int, admits: Callable[[int, int], bool]) -> None:
        window, probation, protected = self.window, self.probation, self.protected
        if tag in window:
            window.move_to_end(tag)
        elif tag in probation:
            del probation[tag]
            protected[tag] = None
            while len(protected) > self.pmax:
                probation[protected.popitem(last=False)[0]] = None
        elif tag in protected:
            protected.move_to_end(tag)
        else:
            self._insert(tag, admits)
            self.hit = False
            return
        self.hit = True

    def _insert(self, tag: int, admits: Callable[[int, int], bool]) -> None:
        window, probation, protected = self.window, self.probation, self.protected
        window[tag] = None
        candidates = 0
        while len(window) > self.wmax:
            probation[window.popitem(last=False)[0]] = None
            candidates += 1
        while len(window) + len(probation) + len(protected) > self.cap:
            if not probation:
                if protected:
                    probation[protected.popitem(last=False)[0]] = None
                else:
                    window.popitem(last=False)
                continue
            victim = next(iter(probation))
            candidate = next(reversed(probation))
            if candidates == 0 or victim == candidate:
                del probation[victim]
            elif admits(candidate, victim):
                del probation[victim]
            else:
                del probation[candidate]
                candidates -= 1


class MiniSim:
    """The copies of one cache (`copy_cap` entries each, from sample_plan) and the window they chose."""

    __slots__ = ("copies", "sizes", "period", "seen", "choice", "wins", "losses", "warmup", "warm", "sampled",
                 "size_hits")

    def __init__(self, copy_cap: int, choice: int = START) -> None:
        self.copies = [_Copy(copy_cap, p) for p in PERCENTS]
        # two more, of half and twice the size, with the window in use: the hit ratio around the cache's
        # size, for HashCache.size_curve (the manager's adaptive L1 budgets)
        self.sizes = [_Copy(copy_cap // 2, PERCENTS[choice]), _Copy(copy_cap * 2, PERCENTS[choice])]
        self.warmup = 0  # sampled lookups while the size copies fill (they count once `warm`: see lookup)
        self.warm = False
        self.sampled = 0  # sampled lookups counted since
        self.size_hits = [0, 0, 0]  # of them, hits at half, one and twice the size
        self.period = max(copy_cap, TARGET)
        self.seen = 0
        self.choice = choice
        self.wins = [0] * len(PERCENTS)  # lookups copy i hit and the copy in use missed
        self.losses = [0] * len(PERCENTS)  # and the other way round

    def carry(self, old: "MiniSim", mask: int) -> None:
        """The cache changed size: fill these copies, made for the new one, from `old`'s, each from the one
        in the same place, with the keys still sampled under `mask` (all, unless the sampling got sparser),
        the most recent that fit; the windows' duels and the warm-up go on where they were. The size counts
        start again (they were of the old size). Without this every resize would empty the copies, and the
        window could not move until they filled again: for a namespace whose budget moves, long stretches
        with the wrong window."""
        for copy, src in zip(self.copies + self.sizes, old.copies + old.sizes):
            copy.carry(src, mask)
        self.wins, self.losses = list(old.wins), list(old.losses)
        for copy, src in zip(self.copies, old.copies):
            copy.fresh = src.fresh
        self.warmup = old.warmup
        self.seen = old.seen

    def lookup(self, tag: int, admits: Callable[[int, int], bool]) -> Optional[int]:
        """A sampled lookup of `tag`. The window (% of capacity) to use when it changes; else None."""
        copies, wins, losses = self.copies, self.wins, self.losses
        for copy in copies:
            copy.lookup(tag, admits)
        sizes = self.sizes
        for copy in sizes:
            copy.lookup(tag, admits)
        hit = copies[self.choice].hit
        if not self.warm:
            self.warmup += 1
            cap = copies[0].cap
            # warm once the copy in use is full (until then the copy of twice the size holds the same keys)
            # or its keys never fill it, and not before WARM x cap lookups
            one = copies[self.choice]
            self.warm = self.warmup >= WARM * cap and (one.count() >= one.cap or self.warmup >= WARM_MAX * cap)
        else:
            self.sampled += 1
            size_hits = self.size_hits
            size_hits[0] += sizes[0].hit
            size_hits[1] += hit
            size_hits[2] += sizes[1].hit
        for i in range(len(copies)):
            copy = copies[i]
            if copy.fresh:
                if not copy.hit:
                    copy.fresh -= 1
            elif copy.hit != hit:
                if hit:
                    losses[i] += 1
                else:
                    wins[i] += 1
        self.seen += 1
        if self.seen < self.period:
            return None
        self.seen = 0
        best, margin = self.choice, 0
        for i in range(len(copies)):
            m = wins[i] - losses[i]
            if m > margin and m * m > Z2 * (wins[i] + losses[i]):
                best, margin = i, m
        if best == self.choice:
            for i in range(len(copies)):
                m = losses[i] - wins[i]
                if m > 0 and m * m > Z2 * (wins[i] + losses[i]):
                    # it lost, significantly, from its own state: ask again from the cache's
                    copies[i].reseed(copies[self.choice])
                    copies[i].fresh = 2 * copies[i].cap
                    wins[i] = losses[i] = 0
                else:
                    wins[i] -= wins[i] >> 3
                    losses[i] -= losses[i] >> 3
            return None
        for i in range(len(copies)):
            wins[i] = losses[i] = 0
            if i != best and PERCENTS[best] > PERCENTS[self.choice]:
                copies[i].reseed(copies[best])
        self.choice = best
        for copy in sizes:
            copy.set_window(PERCENTS[best])
        return PERCENTS[best]

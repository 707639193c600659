"""Pure-Python W-TinyLFU: the policy state behind `HashCache(policy="tinylfu")`.

    new entry ──> window (LRU, ~1 % to start) ──overflow──> probation ──hit──> protected (80 % of main)
                                                   ^                               │ overflow, demoted
                                                   └───────────────────────────────┘ on the next write

When the cache is over its limits, the entry the window just pushed out (the candidate, at the head of
probation) meets the probation's LRU (the victim): the one used less often lately goes (each entry counts
its uses, FREQ; see WTinyLfu). The
window's size is the one that hit most in miniature simulations of the cache on a sample of its lookups
(_minisim_py).
The compiled core (ext/tiercache/_core_c.pyx) draws the same picture and takes the same steps, list for
list, float for float.

HashCache holds one `WTinyLfu` and tells it of every insert, use, resize and removal; the policy holds no
reference back to the cache, which passes what it needs (`over`, `evict`) to `maintain()`.

The entry record and its lists are defined here, below HashCache, because the policy moves entries between
lists: an entry is a list [value, size, expires, seq, prev, next, key, flags, seg, tag] (a list is the
cheapest mutable record in pure Python), threaded through a circular list whose sentinel (root) has
root[NEXT] = the least recently used entry and root[PREV] = the most recent.
"""

from __future__ import annotations

from typing import Any, Callable, Iterable, List, Optional, Tuple

from ._minisim_py import PERCENTS, START, MiniSim, sample_plan, window_share
from ._sketch_py import FrequencySketch

__all__ = [
    "VALUE", "SIZE", "EXPIRES", "SEQ", "PREV", "NEXT", "KEY", "FLAGS", "SEG", "TAG", "FREQ",
    "WINDOW", "PROBATION", "PROTECTED", "WTinyLfu", "link_last", "new_root", "release_list", "unlink_node",
]

# Entry fields. SEG: W-TinyLFU's list for the entry; TAG: the key's 28-bit hash tag, its name in the frequency
# sketch (0 under the lru policy, which has no sketch); FREQ: how often it was used lately, while it is held
# (0..16; see WTinyLfu).
VALUE, SIZE, EXPIRES, SEQ, PREV, NEXT, KEY, FLAGS, SEG, TAG, FREQ = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10
ENTRY_FIELDS = 11
# SEG values.
WINDOW, PROBATION, PROTECTED = 0, 1, 2
MOVES = 64  # entries maintain() moves between lists per call, at most, from each of window and protected


def new_root() -> List[Any]:
    """An empty list: its sentinel, linked to itself."""
    root: List[Any] = [None] * ENTRY_FIELDS
    root[PREV] = root[NEXT] = root
    return root


def link_last(root: List[Any], entry: List[Any]) -> None:
    """Link `entry` as the most recent of `root`'s list."""
    last = root[PREV]
    entry[PREV] = last
    entry[NEXT] = root
    last[NEXT] = root[PREV] = entry


def unlink_node(entry: List[Any]) -> None:
    prev, nxt = entry[PREV], entry[NEXT]
    prev[NEXT] = nxt
    nxt[PREV] = prev
    entry[PREV] = entry[NEXT] = None


def release_list(root: List[Any]) -> None:
    """Break the list's reference cycles (its entries are being dropped): values go at once, not at GC."""
    entry = root[NEXT]
    while entry is not root:
        entry[PREV], entry = None, entry[NEXT]
    root[PREV] = root[NEXT] = None


class WTinyLfu:
    """W-TinyLFU's lists, their totals, the frequency sketch and the simulations sizing the window, for one cache.

    Not thread-safe on its own: the cache calls it with its lock held. `window` is the cache's recency list
    (the cache links new entries there and then calls `inserted`); `probation` and `protected` are the main
    area's. Sized by `reset()` for the cache's limits, and again whenever they change.

    A held key's frequency lives in its entry (FREQ), not in the sketch: a use adds one to it, and to the
    sketch's aging clock, without hashing the key; the admission duel compares the entries' counts; when an
    entry leaves, its count goes back to the sketch (FrequencySketch.raise_tag). The sketch keeps the history
    of keys not held (misses, new keys, L2 reads counted by record_use) and every use of the keys the window
    copies sample, so the copies judge by the same counts. Each aging of the sketch halves the entries'
    counts too.
    """

    __slots__ = (
        "window", "probation", "protected", "win_count", "win_bytes", "prot_count", "prot_bytes",
        "max_bytes", "max_entries", "sketch", "cap", "wmax", "minisim", "sample_mask", "plan_entries",
        "plan_choice", "agings_seen",
    )

    def __init__(self, window: List[Any], max_bytes: Optional[int], max_entries: Optional[int]) -> None:
        self.window = window
        self.probation = new_root()
        self.protected = new_root()
        self.win_count = self.win_bytes = self.prot_count = self.prot_bytes = 0
        self.reset(max_bytes, max_entries)

    def reset(self, max_bytes: Optional[int], max_entries: Optional[int]) -> None:
        """Size the sketch, the window and the simulations for these limits (the simulations restart)."""
        self.max_bytes = max_bytes
        self.max_entries = max_entries
        cap = max(1, max_entries if max_entries is not None else 64)
        self.sketch = FrequencySketch(cap)
        self.agings_seen = 0
        self.cap = cap
        self.wmax = window_share(cap, PERCENTS[START])
        self._plan(cap, START)

    def clear(self, window: List[Any]) -> None:
        """The cache dropped every entry and released its window; `window` is its new, empty one."""
        release_list(self.probation)
        release_list(self.protected)
        self.window = window
        self.probation = new_root()
        self.protected = new_root()
        self.win_count = self.win_bytes = self.prot_count = self.prot_bytes = 0

    # -- what the cache reports

    def inserted(self, entry: List[Any], entries: int) -> bool:
        """`entry` is new, linked last in the window; the cache now holds `entries` entries. With no
        max_entries, the sketch doubles once the cache holds more entries than it was sized for. Its first
        use is counted now (`counted`), or, when True is returned, by the cache once it has made room: the
        compiled core waits for the key's sketch block to load, and where making room cannot involve the
        entry for size or count (the window holds older entries, keeps at least one, and the entry fits its
        share of the bytes) and the count will not age the sketch, both twins wait."""
        self.win_count += 1
        self.win_bytes += entry[SIZE]
        sketch = self.sketch
        if self.max_entries is None and entries > sketch.capacity:
            self._grow_sketch(entries)
        if (self.window[NEXT] is not entry and self.wmax >= 1 and sketch.size + 1 < sketch.sample
                and (self.max_bytes is None or entry[SIZE] <= self._window_bytes())):
            return True
        self.counted(entry)
        return False

    def counted(self, entry: List[Any]) -> None:
        """The first use of `entry`, new (still held or already evicted): counted in the sketch; the entry
        starts from the sketch's estimate."""
        f = self.sketch.count_tag(entry[TAG])
        self.sync_aging()
        entry[FREQ] = f

    def reweighed(self, entry: List[Any], size: int) -> None:
        """`entry`'s size is about to change to `size`."""
        self._seg_add(entry[SEG], 0, size - entry[SIZE])

    def removed(self, entry: List[Any]) -> None:
        """`entry` has left the cache (and been unlinked from its list): its count goes back to the sketch
        (the compiled core skips the write-back where it would change nothing)."""
        self.sketch.raise_tag(entry[TAG], entry[FREQ])
        self._seg_add(entry[SEG], -1, -entry[SIZE])

    def dropped_all(self, entries: Iterable[List[Any]]) -> None:
        """The cache is dropping every entry (clear): their counts go back to the sketch."""
        raise_tag = self.sketch.raise_tag
        for entry in entries:
            raise_tag(entry[TAG], entry[FREQ])

    def sync_aging(self) -> None:
        """If the sketch aged since the last look, so do the entries' counts (halved, rounding up: the
        compiled twin's wt_halve_counts says why); and with a max_entries, the next period is set for the
        entries held (a cache its bytes bind below max_entries ages as one of its real size)."""
        if self.sketch.agings != self.agings_seen:
            self.agings_seen = self.sketch.agings
            held = 0
            for root in (self.window, self.probation, self.protected):
                entry = root[NEXT]
                while entry is not root:
                    entry[FREQ] = (entry[FREQ] + 1) >> 1
                    entry = entry[NEXT]
                    held += 1
            if self.max_entries is not None:
                self.sketch.age_for(held)

    def use(self, entry: List[Any]) -> None:
        """A use of `entry` (a hit, an update, a touch): counted, and moved to the end of its list."""
        tag = entry[TAG]
        if tag & self.sample_mask == 0:  # (a key the copies sample: the sketch counts its every use)
            if entry[FREQ] < 16:
                entry[FREQ] += 1
            self.sketch.increment_tag(tag)
        elif entry[FREQ] < 16:
            entry[FREQ] += 1
            self.sketch.tick()
        self.sync_aging()
        seg = entry[SEG]
        if seg == PROBATION:  # (protected may now be over its share: maintain() demotes on the next write)
            self._move(entry, PROTECTED)
        else:
            root = self.window if seg == WINDOW else self.protected
            if root[PREV] is not entry:
                unlink_node(entry)
                link_last(root, entry)

    def sampled(self, tag: int, entries: int, nbytes: int) -> None:
        """A lookup of the key tagged `tag`, one that `tag & sample_mask == 0` picked for the simulations
        (the cache tests the mask, so an unsampled lookup costs no call); the cache holds `entries` entries
        of `nbytes` bytes."""
        minisim = self.minisim
        if minisim is not None:
            percent = minisim.lookup(tag, self.sketch.admit_tag)
            if percent is not None:
                self.wmax = window_share(self.cap, percent)
            self._follow(minisim, entries, nbytes)

    def _follow(self, minisim: MiniSim, entries: int, nbytes: int) -> None:
        """When max_bytes binds (the cache is 7/8 full by bytes, below its entry limit), the copies should
        stand for the entries it holds, not for its capacity in entries: made again for them (filled from
        the old ones) when the two differ by more than a quarter."""
        if self.max_bytes is None or nbytes * 8 < self.max_bytes * 7:
            return
        if self.max_entries is not None and entries >= self.max_entries:
            return
        if abs(entries - self.plan_entries) * 4 > self.plan_entries:
            self._plan(entries, minisim.choice, carry=True)
            if self.max_entries is not None:  # (one bounded by bytes only sized its sketch as it grew)
                self.sketch.age_for(entries)

    def regain(self, entries: int, nbytes: int) -> None:
        """A new max_bytes: a cache without copies (its bytes held too few entries for them) makes them for the
        entries the new budget holds at its average entry size (`nbytes` / `entries`), once that is a quarter
        more than they were last planned for (_follow, which needs copies to run, adjusts them when the
        bytes bind)."""
        if self.minisim is not None or self.max_bytes is None or not entries:
            return
        planned = self.max_bytes // max(1, nbytes // entries)
        if self.max_entries is not None and planned > self.max_entries:
            planned = self.max_entries
        if planned * 4 > self.plan_entries * 5:
            self._plan(planned, self.plan_choice, carry=True)

    # -- what the cache asks

    def window_over(self) -> bool:
        """Whether the window holds more than its share (maintain() then moves its overflow to probation)."""
        if self.max_entries is not None and self.win_count > self.wmax:
            return True
        return self.max_bytes is not None and self.win_bytes > self._window_bytes()

    def _window_bytes(self) -> int:
        """The window's share of max_bytes (not None)."""
        return int(float(self.max_bytes) * self.wmax / self.cap)  # type: ignore[arg-type]

    def next_victim(self) -> Optional[List[Any]]:
        """The entry to evict first, roughly (the LRU of probation, else of protected, else of the window)."""
        for root in (self.probation, self.protected, self.window):
            if root[NEXT] is not root:
                return root[NEXT]  # type: ignore[no-any-return]
        return None

    def admits(self, tag: int) -> bool:
        """Whether the key tagged `tag` wins the admission duel against the entry to evict first (True when
        none)."""
        victim = self.next_victim()
        if victim is None:
            return True
        return self.sketch.admit_counts(self.sketch.frequency_tag(tag), victim[FREQ])

    def maintain(self, over: Callable[[], bool], evict: Callable[[List[Any], Any], None], dropped: Any) -> None:
        """Demote protected's and the window's overflow to probation (at most MOVES of each per call: after
        the window's size changes, the lists follow over the next writes), then, while `over()`, evict with
        `evict(entry, dropped)` (which unlinks the entry and reports it through `removed`)."""
        candidates = moved = 0
        window, probation, protected = self.window, self.probation, self.protected
        while moved < MOVES and self._protected_over() and protected[NEXT] is not protected:
            self._move(protected[NEXT], PROBATION)
            moved += 1
        while candidates < MOVES and self.window_over() and window[NEXT] is not window:
            self._move(window[NEXT], PROBATION)
            candidates += 1
        sketch = self.sketch
        while over():
            if probation[NEXT] is probation:
                if protected[NEXT] is not protected:
                    self._move(protected[NEXT], PROBATION)
                else:
                    evict(window[NEXT], dropped)
                continue
            victim, candidate = probation[NEXT], probation[PREV]
            if candidates == 0 or victim is candidate:
                evict(victim, dropped)
                continue
            if sketch.admit_counts(candidate[FREQ], victim[FREQ]):
                evict(victim, dropped)
            else:
                evict(candidate, dropped)
                candidates -= 1

    # -- internals

    def _protected_over(self) -> bool:
        if self.max_entries is not None and self.prot_count > int((self.cap - self.wmax) * 0.8):
            return True
        return self.max_bytes is not None and self.prot_bytes > int(
            float(self.max_bytes) * (self.cap - self.wmax) / self.cap * 0.8)

    def _seg_add(self, seg: int, count: int, size: int) -> None:
        if seg == WINDOW:
            self.win_count += count
            self.win_bytes += size
        elif seg == PROTECTED:
            self.prot_count += count
            self.prot_bytes += size

    def _move(self, entry: List[Any], seg: int) -> None:
        unlink_node(entry)
        self._seg_add(entry[SEG], -1, -entry[SIZE])
        self._seg_add(seg, 1, entry[SIZE])
        entry[SEG] = seg
        link_last((self.window, self.probation, self.protected)[seg], entry)

    def size_curve(self) -> Optional[Tuple[int, int, int, int, int]]:
        """(entries the copies stand for, lookups they sampled, hits at half / one / twice that size),
        counted since they were made; None without copies."""
        minisim = self.minisim
        if minisim is None:
            return None
        half, one, double = minisim.size_hits
        return self.plan_entries, minisim.sampled, half, one, double

    def _plan(self, entries: int, choice: int, carry: bool = False) -> None:
        """Copies for a cache of `entries` entries (with `carry`, filled from those they replace)."""
        copy_cap, self.sample_mask = sample_plan(entries)
        self.plan_entries = entries
        self.plan_choice = choice  # (the window in use, kept while a cache too small has no copies)
        old = self.minisim if carry else None
        minisim = MiniSim(copy_cap, choice) if copy_cap else None
        if minisim is not None and old is not None:
            minisim.carry(old, self.sample_mask)
        self.minisim: Optional[MiniSim] = minisim

    def _grow_sketch(self, entries: int) -> None:
        """A cache bounded by bytes only now holds `entries`, more than its sketch was sized for: double the
        sketch (keeping its counts), scale the window, and size the copies for the entries held (fewer than
        the new capacity: the bytes may bind first)."""
        old = self.cap
        cap = self.sketch.capacity * 2
        self.sketch.grow(cap)
        self.cap = cap
        self.wmax = self.wmax * cap // old
        self._plan(entries, self.minisim.choice if self.minisim is not None else self.plan_choice, carry=True)

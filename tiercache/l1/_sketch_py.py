"""Pure-Python FrequencySketch: the twin of the compiled sketch (ext/tiercache/_sketch.pxi).

TinyLFU's frequency estimate for W-TinyLFU (HashCache's policy "tinylfu") and for the promotion gate. A key
is named in the sketch by its 28-bit hash tag, which HashCache keeps per entry so eviction never rehashes a
key.
"""

from __future__ import annotations

from typing import Hashable, Tuple

__all__ = ["FrequencySketch", "hash_tag"]

_M64 = (1 << 64) - 1
WARM_CANDIDATE = 6  # a losing candidate this warm may still win one duel in JITTER + 1 (admit_tag)
JITTER = 127


def hash_tag(h: int) -> int:
    """The 28-bit hash tag of a key's hash (the compiled core's hash_tag): its name in the sketch."""
    return (((h & _M64) * 0x9E3779B97F4A7C15) & _M64) >> 32 & 0xFFFFFFF0


def _mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _cells(t: int, block_mask: int) -> Tuple[int, int, Tuple[Tuple[int, int], ...]]:
    """Where the key tagged `t` lives in a sketch of `block_mask`: its block's doorkeeper word, the mask of
    its two doorkeeper bits there, and its four counters as (word, shift) (the compiled twin's _word and
    _shift)."""
    m, m2 = _mix(t), _mix((t + 0x9E3779B97F4A7C15) & _M64)
    base = ((m >> 32) & block_mask) * 8
    return (base + 7, (1 << ((m2 >> 32) & 63)) | (1 << ((m2 >> 40) & 63)),
            ((base + (((m & 0xFF) * 7) >> 8), ((m2 >> 16) & 15) * 4),  # (counter i: byte i of m, nibble
             (base + ((((m >> 8) & 0xFF) * 7) >> 8), ((m2 >> 20) & 15) * 4),  # 4 + i of m2)
             (base + ((((m >> 16) & 0xFF) * 7) >> 8), ((m2 >> 24) & 15) * 4),
             (base + ((((m >> 24) & 0xFF) * 7) >> 8), ((m2 >> 28) & 15) * 4)))


class FrequencySketch:
    """TinyLFU's frequency sketch: 4-bit count-min counters, a doorkeeper, periodic aging.

    O(1) per key and memory bounded by `capacity` (16 bytes per entry it is sized for), whatever the number
    of distinct keys. `frequency(key)` is 0..16, an estimate of recent uses. The compiled twin
    (_sketch.pxi) documents the layout; this class does the same, operation for operation.
    """

    __slots__ = ("table", "words", "block_mask", "capacity", "sample", "size", "draws", "agings")

    def __init__(self, capacity: int) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__} {capacity!r}")
        capacity = max(1, capacity)
        n = 8
        while n < 2 * capacity:
            n <<= 1
        self.table = [0] * n
        self.words = n
        self.block_mask = n // 8 - 1
        self.capacity = capacity
        self.sample = 10 * max(capacity, 16)
        self.size = 0
        self.draws = 0  # the admission duel's random draws so far (admit_counts)
        self.agings = 0  # agings so far

    def frequency_tag(self, t: int) -> int:
        door, bits, cells = _cells(t, self.block_mask)
        table = self.table
        f = 15
        for w, shift in cells:
            c = (table[w] >> shift) & 15
            if c < f:
                f = c
        return f + (1 if table[door] & bits == bits else 0)

    def count_tag(self, t: int) -> int:
        """increment_tag, then frequency_tag (after any aging the increment caused)."""
        self.increment_tag(t)
        return self.frequency_tag(t)

    def admit_counts(self, f: int, victim: int) -> bool:
        """Whether a candidate used `f` times lately should displace a victim used `victim` times: it was
        used more, or it is warm (WARM_CANDIDATE or more) and wins one draw in JITTER + 1. The compiled
        twin (counts_admit) says why."""
        if f > victim:
            return True
        if f < WARM_CANDIDATE:
            return False
        self.draws += 1
        return _mix(self.draws) & JITTER == 0

    def admit_tag(self, candidate: int, victim: int) -> bool:
        """admit_counts for the keys tagged `candidate` and `victim`, by the sketch's estimates."""
        return self.admit_counts(self.frequency_tag(candidate), self.frequency_tag(victim))

    def raise_tag(self, t: int, f: int) -> None:
        """The key tagged `t` was used `f` times lately (counted elsewhere): its estimate becomes at least
        that (its doorkeeper bits set, its counters raised to f - 1). Adds nothing to the aging clock."""
        if f <= 0:
            return
        door, bits, cells = _cells(t, self.block_mask)
        table = self.table
        table[door] |= bits
        f = min(f - 1, 15)
        for w, shift in cells:
            c = (table[w] >> shift) & 15
            if c < f:
                table[w] += (f - c) << shift

    def increment_tag(self, t: int) -> None:
        door, bits, cells = _cells(t, self.block_mask)
        table = self.table
        if table[door] & bits != bits:
            table[door] |= bits
            return
        added = False
        for w, shift in cells:
            if (table[w] >> shift) & 15 < 15:
                table[w] += 1 << shift
                added = True
        if added:
            self.tick()

    def tick(self) -> None:
        """One addition on the aging clock (an increment that raised a counter, or a use a held entry
        counted in itself): the sketch ages every `sample` of them."""
        self.size += 1
        if self.size >= self.sample:
            self.reset()

    def reset(self) -> None:
        """Aging: halve every counter and clear the doorkeepers."""
        odd = 0
        table = self.table
        for i, v in enumerate(table):
            if i & 7 == 7:
                table[i] = 0
            else:
                odd += bin(v & 0x1111111111111111).count("1")
                table[i] = (v >> 1) & 0x7777777777777777
        self.agings += 1
        self.size = max(0, (self.size - odd // 4) // 2)  # (a grown sketch's tiles count each odd counter again)

    def age_for(self, entries: int) -> None:
        """Age as a sketch for `entries` entries would (every 10 x entries additions), up to the capacity's
        period: for a cache whose byte limit holds fewer entries than the sketch was sized for. Additions
        counted past half the new period are dropped, so a shorter period ages once, not at every addition."""
        if isinstance(entries, bool) or not isinstance(entries, int):
            raise TypeError(f"entries must be an int, got {type(entries).__name__} {entries!r}")
        self.sample = 10 * max(min(entries, self.capacity), 16)
        self.size = min(self.size, self.sample // 2)

    def grow(self, capacity: int) -> None:
        """Size the sketch for a larger `capacity`, keeping every key's frequency: the table only doubles, a
        key's block in the larger table is its block in the smaller one or that plus the smaller one's size,
        and the larger table starts as copies of the smaller one. Additions since the last aging carry
        over; the aging period grows."""
        if isinstance(capacity, bool) or not isinstance(capacity, int):
            raise TypeError(f"capacity must be an int, got {type(capacity).__name__} {capacity!r}")
        if capacity <= self.capacity:
            return
        n = self.words
        while n < 2 * capacity:
            n <<= 1
        self.table = self.table * (n // self.words)  # (made before anything changes: a MemoryError leaves it)
        self.words = n
        self.block_mask = n // 8 - 1
        self.capacity = capacity
        self.sample = 10 * max(capacity, 16)

    def increment(self, key: Hashable) -> None:
        """Count one use of `key`."""
        self.increment_tag(hash_tag(hash(key)))

    def admits(self, candidate: Hashable, victim: Hashable) -> bool:
        """Whether `candidate` should displace `victim` in the cache (admit_tag)."""
        return self.admit_tag(hash_tag(hash(candidate)), hash_tag(hash(victim)))

    def frequency(self, key: Hashable) -> int:
        """About how often `key` was used lately (0..16)."""
        return self.frequency_tag(hash_tag(hash(key)))

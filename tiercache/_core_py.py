"""Pure-Python HashCache: the reference twin of the compiled core (ext/tiercache/_core_c.pyx).

Both implementations have the same public behaviour, raise the same errors and count the same stats for
the same operations; this one is written to be read. Layout:

    _data   dict key -> entry [value, size, expires, seq, prev, next, key]
    _root   sentinel of the circular recency list threaded through the entries' prev/next:
            _root[_NEXT] is the least recently used entry (the next to evict), _root[_PREV] the most recent
    _heap   min-heap of (expires, seq, key) for entries with a TTL; a record is stale once its key maps
            to another entry (or none), and is dropped when it reaches the top (lazy deletion)

The recency list is linked by hand rather than kept in an OrderedDict: moving an entry then needs no
hashing of the user's key (no user code), and OrderedDict is not safe against keys whose __eq__ mutates it.

Rules both implementations follow (tests/test_contract.py pins them down):
- `get`, `set`, `touch` count as use; `peek`, `in`, `ttl`, `delete`, `pop` do not.
- `get`/`get_many` count hits and misses; nothing else does.
- An expired entry met by any call is dropped and counted in `expirations`; `expire()`, `len()`,
  `stats()` and iteration first drop every expired entry.
- The timer is read only when the entry at hand has an expiry, when a TTL is being set, or (in `set`)
  when some entry in the cache has an expiry, since expired entries are dropped before live ones are evicted.
- Objects leaving the cache are released only after the cache is consistent again and the lock is
  released, so a destructor that re-enters the cache sees a whole structure.
"""

from __future__ import annotations

import heapq
import sys
import threading
import time
from typing import Any, Callable, Dict, Hashable, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from . import _cleanup
from ._validate import (
    check_callable,
    check_default_ttl,
    check_policy,
    check_interval,
    check_max_bytes,
    check_max_entries,
    check_size,
    check_ttl,
    too_heavy,
    unhashable,
)
from ._validate import BYTES_CEILING as _BYTES_CEILING
from .metrics import Histogram as SampleHistogram  # (the compiled core counts in C)
from ._msgpack_py import _read_l2_value, decode_l2  # noqa: F401  (the twins of the compiled core's units)
from ._readpath_py import MISSING, NamespaceState, ReadPath, Ready, jittered  # noqa: F401
from ._resp_py import resp_command  # noqa: F401
from .wire import WIRE_CONSTANTS  # noqa: F401

__all__ = ["FrequencySketch", "HashCache", "MISSING", "NamespaceState", "ReadPath", "Ready", "SampleHistogram", "WIRE_CONSTANTS",
           "decode_l2", "default_sizer", "jittered", "resp_command"]

_MISSING: Any = object()
_monotonic = time.monotonic
_ABSENT: Any = object()

# Entry fields (a list is the cheapest mutable record in pure Python).
_VALUE, _SIZE, _EXPIRES, _SEQ, _PREV, _NEXT, _KEY, _FLAGS, _SEG, _TAG = 0, 1, 2, 3, 4, 5, 6, 7, 8, 9
# _SEG: W-TinyLFU's list for the entry; _TAG: the key's 28-bit hash tag, its name in the frequency sketch (0 under
# the lru policy, which has no sketch).
_WINDOW, _PROBATION, _PROTECTED = 0, 1, 2
# _FLAGS bits (as the compiled core's ENTRY_*): stored by _promote(); a promoted entry hit since.
_PROMOTED, _HIT = 1, 2



def default_sizer(value: Any) -> int:
    """Weight of `value`: its length for str/bytes/bytearray, `nbytes` for memoryview, else sys.getsizeof."""
    tp = type(value)
    if tp is bytes or tp is str or tp is bytearray:
        return len(value)
    if tp is memoryview:
        return value.nbytes
    return sys.getsizeof(value)


_M64 = (1 << 64) - 1


def _tag(h: int) -> int:
    """The 28-bit hash tag of a key's hash (the compiled core's hash_tag): its name in the sketch."""
    return (((h & _M64) * 0x9E3779B97F4A7C15) & _M64) >> 32 & 0xFFFFFFF0


def _mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


class FrequencySketch:
    """TinyLFU's frequency sketch: 4-bit count-min counters, a doorkeeper, periodic aging.

    O(1) per key and memory bounded by `capacity` (16 bytes per entry it is sized for), whatever the number
    of distinct keys. `frequency(key)` is 0..16, an estimate of recent uses. The compiled twin
    (_sketch.pxi) documents the layout; this class does the same, operation for operation.
    """

    __slots__ = ("table", "words", "block_mask", "capacity", "sample", "size")

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

    def frequency_tag(self, t: int) -> int:
        m, m2 = _mix(t), _mix((t + 0x9E3779B97F4A7C15) & _M64)
        base = ((m >> 32) & self.block_mask) * 8
        table = self.table
        f = 15
        for i in range(4):
            w = (((m >> (8 * i)) & 0xFF) * 7) >> 8
            c = (table[base + w] >> (((m2 >> (16 + 4 * i)) & 15) * 4)) & 15
            if c < f:
                f = c
        door = table[base + 7]
        return f + (1 if (door >> ((m2 >> 32) & 63)) & 1 and (door >> ((m2 >> 40) & 63)) & 1 else 0)

    def increment_tag(self, t: int) -> None:
        m, m2 = _mix(t), _mix((t + 0x9E3779B97F4A7C15) & _M64)
        base = ((m >> 32) & self.block_mask) * 8
        table = self.table
        door = table[base + 7]
        if not ((door >> ((m2 >> 32) & 63)) & 1 and (door >> ((m2 >> 40) & 63)) & 1):
            table[base + 7] = door | (1 << ((m2 >> 32) & 63)) | (1 << ((m2 >> 40) & 63))
            return
        added = False
        for i in range(4):
            w = base + ((((m >> (8 * i)) & 0xFF) * 7) >> 8)
            shift = ((m2 >> (16 + 4 * i)) & 15) * 4
            if (table[w] >> shift) & 15 < 15:
                table[w] += 1 << shift
                added = True
        if added:
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
        self.size = (self.size - odd // 4) // 2

    def increment(self, key: Hashable) -> None:
        """Count one use of `key`."""
        self.increment_tag(_tag(hash(key)))

    def frequency(self, key: Hashable) -> int:
        """About how often `key` was used lately (0..16)."""
        return self.frequency_tag(_tag(hash(key)))


class HashCache:
    """A bounded in-process LRU cache with per-entry TTLs and exact byte accounting (pure Python).

    Thread-safe: any number of threads may share one instance.
    """

    __slots__ = (
        "_data", "_root", "_heap", "_seq", "_byte_limit", "_n_ttl", "_bytes", "_max_bytes", "_max_entries", "_default_ttl",
        "_sizer", "_timer", "_lock", "_cleaner", "_version",
        "_hits", "_misses", "_sets", "_evictions", "_expirations", "_rejections",
        "_evictions_by_size", "_promoted", "_promoted_hits",
        "_policy", "_roots", "_win_count", "_win_bytes", "_prot_count", "_prot_bytes", "_sketch", "_cap",
        "_wmax", "_climb_step", "_prev_rate", "_sample_hits", "_sample_reqs",
        "__weakref__",
    )

    def __init__(
        self,
        max_bytes: Optional[int] = 10 * 1024 * 1024,
        max_entries: Optional[int] = None,
        default_ttl: Optional[float] = None,
        *,
        sizer: Optional[Callable[[Any], int]] = None,
        timer: Optional[Callable[[], float]] = None,
        cleanup_interval: Optional[float] = None,
        policy: str = "lru",
    ) -> None:
        self._policy = check_policy(policy)
        self._max_bytes = check_max_bytes(max_bytes)
        self._byte_limit = _BYTES_CEILING if self._max_bytes is None else self._max_bytes
        self._max_entries = check_max_entries(max_entries)
        self._default_ttl = check_default_ttl(default_ttl)
        self._sizer = check_callable("sizer", sizer) or default_sizer
        self._timer = check_callable("timer", timer) or time.monotonic
        interval = check_interval(cleanup_interval)
        self._data: Dict[Hashable, List[Any]] = {}
        self._root: List[Any] = self._new_root()
        self._heap: List[Tuple[float, int, Hashable]] = []
        self._seq = 0
        self._version = 0  # bumped by every insert and removal: a lookup that ran user code re-checks it
        self._n_ttl = 0
        self._bytes = 0
        self._lock = threading.RLock()
        self._hits = self._misses = self._sets = 0
        self._evictions = self._expirations = self._rejections = 0
        self._evictions_by_size = self._promoted = self._promoted_hits = 0
        # W-TinyLFU (policy "tinylfu"): _root is the window; see the compiled core for the picture
        self._roots = [self._root, self._new_root(), self._new_root()]
        self._win_count = self._win_bytes = self._prot_count = self._prot_bytes = 0
        self._sketch: Optional[FrequencySketch] = None
        self._cap = self._wmax = self._sample_hits = self._sample_reqs = 0
        self._climb_step = self._prev_rate = 0.0
        if self._policy:
            self._policy_reset()
        self._cleaner = _cleanup.start(self, interval) if interval is not None else None

    # ------------------------------------------------------------------ internals (lock held)

    @staticmethod
    def _new_root() -> List[Any]:
        root: List[Any] = [None] * 10
        root[_PREV] = root[_NEXT] = root
        return root

    def _link_last(self, entry: List[Any]) -> None:
        root = self._root
        last = root[_PREV]
        entry[_PREV] = last
        entry[_NEXT] = root
        last[_NEXT] = root[_PREV] = entry

    @staticmethod
    def _unlink_node(entry: List[Any]) -> None:
        prev, nxt = entry[_PREV], entry[_NEXT]
        prev[_NEXT] = nxt
        nxt[_PREV] = prev
        entry[_PREV] = entry[_NEXT] = None

    def _use(self, entry: List[Any]) -> None:
        """Mark `entry` used (a hit, an update, a touch)."""
        if not self._policy:
            if self._root[_PREV] is not entry:
                self._unlink_node(entry)
                self._link_last(entry)
            return
        self._sketch.increment_tag(entry[_TAG])  # type: ignore[union-attr]
        seg = entry[_SEG]
        if seg == _PROBATION:  # (protected may now be over its share: _maintain demotes on the next write)
            self._move(entry, _PROTECTED)
        else:
            root = self._roots[seg]
            if root[_PREV] is not entry:
                self._unlink_node(entry)
                self._link_last_in(root, entry)

    # -- W-TinyLFU: the same steps as the compiled core's (_core_c.pyx), list for list, float for float

    @staticmethod
    def _link_last_in(root: List[Any], entry: List[Any]) -> None:
        last = root[_PREV]
        entry[_PREV] = last
        entry[_NEXT] = root
        last[_NEXT] = root[_PREV] = entry

    def _seg_add(self, seg: int, count: int, size: int) -> None:
        if seg == _WINDOW:
            self._win_count += count
            self._win_bytes += size
        elif seg == _PROTECTED:
            self._prot_count += count
            self._prot_bytes += size

    def _move(self, entry: List[Any], seg: int) -> None:
        self._unlink_node(entry)
        self._seg_add(entry[_SEG], -1, -entry[_SIZE])
        self._seg_add(seg, 1, entry[_SIZE])
        entry[_SEG] = seg
        self._link_last_in(self._roots[seg], entry)

    def _window_over(self) -> bool:
        if self._max_entries is not None and self._win_count > self._wmax:
            return True
        return self._max_bytes is not None and self._win_bytes > int(float(self._max_bytes) * self._wmax / self._cap)

    def _protected_over(self) -> bool:
        if self._max_entries is not None and self._prot_count > int((self._cap - self._wmax) * 0.8):
            return True
        return self._max_bytes is not None and self._prot_bytes > int(
            float(self._max_bytes) * (self._cap - self._wmax) / self._cap * 0.8)

    def _evict(self, entry: List[Any], dropped: List[Any]) -> None:
        by_size = self._bytes > self._byte_limit
        if self._unlink(entry[_KEY], entry, dropped):
            self._evictions += 1
            self._evictions_by_size += by_size

    def _maintain(self, now: Optional[float], dropped: List[Any]) -> None:
        """Window overflow into probation, then evict until both limits hold (expired entries first)."""
        candidates = 0
        if now is not None and self._n_ttl and self._over():
            self._drop_expired(now, dropped)
        window, probation, protected = self._roots
        while self._protected_over() and protected[_NEXT] is not protected:
            self._move(protected[_NEXT], _PROBATION)
        while self._window_over() and window[_NEXT] is not window:
            self._move(window[_NEXT], _PROBATION)
            candidates += 1
        sketch = self._sketch
        assert sketch is not None
        while self._over():
            if probation[_NEXT] is probation:
                if protected[_NEXT] is not protected:
                    self._move(protected[_NEXT], _PROBATION)
                else:
                    self._evict(window[_NEXT], dropped)
                continue
            victim, candidate = probation[_NEXT], probation[_PREV]
            if candidates == 0 or victim is candidate:
                self._evict(victim, dropped)
                continue
            if sketch.frequency_tag(candidate[_TAG]) > sketch.frequency_tag(victim[_TAG]):
                self._evict(victim, dropped)
            else:
                self._evict(candidate, dropped)
                candidates -= 1

    def _climb(self, hit: bool) -> None:
        self._sample_reqs += 1
        self._sample_hits += hit
        if self._sample_reqs < 10 * self._cap:
            return
        rate = self._sample_hits / self._sample_reqs
        if rate < self._prev_rate:
            self._climb_step = -self._climb_step
        self._prev_rate = rate
        self._wmax = min(max(0, self._wmax + int(self._climb_step)), self._cap - 1)
        self._climb_step *= 0.98
        if -1.0 < self._climb_step < 1.0:
            self._climb_step = 1.0 if self._climb_step > 0 else -1.0
        self._sample_hits = self._sample_reqs = 0

    def _policy_reset(self) -> None:
        cap = max(1, self._max_entries if self._max_entries is not None else 64)
        self._sketch = FrequencySketch(cap)
        self._cap = cap
        self._wmax = max(1, int(cap * 0.01 + 0.5))
        self._climb_step = -float(max(1, int(cap * 0.0625)))
        self._prev_rate = 0.0
        self._sample_hits = self._sample_reqs = 0

    def _grow_sketch(self) -> None:
        old = self._cap
        cap = self._sketch.capacity * 2  # type: ignore[union-attr]
        self._sketch = FrequencySketch(cap)
        self._cap = cap
        self._wmax = self._wmax * cap // old

    def admits(self, key: Hashable, size: int) -> bool:
        """Whether storing `key` (weighing `size`) now would displace nothing, or (policy "tinylfu") the
        sketch rates `key` above the entry that would go first. The promotion gate (tiercache.promotion)."""
        weight = check_size(size)
        tag = _tag(hash(key))
        with self._lock:
            if ((self._max_entries is None or len(self._data) < self._max_entries)
                    and self._bytes + weight <= self._byte_limit):
                return True
            if not self._policy:
                return True  # no frequency sketch under "lru": nothing to judge by, so no veto
            window, probation, protected = self._roots
            for root in (probation, protected, window):
                if root[_NEXT] is not root:
                    victim = root[_NEXT]
                    break
            else:
                return True
            sketch = self._sketch
            assert sketch is not None
            return sketch.frequency_tag(tag) > sketch.frequency_tag(victim[_TAG])

    def has_room(self, size: int) -> bool:
        """Whether an entry weighing `size` fits now without displacing another."""
        weight = check_size(size)
        with self._lock:
            return ((self._max_entries is None or len(self._data) < self._max_entries)
                    and self._bytes + weight <= self._byte_limit)

    def was_hit(self, key: Hashable) -> Optional[bool]:
        """For a promoted entry: whether it has been hit since (None when `key` is not held)."""
        dropped: List[Any] = []
        with self._lock:
            entry, _ = self._find_live(key, None, dropped)
            return None if entry is None else bool(entry[_FLAGS] & _HIT)

    def held_bytes(self) -> int:
        """Bytes held now (expired entries not yet dropped included): cheap, for the manager's global cap."""
        return self._bytes

    def evict_one(self) -> Optional[int]:
        """Evict the entry this policy would evict next; returns its weight, or None when empty. Counted as
        an eviction for size (the manager's global L1 cap)."""
        dropped: List[Any] = []
        with self._lock:
            roots = [self._roots[_PROBATION], self._roots[_PROTECTED], self._root] if self._policy else [self._root]
            for root in roots:
                if root[_NEXT] is not root:
                    victim = root[_NEXT]
                    break
            else:
                return None
            size = victim[_SIZE]
            if self._unlink(victim[_KEY], victim, dropped):
                self._evictions += 1
                self._evictions_by_size += 1
            return size  # type: ignore[no-any-return]

    def record_use(self, key: Hashable) -> None:
        """Count a use of `key` that did not reach this cache (an L1 miss served by L2), so the sketch
        judges a candidate by all its uses (policy "tinylfu"; nothing under "lru")."""
        if self._policy:
            tag = _tag(hash(key))
            with self._lock:
                self._sketch.increment_tag(tag)  # type: ignore[union-attr]

    def frequency(self, key: Hashable) -> int:
        """The sketch's estimate of `key`'s recent uses (policy "tinylfu"; 0 under "lru")."""
        if not self._policy:
            return 0
        return self._sketch.frequency_tag(_tag(hash(key)))  # type: ignore[union-attr]

    @property
    def policy(self) -> str:
        """The eviction policy: "lru" or "tinylfu"."""
        return "tinylfu" if self._policy else "lru"

    def _now(self) -> float:
        return float(self._timer())

    def _find(self, key: Hashable) -> Optional[List[Any]]:
        try:
            while True:
                data = self._data
                entry = data.get(key)
                if data is self._data:  # else clear() ran inside the key's __eq__: look again
                    return entry
        except TypeError:
            try:
                hash(key)
            except TypeError:
                raise unhashable(key) from None
            raise

    # Re-entrancy. A dict operation on a user key may run the key's __hash__/__eq__, which may call back
    # into this cache (the RLock lets the same thread in). A dict operation takes effect only after such
    # code has run, so the accounting below follows what each operation actually did (what pop() returned,
    # what setdefault() found), never what was looked up earlier, and in-place changes to an entry are made
    # while no user code can run. Whatever a nested call does, the totals match the dict.

    def _unlink(self, key: Hashable, entry: List[Any], dropped: List[Any]) -> bool:
        """Remove `key`; True when the entry removed is `entry` (user code may have replaced it)."""
        data = self._data
        removed = data.pop(key, None)
        if removed is None or data is not self._data:  # (clear() ran inside the key's __hash__)
            return False
        self._version += 1
        self._unlink_node(removed)
        self._bytes -= removed[_SIZE]
        if self._policy:
            self._seg_add(removed[_SEG], -1, -removed[_SIZE])
        if removed[_EXPIRES] is not None:
            self._n_ttl -= 1
        dropped.append((key, removed))
        return removed is entry

    def _track_expiry(self, key: Hashable, entry: List[Any], expires: Optional[float]) -> None:
        """Give `entry` a new expiry (or none); the old heap record, if any, goes stale."""
        if entry[_EXPIRES] is not None:
            self._n_ttl -= 1
        entry[_EXPIRES] = expires
        if expires is not None:
            self._n_ttl += 1
            self._seq += 1
            entry[_SEQ] = self._seq
            heapq.heappush(self._heap, (expires, self._seq, key))
            if len(self._heap) > 3 * self._n_ttl + 64:  # (rebuilt from the live entries: O(1) a push)
                self._compact_heap()

    def _compact_heap(self) -> None:
        heap = []
        push = heap.append
        expires_at, seq_at = _EXPIRES, _SEQ
        for k, e in self._data.items():
            expires = e[expires_at]
            if expires is not None:
                push((expires, e[seq_at], k))
        heapq.heapify(heap)
        self._heap = heap

    def _find_live(
        self, key: Hashable, now: Optional[float], dropped: List[Any]
    ) -> Tuple[Optional[List[Any]], Optional[float]]:
        """(entry, time read) for `key`; an expired entry is dropped, counted and reported absent.

        Reads the timer only when the entry found has an expiry and `now` is None. The timer is user code:
        when the cache changed while it ran, the lookup starts again.
        """
        while True:
            entry = self._find(key)
            if entry is None or entry[_EXPIRES] is None:
                return entry, now
            if now is None:
                version = self._version
                now = self._now()
                if version != self._version:
                    continue
                if entry[_EXPIRES] is None:  # the timer's code gave it a new value without a TTL
                    return entry, now
            if now >= entry[_EXPIRES]:
                if self._unlink(key, entry, dropped):
                    self._expirations += 1
                return None, now
            return entry, now

    def _drop_expired(self, now: float, dropped: List[Any]) -> int:
        removed = 0
        while self._heap and self._heap[0][0] <= now:
            _, seq, key = self._heap[0]
            entry = self._find(key)  # may raise from the key's __eq__: the record stays for next time
            heap = self._heap  # (user code may have compacted it)
            if heap and heap[0][1] == seq:
                heapq.heappop(heap)
            if entry is not None and entry[_SEQ] == seq and entry[_EXPIRES] is not None:
                removed += self._unlink(key, entry, dropped)
        self._expirations += removed
        return removed

    def _over(self) -> bool:
        return self._bytes > self._byte_limit or (
            self._max_entries is not None and len(self._data) > self._max_entries
        )

    def _make_room(self, now: Optional[float], dropped: List[Any]) -> None:
        if self._policy:
            self._maintain(now, dropped)
            return
        limit, max_entries = self._byte_limit, self._max_entries  # (_over, spelled out: it runs every set)
        if self._bytes <= limit and (max_entries is None or len(self._data) <= max_entries):
            return
        if now is not None and self._n_ttl and self._heap and self._heap[0][0] <= now:
            self._drop_expired(now, dropped)
        root = self._root
        while self._bytes > limit or (max_entries is not None and len(self._data) > max_entries):
            victim = root[_NEXT]
            by_size = self._bytes > self._byte_limit
            if self._unlink(victim[_KEY], victim, dropped):
                self._evictions += 1
                self._evictions_by_size += by_size

    def _ttl_or_default(self, ttl: Any) -> Optional[float]:
        """`ttl` checked, or default_ttl when None (None again: no expiry)."""
        ttl = check_ttl(ttl)
        return self._default_ttl if ttl is None else ttl

    def _weigh(self, value: Any, size: Any) -> int:
        if size is None:
            sizer = self._sizer
            if sizer is default_sizer:  # (default_sizer, spelled out: a valid size, without a call)
                tp = type(value)
                if tp is bytes or tp is str or tp is bytearray:
                    return len(value)
                return value.nbytes if tp is memoryview else sys.getsizeof(value)
            return check_size(sizer(value), "sizer result")
        return check_size(size)

    def _store(self, key: Hashable, value: Any, ttl: Optional[float], size: int, dropped: List[Any],
               promoted: bool = False, h: int = 0) -> bool:
        """`h` is hash(key), for the hash tag of a new entry (tinylfu's name for it; lru keeps none)."""
        if ttl is not None or self._n_ttl:
            timer = self._timer
            now = timer() if timer is time.monotonic else self._now()  # (monotonic: a float already)
        else:
            now = None
        expires = now + ttl if ttl is not None else None  # type: ignore[operator]
        entry = self._find(key)
        new = None
        if size > self._byte_limit:
            if entry is not None:
                self._unlink(key, entry, dropped)
            self._rejections += 1
            return False
        if entry is None:
            tag = _tag(h) if self._policy else 0
            new = [value, size, None, 0, None, None, key, _PROMOTED if promoted else 0, _WINDOW, tag]
            data = self._data
            entry = data.setdefault(key, new)
            if data is not self._data:  # clear() ran inside the key's __hash__: this set came first
                self._sets += 1
                self._promoted += promoted
                return True
            if entry is new:
                self._version += 1
                self._link_last(new)
                self._bytes += size
                if self._policy:
                    self._win_count += 1
                    self._win_bytes += size
                    self._sketch.increment_tag(tag)  # type: ignore[union-attr]
                    if self._max_entries is None and len(self._data) > self._sketch.capacity:  # type: ignore[union-attr]
                        self._grow_sketch()
        if entry is not new:  # an update (also when user code inserted the key meanwhile)
            dropped.append(entry[_VALUE])
            entry[_VALUE] = value
            self._bytes += size - entry[_SIZE]
            if self._policy:
                self._seg_add(entry[_SEG], 0, size - entry[_SIZE])
            entry[_SIZE] = size
            entry[_FLAGS] = _PROMOTED if promoted else 0  # a new value: its own history
        if expires is not None and entry[_EXPIRES] is None:  # (_track_expiry, spelled out for a set)
            self._n_ttl += 1
            entry[_EXPIRES] = expires
            self._seq += 1
            entry[_SEQ] = self._seq
            heapq.heappush(self._heap, (expires, self._seq, key))
            if len(self._heap) > 3 * self._n_ttl + 64:
                self._compact_heap()
        elif expires is not None or entry[_EXPIRES] is not None:
            self._track_expiry(key, entry, expires)
        self._sets += 1
        self._promoted += promoted
        if entry is not new:
            self._use(entry)
        if self._policy:
            if self._over() or self._window_over():
                self._maintain(now, dropped)
        else:
            self._make_room(now, dropped)
        return True

    # ------------------------------------------------------------------ public API

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for `key`, or `default` when absent or expired; counts a hit or a miss."""
        dropped: List[Any] = []
        with self._lock:
            entry, _ = self._find_live(key, None, dropped)
            if entry is None:
                self._misses += 1
                if self._policy:
                    self._climb(False)
                return default
            self._use(entry)
            if self._policy:
                self._climb(True)
            self._hits += 1
            if entry[_FLAGS] == _PROMOTED:  # a promotion's first hit
                entry[_FLAGS] = _PROMOTED | _HIT
                self._promoted_hits += 1
            return entry[_VALUE]

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The value for `key` without marking it used or counting a hit/miss."""
        dropped: List[Any] = []
        with self._lock:
            entry, _ = self._find_live(key, None, dropped)
            return default if entry is None else entry[_VALUE]

    def __contains__(self, key: Hashable) -> bool:
        return self.peek(key, _MISSING) is not _MISSING

    def set(self, key: Hashable, value: Any, ttl: Optional[float] = None, size: Optional[int] = None) -> bool:
        """Store `value`; False (and a rejection) when it alone outweighs max_bytes, which also drops `key`.

        `ttl` defaults to the cache's `default_ttl`; `size` defaults to `sizer(value)`. Least recently used
        entries (expired ones first) are evicted until max_bytes and max_entries hold.
        """
        ttl = self._default_ttl if ttl is None else check_ttl(ttl)  # (_ttl_or_default, spelled out)
        try:
            h = hash(key)
        except TypeError:
            raise unhashable(key) from None
        weight = self._weigh(value, size)
        dropped: List[Any] = []
        with self._lock:
            return self._store(key, value, ttl, weight, dropped, False, h)

    def __setitem__(self, key: Hashable, value: Any) -> None:
        """`cache[key] = value`: set() with the default ttl; ValueError where set() would return False."""
        try:  # (set(key, value), spelled out: a call fewer on the path of every assignment)
            h = hash(key)
        except TypeError:
            raise unhashable(key) from None
        weight = self._weigh(value, None)
        dropped: List[Any] = []
        with self._lock:
            stored = self._store(key, value, self._default_ttl, weight, dropped, False, h)
        if not stored:
            raise too_heavy(self._max_bytes)

    def __getitem__(self, key: Hashable) -> Any:
        """`cache[key]`: get() (a hit or a miss is counted), but KeyError when absent or expired."""
        value = self.get(key, _MISSING)
        if value is _MISSING:
            raise KeyError(key)
        return value

    def __delitem__(self, key: Hashable) -> None:
        """`del cache[key]`: delete(), but KeyError when absent or expired."""
        self.pop(key)

    def promote(self, key: Hashable, value: Any, ttl: Optional[float] = None, size: Optional[int] = None) -> bool:
        """`set`, marking the entry as promoted from L2: stats() counts it in `promoted`, and its first hit
        in `promoted_hits` (the promotion's precision). For CacheManager."""
        ttl = self._ttl_or_default(ttl)
        try:
            h = hash(key)
        except TypeError:
            raise unhashable(key) from None
        weight = self._weigh(value, size)
        dropped: List[Any] = []
        with self._lock:
            return self._store(key, value, ttl, weight, dropped, True, h)

    def set_many(self, mapping: Union[Mapping[Any, Any], Iterable[Tuple[Any, Any]]], ttl: Optional[float] = None) -> int:
        """`set` each item with the same ttl; returns how many were stored. Checks every item first."""
        ttl = self._ttl_or_default(ttl)
        items = list(mapping.items() if isinstance(mapping, Mapping) else mapping)
        weighed = []
        for key, value in items:
            try:
                h = hash(key)
            except TypeError:
                raise unhashable(key) from None
            weighed.append((key, value, self._weigh(value, None), h))
        stored = 0
        dropped: List[Any] = []
        with self._lock:
            for key, value, weight, h in weighed:
                stored += self._store(key, value, ttl, weight, dropped, False, h)
        return stored

    def get_many(self, keys: Iterable[Hashable]) -> Dict[Hashable, Any]:
        """A dict of the present, unexpired keys among `keys`; counts a hit or miss for each."""
        keys = list(keys)
        for key in keys:
            try:
                hash(key)
            except TypeError:
                raise unhashable(key) from None
        found: Dict[Hashable, Any] = {}
        for key in keys:
            value = self.get(key, _MISSING)
            if value is not _MISSING:
                found[key] = value
        return found

    def delete(self, key: Hashable) -> bool:
        """Remove `key`; True when a live entry was removed."""
        return self.pop(key, _ABSENT) is not _ABSENT  # _MISSING would mean "raise"

    def pop(self, key: Hashable, default: Any = _MISSING) -> Any:
        """Remove `key` and return its value; `default` (or KeyError) when absent or expired."""
        dropped: List[Any] = []
        with self._lock:
            entry, _ = self._find_live(key, None, dropped)
            if entry is not None:
                self._unlink(key, entry, dropped)
                return entry[_VALUE]
        if default is _MISSING:
            raise KeyError(key)
        return default

    def touch(self, key: Hashable, ttl: Optional[float] = None) -> bool:
        """Mark `key` used and restart its expiry with `ttl` (or default_ttl; neither: expiry unchanged)."""
        ttl = self._ttl_or_default(ttl)
        dropped: List[Any] = []
        with self._lock:
            # The time is read first when a new expiry will be set, else only if the entry has one.
            now = self._now() if ttl is not None else None
            entry, now = self._find_live(key, now, dropped)
            if entry is None:
                return False
            if ttl is not None:
                self._track_expiry(key, entry, now + ttl)  # type: ignore[operator]
            self._use(entry)
            return True

    def ttl(self, key: Hashable) -> Optional[float]:
        """Seconds until `key` expires, None when it never does; KeyError when absent or expired."""
        dropped: List[Any] = []
        with self._lock:
            entry, now = self._find_live(key, None, dropped)
            if entry is not None:
                if entry[_EXPIRES] is None:
                    return None
                return entry[_EXPIRES] - now  # type: ignore[operator]
        raise KeyError(key)

    def expire(self) -> int:
        """Drop every expired entry now; returns how many. Costs O(expired · log n)."""
        dropped: List[Any] = []
        with self._lock:
            return self._expire(dropped)

    def _expire(self, dropped: List[Any]) -> int:
        if not self._n_ttl:
            return 0
        return self._drop_expired(self._now(), dropped)

    def clear(self) -> None:
        """Remove every entry (stats counters are kept)."""
        with self._lock:
            dropped = self._data
            for root in self._roots:
                entry = root[_NEXT]
                while entry is not root:  # break the lists' reference cycles: values go at once, not at GC
                    entry[_PREV], entry = None, entry[_NEXT]
                root[_PREV] = root[_NEXT] = None
            self._data = {}
            self._root = self._new_root()
            self._roots = [self._root, self._new_root(), self._new_root()]
            self._win_count = self._win_bytes = self._prot_count = self._prot_bytes = 0
            self._version += 1
            self._heap = []
            self._n_ttl = 0
            self._bytes = 0
        del dropped

    def __len__(self) -> int:
        dropped: List[Any] = []
        with self._lock:
            self._expire(dropped)
            return len(self._data)

    def __iter__(self) -> Iterator[Hashable]:
        """Iterate over a snapshot of the live keys, least recently used first."""
        dropped: List[Any] = []
        with self._lock:
            self._expire(dropped)
            keys = []
            roots = [self._roots[_PROBATION], self._roots[_PROTECTED], self._root] if self._policy else [self._root]
            for root in roots:  # (W-TinyLFU: eviction order, roughly: probation, protected, the window)
                entry = root[_NEXT]
                while entry is not root:
                    keys.append(entry[_KEY])
                    entry = entry[_NEXT]
            return iter(keys)

    def stats(self) -> Dict[str, Any]:
        """Counters and sizes; expired entries are dropped first so entries/bytes count live entries."""
        dropped: List[Any] = []
        with self._lock:
            self._expire(dropped)
            lookups = self._hits + self._misses
            return {
                "hits": self._hits,
                "misses": self._misses,
                "sets": self._sets,
                "evictions": self._evictions,
                "evictions_by_size": self._evictions_by_size,
                "evictions_by_count": self._evictions - self._evictions_by_size,
                "expirations": self._expirations,
                "rejections": self._rejections,
                "entries": len(self._data),
                "bytes": self._bytes,
                "max_bytes": self._max_bytes,
                "max_entries": self._max_entries,
                "hit_rate": self._hits / lookups if lookups else 0.0,
                "promoted": self._promoted,
                "promoted_hits": self._promoted_hits,
            }

    @property
    def max_bytes(self) -> Optional[int]:
        return self._max_bytes

    @property
    def max_entries(self) -> Optional[int]:
        return self._max_entries

    @property
    def default_ttl(self) -> Optional[float]:
        return self._default_ttl

    def set_limits(self, max_bytes: Optional[int] = 10 * 1024 * 1024, max_entries: Optional[int] = None) -> int:
        """Change the limits (same rules as the constructor); a smaller budget evicts down to it at once
        (expired entries first, then least recently used). Returns how many entries were removed."""
        max_bytes = check_max_bytes(max_bytes)
        max_entries = check_max_entries(max_entries)
        dropped: List[Any] = []
        with self._lock:
            before = self._evictions + self._expirations
            now = self._now() if self._n_ttl else None
            self._max_bytes = max_bytes
            self._byte_limit = _BYTES_CEILING if max_bytes is None else max_bytes
            self._max_entries = max_entries
            if self._policy:
                self._policy_reset()  # the window and the sketch follow the new capacity
            self._make_room(now, dropped)
            return self._evictions + self._expirations - before

    def close(self) -> None:
        """Stop the cleanup thread, if any. The cache stays usable."""
        cleaner, self._cleaner = self._cleaner, None
        if cleaner is not None:
            cleaner.stop()

    def __enter__(self) -> "HashCache":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def __repr__(self) -> str:
        return (
            f"<HashCache python entries={len(self._data)} bytes={self._bytes} "
            f"max_bytes={self._max_bytes} max_entries={self._max_entries}>"
        )

    # ------------------------------------------------------------------ debugging

    def _check(self) -> None:
        """Raise AssertionError unless every internal invariant holds (tests call this after each step)."""
        with self._lock:
            data = self._data
            listed = []
            for seg, root in enumerate(self._roots if self._policy else [self._root]):
                entry = root[_NEXT]
                count = size = 0
                while entry is not root and len(listed) <= len(data):
                    assert entry[_NEXT][_PREV] is entry, "recency list links disagree"
                    assert not self._policy or entry[_SEG] == seg, f"entry on list {seg} says {entry[_SEG]}"
                    listed.append(entry)
                    count += 1
                    size += entry[_SIZE]
                    entry = entry[_NEXT]
                if self._policy and seg == _WINDOW:
                    assert (count, size) == (self._win_count, self._win_bytes), "window totals drifted"
                if self._policy and seg == _PROTECTED:
                    assert (count, size) == (self._prot_count, self._prot_bytes), "protected totals drifted"
            assert len(listed) == len(data), f"recency list holds {len(listed)} entries, dict {len(data)}"
            assert {id(e) for e in listed} == {id(e) for e in data.values()}, "list and dict disagree"
            assert all(data.get(e[_KEY]) is e for e in listed), "an entry's key maps elsewhere"
            total = sum(e[_SIZE] for e in data.values())
            assert total == self._bytes, f"bytes {self._bytes} != sum of sizes {total}"
            n_ttl = sum(1 for e in data.values() if e[_EXPIRES] is not None)
            assert n_ttl == self._n_ttl, f"n_ttl {self._n_ttl} != {n_ttl}"
            live = {(e[_SEQ], k) for k, e in data.items() if e[_EXPIRES] is not None}
            in_heap = {(s, k) for _, s, k in self._heap}
            assert live <= in_heap, "an entry with a TTL has no heap record"
            assert self._max_bytes is None or self._bytes <= self._max_bytes, "max_bytes exceeded"
            assert self._max_entries is None or len(data) <= self._max_entries, "max_entries exceeded"


"""Pure-Python HashCache: the reference twin of the compiled core (ext/tiercache/_core_c.pyx).

Both implementations have the same public behaviour, raise the same errors and count the same stats for
the same operations; this one is written to be read. Layout:

    _data   dict key -> entry [value, size, expires, seq, prev, next, key, flags, seg, tag] (_wtinylfu_py)
    _root   sentinel of the circular recency list threaded through the entries' prev/next:
            _root[_NEXT] is the least recently used entry (the next to evict), _root[_PREV] the most recent
    _segments  policy "tinylfu": the W-TinyLFU state (_wtinylfu_py.WTinyLfu), whose window is _root
    _expiry the entries that have a TTL, ordered by expiry (_ttl_py.ExpiryHeap, lazy deletion)

The recency list is linked by hand rather than kept in an OrderedDict: moving an entry then needs no
hashing of the user's key (no user code), and OrderedDict is not safe against keys whose __eq__ mutates it.

The rules both implementations follow are in docs/design.md ("HashCache's contract").
"""

from __future__ import annotations

import collections
import heapq
import logging
import itertools
import sys
import threading
import time
from typing import Any, Callable, Deque, Dict, Hashable, Iterable, Iterator, List, Mapping, Optional, Tuple, Union

from . import cleanup as _cleanup
from .._validate import (
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
from ._ttl_py import ExpiryHeap
from .._validate import BYTES_CEILING as _BYTES_CEILING, SIZE_CEILING
from ._sketch_py import hash_tag as _tag
from ._wtinylfu_py import EXPIRES as _EXPIRES, FLAGS as _FLAGS, KEY as _KEY, NEXT as _NEXT, PREV as _PREV
from ._wtinylfu_py import PROTECTED as _PROTECTED, SEG as _SEG, SEQ as _SEQ, SIZE as _SIZE, TAG as _TAG
from ._wtinylfu_py import FREQ as _FREQ, VALUE as _VALUE
from ._wtinylfu_py import WINDOW as _WINDOW, WTinyLfu, new_root as _new_root, release_list as _release_list
from ._wtinylfu_py import unlink_node as _unlink_node

__all__ = ["HashCache", "deep_sizer", "default_sizer"]

_MISSING: Any = object()
_log = logging.getLogger("tiercache")
_ABSENT: Any = object()

# The entry record's fields and lists are defined in _wtinylfu_py, which moves entries between lists.
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


_CONTAINERS = frozenset((dict, list, tuple, set, frozenset))


def deep_sizer(value: Any) -> int:
    """Memory held by `value`: sys.getsizeof of it and of everything in its lists, tuples, dicts, sets and
    frozensets (each container once). The weight of an entry in a CacheManager's L1."""
    if type(value) not in _CONTAINERS:
        return sys.getsizeof(value)
    total = 0
    stack = [value]
    seen = {id(value)}
    while stack:
        container = stack.pop()
        total += sys.getsizeof(container)
        items = itertools.chain.from_iterable(container.items()) if type(container) is dict else container
        for item in items:
            if type(item) not in _CONTAINERS:
                total += sys.getsizeof(item)
            elif id(item) not in seen:
                seen.add(id(item))
                stack.append(item)
    return total


class HashCache:
    """A bounded in-process LRU cache with per-entry TTLs and exact byte accounting (pure Python).

    Thread-safe: any number of threads may share one instance. `on_evict(key, value, cause)`, when given,
    is called for each entry that leaves for max_bytes (cause "size"), max_entries ("count") or its TTL
    ("expired") — never for delete, pop, clear or an overwrite — in eviction order, once the call that
    evicted it has let go of the cache, so it may use the cache; an exception from it is logged.
    """

    __slots__ = (
        "_data", "_root", "_expiry", "_byte_limit", "_bytes", "_max_bytes", "_max_entries", "_default_ttl",
        "_sizer", "_timer", "_lock", "_cleaner", "_version",
        "_hits", "_misses", "_sets", "_evictions", "_expirations", "_rejections",
        "_evictions_by_size", "_promoted", "_promoted_hits",
        "_policy", "_segments", "_on_evict", "_evicted", "_draining",
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
        on_evict: Optional[Callable[[Any, Any, str], Any]] = None,
    ) -> None:
        self._policy = check_policy(policy)
        self._on_evict = check_callable("on_evict", on_evict)
        # entries evicted (key, value, cause), for on_evict once the call that evicted them lets go of the lock
        self._evicted: Deque[Tuple[Any, Any, str]] = collections.deque()
        self._draining = False  # a _notify is under way (a nested one leaves the queue to it)
        self._max_bytes = check_max_bytes(max_bytes)
        self._byte_limit = _BYTES_CEILING if self._max_bytes is None else self._max_bytes
        self._max_entries = check_max_entries(max_entries)
        self._default_ttl = check_default_ttl(default_ttl)
        self._sizer = check_callable("sizer", sizer) or default_sizer
        self._timer = check_callable("timer", timer) or time.monotonic
        interval = check_interval(cleanup_interval)
        self._data: Dict[Hashable, List[Any]] = {}
        self._root: List[Any] = _new_root()
        self._expiry = ExpiryHeap()
        self._version = 0  # bumped by every insert and removal: a lookup that ran user code re-checks it
        self._bytes = 0
        self._lock = threading.RLock()
        self._hits = self._misses = self._sets = 0
        self._evictions = self._expirations = self._rejections = 0
        self._evictions_by_size = self._promoted = self._promoted_hits = 0
        # W-TinyLFU (policy "tinylfu"): _root is its window
        self._segments: Optional[WTinyLfu] = (
            WTinyLfu(self._root, self._max_bytes, self._max_entries) if self._policy else None)
        self._cleaner = _cleanup.start(self, interval) if interval is not None else None

    # ------------------------------------------------------------------ internals (lock held)

    def _link_last(self, entry: List[Any]) -> None:
        root = self._root
        last = root[_PREV]
        entry[_PREV] = last
        entry[_NEXT] = root
        last[_NEXT] = root[_PREV] = entry

    def _use(self, entry: List[Any]) -> None:
        """Mark `entry` used (a hit, an update, a touch)."""
        if not self._policy:
            if self._root[_PREV] is not entry:
                _unlink_node(entry)
                self._link_last(entry)
            return
        self._segments.use(entry)  # type: ignore[union-attr]

    def _evict(self, entry: List[Any], dropped: List[Any]) -> None:
        by_size = self._bytes > self._byte_limit
        if self._unlink(entry[_KEY], entry, dropped):
            self._evictions += 1
            self._evictions_by_size += by_size
            if self._on_evict is not None:
                self._evicted.append((entry[_KEY], entry[_VALUE], "size" if by_size else "count"))

    def _notify(self) -> None:
        """Call on_evict for each entry evicted, in order, outside the lock. The callback may use the cache:
        what it evicts joins the queue, which the drain under way goes on to (no nesting). An exception
        from it, of any kind, is logged."""
        evicted = self._evicted
        while True:
            with self._lock:
                if self._draining:
                    return
                self._draining = True
            try:
                while evicted:
                    try:
                        key, value, cause = evicted.popleft()
                    except IndexError:  # (another thread took the last one)
                        break
                    callback = self._on_evict
                    if callback is not None:
                        try:
                            callback(key, value, cause)
                        except BaseException:
                            try:
                                _log.exception("tiercache: on_evict failed for %r", key)
                            except BaseException:  # (a failing handler: the drain goes on)
                                pass
            finally:
                with self._lock:  # (what another thread queued while this one drained is drained here)
                    self._draining = False
            if not evicted:
                return

    def _maintain(self, now: Optional[float], dropped: List[Any]) -> None:
        """Window overflow into probation, then evict until both limits hold (expired entries first)."""
        if now is not None and self._expiry.count and self._over():
            self._drop_expired(now, dropped)
        self._segments.maintain(self._over, self._evict, dropped)  # type: ignore[union-attr]

    def admits(self, key: Hashable, size: int) -> bool:
        """Whether storing `key` (weighing `size`) now would displace nothing, or (policy "tinylfu") `key`
        wins the admission duel against the entry that would go first (the sketch's estimate for `key` above
        that entry's count, or warm and lucky: FrequencySketch.admit_counts); always True under "lru",
        which has no sketch. The promotion gate (tiercache.manager.promotion)."""
        weight = check_size(size)
        tag = _tag(hash(key))
        with self._lock:
            if ((self._max_entries is None or len(self._data) < self._max_entries)
                    and self._bytes + weight <= self._byte_limit):
                return True
            if not self._policy:
                return True  # no frequency sketch under "lru": nothing to judge by, so no veto
            return self._segments.admits(tag)  # type: ignore[union-attr]

    def has_room(self, size: int) -> bool:
        """Whether an entry weighing `size` fits now without displacing another."""
        weight = check_size(size)
        with self._lock:
            return ((self._max_entries is None or len(self._data) < self._max_entries)
                    and self._bytes + weight <= self._byte_limit)

    def was_hit(self, key: Hashable) -> Optional[bool]:
        """For a promoted entry: whether it has been hit since (None when `key` is not held)."""
        dropped: List[Any] = []
        try:
            with self._lock:
                entry, _ = self._find_live(key, None, dropped)
                return None if entry is None else bool(entry[_FLAGS] & _HIT)
        finally:
            if self._evicted:
                self._notify()

    def size_curve(self) -> Optional[Dict[str, Any]]:
        """Under "tinylfu", what the window's simulations saw of the hit ratio at other sizes: {"entries": the
        size they stand for, "lookups": lookups sampled, "hits": (at half that size, at it, at twice it)},
        counted since they were made (a new max_entries, a sketch that grew, max_bytes binding at another
        size) and filled (not before the copy of that size is full and 4 x its entries of lookups were
        sampled, or 16 x); None under "lru" and in caches too small to simulate."""
        segments = self._segments
        if segments is None:
            return None
        with self._lock:
            curve = segments.size_curve()
        if curve is None:
            return None
        entries, lookups, half, one, double = curve
        return {"entries": entries, "lookups": lookups, "hits": (half, one, double)}

    def held_bytes(self) -> int:
        """Bytes held now (expired entries not yet dropped included): cheap, for the manager's global cap."""
        return self._bytes

    def evict_one(self) -> Optional[int]:
        """Evict the entry this policy would evict next; returns its weight, or None when empty. Counted as
        an eviction for size (the manager's global L1 cap)."""
        dropped: List[Any] = []
        try:
            with self._lock:
                if self._policy:
                    victim = self._segments.next_victim()  # type: ignore[union-attr]
                else:
                    root = self._root
                    victim = root[_NEXT] if root[_NEXT] is not root else None
                if victim is None:
                    return None
                size = victim[_SIZE]
                if self._unlink(victim[_KEY], victim, dropped):
                    self._evictions += 1
                    self._evictions_by_size += 1
                    if self._on_evict is not None:
                        self._evicted.append((victim[_KEY], victim[_VALUE], "size"))
                return size  # type: ignore[no-any-return]
        finally:
            if self._evicted:
                self._notify()

    def record_use(self, key: Hashable) -> None:
        """Count a use of `key` that did not reach this cache (an L1 miss served by L2), so the sketch
        judges a candidate by all its uses (policy "tinylfu"; nothing under "lru")."""
        if self._policy:
            tag = _tag(hash(key))
            with self._lock:
                self._segments.sketch.increment_tag(tag)  # type: ignore[union-attr]
                self._segments.sync_aging()  # type: ignore[union-attr]

    def frequency(self, key: Hashable) -> int:
        """How often `key` was used lately, 0..16 (policy "tinylfu"; 0 under "lru"): a held key's own count,
        else the sketch's estimate."""
        if not self._policy:
            return 0
        h = hash(key)
        with self._lock:
            entry = self._data.get(key)
            if entry is not None:
                return entry[_FREQ]  # type: ignore[no-any-return]
            return self._segments.sketch.frequency_tag(_tag(h))  # type: ignore[union-attr]

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
        _unlink_node(removed)
        self._bytes -= removed[_SIZE]
        if self._policy:
            self._segments.removed(removed)  # type: ignore[union-attr]
        if removed[_EXPIRES] is not None:  # (ExpiryHeap.forget, spelled out: it runs on every eviction)
            self._expiry.count -= 1
        dropped.append((key, removed))
        return removed is entry

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
                    if self._on_evict is not None:
                        self._evicted.append((key, entry[_VALUE], "expired"))
                return None, now
            return entry, now

    def _drop_expired(self, now: float, dropped: List[Any]) -> int:
        removed = 0
        expiry = self._expiry
        while True:
            due = expiry.due(now)
            if due is None:
                break
            seq, key = due
            entry = self._find(key)  # may raise from the key's __eq__: the record stays for next time
            expiry.pop(seq)
            if expiry.is_current(entry, seq) and self._unlink(key, entry, dropped):  # type: ignore[arg-type]
                removed += 1
                if self._on_evict is not None:
                    self._evicted.append((key, entry[_VALUE], "expired"))  # type: ignore[index]
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
        records = self._expiry.records  # (ExpiryHeap.due, spelled out: it runs on every set)
        if now is not None and self._expiry.count and records and records[0][0] <= now:
            self._drop_expired(now, dropped)
        root = self._root
        while self._bytes > limit or (max_entries is not None and len(self._data) > max_entries):
            victim = root[_NEXT]
            by_size = self._bytes > self._byte_limit
            if self._unlink(victim[_KEY], victim, dropped):
                self._evictions += 1
                self._evictions_by_size += by_size
                if self._on_evict is not None:
                    self._evicted.append((victim[_KEY], victim[_VALUE], "size" if by_size else "count"))

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
                    weight = len(value)
                else:
                    weight = value.nbytes if tp is memoryview else sys.getsizeof(value)
                return weight if weight < SIZE_CEILING else check_size(weight, "sizer result")
            return check_size(sizer(value), "sizer result")
        return check_size(size)

    def _store(self, key: Hashable, value: Any, ttl: Optional[float], size: int, dropped: List[Any],
               promoted: bool = False, h: int = 0) -> bool:
        """`h` is hash(key), for the hash tag of a new entry (tinylfu's name for it; lru keeps none)."""
        if ttl is not None or self._expiry.count:
            timer = self._timer
            now = timer() if timer is time.monotonic else self._now()  # (monotonic: a float already)
        else:
            now = None
        expires = now + ttl if ttl is not None else None  # type: ignore[operator]
        entry = self._find(key)
        new = None
        count_later = False
        if size > self._byte_limit:
            if entry is not None:
                self._unlink(key, entry, dropped)
            self._rejections += 1
            return False
        if entry is None:
            tag = _tag(h) if self._policy else 0
            new = [value, size, None, 0, None, None, key, _PROMOTED if promoted else 0, _WINDOW, tag, 0]
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
                    count_later = self._segments.inserted(new, len(self._data))  # type: ignore[union-attr]
        if entry is not new:  # an update (also when user code inserted the key meanwhile)
            dropped.append(entry[_VALUE])
            entry[_VALUE] = value
            self._bytes += size - entry[_SIZE]
            if self._policy:
                self._segments.reweighed(entry, size)  # type: ignore[union-attr]
            entry[_SIZE] = size
            entry[_FLAGS] = _PROMOTED if promoted else 0  # a new value: its own history
        if expires is not None and entry[_EXPIRES] is None:  # (ExpiryHeap.track, spelled out for a set)
            expiry = self._expiry
            expiry.count += 1
            expiry.seq += 1
            entry[_EXPIRES], entry[_SEQ] = expires, expiry.seq
            heapq.heappush(expiry.records, (expires, expiry.seq, key))
            if len(expiry.records) > 3 * expiry.count + 64:
                expiry.rebuild(self._data)
        elif expires is not None or entry[_EXPIRES] is not None:
            self._expiry.track(key, entry, expires, self._data)
        self._sets += 1
        self._promoted += promoted
        if entry is not new:
            self._use(entry)
        if self._policy:
            if self._over() or self._segments.window_over():  # type: ignore[union-attr]
                self._maintain(now, dropped)
            if count_later:
                self._segments.counted(new)  # type: ignore[union-attr]
        else:
            self._make_room(now, dropped)
        return True

    # ------------------------------------------------------------------ public API

    def get(self, key: Hashable, default: Any = None) -> Any:
        """The value for `key`, or `default` when absent or expired; counts a hit or a miss."""
        dropped: List[Any] = []
        try:
            with self._lock:
                entry, _ = self._find_live(key, None, dropped)
                segments = self._segments
                if entry is None:
                    self._misses += 1
                    if segments is not None:
                        # (the dict hashed the key already, but does not say; the compiled core hashes once.
                        # A __hash__ that fails this second time only skips the sample.)
                        try:
                            tag = _tag(hash(key))
                        except Exception:
                            return default
                        if not tag & segments.sample_mask:
                            segments.sampled(tag, len(self._data), self._bytes)
                    return default
                self._use(entry)
                if segments is not None and not entry[_TAG] & segments.sample_mask:
                    segments.sampled(entry[_TAG], len(self._data), self._bytes)
                self._hits += 1
                if entry[_FLAGS] == _PROMOTED:  # a promotion's first hit
                    entry[_FLAGS] = _PROMOTED | _HIT
                    self._promoted_hits += 1
                return entry[_VALUE]
        finally:
            if self._evicted:
                self._notify()

    def peek(self, key: Hashable, default: Any = None) -> Any:
        """The value for `key` without marking it used or counting a hit/miss."""
        dropped: List[Any] = []
        try:
            with self._lock:
                entry, _ = self._find_live(key, None, dropped)
                return default if entry is None else entry[_VALUE]
        finally:
            if self._evicted:
                self._notify()

    def __contains__(self, key: Hashable) -> bool:
        return self.peek(key, _MISSING) is not _MISSING

    def set(self, key: Hashable, value: Any, ttl: Optional[float] = None, size: Optional[int] = None) -> bool:
        """Store `value`; False (and a rejection) when it alone outweighs max_bytes, which also drops `key`.

        `ttl` defaults to the cache's `default_ttl`; `size` defaults to `sizer(value)`. Least recently used
        entries (expired ones first) are evicted until max_bytes and max_entries hold.
        """
        return self._put(key, value, self._default_ttl if ttl is None else check_ttl(ttl), size, False)

    def _put(self, key: Hashable, value: Any, ttl: Optional[float], size: Optional[int], promoted: bool) -> bool:
        """set / promote / `cache[key] = value` with a checked ttl (None: no expiry)."""
        try:
            h = hash(key)
        except TypeError:
            raise unhashable(key) from None
        weight = self._weigh(value, size)
        dropped: List[Any] = []  # (released when this call returns, after the lock)
        try:
            with self._lock:
                return self._store(key, value, ttl, weight, dropped, promoted, h)
        finally:
            if self._evicted:
                self._notify()

    def __setitem__(self, key: Hashable, value: Any) -> None:
        """`cache[key] = value`: set() with the default ttl; ValueError where set() would return False."""
        try:  # (_put(key, value, default_ttl, None, False), spelled out: it runs on every assignment)
            h = hash(key)
        except TypeError:
            raise unhashable(key) from None
        weight = self._weigh(value, None)
        dropped: List[Any] = []
        try:
            with self._lock:
                stored = self._store(key, value, self._default_ttl, weight, dropped, False, h)
        finally:
            if self._evicted:
                self._notify()
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
        return self._put(key, value, self._ttl_or_default(ttl), size, True)

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
        try:
            with self._lock:
                for key, value, weight, h in weighed:
                    stored += self._store(key, value, ttl, weight, dropped, False, h)
        finally:
            if self._evicted:
                self._notify()
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
        try:
            with self._lock:
                entry, _ = self._find_live(key, None, dropped)
                if entry is not None:
                    self._unlink(key, entry, dropped)
                    return entry[_VALUE]
        finally:
            if self._evicted:
                self._notify()
        if default is _MISSING:
            raise KeyError(key)
        return default

    def touch(self, key: Hashable, ttl: Optional[float] = None) -> bool:
        """Mark `key` used and restart its expiry with `ttl` (or default_ttl; neither: expiry unchanged)."""
        ttl = self._ttl_or_default(ttl)
        dropped: List[Any] = []
        try:
            with self._lock:
                # The time is read first when a new expiry will be set, else only if the entry has one.
                now = self._now() if ttl is not None else None
                entry, now = self._find_live(key, now, dropped)
                if entry is None:
                    return False
                if ttl is not None:
                    self._expiry.track(key, entry, now + ttl, self._data)  # type: ignore[operator]
                self._use(entry)
                return True
        finally:
            if self._evicted:
                self._notify()

    def ttl(self, key: Hashable) -> Optional[float]:
        """Seconds until `key` expires, None when it never does; KeyError when absent or expired."""
        dropped: List[Any] = []
        try:
            with self._lock:
                entry, now = self._find_live(key, None, dropped)
                if entry is not None:
                    if entry[_EXPIRES] is None:
                        return None
                    return entry[_EXPIRES] - now  # type: ignore[operator]
        finally:
            if self._evicted:
                self._notify()
        raise KeyError(key)

    def expire(self) -> int:
        """Drop every expired entry now; returns how many. Costs O(expired · log n)."""
        dropped: List[Any] = []
        try:
            with self._lock:
                return self._expire(dropped)
        finally:
            if self._evicted:
                self._notify()

    def _expire(self, dropped: List[Any]) -> int:
        if not self._expiry.count:
            return 0
        return self._drop_expired(self._now(), dropped)

    def clear(self) -> None:
        """Remove every entry (stats counters are kept)."""
        with self._lock:
            dropped = self._data
            if self._policy:
                self._segments.dropped_all(dropped.values())  # type: ignore[union-attr]
            _release_list(self._root)
            self._data = {}
            self._root = _new_root()
            if self._policy:
                self._segments.clear(self._root)  # type: ignore[union-attr]
            self._version += 1
            self._expiry.clear()
            self._bytes = 0
        del dropped

    def __len__(self) -> int:
        dropped: List[Any] = []
        try:
            with self._lock:
                self._expire(dropped)
                return len(self._data)
        finally:
            if self._evicted:
                self._notify()

    def __iter__(self) -> Iterator[Hashable]:
        """Iterate over a snapshot of the live keys, least recently used first."""
        dropped: List[Any] = []
        try:
            with self._lock:
                self._expire(dropped)
                keys = []
                segments = self._segments
                roots = [segments.probation, segments.protected, self._root] if segments is not None else [self._root]
                for root in roots:  # (W-TinyLFU: eviction order, roughly: probation, protected, the window)
                    entry = root[_NEXT]
                    while entry is not root:
                        keys.append(entry[_KEY])
                        entry = entry[_NEXT]
                return iter(keys)
        finally:
            if self._evicted:
                self._notify()

    def stats(self) -> Dict[str, Any]:
        """Counters and sizes; expired entries are dropped first so entries/bytes count live entries."""
        dropped: List[Any] = []
        try:
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
        finally:
            if self._evicted:
                self._notify()

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
        (expired entries first, then least recently used). Returns how many entries were removed. Under
        "tinylfu", a new max_entries restarts the sketch and the window's sizing; a new max_bytes alone
        keeps them."""
        max_bytes = check_max_bytes(max_bytes)
        max_entries = check_max_entries(max_entries)
        dropped: List[Any] = []
        try:
            with self._lock:
                before = self._evictions + self._expirations
                now = self._now() if self._expiry.count else None
                self._max_bytes = max_bytes
                self._byte_limit = _BYTES_CEILING if max_bytes is None else max_bytes
                segments = self._segments
                regain = False
                if segments is not None:
                    if max_entries != self._max_entries:  # the window and the sketch follow the new capacity
                        segments.reset(max_bytes, max_entries)
                    else:
                        segments.max_bytes = max_bytes
                        regain = True
                self._max_entries = max_entries
                self._make_room(now, dropped)
                if regain:
                    segments.regain(len(self._data), self._bytes)  # type: ignore[union-attr]
                return self._evictions + self._expirations - before
        finally:
            if self._evicted:
                self._notify()

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

    def _window(self) -> Optional[Tuple[int, int]]:
        """(window share, capacity) in entries under the "tinylfu" policy, else None (for tests)."""
        segs = self._segments
        return None if segs is None else (segs.wmax, segs.cap)

    def _check(self) -> None:
        """Raise AssertionError unless every internal invariant holds (tests call this after each step)."""
        with self._lock:
            data = self._data
            listed = []
            segs = self._segments
            assert segs is None or segs.window is self._root, "the policy's window is not the recency list"
            for seg, root in enumerate([self._root] if segs is None else [segs.window, segs.probation, segs.protected]):
                entry = root[_NEXT]
                count = size = 0
                while entry is not root and len(listed) <= len(data):
                    assert entry[_NEXT][_PREV] is entry, "recency list links disagree"
                    assert segs is None or entry[_SEG] == seg, f"entry on list {seg} says {entry[_SEG]}"
                    listed.append(entry)
                    count += 1
                    size += entry[_SIZE]
                    entry = entry[_NEXT]
                if segs is not None and seg == _WINDOW:
                    assert (count, size) == (segs.win_count, segs.win_bytes), "window totals drifted"
                if segs is not None and seg == _PROTECTED:
                    assert (count, size) == (segs.prot_count, segs.prot_bytes), "protected totals drifted"
            assert len(listed) == len(data), f"recency list holds {len(listed)} entries, dict {len(data)}"
            assert {id(e) for e in listed} == {id(e) for e in data.values()}, "list and dict disagree"
            assert all(data.get(e[_KEY]) is e for e in listed), "an entry's key maps elsewhere"
            total = sum(e[_SIZE] for e in data.values())
            assert total == self._bytes, f"bytes {self._bytes} != sum of sizes {total}"
            n_ttl = sum(1 for e in data.values() if e[_EXPIRES] is not None)
            assert n_ttl == self._expiry.count, f"n_ttl {self._expiry.count} != {n_ttl}"
            live = {(e[_SEQ], k) for k, e in data.items() if e[_EXPIRES] is not None}
            in_heap = {(s, k) for _, s, k in self._expiry.records}
            assert live <= in_heap, "an entry with a TTL has no heap record"
            assert self._max_bytes is None or self._bytes <= self._max_bytes, "max_bytes exceeded"
            assert self._max_entries is None or len(data) <= self._max_entries, "max_entries exceeded"


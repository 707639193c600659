"""The read path's I/O-free steps, pure Python (twin of ext/tiercache/_readpath.pxi).

    get(ns, key) ──> front: a plain namespace's L1 ──hit──> value
                        │ miss (or any other case)
                        └──> the manager's `miss` callable: plan ──> L2 I/O (sync or async) ──> finish
    get_many     ──> plan_many (keys checked, L1 split, L2 keys) ──> L2 I/O ──> finish

`finish` is the one definition of what happens to the bytes L2 answered for a key: the expiry header is
checked (tiercache.wire), the value decoded, the promotion decided and the value copied into L1 for no
longer than it has left in L2; it serves get, get_many, get_or_set and both managers. The manager owns the
namespaces (NamespaceState, one per namespace) and hands them, with its collaborators, to the ReadPath it
holds; nothing here reads the manager's attributes.
"""

from __future__ import annotations

import math
import random
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from .. import wire
from ..wire._msgpack_py import decode_l2
from ..errors import SerializationError
from ..observability.histogram import Histogram

__all__ = ["MISSING", "NamespaceState", "ReadPath", "Ready", "jittered"]

MISSING: Any = object()
_CONSUMED: Any = object()  # a Ready already awaited
_KEY_TYPES = frozenset((str, int, bytes))
_COUNTS = ("l2_hits", "l2_misses", "promotions", "promotions_skipped_stale", "promotions_declined")
_COUNTS_LOCK = threading.Lock()
_monotonic = time.monotonic


def jittered(seconds: Optional[float], jitter: float) -> Optional[float]:
    """`seconds` spread by ± `jitter` (a fraction), so entries written together do not expire together."""
    if seconds is None or not jitter:
        return seconds
    return seconds * (1.0 + jitter * (2.0 * random.random() - 1.0))


class ReadCounts:
    """The read path's counters of one namespace: L2 hits and misses, promotions (made, skipped because a write
    overtook the read, declined by the strategy), and L2 hits promoted without a decision (`promoted`).
    Shared by the states that succeed one another; updated under a lock (the compiled twin counts in C)."""

    __slots__ = _COUNTS + ("promoted",)

    def __init__(self) -> None:
        self.l2_hits = self.l2_misses = self.promotions = 0
        self.promotions_skipped_stale = self.promotions_declined = self.promoted = 0

    def as_dict(self) -> Dict[str, int]:
        """{counter: value} in tiercache.observability.counters' names (`promoted` is promotion's own)."""
        with _COUNTS_LOCK:
            return {name: getattr(self, name) for name in _COUNTS}


class NamespaceState:
    """One namespace as the read and write paths see it: its L1, settings, codec and write version.

    Built by the manager, replaced whole when the namespace's settings change; `version` is bumped by every
    write and invalidation, so a read that an update overtook does not copy its old value into L1."""

    __slots__ = ("name", "l1", "cfg", "loads", "codec", "plain", "immediate", "persist", "version", "counts", "l2_base")

    def __init__(self, name: str, l1: Any, cfg: Any, loads: Callable[[bytes], Any], immediate: bool,
                 l2_base: str, codec: Any = None) -> None:
        self.name = name
        self.l1 = l1
        self.cfg = cfg
        self.loads = loads  # the namespace's Codec.read: (data, start, l2_key) -> value
        self.codec = codec  # the namespace's Codec (None where only loads is needed)
        self.plain = not cfg.l1_grace_period  # L1 holds values as they are (else (value, fresh_until))
        self.immediate = bool(immediate)  # every L2 hit is promoted, no decision to ask for
        self.persist = bool(cfg.persist_to_l2)
        self.version = 0
        self.counts = ReadCounts()  # the read path's counters (shared with the state this one replaces)
        self.l2_base = l2_base

    def bump(self) -> None:
        self.version += 1

    def inherit(self, previous: "NamespaceState") -> None:
        """Count on in the counters of the state this one replaces (a read still finishing on that one counts
        there too)."""
        self.counts = previous.counts


class Ready:
    """An awaitable that already holds its result: what AsyncCacheManager.get returns on an L1 hit."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __await__(self) -> Any:
        if self.value is _CONSUMED:
            raise RuntimeError("cannot reuse an already awaited tiercache result")
        value, self.value = self.value, _CONSUMED
        return value
        yield  # (a generator that returns at once)


class ReadPath:
    """The steps of a read that do no I/O, over the manager's namespaces.

    `spaces`: {namespace: NamespaceState}, the manager's own dict (read here, never written).
    `miss(namespace, key, default, l1_missed)`: get() past L1 (the manager's plan, I/O and finish).
    `amiss`: the same as a coroutine function, for aget() (None for a sync manager).
    `decide(namespace, cfg, l1, key, size, remaining)`: whether an L2 hit is promoted (gated strategies).
    `corrupt(namespace, l2_key, exc)`: an unreadable L2 value was met (count and log it).
    `timer`: the manager's clock (grace periods are measured on it).
    """

    def __init__(self, spaces: Dict[str, NamespaceState], miss: Callable[..., Any],
                 amiss: Optional[Callable[..., Any]], decide: Callable[..., bool],
                 corrupt: Callable[[str, str, Exception], None], timer: Callable[[], float]) -> None:
        self._spaces = spaces
        self._miss = miss
        self._amiss = amiss
        self._decide = decide
        self._corrupt = corrupt
        self._timer = timer
        self._sample_mask = -1
        self._tick = 0
        self._samples: Dict[str, Histogram] = {}

    # ------------------------------------------------------------------ L1 latency sampling

    def set_sampling(self, every: int) -> None:
        """Time one L1 lookup in `every` (a power of two); 0 turns sampling off."""
        if every == 0:
            self._sample_mask = -1
            return
        if isinstance(every, bool) or not isinstance(every, int) or every < 1 or every & (every - 1):
            raise ValueError(f"l1 sampling needs a power of two, got {every!r}")
        self._sample_mask = every - 1

    def record_l1_sample(self, namespace: str, seconds: float) -> None:
        """Add one timed L1 lookup of `namespace`."""
        h = self._samples.get(namespace)
        if h is None:
            h = self._samples.setdefault(namespace, Histogram())
        h.record(seconds)

    def l1_samples(self, reset_window: bool = False) -> Dict[str, Dict[str, Any]]:
        """{namespace: {counts, count, sum, max, window_max}} of the timed L1 lookups."""
        return {ns: h.state(reset_window) for ns, h in list(self._samples.items())}

    def forget(self) -> None:
        """The namespaces changed (one replaced or dropped): drop any shortcut to the old ones."""

    def _sampled_get(self, namespace: str, l1: Any, key: Any) -> Any:
        if self._sample_mask >= 0:
            self._tick += 1
            if not self._tick & self._sample_mask:
                t0 = _monotonic()
                value = l1.get(key, MISSING)
                self.record_l1_sample(namespace, _monotonic() - t0)
                return value
        return l1.get(key, MISSING)

    # ------------------------------------------------------------------ get's L1 step

    def _front(self, namespace: Any, key: Any) -> Tuple[Any, bool]:
        """(the L1 value of a plain namespace, else MISSING; whether L1 was consulted and counted a miss)."""
        state = self._spaces.get(namespace) if type(namespace) is str else None
        if state is None or not state.plain or type(key) not in _KEY_TYPES:
            return MISSING, False
        return self._sampled_get(namespace, state.l1, key), True

    def get(self, namespace: str, key: Any, default: Any = None) -> Any:
        """The value from L1, else L2 (copied into L1), else `default`."""
        value, checked = self._front(namespace, key)
        if value is not MISSING:
            return value
        return self._miss(namespace, key, default, checked)

    def aget(self, namespace: str, key: Any, default: Any = None) -> Any:
        """get() for the async manager: an L1 hit is a Ready awaitable (no coroutine, no I/O)."""
        value, checked = self._front(namespace, key)
        if value is not MISSING:
            return Ready(value)
        assert self._amiss is not None
        return self._amiss(namespace, key, default, checked)

    # ------------------------------------------------------------------ plans

    def lookup(self, state: NamespaceState, key: Any, count: bool = True) -> Tuple[Any, Any]:
        """(fresh L1 value or MISSING, stale value within the grace period or MISSING); `count=False`
        peeks (no hit or miss counted, no sample)."""
        l1 = state.l1
        entry = self._sampled_get(state.name, l1, key) if count else l1.peek(key, MISSING)
        if entry is MISSING or state.plain:
            return entry, MISSING
        value, fresh_until = entry
        if fresh_until is None or self._timer() < fresh_until:
            return value, MISSING
        return MISSING, value

    def l2_key(self, state: NamespaceState, key: Any) -> str:
        """The L2 key of `key` in the namespace (TypeError / ValueError for a key L2 cannot hold)."""
        return state.l2_base + wire.encode_key(key)

    def plan_many(self, state: NamespaceState, keys: Any) -> Tuple[Dict[Any, Any], List[Any], Dict[Any, Any],
                                                                   Optional[List[str]]]:
        """get_many's L1 step: (found in L1, missing, stale copies, their L2 keys or None when L2 has nothing
        to add). Each key once, in order; TypeError / ValueError for the first bad key, before anything."""
        keys = list(keys)
        parts = [wire.encode_key(key) for key in keys]  # (raises for the first bad key, as the compiled twin)
        if len(set(keys)) != len(keys):
            keys = list(dict.fromkeys(keys))  # each key once, in order
            parts = [wire.encode_key(key) for key in keys]
        found: Dict[Any, Any] = {}
        stale: Dict[Any, Any] = {}
        missing: List[Any] = []
        missing_parts: List[str] = []
        for key, part in zip(keys, parts):
            if state.plain:
                value = state.l1.get(key, MISSING)
            else:
                value, old = self.lookup(state, key)
                if old is not MISSING:
                    stale[key] = old
            if value is MISSING:
                missing.append(key)
                missing_parts.append(part)
            else:
                found[key] = value
        base = state.l2_base
        l2_keys = [base + part for part in missing_parts] if missing and state.persist else None
        return found, missing, stale, l2_keys

    # ------------------------------------------------------------------ finish

    def finish(self, state: NamespaceState, keys: List[Any], l2_keys: List[str], datas: List[Any], version: int,
               found: Dict[Any, Any]) -> Tuple[int, int, int, int]:
        """What happens to the bytes L2 answered: `datas[i]` for `keys[i]` (None: L2 does not hold it).

        Readable values go into `found`; each is copied into L1 unless a write overtook the read (the
        namespace's version moved past `version`) or the promotion strategy declines it. Expired values
        count as misses; unreadable ones (not bytes, a cut or non-finite expiry header, a payload larger than
        the namespace's max_value_bytes or that the codec rejects) are reported to `corrupt` and count as neither. Returns (hits, misses, skipped, declined).
        """
        if len(datas) != len(keys) or len(l2_keys) != len(keys):
            raise ValueError("keys, l2_keys and datas differ in length")
        hits = misses = skipped = declined = 0
        now: Optional[float] = None
        overtaken = state.version != version
        for i, data in enumerate(datas):
            if data is None:
                misses += 1
                continue
            try:
                if type(data) is not bytes:
                    raise SerializationError(f"L2 answered {type(data).__name__}, not bytes")
                if now is None:
                    now = time.time()
                try:
                    start, remaining = wire.open_sealed(data, now)
                except ValueError as exc:
                    raise SerializationError(str(exc)) from None
                if remaining is not None:
                    if not math.isfinite(remaining):
                        raise SerializationError("expiry header is not a finite time")
                    if remaining <= 0:
                        misses += 1
                        continue
                if len(data) - start - wire.FORMAT_HEADER_SIZE > state.cfg.max_value_bytes:
                    raise SerializationError(f"L2 value of {len(data)} bytes is larger than max_value_bytes "
                                             f"({state.cfg.max_value_bytes})")
                value = decode_l2(data, start, state.loads, l2_keys[i])
            except SerializationError as exc:
                self._corrupt(state.name, l2_keys[i], exc)
                continue
            key = keys[i]
            found[key] = value
            hits += 1
            size = len(data)
            if overtaken:
                skipped += 1
            elif not state.immediate and not self._decide(state.name, state.cfg, state.l1, key, size, remaining):
                declined += 1
            else:
                self.store(state, key, value, None, remaining, True)  # (weighed by the L1's sizer)
        counts = state.counts
        with _COUNTS_LOCK:  # (the compiled twin counts in C, where no other thread runs meanwhile)
            if state.immediate:
                counts.promoted += hits - skipped
            counts.l2_hits += hits
            counts.l2_misses += misses
            counts.promotions += hits - skipped - declined
            counts.promotions_skipped_stale += skipped
            counts.promotions_declined += declined
        return hits, misses, skipped, declined

    def store(self, state: NamespaceState, key: Any, value: Any, size: int, ttl: Optional[float],
              promoted: bool = False) -> None:
        """Put `value` into the namespace's L1 for no longer than `ttl` (None: no limit of its own) nor the
        namespace's (jittered) L1 TTL; with a grace period it is kept, stale, that much longer. `promoted`:
        an L2 hit copied up (HashCache.promote), else a write (HashCache.set)."""
        cfg = state.cfg
        base = jittered(cfg.l1_ttl, cfg.ttl_jitter)
        ttl = base if ttl is None else (ttl if base is None else min(ttl, base))
        put = state.l1.promote if promoted else state.l1.set
        if state.plain:
            put(key, value, ttl, size)
        else:
            fresh_until = None if ttl is None else self._timer() + ttl
            put(key, (value, fresh_until), None if ttl is None else ttl + cfg.l1_grace_period, size)

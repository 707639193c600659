"""Random operation sequences against HashCache and a small OrderedDict model of the contract.

After every step: `_check()` passes, the live keys agree in LRU order, and stats() (bytes, counters, all of
it) agrees with the model. Each rule may first move the fake clock, so operations meet expired entries
lazily; the invariant then flushes them from both sides (list() and stats() drop expired entries).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule, run_state_machine_as_test

_MISSING = object()


class Colliding:
    """A key with Python-level __eq__, hashing alike with the other instances."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return 3

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Colliding) and other.n == self.n

    def __repr__(self) -> str:
        return f"Colliding({self.n})"


class Model:
    """The contract, written as plainly as possible. Entries: key -> [value, size, expires, promotion state]."""

    def __init__(self, max_bytes: Optional[int], max_entries: Optional[int], default_ttl: Optional[float]):
        self.max_bytes, self.max_entries, self.default_ttl = max_bytes, max_entries, default_ttl
        self.data: "OrderedDict[Any, List[Any]]" = OrderedDict()
        self.counts = dict.fromkeys(["hits", "misses", "sets", "evictions", "evictions_by_size", "expirations",
                                     "rejections", "promoted", "promoted_hits"], 0)

    def _expired(self, key: Any, now: float) -> bool:
        expires = self.data[key][2]
        return expires is not None and now >= expires

    def _live(self, key: Any, now: float) -> Optional[List[Any]]:
        """The entry, or None; an expired entry met here is dropped and counted."""
        if key not in self.data:
            return None
        if self._expired(key, now):
            del self.data[key]
            self.counts["expirations"] += 1
            return None
        return self.data[key]

    def flush(self, now: float) -> int:
        expired = [k for k in self.data if self._expired(k, now)]
        for k in expired:
            del self.data[k]
        self.counts["expirations"] += len(expired)
        return len(expired)

    def bytes(self) -> int:
        return sum(e[1] for e in self.data.values())

    def _over(self) -> bool:
        return (self.max_bytes is not None and self.bytes() > self.max_bytes) or (
            self.max_entries is not None and len(self.data) > self.max_entries
        )

    def set(self, key: Any, value: Any, ttl: Optional[float], size: int, now: float, promoted: bool = False) -> bool:
        ttl = self.default_ttl if ttl is None else float(ttl)
        expires = None if ttl is None else now + ttl
        if self.max_bytes is not None and size > self.max_bytes:
            self.data.pop(key, None)
            self.counts["rejections"] += 1
            return False
        self.data[key] = [value, size, expires, "promoted" if promoted else ""]
        self.data.move_to_end(key)
        self.counts["sets"] += 1
        self.counts["promoted"] += promoted
        if self._over():
            self.flush(now)  # expired entries go before any live one is evicted
            while self._over():
                self.counts["evictions_by_size"] += self.max_bytes is not None and self.bytes() > self.max_bytes
                self.data.popitem(last=False)
                self.counts["evictions"] += 1
        return True

    def get(self, key: Any, now: float) -> Any:
        entry = self._live(key, now)
        if entry is None:
            self.counts["misses"] += 1
            return _MISSING
        self.data.move_to_end(key)
        self.counts["hits"] += 1
        if entry[3] == "promoted":
            entry[3] = "promoted, hit"
            self.counts["promoted_hits"] += 1
        return entry[0]

    def peek(self, key: Any, now: float) -> Any:
        entry = self._live(key, now)
        return _MISSING if entry is None else entry[0]

    def pop(self, key: Any, now: float) -> Any:
        entry = self._live(key, now)
        if entry is None:
            return _MISSING
        del self.data[key]
        return entry[0]

    def touch(self, key: Any, ttl: Optional[float], now: float) -> bool:
        ttl = self.default_ttl if ttl is None else float(ttl)
        entry = self._live(key, now)
        if entry is None:
            return False
        self.data.move_to_end(key)
        if ttl is not None:
            entry[2] = now + ttl
        return True

    def ttl(self, key: Any, now: float) -> Any:
        entry = self._live(key, now)
        if entry is None:
            return _MISSING
        return None if entry[2] is None else entry[2] - now

    def stats(self, now: float) -> Dict[str, Any]:
        self.flush(now)
        lookups = self.counts["hits"] + self.counts["misses"]
        return {
            **self.counts,
            "entries": len(self.data),
            "bytes": self.bytes(),
            "max_bytes": self.max_bytes,
            "max_entries": self.max_entries,
            "hit_rate": self.counts["hits"] / lookups if lookups else 0.0,
            "evictions_by_count": self.counts["evictions"] - self.counts["evictions_by_size"],
        }


KEYS = st.sampled_from([0, 1, 2, 3, 4, 5, "a", "b", "c", b"k", (1, 2)] + [Colliding(i) for i in range(4)])
VALUES = st.binary(max_size=24)
SIZES = st.one_of(st.none(), st.integers(0, 40))
TTLS = st.one_of(st.none(), st.sampled_from([0.5, 1, 2.5, 4]))
DT = st.sampled_from([0, 0, 0, 0.5, 1, 2.5])


class CacheMachine(RuleBasedStateMachine):
    HashCache: Any = None
    FakeTimer: Any = None

    @initialize(
        max_bytes=st.sampled_from([None, 16, 40, 200]),
        max_entries=st.sampled_from([None, 1, 3, 8]),
        default_ttl=st.sampled_from([None, None, 1.0, 3.5]),
    )
    def setup(self, max_bytes: Optional[int], max_entries: Optional[int], default_ttl: Optional[float]) -> None:
        self.clock = self.FakeTimer()
        self.evicted: List[Any] = []  # (on_evict: one call per eviction and expiration the stats count)
        self.cache = self.HashCache(max_bytes, max_entries, default_ttl, timer=self.clock,
                                    on_evict=lambda key, value, cause: self.evicted.append(cause))
        self.model = Model(max_bytes, max_entries, default_ttl)

    def now(self, dt: float) -> float:
        self.clock.advance(dt)
        return self.clock.now

    @rule(key=KEYS, value=VALUES, ttl=TTLS, size=SIZES, dt=DT)
    def set(self, key: Any, value: bytes, ttl: Optional[float], size: Optional[int], dt: float) -> None:
        now = self.now(dt)
        expected = self.model.set(key, value, ttl, len(value) if size is None else size, now)
        assert self.cache.set(key, value, ttl=ttl, size=size) is expected

    @rule(key=KEYS, value=VALUES, ttl=TTLS, dt=DT)
    def promote(self, key: Any, value: bytes, ttl: Optional[float], dt: float) -> None:
        now = self.now(dt)
        expected = self.model.set(key, value, ttl, len(value), now, promoted=True)
        assert self.cache.promote(key, value, ttl=ttl) is expected

    @rule(items=st.lists(st.tuples(KEYS, VALUES), max_size=4), ttl=TTLS, dt=DT)
    def set_many(self, items: List[Any], ttl: Optional[float], dt: float) -> None:
        now = self.now(dt)
        expected = sum(self.model.set(k, v, ttl, len(v), now) for k, v in items)
        assert self.cache.set_many(items, ttl=ttl) == expected

    @rule(key=KEYS, dt=DT)
    def get(self, key: Any, dt: float) -> None:
        expected = self.model.get(key, self.now(dt))
        assert self.cache.get(key, _MISSING) is expected

    @rule(keys=st.lists(KEYS, max_size=4), dt=DT)
    def get_many(self, keys: List[Any], dt: float) -> None:
        now = self.now(dt)
        expected = {}
        for k in keys:
            value = self.model.get(k, now)
            if value is not _MISSING:
                expected[k] = value
        assert self.cache.get_many(keys) == expected

    @rule(key=KEYS, dt=DT)
    def peek(self, key: Any, dt: float) -> None:
        expected = self.model.peek(key, self.now(dt))
        assert self.cache.peek(key, _MISSING) is expected

    @rule(key=KEYS, dt=DT)
    def contains(self, key: Any, dt: float) -> None:
        expected = self.model.peek(key, self.now(dt)) is not _MISSING
        assert (key in self.cache) is expected

    @rule(key=KEYS, dt=DT)
    def delete(self, key: Any, dt: float) -> None:
        expected = self.model.pop(key, self.now(dt)) is not _MISSING
        assert self.cache.delete(key) is expected

    @rule(key=KEYS, dt=DT, with_default=st.booleans())
    def pop(self, key: Any, dt: float, with_default: bool) -> None:
        expected = self.model.pop(key, self.now(dt))
        if with_default:
            assert self.cache.pop(key, _MISSING) is expected
        elif expected is _MISSING:
            with pytest.raises(KeyError):
                self.cache.pop(key)
        else:
            assert self.cache.pop(key) is expected

    @rule(key=KEYS, ttl=TTLS, dt=DT)
    def touch(self, key: Any, ttl: Optional[float], dt: float) -> None:
        expected = self.model.touch(key, ttl, self.now(dt))
        assert self.cache.touch(key, ttl=ttl) is expected

    @rule(key=KEYS, dt=DT)
    def ttl(self, key: Any, dt: float) -> None:
        expected = self.model.ttl(key, self.now(dt))
        if expected is _MISSING:
            with pytest.raises(KeyError):
                self.cache.ttl(key)
        else:
            assert self.cache.ttl(key) == expected

    @rule(dt=st.sampled_from([0.5, 1, 2.5, 5]))
    def advance(self, dt: float) -> None:
        self.clock.advance(dt)

    @rule(dt=DT)
    def expire(self, dt: float) -> None:
        expected = self.model.flush(self.now(dt))
        assert self.cache.expire() == expected

    @rule(dt=DT)
    def length(self, dt: float) -> None:
        self.model.flush(self.now(dt))
        assert len(self.cache) == len(self.model.data)

    @rule()
    def clear(self) -> None:
        self.model.data.clear()
        self.cache.clear()

    @invariant()
    def agrees_with_model(self) -> None:
        if not hasattr(self, "cache"):
            return
        self.cache._check()
        now = self.clock.now
        stats = self.cache.stats()
        assert stats == self.model.stats(now)
        assert len(self.evicted) == stats["evictions"] + stats["expirations"]
        assert self.evicted.count("size") == stats["evictions_by_size"]
        assert list(self.cache) == list(self.model.data)
        self.cache._check()

    def teardown(self) -> None:
        if hasattr(self, "cache"):
            self.cache.close()


def test_random_operations_match_the_model(HashCache: Any, make_timer: Any) -> None:
    machine = type("HashCacheMachine", (CacheMachine,), {"HashCache": HashCache, "FakeTimer": make_timer})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=150,
            stateful_step_count=40,
            deadline=None,
            database=None,
            suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow],
        ),
    )

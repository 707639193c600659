"""HashCache(on_evict=...): called for entries evicted by size, count or expiry, after the call that evicted
them, in both implementations alike."""

from __future__ import annotations

import logging
import random
import threading
from typing import Any, Callable, List, Tuple

import pytest

Record = Tuple[Any, Any, str]


def recorder() -> "tuple[List[Record], Callable[[Any, Any, str], None]]":
    seen: List[Record] = []
    return seen, lambda key, value, cause: seen.append((key, value, cause))


@pytest.mark.parametrize("policy", ["lru", "tinylfu"])
def test_each_cause_is_named(make_cache: Callable[..., Any], fake_timer: Any, policy: str) -> None:
    seen, on_evict = recorder()
    by_count = make_cache(max_entries=2, policy=policy, on_evict=on_evict)
    for i in range(3):
        by_count.set(i, f"v{i}")
    assert [(c, len(seen)) for *_, c in seen] == [("count", 1)]
    key, value, _ = seen[0]
    assert key not in by_count and value == f"v{key}"

    seen.clear()
    by_size = make_cache(max_bytes=10, policy=policy, on_evict=on_evict)
    by_size.set("a", "x" * 6)
    by_size.set("b", "y" * 6)
    assert seen == [("a", "x" * 6, "size")] or seen == [("b", "y" * 6, "size")]

    seen.clear()
    expiring = make_cache(policy=policy, on_evict=on_evict)
    expiring.set("t1", 1, ttl=5)
    expiring.set("t2", 2, ttl=5)
    expiring.set("t3", 3, ttl=50)
    fake_timer.advance(10)
    assert expiring.get("t1") is None  # found expired on read
    assert expiring.expire() == 1  # t2, dropped in bulk
    assert seen == [("t1", 1, "expired"), ("t2", 2, "expired")]

    seen.clear()
    capped = make_cache(policy=policy, on_evict=on_evict)
    capped.set("g", 7)
    assert capped.evict_one() is not None and seen == [("g", 7, "size")]  # (the manager's global cap)


def test_never_for_what_the_caller_removes(make_cache: Callable[..., Any]) -> None:
    seen, on_evict = recorder()
    cache = make_cache(max_bytes=100, on_evict=on_evict)
    cache.set("a", "1")
    cache.set("a", "2")  # overwrite
    cache.delete("a")
    cache.set("b", "1")
    cache.pop("b")
    cache.set("c", "1")
    del cache["c"]
    cache.set("d", "1")
    cache.clear()
    cache.set("e", "1")
    assert cache.set("e", "x" * 200) is False  # rejected: the older value goes, not evicted
    assert seen == [] and cache.stats()["evictions"] == 0


def test_set_limits_evicts_through_the_callback(make_cache: Callable[..., Any]) -> None:
    seen, on_evict = recorder()
    cache = make_cache(max_entries=10, on_evict=on_evict)
    for i in range(10):
        cache.set(i, i)
    assert cache.set_limits(max_bytes=None, max_entries=7) == 3
    assert seen == [(0, 0, "count"), (1, 1, "count"), (2, 2, "count")]


def test_the_callback_may_use_the_cache(make_cache: Callable[..., Any]) -> None:
    """Called once the cache is consistent and free: it may read, write (evicting more, which joins the
    queue in order), and another thread is not held up meanwhile."""
    seen: List[Record] = []
    made: List[Any] = []

    def on_evict(key: Any, value: Any, cause: str) -> None:
        cache = made[0]
        seen.append((key, value, cause))
        assert key not in cache and len(cache) == 3
        other = threading.Thread(target=cache.get, args=(("from-thread", key),))
        other.start()
        other.join(10)
        assert not other.is_alive()  # nothing held the cache
        if isinstance(key, int) and key < 2:
            cache.set(("again", key), value)  # evicts more from inside the callback

    made.append(make_cache(max_entries=3, on_evict=on_evict))
    for i in range(4):
        made[0].set(i, i)
    assert seen[0] == (0, 0, "count")
    assert len(seen) >= 3 and all(cause == "count" for *_, cause in seen)


def test_a_failing_callback_is_logged_and_the_rest_still_called(make_cache: Callable[..., Any],
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    seen: List[Any] = []

    def on_evict(key: Any, value: Any, cause: str) -> None:
        seen.append(key)
        if key == 0:
            raise RuntimeError("boom")

    cache = make_cache(max_entries=2, on_evict=on_evict)
    cache.set_many({0: 0, 1: 1})
    with caplog.at_level(logging.ERROR, logger="tiercache"):
        assert cache.set_many({2: 2, 3: 3}) == 2
    assert seen == [0, 1] and sorted(cache) == [2, 3]
    assert "on_evict failed for 0" in caplog.text and "boom" in caplog.text


@pytest.mark.parametrize("bad", [1, "print"])
def test_on_evict_must_be_callable(HashCache: Any, bad: Any) -> None:
    with pytest.raises(TypeError, match="on_evict"):
        HashCache(on_evict=bad)


@pytest.mark.parametrize("policy", ["lru", "tinylfu"])
def test_both_implementations_report_the_same_evictions(both_impls: Any, make_timer: Any, policy: str) -> None:
    """A random run of sets, reads, touches, deletes and time: the same callbacks, in the same order, and
    as many as the stats count."""
    runs = []
    for impl in both_impls:
        timer = make_timer()
        seen, on_evict = recorder()
        cache = impl.HashCache(max_bytes=400, max_entries=25, policy=policy, timer=timer, on_evict=on_evict)
        rng = random.Random(7)
        for _ in range(3000):
            op = rng.random()
            key = rng.randrange(60)
            if op < 0.45:
                cache.set(key, "v" * rng.randrange(1, 40), ttl=rng.choice([None, 1.0, 5.0]))
            elif op < 0.8:
                cache.get(key)
            elif op < 0.85:
                cache.touch(key, ttl=2.0)
            elif op < 0.9:
                cache.delete(key)
            else:
                timer.advance(rng.random())
        cache.expire()
        stats = cache.stats()
        assert len(seen) == stats["evictions"] + stats["expirations"]
        assert sum(c == "size" for *_, c in seen) == stats["evictions_by_size"]
        runs.append(in_order(seen))
        cache._check()
    assert runs[0] == runs[1] and len(runs[0]) > 100


def in_order(seen: List[Record]) -> List[Any]:
    """`seen`, with each run of expirations as a set: entries expiring at one instant leave in no set order."""
    out: List[Any] = []
    for record in seen:
        if record[2] == "expired" and out and isinstance(out[-1], set):
            out[-1].add(record)
        else:
            out.append({record} if record[2] == "expired" else record)
    return out


def test_evictions_made_by_the_callback_queue_instead_of_nesting(make_cache: Callable[..., Any]) -> None:
    """A callback that writes evicts again: the drain under way goes on to those, so a chain of thousands
    of evictions never nests (nor overflows the stack)."""
    depth = [0, 0]
    calls: List[Any] = []
    made: List[Any] = []

    def on_evict(key: Any, value: Any, cause: str) -> None:
        depth[0] += 1
        depth[1] = max(depth[1], depth[0])
        calls.append(key)
        if len(calls) < 3000:
            made[0].set(len(calls) + 1, value)  # a new key: evicts the one held
        depth[0] -= 1

    made.append(make_cache(max_entries=1, on_evict=on_evict))
    made[0].set(0, 0)
    made[0].set(1, 1)
    assert depth[1] == 1 and calls == list(range(3000))


def test_any_exception_from_the_callback_is_logged(make_cache: Callable[..., Any],
                                                   caplog: pytest.LogCaptureFixture) -> None:
    seen: List[Any] = []

    def on_evict(key: Any, value: Any, cause: str) -> None:
        seen.append(key)
        raise KeyboardInterrupt

    cache = make_cache(max_entries=1, on_evict=on_evict)
    with caplog.at_level(logging.ERROR, logger="tiercache"):
        cache.set(0, 0)
        cache.set(1, 1)
        cache.set(2, 2)
    assert seen == [0, 1] and caplog.text.count("on_evict failed") == 2


def test_a_cache_that_goes_calls_no_callback(HashCache: Any) -> None:
    import gc

    seen, on_evict = recorder()
    cache = HashCache(max_entries=2, on_evict=on_evict)
    cache.set_many({1: 1, 2: 2})
    del cache
    gc.collect()
    assert seen == []

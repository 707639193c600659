"""The HashCache contract both implementations honour (issue 2 and the rules in tiercache/_core_py.py).

Every test runs once per implementation through the `impl` fixture family in conftest.py. Time comes from
a FakeTimer (`fake_timer`, which `make_cache` installs by default), so nothing here sleeps.
"""

from __future__ import annotations

import array
import gc
import math
import random
import re
import sys
import weakref
from typing import Any, Dict, List, Tuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

STATS_KEYS = {
    "hits", "misses", "sets", "evictions", "evictions_by_size", "evictions_by_count", "expirations", "rejections",
    "entries", "bytes", "max_bytes", "max_entries", "hit_rate", "promoted", "promoted_hits",
}


def snapshot(cache: Any) -> Tuple[List[Tuple[Any, Any, Any]], Dict[str, Any]]:
    """Everything observable about `cache` (keys in LRU order, values, remaining TTLs, stats).

    Uses only calls that do not count as use or as hits/misses, so taking it twice gives the same answer.
    """
    keys = list(cache)
    return [(k, cache.peek(k), cache.ttl(k)) for k in keys], cache.stats()


def weights(cache: Any, sizes: Dict[Any, int]) -> int:
    return sum(sizes[k] for k in cache)


class Key:
    """A key with Python-level __hash__ and __eq__; every instance with the same `n` is the same key."""

    def __init__(self, n: int, bucket: int = 3) -> None:
        self.n = n
        self.bucket = bucket

    def __hash__(self) -> int:
        return self.n % self.bucket

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other.n == self.n

    def __repr__(self) -> str:
        return f"Key({self.n})"


# ---------------------------------------------------------------------------------------------- construction


def test_defaults(HashCache: Any) -> None:
    cache = HashCache()
    assert cache.max_bytes == 10 * 1024 * 1024
    assert cache.max_entries is None
    assert cache.default_ttl is None
    assert cache.stats() == {
        "hits": 0, "misses": 0, "sets": 0, "evictions": 0, "evictions_by_size": 0, "evictions_by_count": 0,
        "expirations": 0, "rejections": 0, "entries": 0, "bytes": 0, "max_bytes": 10 * 1024 * 1024,
        "max_entries": None, "hit_rate": 0.0, "promoted": 0, "promoted_hits": 0,
    }
    assert len(cache) == 0
    assert list(cache) == []
    cache.close()


def test_positional_arguments_and_properties(HashCache: Any) -> None:
    cache = HashCache(100, 5, 2)
    assert (cache.max_bytes, cache.max_entries, cache.default_ttl) == (100, 5, 2.0)
    assert isinstance(cache.default_ttl, float)
    cache = HashCache(max_bytes=None, max_entries=None)
    assert cache.stats()["max_bytes"] is None


def test_sizer_timer_and_cleanup_interval_are_keyword_only(HashCache: Any) -> None:
    with pytest.raises(TypeError):
        HashCache(100, None, None, len)


# ---------------------------------------------------------------------------------------------- stats


def test_stats_keys_and_values(make_cache: Any) -> None:
    cache = make_cache(max_bytes=10, max_entries=None)
    assert set(cache.stats()) == STATS_KEYS
    assert cache.set("a", b"abcd") is True
    assert cache.set("b", b"efgh") is True
    assert cache.get("a") == b"abcd"
    assert cache.get("zz") is None
    assert cache.set("c", b"ijkl") is True  # 12 bytes > 10: evicts "b", the least recently used
    assert cache.set("big", b"x" * 11) is False
    assert cache.set("t", b"", ttl=1) is True
    stats = cache.stats()
    assert stats == {
        "hits": 1, "misses": 1, "sets": 4, "evictions": 1, "evictions_by_size": 1, "evictions_by_count": 0,
        "expirations": 0, "rejections": 1, "entries": 3, "bytes": 8, "max_bytes": 10, "max_entries": None,
        "hit_rate": 0.5, "promoted": 0, "promoted_hits": 0,
    }
    assert type(stats["hit_rate"]) is float
    assert all(type(stats[k]) is int for k in STATS_KEYS - {"hit_rate", "max_entries"})


def test_stats_hit_rate(make_cache: Any) -> None:
    cache = make_cache()
    cache.set(1, b"x")
    for _ in range(3):
        cache.get(1)
    cache.get(2)
    assert cache.stats()["hit_rate"] == 0.75


def test_only_get_and_get_many_count_hits_and_misses(make_cache: Any) -> None:
    cache = make_cache()
    cache.set("a", b"1")
    cache.peek("a"), cache.peek("b"), "a" in cache, "b" in cache, cache.ttl("a")
    cache.touch("a"), cache.touch("b"), cache.pop("a"), cache.pop("a", None)
    cache.set("a", b"1")
    cache.expire(), len(cache), list(cache)
    with pytest.raises(KeyError):
        cache.ttl("b")
    s = cache.stats()
    assert (s["hits"], s["misses"]) == (0, 0)
    assert cache.get_many(["a", "b", "a"]) == {"a": b"1"}
    s = cache.stats()
    assert (s["hits"], s["misses"]) == (2, 1)


def test_clear_keeps_counters(make_cache: Any) -> None:
    cache = make_cache(max_entries=2)
    for i in range(3):
        cache.set(i, b"v", ttl=5)
    cache.get(2), cache.get(0)
    before = cache.stats()
    cache.clear()
    after = cache.stats()
    assert (after["entries"], after["bytes"]) == (0, 0)
    for name in ("hits", "misses", "sets", "evictions", "expirations", "rejections"):
        assert after[name] == before[name], name
    assert list(cache) == [] and len(cache) == 0
    assert cache.expire() == 0
    assert cache.set(9, b"again") is True and list(cache) == [9]


# ---------------------------------------------------------------------------------------------- LRU order


def test_set_get_touch_count_as_use(make_cache: Any) -> None:
    cache = make_cache(max_entries=4)
    for k in "abcd":
        cache.set(k, b"v")
    cache.get("a")
    assert list(cache) == ["b", "c", "d", "a"]
    cache.set("b", b"w")
    assert list(cache) == ["c", "d", "a", "b"]
    assert cache.touch("c") is True
    assert list(cache) == ["d", "a", "b", "c"]
    cache.set("e", b"v")  # evicts the least recently used: "d"
    assert list(cache) == ["a", "b", "c", "e"]
    assert cache.stats()["evictions"] == 1


def test_peek_in_ttl_and_misses_do_not_count_as_use(make_cache: Any) -> None:
    cache = make_cache(max_entries=3)
    for k in "abc":
        cache.set(k, b"v", ttl=100 if k == "a" else None)
    assert cache.peek("a") == b"v"
    assert "a" in cache
    assert cache.ttl("a") == 100.0
    cache.get("zz")
    cache.touch("zz")
    assert list(cache) == ["a", "b", "c"]
    cache.set("d", b"v")
    assert list(cache) == ["b", "c", "d"]
    assert "a" not in cache


def test_delete_and_pop_leave_the_others_in_order(make_cache: Any) -> None:
    cache = make_cache()
    for k in "abcde":
        cache.set(k, b"v")
    cache.pop("b")
    assert cache.delete("d") is True
    assert list(cache) == ["a", "c", "e"]


# ---------------------------------------------------------------------------------------------- eviction, bytes


def test_eviction_until_both_limits_hold(make_cache: Any) -> None:
    cache = make_cache(max_bytes=10, max_entries=3)
    cache.set("a", b"aaaa")
    cache.set("b", b"bbbb")
    cache.set("c", b"cccc")  # 12 bytes: "a" goes
    assert list(cache) == ["b", "c"]
    cache.set("d", b"d")
    assert list(cache) == ["b", "c", "d"]
    cache.set("e", b"e")  # 4 entries, 10 bytes: the entry limit evicts "b"
    assert list(cache) == ["c", "d", "e"]
    s = cache.stats()
    assert (s["evictions"], s["entries"], s["bytes"]) == (2, 3, 6)


def test_one_heavy_entry_evicts_several(make_cache: Any) -> None:
    cache = make_cache(max_bytes=10)
    for k in "abcde":
        cache.set(k, b"xx")
    assert cache.set("x", b"y" * 9) is True
    assert list(cache) == ["x"]
    assert cache.stats()["evictions"] == 5
    assert cache.stats()["bytes"] == 9


def test_entry_of_exactly_max_bytes_fits(make_cache: Any) -> None:
    cache = make_cache(max_bytes=10)
    cache.set("a", b"x")
    assert cache.set("b", b"y" * 10) is True
    assert list(cache) == ["b"]
    assert cache.stats()["bytes"] == 10


def test_growing_an_entry_evicts_others_not_itself(make_cache: Any) -> None:
    cache = make_cache(max_bytes=10)
    for k in "abc":
        cache.set(k, b"xxx")
    cache.set("a", b"x" * 8)  # "a" is now most recently used; "b" and "c" must go
    assert list(cache) == ["a"]
    assert cache.stats()["bytes"] == 8
    cache.set("a", b"x")
    assert cache.stats()["bytes"] == 1


def test_entry_limit_only(make_cache: Any) -> None:
    cache = make_cache(max_bytes=None, max_entries=2)
    assert cache.set("a", b"x", size=2**40) is True
    cache.set("b", b"x", size=2**41)
    cache.set("c", b"x")
    assert list(cache) == ["b", "c"]
    assert cache.stats()["bytes"] == 2**41 + 1


def test_byte_total_is_the_sum_of_weights(make_cache: Any) -> None:
    cache = make_cache(max_bytes=1000, max_entries=50)
    rng = random.Random(7)
    sizes: Dict[int, int] = {}
    for _ in range(2000):
        k = rng.randrange(80)
        r = rng.random()
        if r < 0.5:
            size = rng.randrange(60)
            if cache.set(k, b"v", size=size):
                sizes[k] = size
        elif r < 0.65:
            value = b"x" * rng.randrange(60)
            cache.set(k, value)
            sizes[k] = len(value)
        elif r < 0.8:
            cache.pop(k, None)
        else:
            cache.get(k)
        assert cache.stats()["bytes"] == weights(cache, sizes)
    cache._check()


def test_explicit_size_overrides_the_sizer(make_cache: Any) -> None:
    calls: List[Any] = []

    def sizer(value: Any) -> int:
        calls.append(value)
        return 7

    cache = make_cache(sizer=sizer)
    cache.set("a", b"abc", size=0)
    cache.set("b", b"abc", size=3)
    assert calls == []
    cache.set("c", "value")
    assert calls == ["value"]
    assert cache.stats()["bytes"] == 10


def test_custom_sizer(make_cache: Any) -> None:
    cache = make_cache(max_bytes=100, sizer=lambda v: v["weight"])
    cache.set("a", {"weight": 60})
    cache.set("b", {"weight": 30})
    assert cache.stats()["bytes"] == 90
    cache.set("c", {"weight": 20})
    assert list(cache) == ["b", "c"]
    assert cache.set("d", {"weight": 101}) is False


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"abc", 3),
        (b"", 0),
        (bytearray(b"abcde"), 5),
        ("h\u00e9llo \u2603", 7),  # characters, not encoded bytes
        (memoryview(b"abcdef")[1:4], 3),
        (memoryview(array.array("d", [1.0, 2.0, 3.0])), 24),  # nbytes, not len() (which is 3)
    ],
    ids=["bytes", "empty", "bytearray", "str", "memoryview-slice", "memoryview-doubles"],
)
def test_default_sizer_length_types(default_sizer: Any, make_cache: Any, value: Any, expected: int) -> None:
    assert default_sizer(value) == expected
    cache = make_cache()
    cache.set("k", value)
    assert cache.stats()["bytes"] == expected


@pytest.mark.parametrize(
    "value",
    [12345, 2**100, 1.5, None, (1, 2, 3), [1, 2, 3, 4], {"a": 1}, object()],
    ids=["int", "bigint", "float", "None", "tuple", "list", "dict", "object"],
)
def test_default_sizer_getsizeof(default_sizer: Any, make_cache: Any, value: Any) -> None:
    assert default_sizer(value) == sys.getsizeof(value)
    cache = make_cache(max_bytes=None)
    cache.set("k", value)
    assert cache.stats()["bytes"] == sys.getsizeof(value)


@settings(max_examples=300, database=None, deadline=None)
@given(
    st.one_of(
        st.integers(), st.integers(-(2**200), 2**200), st.floats(), st.booleans(), st.none(),
        st.binary(), st.text(), st.binary().map(bytearray), st.tuples(st.integers()), st.lists(st.integers()),
    )
)
def test_default_sizer_rule(default_sizer: Any, value: Any) -> None:
    # The compiled sizer computes sys.getsizeof itself for ints and floats: check it agrees everywhere.
    expected = len(value) if type(value) in (bytes, str, bytearray) else sys.getsizeof(value)
    assert default_sizer(value) == expected


def test_default_sizer_uses_exact_types(default_sizer: Any) -> None:
    # The reference checks `type(v) is bytes` etc.: a subclass may override __len__, so it gets getsizeof.
    class Blob(bytes):
        pass

    class Text(str):
        pass

    assert default_sizer(Blob(b"abc")) == sys.getsizeof(Blob(b"abc"))
    assert default_sizer(Text("abc")) == sys.getsizeof(Text("abc"))


# ---------------------------------------------------------------------------------------------- rejection


def test_oversize_entry_is_rejected_without_evicting(make_cache: Any) -> None:
    cache = make_cache(max_bytes=10)
    cache.set("a", b"aaaa")
    cache.set("b", b"bbbb")
    assert cache.set("big", b"x" * 11) is False
    assert cache.set("big2", b"x", size=11) is False
    assert "big" not in cache and "big2" not in cache
    assert list(cache) == ["a", "b"]
    s = cache.stats()
    assert (s["rejections"], s["sets"], s["evictions"], s["bytes"]) == (2, 2, 0, 8)


def test_rejected_write_removes_the_older_value(make_cache: Any) -> None:
    cache = make_cache(max_bytes=10)
    cache.set("a", b"aaaa")
    cache.set("b", b"bbbb", ttl=30)
    assert cache.set("b", b"x" * 11) is False
    assert "b" not in cache
    assert cache.get("b") is None
    assert list(cache) == ["a"]
    s = cache.stats()
    assert (s["rejections"], s["bytes"], s["entries"], s["evictions"]) == (1, 4, 1, 0)
    assert cache.expire() == 0


def test_no_byte_limit_rejects_nothing(make_cache: Any) -> None:
    cache = make_cache(max_bytes=None)
    assert cache.set("a", b"x", size=2**61) is True
    assert cache.stats()["rejections"] == 0


# ---------------------------------------------------------------------------------------------- TTL


def test_entry_expires_at_its_deadline(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache()
    cache.set("a", b"v", ttl=10)
    fake_timer.advance(9.5)
    assert cache.get("a") == b"v"
    fake_timer.advance(0.5)  # now == deadline: expired
    assert cache.get("a") is None
    s = cache.stats()
    assert (s["hits"], s["misses"], s["expirations"], s["entries"], s["bytes"]) == (1, 1, 1, 0, 0)


def test_default_ttl_and_explicit_override(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(default_ttl=5)
    cache.set("default", b"v")
    cache.set("long", b"v", ttl=50)
    assert cache.ttl("default") == 5.0
    assert cache.ttl("long") == 50.0
    fake_timer.advance(5)
    assert list(cache) == ["long"]


@pytest.mark.parametrize("probe", ["get", "peek", "in", "get_many", "pop", "touch", "ttl", "iter", "len"])
def test_expired_entry_is_never_returned(make_cache: Any, fake_timer: Any, probe: str) -> None:
    cache = make_cache()
    cache.set("a", b"v", ttl=1)
    cache.set("b", b"w")
    fake_timer.advance(1)
    if probe == "get":
        assert cache.get("a", "dflt") == "dflt"
    elif probe == "peek":
        assert cache.peek("a", "dflt") == "dflt"
    elif probe == "in":
        assert "a" not in cache
    elif probe == "get_many":
        assert cache.get_many(["a", "b"]) == {"b": b"w"}
    elif probe == "pop":
        assert cache.pop("a", "dflt") == "dflt"
        with pytest.raises(KeyError):
            cache.pop("a")
    elif probe == "touch":
        assert cache.touch("a") is False
    elif probe == "ttl":
        with pytest.raises(KeyError):
            cache.ttl("a")
    elif probe == "iter":
        assert list(cache) == ["b"]
    elif probe == "len":
        assert len(cache) == 1
    s = cache.stats()
    assert (s["expirations"], s["entries"], s["bytes"]) == (1, 1, 1)
    assert list(cache) == ["b"]


def test_len_does_not_count_expired(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache()
    cache.set("a", b"v", ttl=1)
    cache.set("b", b"v", ttl=2)
    cache.set("c", b"v")
    assert len(cache) == 3
    fake_timer.advance(1)
    assert len(cache) == 2
    fake_timer.advance(1)
    assert len(cache) == 1
    assert cache.stats()["expirations"] == 2


def test_expire_returns_the_count(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache()
    for i in range(10):
        cache.set(i, b"v" * i, ttl=1 + (i % 3))
    cache.set("forever", b"v")
    assert cache.expire() == 0
    fake_timer.advance(1)
    assert cache.expire() == 4  # 0, 3, 6, 9
    assert cache.expire() == 0
    fake_timer.advance(2)
    assert cache.expire() == 6
    assert list(cache) == ["forever"]
    s = cache.stats()
    assert (s["expirations"], s["bytes"], s["entries"]) == (10, 1, 1)


def test_expire_skips_rewritten_entries(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache()
    cache.set("a", b"v", ttl=1)
    cache.set("a", b"v", ttl=10)  # the first deadline no longer applies
    cache.set("b", b"v", ttl=1)
    cache.set("b", b"v")  # no deadline at all
    fake_timer.advance(5)
    assert cache.expire() == 0
    assert list(cache) == ["a", "b"]
    assert cache.ttl("b") is None


def test_ttl_remaining(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache()
    cache.set("a", b"v", ttl=10)
    cache.set("b", b"v")
    fake_timer.advance(2.5)
    remaining = cache.ttl("a")
    assert remaining == 7.5 and type(remaining) is float
    assert cache.ttl("b") is None
    with pytest.raises(KeyError):
        cache.ttl("missing")
    fake_timer.advance(7.5)
    with pytest.raises(KeyError):
        cache.ttl("a")
    assert cache.stats()["expirations"] == 1


def test_touch(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache()
    cache.set("a", b"v", ttl=10)
    cache.set("b", b"v")
    fake_timer.advance(4)
    assert cache.touch("a") is True  # no ttl, no default_ttl: deadline unchanged, but used
    assert list(cache) == ["b", "a"]
    assert cache.ttl("a") == 6.0
    assert cache.touch("a", ttl=20) is True
    assert cache.ttl("a") == 20.0
    assert cache.touch("b", ttl=3) is True  # an entry without expiry gets one
    assert cache.ttl("b") == 3.0
    assert cache.touch("missing") is False
    assert cache.touch("missing", ttl=5) is False
    assert "missing" not in cache
    fake_timer.advance(3)
    assert list(cache) == ["a"]


def test_touch_restarts_default_ttl(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(default_ttl=10)
    cache.set("a", b"v")
    fake_timer.advance(8)
    assert cache.touch("a") is True
    assert cache.ttl("a") == 10.0
    fake_timer.advance(9)
    assert cache.get("a") == b"v"


def test_set_without_ttl_clears_the_old_deadline(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache()
    cache.set("a", b"v", ttl=1)
    cache.set("a", b"w")
    assert cache.ttl("a") is None
    fake_timer.advance(100)
    assert cache.get("a") == b"w"


def test_expired_entries_go_before_live_ones_are_evicted(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(max_entries=3)
    cache.set("old-live", b"v")  # least recently used, but live
    cache.set("short", b"v", ttl=5)
    cache.set("live", b"v")
    fake_timer.advance(5)
    cache.set("new", b"v")
    assert list(cache) == ["old-live", "live", "new"]
    s = cache.stats()
    assert (s["evictions"], s["expirations"]) == (0, 1)


def test_expired_entries_go_before_live_ones_by_bytes(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(max_bytes=10)
    cache.set("a", b"aaa")
    cache.set("b", b"bbb", ttl=1)
    cache.set("c", b"ccc", ttl=2)
    fake_timer.advance(2)
    cache.set("d", b"ddddddd")  # 16 bytes: both expired entries go, "a" (3 + 7 = 10) stays
    assert list(cache) == ["a", "d"]
    s = cache.stats()
    assert (s["evictions"], s["expirations"], s["bytes"]) == (0, 2, 10)


def test_timer_is_not_read_without_ttls(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(max_bytes=20, max_entries=3)
    for i in range(10):
        cache.set(i, b"xxxx")
        cache.get(i), cache.get(i - 5), cache.peek(i), i in cache, cache.touch(i), cache.ttl(i)
    cache.set_many({"a": b"1", "b": b"2"})
    cache.get_many(["a", "z"])
    cache.pop("a"), cache.pop("zz", None), cache.delete("b")
    cache.set("big", b"x" * 50)
    len(cache), list(cache), cache.stats(), cache.expire(), cache.clear()
    assert fake_timer.calls == 0
    cache.set("t", b"v", ttl=5)
    assert fake_timer.calls > 0


def test_timer_may_return_ints(make_cache: Any) -> None:
    ticks = [100]
    cache = make_cache(timer=lambda: ticks[0])
    cache.set("a", b"v", ttl=10)
    ticks[0] = 104
    remaining = cache.ttl("a")
    assert remaining == 6.0 and type(remaining) is float
    ticks[0] = 110
    assert "a" not in cache


# ---------------------------------------------------------------------------------------------- bulk calls


def test_get_many(make_cache: Any) -> None:
    cache = make_cache()
    for k in "abcd":
        cache.set(k, k.encode())
    found = cache.get_many(k for k in ["c", "x", "a"])
    assert found == {"c": b"c", "a": b"a"}
    assert list(found) == ["c", "a"]
    assert list(cache) == ["b", "d", "c", "a"]  # hits count as use, in the order asked
    s = cache.stats()
    assert (s["hits"], s["misses"]) == (2, 1)
    assert cache.get_many([]) == {}


def test_set_many_mapping_and_pairs(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(max_bytes=100)
    assert cache.set_many({"a": b"1", "b": b"22"}) == 2
    assert cache.set_many([("c", b"333"), ("a", b"4444")], ttl=5) == 2
    assert list(cache) == ["b", "c", "a"]
    assert cache.peek("a") == b"4444"
    assert cache.ttl("b") is None and cache.ttl("c") == 5.0 and cache.ttl("a") == 5.0
    assert cache.stats()["bytes"] == 9
    assert cache.set_many(iter([("d", b"x" * 101), ("e", b"e")])) == 1  # one rejected
    assert cache.stats()["rejections"] == 1
    assert cache.stats()["sets"] == 5
    assert cache.set_many({}) == 0
    fake_timer.advance(5)
    assert list(cache) == ["b", "e"]


def test_set_many_uses_default_ttl(make_cache: Any) -> None:
    cache = make_cache(default_ttl=3)
    cache.set_many({"a": b"1"})
    assert cache.ttl("a") == 3.0


# ---------------------------------------------------------------------------------------------- pop, delete, clear


def test_pop(make_cache: Any) -> None:
    cache = make_cache()
    cache.set("a", b"abc")
    cache.set("b", b"de")
    assert cache.pop("a") == b"abc"
    assert cache.stats()["bytes"] == 2
    assert cache.pop("a", "dflt") == "dflt"
    assert cache.pop("a", None) is None
    with pytest.raises(KeyError) as info:
        cache.pop("a")
    assert info.value.args == ("a",)
    assert list(cache) == ["b"]


def test_mapping_operators(make_cache: Any, fake_timer: Any) -> None:
    # cache[k] = v, cache[k], del cache[k]: set/get/delete with the default ttl, raising where those return
    cache = make_cache(max_bytes=10, default_ttl=5)
    cache["a"] = b"abc"
    cache["b"] = b"de"
    assert cache["a"] == b"abc"  # a hit: "a" is now the most recent
    assert list(cache) == ["b", "a"]
    assert cache.ttl("a") == 5.0  # the default ttl applies, as for set()
    with pytest.raises(KeyError) as info:
        cache["zz"]
    assert info.value.args == ("zz",)
    s = cache.stats()
    assert (s["hits"], s["misses"], s["sets"], s["bytes"]) == (1, 1, 2, 5)
    del cache["b"]
    with pytest.raises(KeyError) as info:
        del cache["b"]
    assert info.value.args == ("b",)
    assert list(cache) == ["a"]
    fake_timer.advance(5)
    with pytest.raises(KeyError):
        cache["a"]  # expired: absent
    with pytest.raises(KeyError):
        del cache["a"]
    with pytest.raises(TypeError, match="unhashable"):
        cache[[1]] = b"x"
    with pytest.raises(TypeError, match="unhashable"):
        cache[[1]]
    assert len(cache) == 0 and cache.stats()["bytes"] == 0


def test_mapping_assignment_of_an_oversize_value(make_cache: Any) -> None:
    # as set() returning False: a rejection counted, the older value dropped, nothing else touched
    cache = make_cache(max_bytes=10)
    cache["a"] = b"aaaa"
    cache["b"] = b"bbbb"
    with pytest.raises(ValueError, match=r"max_bytes=10"):
        cache["b"] = b"x" * 11
    assert "b" not in cache and list(cache) == ["a"]
    s = cache.stats()
    assert (s["rejections"], s["sets"], s["evictions"], s["bytes"], s["entries"]) == (1, 2, 0, 4, 1)


def test_delete_present(make_cache: Any) -> None:
    cache = make_cache()
    cache.set("a", b"abc")
    assert cache.delete("a") is True
    assert list(cache) == [] and cache.stats()["bytes"] == 0


def test_delete_missing(make_cache: Any) -> None:
    cache = make_cache()
    cache.set("a", b"abc")
    assert cache.delete("b") is False
    assert list(cache) == ["a"]


def test_delete_expired(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache()
    cache.set("a", b"abc", ttl=1)
    fake_timer.advance(1)
    assert cache.delete("a") is False
    assert cache.stats()["expirations"] == 1


def test_iteration_is_a_snapshot(make_cache: Any) -> None:
    cache = make_cache()
    for i in range(10):
        cache.set(i, b"v")
    seen = []
    for k in cache:
        seen.append(k)
        cache.pop(k)
        cache.set(k + 100, b"v")
    assert seen == list(range(10))
    assert list(cache) == list(range(100, 110))


def test_len_and_contains(make_cache: Any) -> None:
    cache = make_cache(max_entries=3)
    for i in range(5):
        cache.set(i, b"v")
    assert len(cache) == 3
    assert [i in cache for i in range(5)] == [False, False, True, True, True]


def test_keys_follow_dict_equality(make_cache: Any) -> None:
    cache = make_cache()
    cache.set(1, b"int")
    assert cache.get(1.0) == b"int"
    cache.set(True, b"bool")
    assert list(cache) == [1] and cache.get(1) == b"bool"
    nan = float("nan")
    cache.set(nan, b"nan")
    assert cache.get(nan) == b"nan"  # found by identity, as in a dict
    assert float("nan") not in cache
    cache.set(Key(5), b"k")
    assert cache.get(Key(5)) == b"k"  # an equal, distinct object
    assert cache.pop(Key(5)) == b"k"
    cache.set((1, "a"), b"t")
    assert (1, "a") in cache


def test_many_colliding_keys(make_cache: Any) -> None:
    cache = make_cache(max_entries=40)
    keys = [Key(i, bucket=2) for i in range(60)]
    for i, k in enumerate(keys):
        assert cache.set(k, i, size=1)
        cache._check()
    assert list(cache) == keys[20:]
    for i, k in enumerate(keys):
        assert cache.get(Key(i, bucket=2)) == (i if i >= 20 else None)
    for k in keys[20:40]:
        cache.pop(Key(k.n, bucket=2))
        cache._check()
    assert list(cache) == keys[40:]
    assert cache.stats()["bytes"] == 20


# ---------------------------------------------------------------------------------------------- edge cases


def test_weights_and_ttls_may_be_number_subclasses(make_cache: Any, fake_timer: Any) -> None:
    class Weight(int):
        pass

    class Seconds(float):
        pass

    cache = make_cache(sizer=lambda value: Weight(3))
    cache.set("a", b"v", size=Weight(5))
    cache.set("b", b"v", ttl=Seconds(2.5))
    cache.set("c", b"v", ttl=Weight(4))
    assert cache.stats()["bytes"] == 11
    assert cache.ttl("b") == 2.5 and cache.ttl("c") == 4.0


def test_extreme_ttls(make_cache: Any) -> None:
    cache = make_cache()
    assert cache.set("tiny", b"v", ttl=1e-300) is True  # now + ttl == now: expired at once
    assert cache.get("tiny") is None
    assert cache.stats()["expirations"] == 1
    assert cache.set("huge", b"v", ttl=1e300) is True
    assert cache.ttl("huge") == 1e300


@pytest.mark.parametrize("arg", ["ttl", "default_ttl", "cleanup_interval"])
def test_ttl_too_large_for_a_float(HashCache: Any, arg: str) -> None:
    with pytest.raises(ValueError, match=rf"\b{arg}\b"):
        if arg == "ttl":
            HashCache().set("a", b"v", ttl=10**400)
        else:
            HashCache(**{arg: 10**400})


def test_out_of_range_sizes_and_limits(HashCache: Any) -> None:
    with pytest.raises(ValueError, match=message("size", 2**100)):
        HashCache(max_bytes=None).set("a", b"v", size=2**100)
    with pytest.raises(ValueError, match=message("sizer", 2**100)):
        HashCache(max_bytes=None, sizer=lambda value: 2**100).set("a", b"v")
    with pytest.raises(ValueError, match=message("max_bytes", 2**100)):
        HashCache(max_bytes=2**100)
    with pytest.raises(ValueError, match=message("max_entries", 2**40)):
        HashCache(max_entries=2**40)


def test_huge_weights_are_counted_exactly(make_cache: Any) -> None:
    # Whatever ceiling an implementation puts on the byte total, the total stays exact: no wrap-around.
    weight = 2**61 + 12345
    for max_bytes in (None, 3 * 2**60):
        cache = make_cache(max_bytes=max_bytes)
        for i in range(6):
            assert cache.set(i, b"", size=weight) is True
            listed = list(cache)
            assert listed and listed[-1] == i
            assert cache.stats()["bytes"] == weight * len(listed)
        assert max_bytes is None or cache.stats()["bytes"] <= max_bytes
        cache._check()


def test_set_many_with_a_malformed_item_stores_nothing(make_cache: Any) -> None:
    cache = populated(make_cache)
    before = snapshot(cache)
    for items in ([("new", b"v"), ("x",)], [("new", b"v"), ("x", b"v", 3)], [("new", b"v"), 5]):
        with pytest.raises((TypeError, ValueError)):
            cache.set_many(items)
        assert snapshot(cache) == before
    with pytest.raises(TypeError):
        cache.set_many(5)
    with pytest.raises(TypeError):
        cache.get_many(5)
    assert snapshot(cache) == before


@pytest.mark.parametrize("hashes", [[0, -1, -2, 1, sys.maxsize, -sys.maxsize - 1, 2**61 - 1, 2**32, -(2**32)]])
def test_extreme_hashes(make_cache: Any, hashes: List[int]) -> None:
    class H:
        def __init__(self, h: int, tag: int) -> None:
            self.h, self.tag = h, tag

        def __hash__(self) -> int:
            return self.h

        def __eq__(self, other: object) -> bool:
            return isinstance(other, H) and (other.h, other.tag) == (self.h, self.tag)

    cache = make_cache(max_entries=100)
    keys = [H(h, tag) for h in hashes for tag in range(3)]
    for i, k in enumerate(keys):
        cache.set(k, i, size=1)
    for i, k in enumerate(keys):
        assert cache.get(H(k.h, k.tag)) == i
    for k in keys[::2]:
        assert cache.pop(H(k.h, k.tag)) is not None
    cache._check()
    assert list(cache) == keys[1::2]
    for k in keys[1::2]:
        assert k in cache


def test_table_grows_and_shrinks(make_cache: Any) -> None:
    cache = make_cache(max_bytes=None)
    n = 20000
    for i in range(n):
        cache.set(i, i, size=1)
    assert len(cache) == n
    for i in range(0, n, 3):
        cache.pop(i)
    cache._check()
    assert all(cache.peek(i) == (None if i % 3 == 0 else i) for i in range(n))
    for i in range(n):
        cache.pop(i, None)
    assert len(cache) == 0 and cache.stats()["bytes"] == 0
    cache._check()
    for i in range(100):
        cache.set(str(i), i, size=1)
    assert list(cache) == [str(i) for i in range(100)]
    cache._check()


def test_default_timer_is_a_monotonic_clock(HashCache: Any) -> None:
    cache = HashCache()
    cache.set("a", b"v", ttl=1000)
    assert 0 < cache.ttl("a") <= 1000  # no sleep: only checks the clock is read and in seconds
    assert cache.get("a") == b"v"


def test_references_are_released(HashCache: Any, fake_timer: Any) -> None:
    class Boom(Exception):
        pass

    class Touchy(Key):  # a subclass's __eq__ is tried first, even against a stored Key
        __hash__ = Key.__hash__

        def __eq__(self, other: object) -> bool:
            raise Boom

    key, value = Key(99, bucket=1), object()

    def workout() -> None:
        held = sys.getrefcount(key), sys.getrefcount(value)
        cache = HashCache(max_bytes=100, max_entries=3, timer=fake_timer)
        for _ in range(3):
            cache.set(key, value, size=1)
            cache.get(key), cache.peek(key), key in cache, cache.touch(key, ttl=1), cache.ttl(key)
            cache.get_many([key, "x"]), cache.set_many([(key, value), ("y", value)]), cache.pop(key)
            cache.set(key, value, ttl=1)
            fake_timer.advance(2)
            cache.get(key), cache.set(key, value, ttl=1)
            fake_timer.advance(2)
            cache.expire(), cache.set(key, value, ttl=1)
            fake_timer.advance(2)
            len(cache), cache.set(key, value)
            for j in range(4):
                cache.set(Key(j, bucket=1), value, size=1)  # evicts
            cache.set(key, value), cache.set(key, value, size=1000)  # rejected
            cache.set(key, value), cache.clear(), cache.set(key, value), cache.delete(key), cache.delete(key)
            for bad in (lambda: cache.set(key, value, ttl=-1), lambda: cache.set(key, value, size=-1),
                        lambda: cache.set([], value), lambda: cache.set_many([(key, value), ([], value)])):
                with pytest.raises((TypeError, ValueError)):
                    bad()
            cache.set(Key(1, bucket=1), value, size=1)
            for call in (cache.get, cache.peek, cache.pop):
                with pytest.raises(Boom):
                    call(Touchy(-1, bucket=1))
            cache.set(key, value)
        cache._check()
        cache.clear()  # the cache lets go of what it no longer holds, not only when it dies
        assert (sys.getrefcount(key), sys.getrefcount(value)) == held
        cache.close()

    workout()  # first run: caches, interned objects and the like settle
    gc.collect()
    before = sys.getrefcount(key), sys.getrefcount(value)
    workout()
    gc.collect()
    assert (sys.getrefcount(key), sys.getrefcount(value)) == before


def test_cache_referenced_by_its_values_is_collected(HashCache: Any) -> None:
    cache = HashCache(cleanup_interval=None)
    cache.set("self", cache)
    cache.set("list", [cache])
    ref = weakref.ref(cache)
    del cache
    gc.collect()
    assert ref() is None


# ---------------------------------------------------------------------------------------------- context manager


def test_context_manager_and_close(HashCache: Any) -> None:
    with HashCache(max_entries=2) as cache:
        assert isinstance(cache, HashCache)
        cache.set("a", b"v")
    cache.close()
    cache.close()
    assert cache.get("a") == b"v"  # close() leaves the cache usable
    cache.set("b", b"v")
    cache._check()


# ---------------------------------------------------------------------------------------------- bad input


def populated(make_cache: Any, **kwargs: Any) -> Any:
    cache = make_cache(max_bytes=100, max_entries=10, **kwargs)
    cache.set("a", b"aaa")
    cache.set("b", b"bb", ttl=50)
    cache.set("c", b"c", size=4)
    cache.get("a"), cache.get("nope")
    return cache


def message(arg: str, value: Any) -> str:
    """A `match=` pattern: the message names the argument and shows the value."""
    return rf"\b{re.escape(arg)}\b.*{re.escape(repr(value))}"


BAD_TTLS = [(-1, ValueError), (0, ValueError), (0.0, ValueError), (-0.5, ValueError), (math.nan, ValueError),
            (math.inf, ValueError), (-math.inf, ValueError), ("1", TypeError), (b"1", TypeError),
            (True, TypeError), ([1], TypeError)]


@pytest.mark.parametrize("bad, exc", BAD_TTLS, ids=[repr(b) for b, _ in BAD_TTLS])
@pytest.mark.parametrize("call", ["set-new", "set-existing", "touch", "set_many"])
def test_bad_ttl(make_cache: Any, call: str, bad: Any, exc: Any) -> None:
    cache = populated(make_cache)
    before = snapshot(cache)
    with pytest.raises(exc, match=message("ttl", bad)):
        if call == "set-new":
            cache.set("new", b"v", ttl=bad)
        elif call == "set-existing":
            cache.set("b", b"new value", ttl=bad)
        elif call == "touch":
            cache.touch("b", ttl=bad)
        else:
            cache.set_many({"new": b"v", "a": b"new value"}, ttl=bad)
    assert snapshot(cache) == before
    cache._check()


@pytest.mark.parametrize("bad, exc", BAD_TTLS, ids=[repr(b) for b, _ in BAD_TTLS])
def test_bad_default_ttl(HashCache: Any, bad: Any, exc: Any) -> None:
    with pytest.raises(exc, match=message("default_ttl", bad)):
        HashCache(default_ttl=bad)


BAD_SIZES = [(-1, ValueError), (-(2**70), ValueError), (1.5, TypeError), (3.0, TypeError), ("3", TypeError),
             (True, TypeError)]


@pytest.mark.parametrize("bad, exc", BAD_SIZES, ids=[repr(b) for b, _ in BAD_SIZES])
@pytest.mark.parametrize("key", ["new", "a"])
def test_bad_size(make_cache: Any, key: str, bad: Any, exc: Any) -> None:
    cache = populated(make_cache)
    before = snapshot(cache)
    with pytest.raises(exc, match=message("size", bad)):
        cache.set(key, b"v", size=bad)
    assert snapshot(cache) == before


@pytest.mark.parametrize("result, exc", [(-1, ValueError), (2.0, TypeError), (None, TypeError), ("1", TypeError),
                                         (False, TypeError)])
@pytest.mark.parametrize("call", ["set-new", "set-existing", "set_many"])
def test_bad_sizer_result(make_cache: Any, call: str, result: Any, exc: Any) -> None:
    sizer_result = [3]
    cache = populated(make_cache, sizer=lambda value: sizer_result[0])
    before = snapshot(cache)
    sizer_result[0] = result
    with pytest.raises(exc, match=rf"\bsizer\b.*{re.escape(repr(result))}"):
        if call == "set-new":
            cache.set("new", b"v")
        elif call == "set-existing":
            cache.set("a", b"v")
        else:
            cache.set_many([("a", b"v"), ("new", b"v")])
    assert snapshot(cache) == before


@pytest.mark.parametrize("call", ["set", "set_many"])
def test_sizer_exception_propagates(make_cache: Any, call: str) -> None:
    class SizerError(Exception):
        pass

    def sizer(value: Any) -> int:
        if value == "bad":
            raise SizerError
        return 1

    cache = populated(make_cache, sizer=sizer)
    before = snapshot(cache)
    with pytest.raises(SizerError):
        if call == "set":
            cache.set("a", "bad")
        else:
            cache.set_many({"new": "good", "a": "bad"})
    assert snapshot(cache) == before


UNHASHABLE_CALLS = {
    "set": lambda c, k: c.set(k, b"v"),
    "get": lambda c, k: c.get(k),
    "peek": lambda c, k: c.peek(k),
    "in": lambda c, k: k in c,
    "delete": lambda c, k: c.delete(k),
    "pop": lambda c, k: c.pop(k),
    "pop-default": lambda c, k: c.pop(k, None),
    "touch": lambda c, k: c.touch(k, ttl=5),
    "ttl": lambda c, k: c.ttl(k),
    "get_many": lambda c, k: c.get_many(["a", k, "b"]),
    "set_many-pairs": lambda c, k: c.set_many([("new", b"v"), ("a", b"new value"), (k, b"v")]),
}


@pytest.mark.parametrize("key", [[1], {"a": 1}, {1}, ([1], 2)], ids=["list", "dict", "set", "tuple-of-list"])
@pytest.mark.parametrize("call", list(UNHASHABLE_CALLS))
def test_unhashable_key(make_cache: Any, call: str, key: Any) -> None:
    cache = populated(make_cache)
    before = snapshot(cache)
    with pytest.raises(TypeError, match=r"\bkey\b.*hashable|hashable.*\bkey\b"):
        UNHASHABLE_CALLS[call](cache, key)
    assert snapshot(cache) == before
    cache._check()


def test_unhashable_key_message_names_the_type(make_cache: Any) -> None:
    cache = make_cache()
    with pytest.raises(TypeError, match=r"\bkey\b.*\blist\b"):
        cache.set([1, 2], b"v")
    with pytest.raises(TypeError, match=r"\bkey\b.*\bdict\b"):
        cache.get({})


@pytest.mark.parametrize(
    "kwargs, exc, pattern",
    [
        ({"max_bytes": 0}, ValueError, message("max_bytes", 0)),
        ({"max_bytes": -1}, ValueError, message("max_bytes", -1)),
        ({"max_bytes": 1.5}, TypeError, message("max_bytes", 1.5)),
        ({"max_bytes": "10"}, TypeError, message("max_bytes", "10")),
        ({"max_bytes": True}, TypeError, message("max_bytes", True)),
        ({"max_entries": 0}, ValueError, message("max_entries", 0)),
        ({"max_entries": -5}, ValueError, message("max_entries", -5)),
        ({"max_entries": 2.0}, TypeError, message("max_entries", 2.0)),
        ({"sizer": 5}, TypeError, message("sizer", 5)),
        ({"sizer": "len"}, TypeError, message("sizer", "len")),
        ({"timer": 1.0}, TypeError, message("timer", 1.0)),
        ({"cleanup_interval": 0}, ValueError, message("cleanup_interval", 0)),
        ({"cleanup_interval": -1}, ValueError, message("cleanup_interval", -1)),
        ({"cleanup_interval": math.nan}, ValueError, message("cleanup_interval", math.nan)),
        ({"cleanup_interval": "1"}, TypeError, message("cleanup_interval", "1")),
    ],
    ids=lambda v: repr(v) if isinstance(v, dict) else "",
)
def test_bad_constructor_arguments(HashCache: Any, kwargs: Dict[str, Any], exc: Any, pattern: str) -> None:
    with pytest.raises(exc, match=pattern):
        HashCache(**kwargs)


def test_rejected_calls_do_not_count(make_cache: Any) -> None:
    cache = populated(make_cache)
    before = cache.stats()
    for bad in (lambda: cache.set([], b"v"), lambda: cache.set("x", b"v", ttl=-1),
                lambda: cache.set("x", b"v", size=-1), lambda: cache.get_many([[]]),
                lambda: cache.set_many({"x": b"v"}, ttl=math.nan)):
        with pytest.raises((TypeError, ValueError)):
            bad()
    assert cache.stats() == before


# ---------------------------------------------------------------------------------------------- the two agree


class Colliding:
    """A key with Python-level __eq__ whose hash collides with every other instance's."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return 42

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Colliding) and other.n == self.n

    def __repr__(self) -> str:
        return f"Colliding({self.n})"


def random_ops(seed: int, n_ops: int, max_bytes: Any, width: int) -> List[Tuple[Any, ...]]:
    rng = random.Random(seed)
    keys: List[Any] = list(range(width)) + [f"s{i}" for i in range(width // 2)]
    keys += [Colliding(i) for i in range(10)] + [1.0, True, b"bytes-key", (1, 2)]
    ops: List[Tuple[Any, ...]] = []

    def ttl() -> Any:
        return rng.choice([None, None, 0.5, 1, 2.5, 10])

    for _ in range(n_ops):
        k = rng.choice(keys)
        r = rng.random()
        if r < 0.30:
            value = b"v" * rng.randrange(40)
            size = rng.choice([None, None, None, rng.randrange(50)])
            if max_bytes is not None and rng.random() < 0.02:
                size = max_bytes + rng.randrange(1, 5)
            ops.append(("set", k, value, ttl(), size))
        elif r < 0.50:
            ops.append(("get", k))
        elif r < 0.55:
            ops.append(("peek", k))
        elif r < 0.58:
            ops.append(("in", k))
        elif r < 0.62:
            ops.append(("delete", k))
        elif r < 0.66:
            ops.append(("pop", k, rng.choice([True, False])))
        elif r < 0.71:
            ops.append(("touch", k, ttl()))
        elif r < 0.74:
            ops.append(("ttl", k))
        elif r < 0.77:
            ops.append(("get_many", tuple(rng.choice(keys) for _ in range(rng.randrange(5)))))
        elif r < 0.80:
            items = tuple((rng.choice(keys), b"m" * rng.randrange(30)) for _ in range(rng.randrange(5)))
            ops.append(("set_many", items, ttl()))
        elif r < 0.88:
            ops.append(("advance", rng.choice([0.25, 0.5, 1.0, 3.0])))
        elif r < 0.91:
            ops.append(("expire",))
        elif r < 0.94:
            ops.append(("len",))
        elif r < 0.97:
            ops.append(("iter",))
        elif r < 0.995:
            ops.append(("stats",))
        else:
            ops.append(("clear",))
    return ops


def apply(cache: Any, timer: Any, op: Tuple[Any, ...]) -> Any:
    name = op[0]
    if name == "set":
        _, k, value, ttl, size = op
        return cache.set(k, value, ttl=ttl, size=size)
    if name == "get":
        return cache.get(op[1], "<default>")
    if name == "peek":
        return cache.peek(op[1], "<default>")
    if name == "in":
        return op[1] in cache
    if name == "delete":
        return cache.delete(op[1])
    if name == "pop":
        return cache.pop(op[1], "<default>") if op[2] else cache.pop(op[1])
    if name == "touch":
        return cache.touch(op[1], ttl=op[2])
    if name == "ttl":
        return cache.ttl(op[1])
    if name == "get_many":
        return list(cache.get_many(op[1]).items())
    if name == "set_many":
        return cache.set_many(list(op[1]), ttl=op[2])
    if name == "advance":
        return timer.advance(op[1])
    if name == "expire":
        return cache.expire()
    if name == "len":
        return len(cache)
    if name == "iter":
        return list(cache)
    if name == "stats":
        return cache.stats()
    if name == "clear":
        return cache.clear()
    raise AssertionError(name)


def trace(cache: Any, timer: Any, ops: List[Tuple[Any, ...]]) -> List[Tuple[Any, ...]]:
    """Per operation: its outcome (result, or exception type and args) and how often it read the timer."""
    out = []
    for op in ops:
        reads = timer.calls
        try:
            outcome: Tuple[Any, ...] = ("returned", apply(cache, timer, op))
        except Exception as exc:  # the exception type and arguments are part of the contract
            outcome = ("raised", type(exc).__name__, exc.args)
        out.append((outcome, timer.calls - reads))
    return out


@pytest.mark.c_extension
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize(
    "config",
    [
        {"max_bytes": 400},
        {"max_bytes": 300, "max_entries": 12, "default_ttl": 4.0},
        {"max_bytes": None, "max_entries": 25},
        {"max_bytes": 5000, "max_entries": 40},
        {"max_bytes": None, "max_entries": 400, "width": 600},  # tables and heaps that grow and shrink
        {"max_bytes": 400, "policy": "tinylfu"},
        {"max_bytes": 300, "max_entries": 12, "default_ttl": 4.0, "policy": "tinylfu"},
        {"max_bytes": None, "max_entries": 25, "policy": "tinylfu"},
        {"max_bytes": None, "max_entries": 400, "width": 600, "policy": "tinylfu"},
        {"max_bytes": 30000, "width": 600, "policy": "tinylfu"},  # bytes only: the sketch grows
    ],
    ids=["bytes", "bytes-entries-default_ttl", "entries", "roomy", "wide", "tinylfu-bytes",
         "tinylfu-bytes-entries-default_ttl", "tinylfu-entries", "tinylfu-wide", "tinylfu-growing"],
)
def test_implementations_agree(both_impls: Any, make_timer: Any, config: Dict[str, Any], seed: int) -> None:
    config = dict(config)
    width = config.pop("width", 30)
    ops = random_ops(seed, 4000 if width <= 30 else 20000, config.get("max_bytes"), width)
    results = []
    for impl in both_impls:
        timer = make_timer()
        cache = impl.HashCache(**config, timer=timer)
        steps = trace(cache, timer, ops)
        cache._check()
        results.append((steps, list(cache), cache.stats(), timer.calls))
    (c_steps, c_keys, c_stats, c_reads), (p_steps, p_keys, p_stats, p_reads) = results
    # Outcomes first: a difference there matters more than one in timer reads, and would hide behind it.
    for i, ((c, _), (p, _)) in enumerate(zip(c_steps, p_steps)):
        assert c == p, f"op #{i} {ops[i]!r}: compiled gave {c!r}, python gave {p!r}"
    assert c_keys == p_keys
    assert c_stats == p_stats
    for i, ((_, c), (_, p)) in enumerate(zip(c_steps, p_steps)):
        assert c == p, f"op #{i} {ops[i]!r}: compiled read the timer {c}x, python {p}x"
    assert c_reads == p_reads


def test_set_limits_shrinks_and_grows(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(max_bytes=100, max_entries=10)
    for i in range(10):
        cache.set(i, b"x" * 10)
    assert cache.set_limits(max_bytes=50, max_entries=10) == 5
    assert list(cache) == [5, 6, 7, 8, 9]
    assert cache.stats()["bytes"] == 50 and cache.max_bytes == 50
    assert cache.set_limits(max_bytes=None, max_entries=3) == 2
    assert list(cache) == [7, 8, 9] and cache.max_bytes is None and cache.max_entries == 3
    assert cache.set_limits(max_bytes=1000, max_entries=None) == 0
    for i in range(20):
        cache.set(100 + i, b"y")
    assert len(cache) == 23
    cache._check()


def test_set_limits_drops_expired_first(make_cache: Any, fake_timer: Any) -> None:
    cache = make_cache(max_bytes=None, max_entries=4)
    cache.set("old", 1, ttl=1)
    for k in "abc":
        cache.set(k, 1)
    fake_timer.advance(2)
    assert cache.set_limits(max_bytes=None, max_entries=3) == 1
    assert list(cache) == ["a", "b", "c"]
    assert cache.stats()["expirations"] == 1 and cache.stats()["evictions"] == 0


@pytest.mark.parametrize("bad", [0, -1, "10"])
def test_set_limits_rejects_bad_values_and_changes_nothing(make_cache: Any, bad: Any) -> None:
    cache = make_cache(max_bytes=100)
    cache.set("k", b"v")
    with pytest.raises((TypeError, ValueError), match="max_bytes"):
        cache.set_limits(max_bytes=bad)
    assert cache.max_bytes == 100 and list(cache) == ["k"]


# ---------------------------------------------------------------------------------------------- metrics counters


def test_evictions_by_cause(HashCache: Any) -> None:
    cache = HashCache(max_bytes=100, max_entries=3)
    for k in range(5):  # 5 entries of 10 bytes under max_entries=3: two evicted for the count
        cache.set(k, "x", size=10)
    cache.set("big", "x", size=95)  # over max_bytes: the three others go for the size
    stats = cache.stats()
    assert (stats["evictions"], stats["evictions_by_count"], stats["evictions_by_size"]) == (5, 2, 3)
    assert list(cache) == ["big"]


def test_promoted_entries_and_their_first_hits(HashCache: Any) -> None:
    cache = HashCache()
    cache.promote("a", 1)
    cache.promote("b", 2, size=5)
    cache.set("c", 3)
    assert cache.get("a") == 1 and cache.get("a") == 1  # two hits, one promoted entry hit
    cache.get("c")  # a plain entry: not a promotion
    assert cache.peek("b") == 2 and "b" in cache  # neither is a use
    stats = cache.stats()
    assert (stats["promoted"], stats["promoted_hits"], stats["sets"]) == (2, 1, 3)
    cache.set("a", 10)  # a plain write replaces the promoted entry: later hits are not the promotion's
    cache.get("a")
    cache.promote("b", 20)  # promoted again: a new entry history
    cache.get("b")
    stats = cache.stats()
    assert (stats["promoted"], stats["promoted_hits"], stats["bytes"]) == (3, 2, cache.stats()["bytes"])
    assert cache.stats()["promoted_hits"] == 2


def test_promote_rejects_bad_input_like_set(HashCache: Any) -> None:
    cache = HashCache(max_bytes=10)
    with pytest.raises(TypeError):
        cache.promote([], 1)
    with pytest.raises(ValueError, match="ttl"):
        cache.promote("k", 1, ttl=-1)
    assert cache.promote("k", b"x" * 11) is False
    assert cache.stats()["promoted"] == 0 and len(cache) == 0


# ---------------------------------------------------------------------------------------------- W-TinyLFU


def test_policy_argument(HashCache: Any) -> None:
    assert HashCache().policy == "lru"
    assert HashCache(max_entries=10, policy="tinylfu").policy == "tinylfu"
    with pytest.raises(ValueError, match="policy must be one of 'lru', 'tinylfu', got 'lfu'"):
        HashCache(policy="lfu")
    with pytest.raises(TypeError, match="policy must be a str"):
        HashCache(policy=1)


def test_tinylfu_keeps_frequent_keys_through_a_scan(HashCache: Any) -> None:
    """LRU loses a hot set to a one-off scan; W-TinyLFU's admission keeps it."""
    results = {}
    for policy in ("lru", "tinylfu"):
        cache = HashCache(max_bytes=None, max_entries=100, policy=policy)
        hot = list(range(50))
        for _ in range(20):
            for k in hot:
                if cache.get(k) is None:
                    cache.set(k, k)
        for k in range(1000, 3000):  # a scan of 2000 keys seen once
            if cache.get(k) is None:
                cache.set(k, k)
        results[policy] = sum(k in cache for k in hot)
        cache._check()
    assert results["lru"] == 0 and results["tinylfu"] >= 45


def test_tinylfu_contract_limits_bytes_and_stats(HashCache: Any) -> None:
    cache = HashCache(max_bytes=1000, max_entries=30, policy="tinylfu")
    for i in range(500):
        if cache.get(i % 90) is None:
            cache.set(i % 90, b"x" * (i % 40))
        assert len(cache) <= 30 and cache.stats()["bytes"] <= 1000
    cache._check()
    stats = cache.stats()
    assert stats["hits"] + stats["misses"] == 500
    assert stats["bytes"] == sum(len(cache.peek(k)) for k in cache)
    assert cache.set("big", b"x" * 1001) is False and stats["rejections"] == 0
    cache.clear()
    assert len(cache) == 0 and list(cache) == []
    cache._check()
    cache.set("a", 1)
    assert cache.get("a") == 1
    assert cache.set_limits(max_bytes=None, max_entries=5) == 0
    cache._check()


def test_tinylfu_adapts_to_a_recency_loop(HashCache: Any) -> None:
    """A loop slightly larger than the cache defeats LRU entirely; W-TinyLFU keeps part of it."""
    cache = HashCache(max_bytes=None, max_entries=100, policy="tinylfu")
    hits = 0
    for _ in range(100):
        for k in range(120):
            if cache.get(k) is None:
                cache.set(k, k)
            else:
                hits += 1
    assert hits / 12000 > 0.5
    cache._check()


def test_frequency_sketch(impl: Any) -> None:
    sketch = impl.module.FrequencySketch(100)
    assert sketch.frequency("a") == 0
    sketch.increment("a")  # the doorkeeper takes the first sighting
    assert sketch.frequency("a") == 1
    for _ in range(5):
        sketch.increment("a")
    assert sketch.frequency("a") == 6 and sketch.frequency("b") == 0
    for _ in range(100):
        sketch.increment("a")
    assert sketch.frequency("a") == 16  # 4-bit counters saturate at 15, +1 for the doorkeeper
    sketch.reset()
    assert sketch.frequency("a") == 7  # aging halves the counters and clears the doorkeeper
    with pytest.raises(TypeError):
        sketch.increment([])
    with pytest.raises(TypeError):
        impl.module.FrequencySketch("100")


def test_frequency_sketch_twins_agree(both_impls: Any) -> None:
    import random as _random

    rng = _random.Random(5)
    keys = [rng.randrange(5000) for _ in range(30000)] + [f"k{rng.randrange(300)}" for _ in range(5000)]
    sketches = [impl.module.FrequencySketch(256) for impl in both_impls]
    for k in keys:
        for s in sketches:
            s.increment(k)
    probe = list(range(0, 5000, 7)) + [f"k{i}" for i in range(300)]
    assert [sketches[0].frequency(k) for k in probe] == [sketches[1].frequency(k) for k in probe]
    assert sketches[0].size == sketches[1].size

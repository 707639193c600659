"""The HashCache contract both implementations honour: construction, stats, LRU order, eviction and byte
accounting, rejection (the rules are in docs/design.md, "HashCache's contract").

Every test runs once per implementation through the `impl` fixture family in conftest.py. Time comes from
a FakeTimer (`fake_timer`, which `make_cache` installs by default), so nothing here sleeps.
"""

from __future__ import annotations

import array
import random
import sys
from typing import Any, Dict, List

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from contract_helpers import STATS_KEYS, weights


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


_scalars = st.one_of(st.integers(), st.integers(-(2**200), 2**200), st.floats(), st.booleans(), st.none(),
                    st.binary(), st.text(), st.text(alphabet=st.characters(max_codepoint=127)))
_nested = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner), st.tuples(inner, inner), st.dictionaries(st.text(max_size=3), inner),
    st.frozensets(st.integers()), st.sets(st.text(max_size=2))), max_leaves=30)


def _deep_reference(value: Any) -> int:
    """deep_sizer by definition: getsizeof of everything reachable through the builtin containers, each
    container once, everything else once per reference."""
    containers = (dict, list, tuple, set, frozenset)
    seen = set()

    def walk(v: Any) -> int:
        if type(v) not in containers:
            return sys.getsizeof(v)
        if id(v) in seen:
            return 0
        seen.add(id(v))
        children = [x for kv in v.items() for x in kv] if type(v) is dict else list(v)
        return sys.getsizeof(v) + sum(walk(c) for c in children)

    return walk(value)


@given(_nested)
def test_deep_sizer_is_getsizeof_through_containers(impl: Any, value: Any) -> None:
    assert impl.module.deep_sizer(value) == _deep_reference(value)


def test_deep_sizer_counts_shared_and_cyclic_containers_once(impl: Any) -> None:
    inner = [1.5, "x"]
    shared = [inner, inner, (inner,)]
    cyclic: Any = {"a": []}
    cyclic["a"].append(cyclic)
    for value in (shared, cyclic, {"k": shared}):
        assert impl.module.deep_sizer(value) == _deep_reference(value)
    assert impl.module.deep_sizer(shared) < impl.module.deep_sizer([[1.5, "x"], [1.5, "x"], ([1.5, "x"],)])


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
    assert cache.set("a", b"x", size=2**55) is True
    assert cache.stats()["rejections"] == 0

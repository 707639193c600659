"""The HashCache contract, continued: TTLs, bulk calls, pop, delete and clear.

Every test runs once per implementation through the `impl` fixture family in conftest.py. Time comes from
a FakeTimer (`fake_timer`, which `make_cache` installs by default), so nothing here sleeps.
"""

from __future__ import annotations

from typing import Any

import pytest

from contract_helpers import Key


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

"""The HashCache contract, continued: edge cases, the context manager, bad input.

Every test runs once per implementation through the `impl` fixture family in conftest.py. Time comes from
a FakeTimer (`fake_timer`, which `make_cache` installs by default), so nothing here sleeps.
"""

from __future__ import annotations

import gc
import math
import re
import sys
import weakref
from typing import Any, Dict, List

import pytest

from contract_helpers import Key, snapshot


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
    weight = 2**56 - 12345  # (the largest weights there are: an entry weighs less than 2**56)
    for max_bytes in (None, 3 * 2**56):
        cache = make_cache(max_bytes=max_bytes)
        for i in range(6):
            assert cache.set(i, b"", size=weight) is True
            listed = list(cache)
            assert listed and listed[-1] == i
            assert cache.stats()["bytes"] == weight * len(listed)
        assert max_bytes is None or cache.stats()["bytes"] <= max_bytes
        cache._check()


def test_a_weight_of_2_56_is_refused(make_cache: Any) -> None:
    cache = make_cache(max_bytes=None)
    cache.set("a", b"x", size=5)
    before = snapshot(cache)
    with pytest.raises(ValueError, match=r"size must be < 2\*\*56, got 72057594037927936"):
        cache.set("b", b"x", size=2**56)
    with pytest.raises(ValueError, match=r"size must be < 2\*\*56"):
        cache.set("a", b"y", size=2**56)
    assert snapshot(cache) == before


def test_a_weighed_value_of_2_56_is_refused(make_cache: Any) -> None:
    from tiercache import deep_sizer

    class Huge:
        def __sizeof__(self) -> int:
            return 2**56 + 100

    for sizer, value in ((None, Huge()), (deep_sizer, [Huge()])):
        cache = make_cache(max_bytes=None, sizer=sizer)
        cache.set("a", b"x")
        before = snapshot(cache)
        with pytest.raises(ValueError, match=r"sizer result must be < 2\*\*56"):
            cache.set("b", value)
        assert snapshot(cache) == before
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

"""tiercache.contrib.django.TierCacheBackend against a real redis-server, in the style of Django's own cache
backend tests (tests/cache/tests.py in Django: BaseCacheTests)."""

from __future__ import annotations

from typing import Any, Iterator, List

import pytest

import django  # a test dependency (the [test] extra): never skipped
from django.conf import settings

if not settings.configured:
    settings.configure(SECRET_KEY="tiercache-tests", USE_TZ=True, CACHES={})
    django.setup()

from django.core.cache.backends.base import CacheKeyWarning  # noqa: E402

from tiercache.contrib.django import TierCacheBackend, close_shared  # noqa: E402


def make(location: str, **params: Any) -> TierCacheBackend:
    return TierCacheBackend(location, {"TIMEOUT": 300, **params})


@pytest.fixture(autouse=True)
def _no_shared_manager_outlives_its_test() -> Iterator[None]:
    yield
    close_shared()


@pytest.fixture
def cache(redis_url: str) -> Iterator[TierCacheBackend]:
    c = make(redis_url, OPTIONS={"NAMESPACE": "django-tests"})
    yield c
    c.manager.close()


class Unpicklable:
    def __getstate__(self) -> Any:
        raise TypeError("not picklable")


def test_simple(cache: TierCacheBackend) -> None:
    cache.set("key", "value")
    assert cache.get("key") == "value"
    assert cache.get("missing") is None and cache.get("missing", "default") == "default"


def test_add(cache: TierCacheBackend) -> None:
    assert cache.add("addkey1", "value") is True
    assert cache.add("addkey1", "newvalue") is False
    assert cache.get("addkey1") == "value"


def test_non_existent_and_delete(cache: TierCacheBackend) -> None:
    assert cache.get("does_not_exist") is None
    cache.set("key1", "spam")
    cache.set("key2", "eggs")
    assert cache.delete("key1") is True and cache.delete("key1") is False
    assert cache.get("key1") is None and cache.get("key2") == "eggs"


def test_has_key_and_in(cache: TierCacheBackend) -> None:
    cache.set("hello1", "goodbye1")
    assert cache.has_key("hello1") and not cache.has_key("goodbye1")
    cache.set("no_expiry", "here", None)
    assert cache.has_key("no_expiry")
    cache.set("null", None)
    assert cache.has_key("null")  # a stored None is a value


def test_get_many_set_many_delete_many(cache: TierCacheBackend) -> None:
    assert cache.set_many({"a": "a", "b": "b", "c": "c", "d": "d"}) == []
    assert cache.get_many(["a", "c", "d"]) == {"a": "a", "c": "c", "d": "d"}
    assert cache.get_many(["a", "b", "e"]) == {"a": "a", "b": "b"}
    assert cache.get_many(iter(["a"])) == {"a": "a"}
    cache.delete_many(["a", "b"])
    assert cache.get_many(["a", "b", "c"]) == {"c": "c"}


def test_clear(cache: TierCacheBackend) -> None:
    cache.set_many({"key1": "spam", "key2": "eggs"})
    cache.clear()
    assert cache.get("key1") is None and cache.get("key2") is None


def test_incr_decr(cache: TierCacheBackend) -> None:
    cache.set("answer", 41)
    assert cache.incr("answer") == 42 and cache.get("answer") == 42
    assert cache.incr("answer", 10) == 52 and cache.decr("answer") == 51 and cache.decr("answer", 10) == 41
    with pytest.raises(ValueError):
        cache.incr("does_not_exist")
    with pytest.raises(ValueError):
        cache.decr("does_not_exist")


def test_data_types(cache: TierCacheBackend) -> None:
    import datetime
    import decimal

    stuff = {"string": "this is a string", "int": 42, "list": [1, 2, 3, 4], "tuple": (1, 2, 3, 4),
             "dict": {"A": 1, "B": 2}, "function": len, "class": Unpicklable, "decimal": decimal.Decimal("1.5"),
             "when": datetime.datetime(2026, 11, 24, 12, 0, tzinfo=datetime.timezone.utc), "set": {1, 2}}
    cache.set("stuff", stuff)
    cache.manager.l1(cache.namespace).clear()  # read back from Redis, unpickled
    assert cache.get("stuff") == stuff
    with pytest.raises(Exception):
        cache.set("unpicklable", Unpicklable())
    assert cache.get("unpicklable") is None


def test_zero_and_negative_timeout_do_not_store(cache: TierCacheBackend, redis_server: Any) -> None:
    cache.set("key1", "eggs", 0)
    assert cache.get("key1") is None
    cache.set("key1", "eggs")
    cache.set("key1", "spam", -1)  # replacing with a non-positive timeout removes it
    assert cache.get("key1") is None
    assert cache.add("key2", "ham", 0) is True and cache.get("key2") is None
    cache.set_many({"key3": "sausage", "key4": "lobster bisque"}, 0)
    assert cache.get_many(["key3", "key4"]) == {}


def test_timeouts_reach_redis(cache: TierCacheBackend, redis_server: Any) -> None:
    client = redis_server.client()
    cache.set("forever", 1, None)
    cache.set("short", 1, 30)
    cache.set("default", 1)
    l2 = cache.manager._l2_key
    assert client.pttl(l2(cache.namespace, cache.make_key("forever"))) == -1
    assert 0 < client.pttl(l2(cache.namespace, cache.make_key("short"))) <= 30_000
    assert 30_000 < client.pttl(l2(cache.namespace, cache.make_key("default"))) <= 300_000
    assert cache.touch("short", 600) is True and cache.touch("missing") is False
    assert 30_000 < client.pttl(l2(cache.namespace, cache.make_key("short"))) <= 600_000
    assert cache.touch("short", None) is True
    assert client.pttl(l2(cache.namespace, cache.make_key("short"))) == -1
    assert cache.get("short") == 1
    cache.set("expiring", 5, 60)
    assert cache.incr("expiring") == 6
    assert 0 < client.pttl(l2(cache.namespace, cache.make_key("expiring"))) <= 60_000  # incr keeps the expiry


def test_versions_and_prefixes(redis_url: str) -> None:
    a = make(redis_url, KEY_PREFIX="a", VERSION=1, OPTIONS={"NAMESPACE": "django-v"})
    b = make(redis_url, KEY_PREFIX="b", VERSION=2, OPTIONS={"NAMESPACE": "django-v"})
    try:
        a.set("answer", 42)
        assert b.get("answer") is None  # another prefix
        a.set("answer", 37, version=2)
        assert a.get("answer") == 42 and a.get("answer", version=2) == 37
        assert a.incr_version("answer") == 2
        assert a.get("answer") is None and a.get("answer", version=2) == 42
        assert a.decr_version("answer", version=2) == 1 and a.get("answer") == 42
        assert a.get_many(["answer"], version=1) == {"answer": 42}
    finally:
        a.manager.close()
        b.manager.close()


def test_key_validation_warns_like_django(cache: TierCacheBackend) -> None:
    with pytest.warns(CacheKeyWarning):
        cache.set("key with spaces", "value")
    with pytest.warns(CacheKeyWarning):
        assert cache.get("key with spaces") == "value"


def test_shared_between_processes_views(redis_url: str) -> None:
    """Two backends (two 'processes') share L2; a write in one drops the other's L1 copy."""
    one = make(redis_url, OPTIONS={"NAMESPACE": "django-shared"})
    two = make(redis_url, OPTIONS={"NAMESPACE": "django-shared"})
    try:
        one.set("k", "v1")
        assert two.get("k") == "v1"
        assert two.manager._listener is not None and two.manager._listener.connected.wait(10)
        one.set("k", "v2")
        import time

        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and two.get("k") != "v2":
            time.sleep(0.01)
        assert two.get("k") == "v2"
    finally:
        one.manager.close()
        two.manager.close()


def test_async_methods(cache: TierCacheBackend) -> None:
    import asyncio

    async def main() -> None:
        await cache.aset("async", 1)
        assert await cache.aget("async") == 1
        assert await cache.aadd("async", 2) is False
        assert await cache.aincr("async") == 2
        assert await cache.ahas_key("async")
        assert await cache.aget_many(["async", "nope"]) == {"async": 2}
        assert await cache.adelete("async") is True

    asyncio.run(main())


def test_bad_options_are_rejected(redis_url: str) -> None:
    with pytest.raises(ValueError, match="unknown OPTIONS"):
        make(redis_url, OPTIONS={"NAMSPACE": "typo"})


def test_values_not_written_by_this_backend_are_rejected(cache: TierCacheBackend, redis_server: Any) -> None:
    import pickle

    key = cache.manager._l2_key(cache.namespace, cache.make_key("evil"))
    redis_server.client().set(key, b"P" + pickle.dumps({"x": 1}))  # unsigned pickle
    assert cache.get("evil") is None
    assert cache.manager.stats()["corrupt_values"] == 1


def test_a_signed_value_copied_to_another_key_is_not_served(cache: TierCacheBackend, redis_server: Any) -> None:
    """A session stored for one user, copied by someone with L2 access under another user's key: the HMAC
    covers the key, so the other user gets a miss, never the first user's session."""
    cache.set("session:admin", {"user": "admin", "is_staff": True}, timeout=300)
    client = redis_server.client()
    admin = cache.manager._l2_key(cache.namespace, cache.make_key("session:admin"))
    victim = cache.manager._l2_key(cache.namespace, cache.make_key("session:bob"))
    client.set(victim, client.get(admin))
    assert cache.get("session:bob") is None
    assert cache.get("session:admin") == {"user": "admin", "is_staff": True}
    assert cache.manager.stats()["corrupt_values"] == 1


def test_backends_of_one_process_share_one_manager(redis_url: str) -> None:
    """Django makes a backend per thread and alias: 20 short-lived request threads share one manager (one
    listener, one pool), a write through one backend is read at once through another, and close() after
    each request leaves nothing behind."""
    import threading

    options = {"NAMESPACE": "django-shared"}
    backends = []

    def request() -> None:
        b = make(redis_url, OPTIONS=options)
        b.set("k", threading.get_ident())
        backends.append(b)
        b.close()

    before = {t.name for t in threading.enumerate()}
    threads = [threading.Thread(target=request) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(b.manager) for b in backends}) == 1
    listeners = [t for t in threading.enumerate() if t.name.startswith("tiercache-invalidation")]
    assert len(listeners) <= 1 + sum(name.startswith("tiercache-invalidation") for name in before)
    other = make(redis_url, OPTIONS=options)
    other.set("fresh", 1)
    assert backends[0].get("fresh") == 1  # no wait for a listener: one L1
    assert make(redis_url, OPTIONS={"NAMESPACE": "django-other"}).manager is not other.manager
    other.manager.close()
    again = make(redis_url, OPTIONS=options)  # a closed shared manager is replaced
    assert not again.manager.closed and again.get("fresh") == 1
    again.manager.close()


DJANGO_WORKER = """
import sys
import django
from django.conf import settings
settings.configure(SECRET_KEY="tiercache-tests", USE_TZ=True, CACHES={})
django.setup()
from tiercache.contrib.django import TierCacheBackend

cache = TierCacheBackend(sys.argv[1], {"TIMEOUT": 300, "OPTIONS": {"NAMESPACE": "django-race"}})
what = sys.argv[2]
if what == "incr":
    for _ in range(int(sys.argv[3])):
        cache.incr("counter")
elif what == "add":
    print("won" if cache.add("prize", sys.argv[3]) else "lost")
"""


@pytest.fixture(params=["redis", "sqlite"])
def shared_location(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path}/l2.sqlite3"


def _run_workers(location: str, args: List[List[str]]) -> List[str]:
    import subprocess
    import sys

    procs = [subprocess.Popen([sys.executable, "-c", DJANGO_WORKER, location, *a], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for a in args]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [err for _, err in outs]
    return [out.strip() for out, _ in outs]


def test_incr_and_add_are_atomic_across_processes(shared_location: str) -> None:
    """4 processes x 500 incr on one key end at 2,000; of 8 processes racing add, exactly one wins."""
    cache = make(shared_location, OPTIONS={"NAMESPACE": "django-race"})
    cache.set("counter", 0)
    _run_workers(shared_location, [["incr", "500"]] * 4)
    assert cache.get("counter") == 2000
    results = _run_workers(shared_location, [["add", str(i)] for i in range(8)])
    assert sorted(results) == ["lost"] * 7 + ["won"]
    assert cache.get("prize") == str(results.index("won"))


def test_unpicklable_values_raise_pickle_errors_as_django_expects(cache: TierCacheBackend) -> None:
    import pickle

    class Refuses:
        def __getstate__(self) -> Any:
            raise pickle.PickleError("no")

    for call in (lambda: cache.set("k", Refuses()), lambda: cache.add("k2", Refuses()),
                 lambda: cache.set_many({"k3": Refuses()})):
        with pytest.raises(pickle.PickleError):
            call()
    assert cache.get("k") is None and cache.get("k2") is None and cache.get("k3") is None


def test_add_and_incr_keep_their_meaning_while_l2_is_down(tmp_path: Any) -> None:
    """With L2 unreachable the lock is this process's only, and the value read is this process's copy: add
    does not overwrite a value it holds, incr counts on from it."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        nobody = f"redis://127.0.0.1:{s.getsockname()[1]}/0"  # (nothing listens there)
    cache = make(nobody, OPTIONS={"NAMESPACE": "django-down"})
    cache.set("k", "first")
    assert cache.add("k", "second") is False and cache.get("k") == "first"
    cache.set("n", 1)
    assert cache.incr("n") == 2 and cache.get("n") == 2

"""Many threads on one HashCache, and the background cleanup thread.

No timing asserts: threads run a bounded number of operations, and waits for the cleanup thread are
bounded polls on an Event or a join, which return as soon as the awaited thing happens.
"""

from __future__ import annotations

import gc
import os
import random
import subprocess
import sys
import threading
import weakref
from typing import Any, Dict, List

import pytest

THREADS = 8
OPERATIONS = 1500


class SlowKey:
    """A key with Python-level __hash__ and __eq__ and few distinct hashes, so lookups run Python code."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __hash__(self) -> int:
        return self.n % 3

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SlowKey) and other.n == self.n

    def __repr__(self) -> str:
        return f"SlowKey({self.n})"


def key_id(key: Any) -> Any:
    return ("slow", key.n) if isinstance(key, SlowKey) else key


@pytest.fixture
def fast_switching() -> Any:
    """Switch threads as often as the interpreter allows, to interleave operations finely."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def test_many_threads_one_cache(HashCache: Any, make_timer: Any, fast_switching: Any) -> None:
    clock = make_timer()
    # A value is (key id, writer, weight); the sizer reads the weight, so every entry's weight is known.
    cache = HashCache(max_bytes=400, max_entries=48, timer=clock, sizer=lambda value: value[2],
                      cleanup_interval=0.005)  # the background expire() joins in
    keys: List[Any] = list(range(40)) + [f"s{i}" for i in range(20)] + [SlowKey(i) for i in range(30)]
    barrier = threading.Barrier(THREADS + 1)
    errors: List[BaseException] = []
    tallies: List[Dict[str, int]] = []

    def check_value(key: Any, value: Any) -> None:
        assert value[0] == key_id(key), f"{key!r} returned {value!r}"

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        tally = dict.fromkeys(["lookups", "stored", "rejected"], 0)
        try:
            barrier.wait()
            for i in range(OPERATIONS):
                key = rng.choice(keys)
                r = rng.random()
                if r < 0.35:
                    weight = 500 if rng.random() < 0.01 else rng.randrange(1, 20)
                    ttl = rng.choice([None, None, 1.0, 3.0])
                    ok = cache.set(key, (key_id(key), seed, weight), ttl=ttl)
                    tally["stored" if ok else "rejected"] += 1
                elif r < 0.60:
                    tally["lookups"] += 1
                    value = cache.get(key)
                    if value is not None:
                        check_value(key, value)
                elif r < 0.65:
                    batch = [rng.choice(keys) for _ in range(3)]
                    tally["lookups"] += len(batch)
                    for k, value in cache.get_many(batch).items():
                        check_value(k, value)
                elif r < 0.70:
                    items = [(k, (key_id(k), seed, rng.randrange(1, 20))) for k in rng.sample(keys, 3)]
                    stored = cache.set_many(items)
                    tally["stored"] += stored
                    tally["rejected"] += len(items) - stored
                elif r < 0.78:
                    value = cache.pop(key, None)
                    if value is not None:
                        check_value(key, value)
                elif r < 0.84:
                    value = cache.peek(key)
                    if value is not None:
                        check_value(key, value)
                elif r < 0.88:
                    cache.touch(key, ttl=rng.choice([None, 2.0]))
                elif r < 0.91:
                    try:
                        cache.ttl(key)
                    except KeyError:
                        pass
                elif r < 0.94:
                    for k in cache:  # a snapshot: other threads may remove keys meanwhile
                        key_id(k)
                elif r < 0.97:
                    stats = cache.stats()
                    assert stats["bytes"] <= 400 and stats["entries"] <= 48
                elif seed == 0:
                    clock.advance(0.5)
                    cache.expire()
                else:
                    len(cache)
                if i % 500 == 0 and seed == 1:
                    cache._check()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        tallies.append(tally)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    for t in threads:
        t.join()
    assert not errors, errors[:3]

    cache.close()
    cache._check()
    listed = list(cache)
    stats = cache.stats()
    assert len(cache) == len(listed) == stats["entries"]
    assert len(set(map(key_id, listed))) == len(listed)
    values = [cache.peek(k) for k in listed]
    for k, value in zip(listed, values):
        check_value(k, value)
    assert stats["bytes"] == sum(value[2] for value in values)
    assert stats["bytes"] <= 400 and stats["entries"] <= 48
    assert stats["hits"] + stats["misses"] == sum(t["lookups"] for t in tallies)
    assert stats["sets"] == sum(t["stored"] for t in tallies)
    assert stats["rejections"] == sum(t["rejected"] for t in tallies)
    assert stats["hits"] > 0 and stats["evictions"] > 0 and stats["expirations"] > 0


def test_threads_racing_on_colliding_keys(HashCache: Any, fast_switching: Any) -> None:
    # Every thread works on the same few colliding keys: maximum contention on one probe chain.
    cache = HashCache(max_entries=5, sizer=lambda value: 1)
    keys = [SlowKey(i * 3) for i in range(8)]  # all hash to 0
    errors: List[BaseException] = []

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for _ in range(OPERATIONS):
                key = rng.choice(keys)
                op = rng.randrange(4)
                if op == 0:
                    cache.set(key, key.n)
                elif op == 1:
                    value = cache.get(key)
                    assert value is None or value == key.n
                elif op == 2:
                    cache.pop(key, None)
                else:
                    cache.touch(key)
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors[:3]
    cache._check()
    listed = list(cache)
    assert len(listed) == len(cache) == cache.stats()["bytes"] <= 5
    assert all(cache.peek(k) == k.n for k in listed)


# ---------------------------------------------------------------------------------------------- cleanup thread


def new_threads(before: "set[threading.Thread]") -> List[threading.Thread]:
    return [t for t in threading.enumerate() if t not in before]


def test_cleanup_thread_expires_entries(HashCache: Any, make_timer: Any) -> None:
    clock = make_timer()
    count = 5
    released_by: List[threading.Thread] = []
    all_released = threading.Event()

    class Tracked:
        def __del__(self) -> None:
            released_by.append(threading.current_thread())
            if len(released_by) == count:
                all_released.set()

    cache = HashCache(timer=clock, cleanup_interval=0.01)
    for i in range(count):
        cache.set(i, Tracked(), ttl=5, size=1)
    cache.set("kept", b"v", ttl=100)
    cache.set("forever", b"v")
    clock.advance(5)
    # Nothing in this thread touches the cache now: only the cleanup thread can drop the entries.
    assert all_released.wait(timeout=60), "the cleanup thread did not expire the entries"
    assert threading.current_thread() not in released_by
    assert cache.stats()["expirations"] == count
    assert list(cache) == ["kept", "forever"]
    cache.close()
    cache._check()


def test_close_stops_the_cleanup_thread(HashCache: Any, make_timer: Any) -> None:
    before = set(threading.enumerate())
    cache = HashCache(timer=make_timer(), cleanup_interval=0.01)
    (thread,) = new_threads(before)
    assert thread.daemon and thread.is_alive()
    cache.close()
    assert not thread.is_alive()
    cache.close()
    cache.set("a", b"v")  # still usable
    assert cache.get("a") == b"v"


def test_context_manager_stops_the_cleanup_thread(HashCache: Any) -> None:
    before = set(threading.enumerate())
    with HashCache(cleanup_interval=0.01) as cache:
        (thread,) = new_threads(before)
        assert thread.is_alive()
        cache.set("a", b"v")
    assert not thread.is_alive()


def test_unreferenced_cache_with_cleaner_is_collected(HashCache: Any) -> None:
    before = set(threading.enumerate())
    cache = HashCache(cleanup_interval=0.01)
    cache.set("a", b"v", ttl=1)
    (thread,) = new_threads(before)
    ref = weakref.ref(cache)
    del cache
    for _ in range(1000):  # the thread holds the cache only while it runs expire(); poll until it let go
        gc.collect()
        if ref() is None:
            break
        thread.join(timeout=0.01)
    assert ref() is None, "the cleanup thread keeps its cache alive"
    thread.join(timeout=60)
    assert not thread.is_alive(), "the cleanup thread outlived its cache"


def test_interpreter_exits_with_a_running_cleaner(impl: Any, tmp_path: Any) -> None:
    script = (
        "import importlib, sys\n"
        f"HashCache = importlib.import_module({impl.module.__name__!r}).HashCache\n"
        "cache = HashCache(cleanup_interval=0.001)\n"
        "for i in range(1000):\n"
        "    cache.set(i, b'v', ttl=0.001)\n"
        "keep = HashCache(cleanup_interval=3600)\n"  # sleeping in its wait: exit must not wait for it
        "print('done')\n"
    )
    root = os.path.dirname(os.path.dirname(os.path.abspath(impl.module.__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    if impl.name == "python":  # (chosen knowingly: no warning where the compiled core is not built)
        env["TIERCACHE_NO_EXTENSIONS"] = "1"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env,
                          cwd=tmp_path, timeout=120)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "done\n", "")

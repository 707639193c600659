"""get_or_set(lock="distributed"): one load across processes, on Redis and on the SQLite file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, List

import pytest

from tiercache.manager import CacheManager

WORKER = """
import os, sys, threading, time
from tiercache.config import NamespaceConfig
from tiercache.manager import CacheManager

url, calls, mode = sys.argv[1], sys.argv[2], sys.argv[3]

def loader():
    with open(calls, "a") as f:
        f.write(f"{os.getpid()}\\n")
    if mode == "die":
        os._exit(3)  # dies holding the lock
    time.sleep(1.0)
    return {"loaded_by": os.getpid()}

with CacheManager(url, env="test", config={"ns": NamespaceConfig(l2_ttl=600.0)}) as m:
    results = []
    def one():
        results.append(m.get_or_set("ns", "k", loader, lock="distributed", lock_timeout=float(sys.argv[4])))
    threads = [threading.Thread(target=one) for _ in range(int(sys.argv[5]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    print(len({r["loaded_by"] for r in results}), len(results), m.counters.by_namespace()["ns"]["lock_timeouts"])
"""


@pytest.fixture(params=["redis", "sqlite"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path}/l2.sqlite3"


def _start(url: str, calls: Path, mode: str, lock_timeout: float, threads: int) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", WORKER, url, str(calls), mode, str(lock_timeout), str(threads)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_processes_that_miss_one_key_at_once_load_it_once(url: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    workers = [_start(url, calls, "load", 30.0, 8) for _ in range(4)]
    outputs = [w.communicate(timeout=120) for w in workers]
    assert all(w.returncode == 0 for w in workers), outputs
    assert len(calls.read_text().split()) == 1  # one loader call in 4 processes x 8 threads
    assert [out.split() for out, _ in outputs] == [["1", "8", "0"]] * 4  # every thread got that one value


def test_a_loader_that_dies_with_the_lock_delays_the_others_by_its_expiry_only(url: str, tmp_path: Path) -> None:
    calls = tmp_path / "calls"
    dying = _start(url, calls, "die", 2.0, 1)
    dying.communicate(timeout=60)
    assert dying.returncode == 3 and len(calls.read_text().split()) == 1
    with CacheManager(url, env="test") as m:
        loads: List[int] = []
        value = m.get_or_set("ns", "k", lambda: loads.append(1) or "mine", lock="distributed", lock_timeout=2.0)
        assert value == "mine" and loads == [1]  # the dead process's lock expired: this one loaded


def test_without_l2_the_lock_is_local(tmp_path: Path) -> None:
    """A lock L2 cannot take (it fails, or the namespace is not persisted) never blocks the loader."""
    from tiercache.config import NamespaceConfig

    cfg = {"mem": NamespaceConfig(persist_to_l2=False)}
    with CacheManager(f"sqlite:///{tmp_path}/l2.db", env="test", config=cfg) as m:
        assert m.get_or_set("mem", "k", lambda: 1, lock="distributed") == 1
        with pytest.raises(ValueError, match="lock must be"):
            m.get_or_set("mem", "k", lambda: 1, lock="global")
        with pytest.raises(ValueError, match="lock_timeout"):
            m.get_or_set("mem", "k", lambda: 1, lock="distributed", lock_timeout=0)


def test_the_async_manager_waits_for_another_process(url: str, tmp_path: Path) -> None:
    import asyncio

    from tiercache import AsyncCacheManager

    calls = tmp_path / "calls"
    other = _start(url, calls, "load", 30.0, 1)

    async def main() -> Any:
        async with AsyncCacheManager(url, env="test") as am:
            while not calls.exists():  # the other process holds the lock and is loading
                await asyncio.sleep(0.01)
            return await am.get_or_set("ns", "k", lambda: "mine", lock="distributed")

    value = asyncio.run(main())
    out, err = other.communicate(timeout=60)
    assert other.returncode == 0, err
    assert isinstance(value, dict) and "loaded_by" in value and len(calls.read_text().split()) == 1


def test_locked_serializes_a_read_modify_write(url: str) -> None:
    """Threads of one process and the L2 lock together: 8 threads x 50 increments under locked() end at
    400; a namespace without L2 is locked within the process only."""
    import threading

    from tiercache.config import NamespaceConfig

    cfg = {"ns": NamespaceConfig(l2_ttl=600.0), "mem": NamespaceConfig(persist_to_l2=False)}
    with CacheManager(url, env="test", config=cfg) as m:
        for ns in ("ns", "mem"):
            m.set(ns, "n", 0)

            def bump(ns: str = ns) -> None:
                for _ in range(50):
                    with m.locked(ns, "n"):
                        m.set(ns, "n", m.get(ns, "n") + 1)

            threads = [threading.Thread(target=bump) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert m.get(ns, "n") == 400
        with pytest.raises(ValueError, match=r"^timeout must be a number of seconds"):
            with m.locked("ns", "n", timeout=-1):
                pass


def test_the_async_managers_locked_serializes_a_read_modify_write(url: str) -> None:
    """Tasks of two managers (as two processes would) add one under the key's lock: none is lost."""
    import asyncio

    from tiercache import AsyncCacheManager

    async def main() -> Any:
        async with AsyncCacheManager(url, env="test") as a, AsyncCacheManager(url, env="test") as b:
            await a.set("ns", "n", 0)

            async def add_one(m: Any) -> None:
                async with m.locked("ns", "n", timeout=10.0) as shared:
                    assert shared
                    m.l1("ns").delete("n")  # (read L2: the other manager's write may not have reached this L1)
                    value = await m.get("ns", "n")
                    await asyncio.sleep(0)
                    await m.set("ns", "n", value + 1)

            await asyncio.gather(*(add_one(m) for _ in range(25) for m in (a, b)))
            a.l1("ns").clear()
            return await a.get("ns", "n")

    assert asyncio.run(main()) == 50

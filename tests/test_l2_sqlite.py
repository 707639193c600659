"""The SQLite backend on real files (settings, expiry purges, processes sharing one file), and L2 URLs."""

from __future__ import annotations

import multiprocessing
import os
import stat
import time
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tiercache.errors import L2Error
from tiercache.l2 import SQLiteL2, from_url


# -- SQLite ------------------------------------------------------------------------------------------------


def _write_in_child(path: str, n: int) -> None:
    l2 = SQLiteL2(path)
    l2.set_many({f"p:child:{i}": f"c{i}".encode() for i in range(n)})
    for i in range(n):
        l2.set(f"p:one:{i}", b"child")
    l2.close()


def _read_in_child(path: str, queue: Any) -> None:
    l2 = SQLiteL2(path)
    queue.put(l2.get_many(["p:parent:0", "p:parent:1", "p:absent"]))
    l2.close()


def _reuse_after_fork(l2: SQLiteL2, queue: Any) -> None:
    l2.set("p:forked", b"from the child")
    queue.put(l2.get("p:parent"))


def _mp() -> Any:
    return multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")


def test_sqlite_is_shared_by_processes(tmp_path: Path) -> None:
    path = str(tmp_path / "shared.sqlite3")
    ctx = _mp()
    # Two writers race to create the file (WAL switch and schema) while the parent does the same.
    writers = [ctx.Process(target=_write_in_child, args=(path, 200)) for _ in range(2)]
    for p in writers:
        p.start()
    parent = SQLiteL2(path)
    parent.set_many({"p:parent:0": b"p0", "p:parent:1": b"p1"})
    queue = ctx.Queue()
    reader = ctx.Process(target=_read_in_child, args=(path, queue))
    reader.start()
    for i in range(200):  # the parent writes while the children do
        parent.set(f"p:one:{i}", b"parent")
    assert queue.get(timeout=20) == [b"p0", b"p1", None]
    for p in [reader, *writers]:
        p.join(timeout=20)
        assert p.exitcode == 0
    assert parent.get_many([f"p:child:{i}" for i in (0, 199)]) == [b"c0", b"c199"]
    assert parent.get("p:one:7") in (b"parent", b"child")
    parent.close()


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_sqlite_instance_is_usable_after_fork(tmp_path: Path) -> None:
    l2 = SQLiteL2(tmp_path / "fork.sqlite3")
    l2.set("p:parent", b"from the parent")  # this thread's connection exists before the fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_reuse_after_fork, args=(l2, queue))
    child.start()
    assert queue.get(timeout=20) == b"from the parent"
    child.join(timeout=20)
    assert child.exitcode == 0
    assert l2.get("p:forked") == b"from the child"
    assert l2.get("p:parent") == b"from the parent"  # the parent's connection still works
    l2.close()


def test_sqlite_file_settings(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "l2.sqlite3"  # parent directories are created
    l2 = SQLiteL2(path)
    l2.set("k", b"v", ttl=10)
    raw = sqlite3.connect(path)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [(row[1], row[2].upper(), row[3], row[5]) for row in raw.execute("PRAGMA table_info(entries)")]
        assert columns == [("key", "TEXT", 0, 1), ("value", "BLOB", 1, 0), ("expires", "REAL", 0, 0)]
        # clear_namespace and the purge are index range searches, never a full scan.
        plan = " ".join(r[3] for r in raw.execute(
            "EXPLAIN QUERY PLAN DELETE FROM entries WHERE key >= ? AND key < ?", ("a", "b")))
        assert "SEARCH" in plan and "key>? AND key<?" in plan, plan
        plan = " ".join(r[3] for r in raw.execute(
            "EXPLAIN QUERY PLAN DELETE FROM entries WHERE expires IS NOT NULL AND expires <= ?", (1.0,)))
        assert "SEARCH" in plan and "entries_expires" in plan, plan
    finally:
        raw.close()
    conn = l2._conn()
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    l2.close()


def test_sqlite_purges_expired_rows(tmp_path: Path, make_timer: Any) -> None:
    clock = make_timer(1_700_000_000.0)  # (wall-clock seconds)
    path = tmp_path / "purge.sqlite3"
    l2 = SQLiteL2(path, clock=clock, purge_every=100)

    def rows() -> int:
        with sqlite3.connect(path) as raw:
            return int(raw.execute("SELECT COUNT(*) FROM entries").fetchone()[0])

    l2.set_many({f"old:{i}": b"x" for i in range(50)}, ttl=1)
    clock.advance(2)
    assert rows() == 50  # invisible to reads, not yet deleted
    assert l2.get("old:0") is None and l2.get_many(["old:1", "old:2"]) == [None, None]
    assert rows() == 50  # reads never write
    l2.set_many({f"new:{i}": b"y" for i in range(49)})  # 99 writes
    assert rows() == 99
    l2.set("new:last", b"y")  # the 100th write purges
    assert rows() == 50
    l2.set("gone", b"z", ttl=1)
    clock.advance(2)
    l2.clear_namespace("zzz:")  # clearing purges too
    assert rows() == 50 and l2.purge_expired() == 0
    l2.close()


def test_sqlite_rejects_memory_databases_and_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="memory"):
        SQLiteL2(":memory:")
    with pytest.raises(TypeError, match="path"):
        SQLiteL2(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timeout"):
        SQLiteL2(tmp_path / "x.db", timeout=-1)
    with pytest.raises(ValueError, match="purge_every"):
        SQLiteL2(tmp_path / "x.db", purge_every=0)


def test_sqlite_unopenable_path_raises_l2error_on_use(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_bytes(b"")
    l2 = SQLiteL2(blocker / "sub" / "l2.sqlite3")  # its parent cannot be a directory
    with pytest.raises(L2Error, match="cannot open"):
        l2.ping()
    with pytest.raises(L2Error):
        l2.get("k")


# -- from_url ----------------------------------------------------------------------------------------------


def test_from_url_defaults_to_sqlite_in_the_cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TIERCACHE_L2_URL", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    l2 = from_url(None)
    assert isinstance(l2, SQLiteL2)
    assert l2.path == tmp_path / "xdg" / "tiercache" / "l2.sqlite3"
    assert not l2.path.exists()  # nothing touches the disk before the first call
    l2.set("k", b"v")
    assert l2.path.exists()
    l2.close()
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert SQLiteL2.default_path() == tmp_path / "home" / ".cache" / "tiercache" / "l2.sqlite3"


def test_from_url_reads_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TIERCACHE_L2_URL", f"sqlite://{tmp_path}/env.db?timeout=2.5")
    l2 = from_url(None)
    assert isinstance(l2, SQLiteL2) and l2.path == tmp_path / "env.db" and l2.timeout == 2.5
    monkeypatch.setenv("TIERCACHE_L2_URL", "redis://127.0.0.1:6399/3")
    assert from_url(None).kind == "redis"
    monkeypatch.setenv("TIERCACHE_L2_URL", "")
    assert from_url(None).kind == "sqlite"


def test_from_url_picks_the_backend(tmp_path: Path) -> None:
    import redis

    from tiercache.l2 import RedisClusterL2, RedisL2

    sqlite_l2 = from_url(f"sqlite://{tmp_path}/a%20b.db")
    assert isinstance(sqlite_l2, SQLiteL2) and sqlite_l2.path == tmp_path / "a b.db"
    plain = from_url("redis://user:secret@127.0.0.1:6399/2")
    assert isinstance(plain, RedisL2)
    assert plain.client.connection_pool.connection_kwargs["db"] == 2
    assert "secret" not in repr(plain)
    tls = from_url("rediss://127.0.0.1:6399")
    assert isinstance(tls, RedisL2) and tls.client.connection_pool.connection_class is redis.SSLConnection
    unix = from_url("unix:///tmp/tiercache-test.sock")
    assert unix.client.connection_pool.connection_class is redis.UnixDomainSocketConnection
    for url in ("redis+cluster://127.0.0.1:7000", "REDIS+CLUSTER://127.0.0.1:7000", "rediss+cluster://h:7000"):
        cluster = from_url(url)
        assert isinstance(cluster, RedisClusterL2) and cluster.kind == "redis-cluster"
    for l2 in (plain, tls, unix):
        l2.close()


@pytest.mark.parametrize(
    "url, match",
    [
        ("memcached://127.0.0.1:11211", "memcached"),
        ("sqlite:///:memory:", "memory"),
        ("sqlite://host/path.db", "host"),
        ("sqlite://", "no file"),
        ("sqlite:///tmp/x.db?mode=ro", "mode"),
        ("localhost:6379", "scheme"),
        ("", "scheme"),
    ],
)
def test_from_url_rejects(url: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        from_url(url)


def test_from_url_type_error() -> None:
    with pytest.raises(TypeError, match="url"):
        from_url(6379)  # type: ignore[arg-type]


def test_importing_the_package_does_not_import_redis() -> None:
    import subprocess
    import sys

    code = "import sys, tiercache.l2 as l2; l2.from_url('sqlite:///tmp/x.db'); print('redis' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_sqlite_store_is_private_to_its_user(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        path = tmp_path / "store" / "l2.sqlite3"
        l2 = SQLiteL2(path)
        l2.set("k", b"v", None)
        assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
        for name in ("l2.sqlite3", "l2.sqlite3-wal", "l2.sqlite3-shm"):
            assert stat.S_IMODE((path.parent / name).stat().st_mode) == 0o600, name
        l2.close()
    finally:
        os.umask(old)


def test_sqlite_reads_do_not_wait_for_the_write_lock(tmp_path: Path, make_timer: Any) -> None:
    """A read that meets an expired row while another process holds the write lock answers at once."""
    clock = make_timer(1_700_000_000.0)
    path = tmp_path / "locked.sqlite3"
    l2 = SQLiteL2(path, clock=clock, timeout=0.2)
    l2.set_many({"a": b"1", "b": b"2"}, ttl=1)
    clock.advance(2)
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the lock
    try:
        assert l2.get("a") is None and l2.get_many(["a", "b"]) == [None, None]
    finally:
        other.execute("ROLLBACK")
        other.close()
    l2.close()


def test_a_failed_purge_does_not_fail_the_write(tmp_path: Path, monkeypatch: Any, caplog: Any) -> None:
    l2 = SQLiteL2(tmp_path / "p.sqlite3", purge_every=1)

    def locked() -> int:
        raise L2Error("database is locked")

    monkeypatch.setattr(l2, "purge_expired", locked)
    l2.set("k", b"v")
    l2.set("k2", b"v")
    assert l2.get("k") == b"v" and l2.clear_namespace("k") == 2
    assert sum("could not purge" in r.getMessage() for r in caplog.records) == 1  # once per burst
    l2.close()



# -- invalidation messages -------------------------------------------------------------------------------


def test_sqlite_carries_messages_between_connections(tmp_path: Path) -> None:
    """What one store publishes on a channel reaches the subscriptions of another (another process's, as
    far as SQLite can tell: another connection), in order, from the moment they subscribed."""
    path = tmp_path / "m.sqlite3"
    a, b = SQLiteL2(path), SQLiteL2(path)
    b.publish("chan", b"before")
    with a.subscribe("chan") as sub, a.subscribe("other") as other:
        assert sub.get_message(0.0) is None
        b.publish("chan", b"m1")
        b.publish("elsewhere", b"x")
        b.publish("chan", bytearray(b"m2"))
        a.publish("chan", b"m3")  # (the same store's other connections too)
        assert [sub.get_message(2.0) for _ in range(3)] == [b"m1", b"m2", b"m3"]
        assert sub.get_message(0.0) is None and other.get_message(0.0) is None
    a.close()
    b.close()


def test_a_subscription_that_fell_behind_says_so(tmp_path: Path, make_timer: Any) -> None:
    """Messages are kept KEEP_MESSAGES seconds; a subscription whose unread messages were pruned raises
    L2Error (its listener then flushes L1 and subscribes again), rather than miss them silently."""
    from tiercache.l2.sqlite import KEEP_MESSAGES, PRUNE_EVERY

    clock = make_timer(1_700_000_000.0)
    path = tmp_path / "m.sqlite3"
    reader, writer = SQLiteL2(path), SQLiteL2(path, clock=clock)
    sub = reader.subscribe("c")
    writer.publish("c", b"old")
    clock.advance(KEEP_MESSAGES + 1)
    for _ in range(PRUNE_EVERY):
        writer.publish("c", b"new")
    with pytest.raises(L2Error, match="fell behind"):
        sub.get_message(0.0)
    sub.close()
    fresh = reader.subscribe("c")  # subscribes from now on
    writer.publish("c", b"after")
    assert fresh.get_message(2.0) == b"after"
    fresh.close()
    reader.close()
    writer.close()
    with pytest.raises(L2Error, match="closed"):
        reader.subscribe("c")


def _set_in_another_process(path: str, key: str) -> None:
    """A separate interpreter (not a fork of this threaded one) writes `key`."""
    import subprocess
    import sys

    code = ("import sys\nfrom tiercache.manager import CacheManager\n"
            "with CacheManager('sqlite:///' + sys.argv[1], env='test') as m:\n    m.set('ns', sys.argv[2], 'new')\n")
    subprocess.run([sys.executable, "-c", code, path, key], check=True, timeout=60)


def test_processes_sharing_sqlite_invalidate_each_others_l1(tmp_path: Path) -> None:
    """A write in another process drops this process's L1 copy (through the file: no server), and a read
    then gets the new value; the async manager listens the same way."""
    import asyncio

    from tiercache import AsyncCacheManager, CacheManager

    path = str(tmp_path / "shared.sqlite3")

    async def async_side() -> None:
        async with AsyncCacheManager(f"sqlite:///{path}", env="test") as am:
            await am.set("ns", "b", "old")
            assert await am.get("ns", "b") == "old" and "b" in am.l1("ns")
            await asyncio.get_running_loop().run_in_executor(None, _set_in_another_process, path, "b")
            deadline = time.monotonic() + 5
            while "b" in am.l1("ns") and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
            assert await am.get("ns", "b") == "new"

    with CacheManager(f"sqlite:///{path}", env="test") as m:
        assert m.listener_connected is not None and m.listener_connected.wait(5)
        m.set("ns", "a", "old")
        assert m.get("ns", "a") == "old" and "a" in m.l1("ns")
        _set_in_another_process(path, "a")
        deadline = time.monotonic() + 5
        while "a" in m.l1("ns") and time.monotonic() < deadline:
            time.sleep(0.005)
        assert m.get("ns", "a") == "new" and m.counters.by_namespace()["ns"]["invalidations_received"] >= 1
    asyncio.run(async_side())

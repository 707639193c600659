"""The L2 contract, run against every backend on real storage: SQLite in tmp_path, a real redis-server and a
real 3-node Redis Cluster (fixtures in tests/redis_servers.py). Backend-specific behaviour follows the
contract: round trips counted on the server, processes sharing one SQLite file, outages, URL parsing.
"""

from __future__ import annotations

import math
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Dict, Iterator, List, Optional

import pytest

from tiercache.errors import L2Error
from tiercache.l2 import L2, SQLiteL2, from_url

BACKENDS = ["sqlite", "redis", "redis-cluster"]


@dataclass
class Backend:
    name: str
    l2: Any
    advance: Callable[[float], None]  # let at least this many seconds pass, as the backend's TTLs see time
    servers: Any = None  # RedisServer / RedisClusterServers, None for SQLite

    @property
    def is_redis(self) -> bool:
        return self.name != "sqlite"


def eventually(predicate: Callable[[], bool], timeout: float = 2.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not reached within {timeout}s")
        time.sleep(0.005)


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path, make_timer: Any) -> Iterator[Backend]:
    name = request.param
    if name == "sqlite":
        clock = make_timer(1_700_000_000.0)  # (wall-clock seconds)
        b = Backend(name, SQLiteL2(tmp_path / "l2.sqlite3", clock=clock), clock.advance)
    elif name == "redis":
        from tiercache.l2 import RedisL2

        url = request.getfixturevalue("redis_url")
        b = Backend(name, RedisL2(url), time.sleep, request.getfixturevalue("redis_server"))
    else:
        from tiercache.l2 import RedisClusterL2

        url = request.getfixturevalue("redis_cluster_url")
        b = Backend(name, RedisClusterL2(url), time.sleep, request.getfixturevalue("redis_cluster"))
    try:
        yield b
    finally:
        b.l2.close()


@pytest.fixture(params=["redis", "redis-cluster"])
def redis_backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    from tiercache.l2 import RedisClusterL2, RedisL2

    if request.param == "redis":
        url = request.getfixturevalue("redis_url")
        b = Backend("redis", RedisL2(url), time.sleep, request.getfixturevalue("redis_server"))
    else:
        url = request.getfixturevalue("redis_cluster_url")
        b = Backend("redis-cluster", RedisClusterL2(url), time.sleep, request.getfixturevalue("redis_cluster"))
    try:
        yield b
    finally:
        b.l2.close()


def server_clients(b: Backend) -> List[Any]:
    return [b.servers.client()] if b.name == "redis" else b.servers.clients()


def commandstats(b: Backend) -> Dict[str, int]:
    """Calls per command, summed over the backend's servers."""
    totals: Dict[str, int] = {}
    for client in server_clients(b):
        try:
            for name, stats in client.info("commandstats").items():
                command = name.replace("cmdstat_", "")
                totals[command] = totals.get(command, 0) + int(stats["calls"])
        finally:
            client.close()
    return totals


def pttl(b: Backend, key: str) -> int:
    if b.name == "redis":
        client = b.servers.client()
    else:
        import redis.cluster

        client = redis.cluster.RedisCluster.from_url(b.servers.url.replace("redis+cluster://", "redis://"))
    try:
        return int(client.pttl(key))
    finally:
        client.close()


# -- the contract ------------------------------------------------------------------------------------------


def test_backends_satisfy_the_protocol(backend: Backend) -> None:
    assert isinstance(backend.l2, L2)
    assert backend.l2.kind == backend.name


def test_round_trip_and_overwrite(backend: Backend) -> None:
    l2 = backend.l2
    values = {"t:empty": b"", "t:binary": bytes(range(256)) * 4, "t:big": b"x" * (1 << 20), "t:uni:ключ": b"v"}
    for key, data in values.items():
        l2.set(key, data)
    for key, data in values.items():
        assert l2.get(key) == data
    l2.set("t:binary", b"new")
    assert l2.get("t:binary") == b"new"


def test_missing_is_none(backend: Backend) -> None:
    assert backend.l2.get("t:nothing") is None
    assert backend.l2.get_many(["t:nothing", "t:nothing2"]) == [None, None]


def test_ttl_expiry(backend: Backend) -> None:
    l2 = backend.l2
    l2.set("t:short", b"1", ttl=0.05)
    l2.set_many({"t:short2": b"2", "t:short3": b"3"}, ttl=0.05)
    l2.set("t:kept", b"k")
    l2.set("t:long", b"l", ttl=3600)
    assert l2.get("t:short") == b"1"
    assert l2.get_many(["t:short2", "t:short3"]) == [b"2", b"3"]
    backend.advance(0.06)
    eventually(lambda: l2.get("t:short") is None, what="t:short to expire")
    eventually(lambda: l2.get_many(["t:short2", "t:short3"]) == [None, None], what="set_many ttl expiry")
    assert l2.get_many(["t:kept", "t:long", "t:short"]) == [b"k", b"l", None]
    assert l2.delete("t:short") is False  # an expired key does not exist


def test_ttl_is_checked(backend: Backend) -> None:
    for bad in (0, -1, math.nan, math.inf):
        with pytest.raises(ValueError, match="ttl"):
            backend.l2.set("t:k", b"v", ttl=bad)
        with pytest.raises(ValueError, match="ttl"):
            backend.l2.set_many({"t:k": b"v"}, ttl=bad)
    with pytest.raises(TypeError, match="ttl"):
        backend.l2.set("t:k", b"v", ttl="10")
    assert backend.l2.get("t:k") is None


def test_get_many_keeps_order_and_reports_missing(backend: Backend) -> None:
    l2 = backend.l2
    l2.set("t:a", b"A")
    l2.set("t:c", b"C")
    assert l2.get_many(["t:c", "t:missing", "t:a", "t:c"]) == [b"C", None, b"A", b"C"]
    assert l2.get_many([]) == []


def test_set_many_and_get_many_at_scale(backend: Backend) -> None:
    l2 = backend.l2
    items = {f"t:many:{i}": str(i).encode() for i in range(1200)}  # over SQLite's 500-parameter chunks
    l2.set_many(items)
    l2.set_many({})
    keys = list(items)[::-1] + ["t:many:absent"]
    assert l2.get_many(keys) == [items[k] for k in keys[:-1]] + [None]


def test_delete_reports_existence(backend: Backend) -> None:
    l2 = backend.l2
    l2.set("t:d", b"1")
    assert l2.delete("t:d") is True
    assert l2.get("t:d") is None
    assert l2.delete("t:d") is False


def test_delete_many_removes_every_key_in_batches(backend: Backend) -> None:
    """Keys over many hash slots (a cluster splits them by slot), more than one batch, some absent."""
    l2 = backend.l2
    keys = [f"t:dm:{i}" for i in range(2500)]
    l2.set_many({k: b"v" for k in keys[:2000]} | {"t:dm:keep": b"k"})
    assert l2.delete_many(keys) == 2000
    assert l2.get_many(keys) == [None] * len(keys) and l2.get("t:dm:keep") == b"k"
    assert l2.delete_many([]) == 0 and l2.delete_many(keys[:3]) == 0


def test_keys_lists_a_prefix_up_to_a_limit(backend: Backend) -> None:
    l2 = backend.l2
    l2.set_many({f"t:ks:{i}": b"v" for i in range(30)} | {"t:ksx": b"other", "t:k": b"short"})
    found = l2.keys("t:ks:", 1000)
    assert sorted(found) == sorted(f"t:ks:{i}" for i in range(30))
    assert len(l2.keys("t:ks:", 7)) == 7 and set(l2.keys("t:ks:", 7)) <= set(found)
    if backend.name == "sqlite":
        l2.set("t:ks:5", b"rewritten")
        assert l2.keys("t:ks:", 1) == ["t:ks:5"]  # the most recently written first
    else:  # the most recently used first: idle times set through RESTORE … IDLETIME (no waiting)
        client = l2.client
        for i in range(30):
            if i != 5:
                client.restore(f"t:ks:{i}", 0, client.dump(f"t:ks:{i}"), replace=True, idletime=1000 - i)
        assert l2.keys("t:ks:", 10) == ["t:ks:5"] + [f"t:ks:{i}" for i in range(29, 20, -1)]


def test_a_lock_has_one_holder_until_released_or_expired(backend: Backend) -> None:
    l2 = backend.l2
    assert l2.lock("t:lock", b"a", 30) is True
    assert l2.lock("t:lock", b"b", 30) is False and l2.get("t:lock") == b"a"
    assert l2.unlock("t:lock", b"b") is False  # not b's to release
    assert l2.unlock("t:lock", b"a") is True and l2.get("t:lock") is None
    assert l2.lock("t:lock", b"b", 30) is True
    if backend.name == "sqlite":
        backend.advance(31)  # expired: another may take it
    else:
        backend.l2.client.pexpire("t:lock", 1)
        eventually(lambda: l2.get("t:lock") is None, what="the lock's expiry")
    assert l2.lock("t:lock", b"c", 30) is True and l2.unlock("t:lock", b"b") is False


def test_clear_namespace_removes_only_the_prefix(backend: Backend) -> None:
    l2 = backend.l2
    inside = {f"tiercache:v1:dev:users:{i}": b"u" for i in range(2500)}  # several SCAN/UNLINK batches
    outside = {
        "tiercache:v1:dev:users": b"the prefix without its colon",
        "tiercache:v1:dev:users2:1": b"a longer namespace",
        "tiercache:v1:dev:user:1": b"a shorter one",
        "tiercache:v1:prod:users:1": b"another env",
        "tiercache:v1:dev:Users:1": b"case differs",
    }
    l2.set_many({**inside, **outside})
    assert l2.clear_namespace("tiercache:v1:dev:users:") == len(inside)
    assert l2.get_many(list(inside)[:10]) == [None] * 10
    assert l2.get_many(list(outside)) == list(outside.values())
    assert l2.clear_namespace("tiercache:v1:dev:users:") == 0


@pytest.mark.parametrize(
    "prefix, decoys",
    [
        # Each decoy matches the prefix read as an unescaped glob pattern (or as a byte range cut at U+FFFF).
        ("t:a*b?c[xy]d\\e:", ["t:aQQbZcxde:1", "t:a*b?cxd\\e:1", "t:a*b?c[xy]de:1"]),
        ("t:[^a]:", ["t:b:1", "t:[^b]:1"]),
        ("t:\U0001f600:", ["t:\U0001f601:1", "t:\U0001f600"]),
        ("t:\U0010ffff", ["t:\U0010fffe:1", "t;"]),
    ],
    ids=["glob", "brackets", "astral", "max-codepoint"],
)
def test_clear_namespace_takes_the_prefix_literally(backend: Backend, prefix: str, decoys: List[str]) -> None:
    l2 = backend.l2
    inside = [prefix + "1", prefix + "\U0001f600", prefix + "\uffff\uffff", prefix + "*", prefix]
    l2.set_many({key: b"in" for key in inside})
    l2.set_many({key: b"out" for key in decoys})
    assert l2.clear_namespace(prefix) == len(inside)
    assert l2.get_many(inside) == [None] * len(inside)
    assert l2.get_many(decoys) == [b"out"] * len(decoys)


def test_clear_namespace_and_keys_refuse_an_empty_prefix(backend: Backend) -> None:
    backend.l2.set("t:k", b"v")
    for call in (backend.l2.clear_namespace, lambda p: backend.l2.keys(p, 10)):
        with pytest.raises(ValueError, match="prefix"):
            call("")
        with pytest.raises(TypeError, match="prefix"):
            call(b"t:")
    assert backend.l2.get("t:k") == b"v"


def test_ping_and_close(backend: Backend) -> None:
    l2 = backend.l2
    assert l2.ping() is True
    l2.close()
    l2.close()
    with pytest.raises(L2Error, match="closed"):
        l2.get("t:k")
    with pytest.raises(L2Error, match="closed"):
        l2.set_many({"t:k": b"v"})


def test_threads_share_one_backend(backend: Backend) -> None:
    l2 = backend.l2
    errors: List[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(50):
                key = f"t:thread:{n}:{i}"
                l2.set(key, key.encode())
                assert l2.get(key) == key.encode()
            l2.set_many({f"t:thread:{n}:m{i}": b"m" for i in range(20)})
            assert l2.get_many([f"t:thread:{n}:m{i}" for i in range(20)]) == [b"m"] * 20
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors


# -- Redis and Redis Cluster -------------------------------------------------------------------------------


def test_redis_sets_the_ttl_in_milliseconds(redis_backend: Backend) -> None:
    l2 = redis_backend.l2
    l2.set("t:ttl", b"v", ttl=30)
    assert 29_000 < pttl(redis_backend, "t:ttl") <= 30_000
    l2.set_many({"t:ttl2": b"v", "t:ttl3": b"v"}, ttl=2.5)
    assert 2_000 < pttl(redis_backend, "t:ttl3") <= 2_500
    l2.set("t:none", b"v")
    assert pttl(redis_backend, "t:none") == -1
    l2.set("t:tiny", b"v", ttl=0.0001)  # rounds up to PX 1, never to an invalid PX 0


def test_writes_sent_packed_match_the_clients(redis_backend: Backend) -> None:
    """SET, UNLINK and the batch of SETs that RedisL2 packs itself store what the client would (bytes and str
    keys, with and without expiry, non-ASCII keys), and a key that is not str takes the client's path."""
    l2 = redis_backend.l2
    items = {"t:pk:é": b"\x00\r\n$3", "t:pk:2": b"", "t:pk:3": bytes(range(256))}
    l2.set_many(items)
    l2.set_many({"t:pk:ttl": b"x"}, ttl=5)
    l2.set("t:pk:one", b"1", ttl=5)
    l2.set("t:pk:keep", b"k")
    assert l2.get_many(list(items)) == list(items.values())
    assert 4_000 < pttl(redis_backend, "t:pk:ttl") <= 5_000 and 4_000 < pttl(redis_backend, "t:pk:one") <= 5_000
    assert pttl(redis_backend, "t:pk:é") == -1 and pttl(redis_backend, "t:pk:keep") == -1
    assert l2.delete("t:pk:é") is True and l2.delete("t:pk:é") is False
    l2.set(b"t:pk:bytes-key", b"b")  # type: ignore[arg-type]
    assert l2.get("t:pk:bytes-key") == b"b" and l2.delete(b"t:pk:bytes-key") is True  # type: ignore[arg-type]


def test_an_error_reply_in_a_packed_batch_is_raised_after_every_reply_is_read() -> None:
    """The connection stays in step: a server error on one command of a batch is raised, the later replies
    are read first."""
    from redis.exceptions import ResponseError

    from tiercache.l2.redis import _send_and_read

    class Conn:
        def __init__(self) -> None:
            self.replies: List[Any] = [b"OK", ResponseError("ERR no"), b"OK"]

        def send_packed_command(self, packed: Any) -> None:
            pass

        def read_response(self) -> Any:
            reply = self.replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply

    conn = Conn()
    with pytest.raises(ResponseError, match="ERR no"):
        _send_and_read(conn, b"...", 3)
    assert conn.replies == []


def test_many_key_calls_take_one_round_trip(redis_backend: Backend) -> None:
    l2 = redis_backend.l2
    keys = [f"t:rt:{i}" for i in range(100)]
    l2.ping()  # connect (and, for the cluster, learn the slot map) before counting
    primaries = 1 if redis_backend.name == "redis" else len(redis_backend.servers.nodes)

    def sends_during(call: Callable[[], Any]) -> int:
        """How many times `call` wrote to a socket (each pipelined batch is written at once)."""
        with pytest.MonkeyPatch.context() as patch:
            sends = _counting_sends(patch)
            call()
        return len(sends)

    before = commandstats(redis_backend)
    # One write per node: the pipeline is sent whole (for the cluster: to each node before reading any reply).
    assert 1 <= sends_during(lambda: l2.set_many({key: b"v" for key in keys}, ttl=60)) <= primaries
    after = commandstats(redis_backend)
    assert after.get("set", 0) - before.get("set", 0) == 100
    assert after.get("multi", 0) == before.get("multi", 0)  # transaction=False: no MULTI/EXEC
    if redis_backend.name == "redis-cluster":  # the keys really are spread over the three primaries
        for client in server_clients(redis_backend):
            try:
                assert client.info("commandstats")["cmdstat_set"]["calls"] > 10
            finally:
                client.close()

    got: List[Any] = []
    assert 1 <= sends_during(lambda: got.extend(l2.get_many(keys))) <= primaries
    assert got == [b"v"] * 100
    final = commandstats(redis_backend)
    assert final.get("get", 0) == after.get("get", 0)
    if redis_backend.name == "redis":
        assert final.get("mget", 0) - after.get("mget", 0) == 1
    else:  # MGET per slot, pipelined per node
        assert final.get("mget", 0) - after.get("mget", 0) >= 1


def test_clear_namespace_uses_scan_and_unlink(redis_backend: Backend) -> None:
    l2 = redis_backend.l2
    l2.set_many({f"t:scan:{i}": b"v" for i in range(50)})
    before = commandstats(redis_backend)
    assert l2.clear_namespace("t:scan:") == 50
    after = commandstats(redis_backend)
    assert after.get("scan", 0) > before.get("scan", 0)
    assert after.get("unlink", 0) > before.get("unlink", 0)
    for forbidden in ("keys", "flushdb", "flushall", "del"):
        assert after.get(forbidden, 0) == before.get(forbidden, 0), forbidden


def test_publish_reaches_a_subscriber(redis_backend: Backend) -> None:
    l2 = redis_backend.l2
    other = type(l2)(redis_backend.l2.url)
    sub = other.subscribe("tiercache:invalidate")
    try:
        assert l2.publish("tiercache:invalidate", b"ns\x00key") >= 1
        got: List[Optional[bytes]] = []
        eventually(lambda: got.append(sub.get_message(timeout=0.05)) or got[-1] is not None, what="a message")
        assert got[-1] == b"ns\x00key"
        assert sub.get_message(timeout=0.01) is None
    finally:
        sub.close()
        sub.close()
        other.close()
    with pytest.raises(L2Error, match="closed"):
        sub.get_message(timeout=0)


def free_closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
def test_unreachable_redis_fails_fast(scheme: str) -> None:
    port = free_closed_port()
    l2 = from_url(f"{scheme}://127.0.0.1:{port}")  # constructing never connects
    try:
        for call in (lambda: l2.get("k"), lambda: l2.get_many(["a", "b"]), lambda: l2.set("k", b"v"),
                     lambda: l2.set_many({"k": b"v"}), lambda: l2.delete("k"), lambda: l2.clear_namespace("p:"),
                     l2.ping, lambda: l2.publish("c", b"m"), lambda: l2.subscribe("c")):
            started = time.monotonic()
            with pytest.raises(L2Error) as info:
                call()
            assert time.monotonic() - started < 1.0  # refused at once: no retry storm, no backoff sleeps
            assert info.value.__cause__ is not None
    finally:
        l2.close()


def test_unanswering_redis_fails_within_the_socket_timeout() -> None:
    from tiercache.l2 import RedisL2

    # A listening socket that never accepts: connects succeed (the kernel's backlog) and no reply ever comes.
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        port = listener.getsockname()[1]
        l2 = RedisL2(f"redis://127.0.0.1:{port}", socket_timeout=0.2, socket_connect_timeout=0.2)
        try:
            started = time.monotonic()
            with pytest.raises(L2Error):
                l2.get("k")
            assert time.monotonic() - started < 1.0
        finally:
            l2.close()


def test_redis_survives_a_server_restart(redis_url: str, redis_server: Any) -> None:
    from tiercache.l2 import RedisL2

    l2 = RedisL2(redis_url, socket_timeout=0.5, socket_connect_timeout=0.5)
    sub = l2.subscribe("chan")
    try:
        l2.set("t:k", b"v")
        redis_server.kill()
        with pytest.raises(L2Error):
            l2.get("t:k")
        with pytest.raises(L2Error):
            l2.publish("chan", b"m")
        with pytest.raises(L2Error):
            sub.get_message(timeout=0.05)
        assert sub.closed
        redis_server.start()
        # No persistence: the restarted server is empty, and pooled sockets to the dead one are replaced.
        assert l2.get("t:k") is None
        l2.set("t:k", b"w")
        assert l2.get("t:k") == b"w"
        sub = l2.subscribe("chan")
        assert l2.publish("chan", b"m") == 1
    finally:
        sub.close()
        l2.close()


@pytest.mark.parametrize("args", [[], ["k"], ["tiercache:v1:test:ns:item:1"] * 100, ["é€😀", "", "a b\r\n"],
                                  [b"", b"\x00\xff\r\n", "x" * 70_000], ("t", b"u")])
def test_resp_command_is_what_redis_py_sends(impl: Any, args: Any) -> None:
    """RedisL2 packs GET and MGET itself: byte for byte what redis-py's connection sends for them."""
    import redis

    packer = redis.Connection()  # (not connected: only its command packer is used)
    for name in ("GET", "MGET"):
        expected = b"".join(packer.pack_command(name, *args))
        assert impl.resp.resp_command(name.encode(), args) == expected


def test_resp_command_rejects_what_it_cannot_send(impl: Any) -> None:
    resp_command = impl.resp.resp_command
    with pytest.raises(TypeError, match="str or bytes, got int 1"):
        resp_command(b"MGET", ["a", 1])
    with pytest.raises(TypeError, match="args must be a list or tuple, got str"):
        resp_command(b"GET", "abc")
    with pytest.raises(UnicodeEncodeError):
        resp_command(b"GET", ["\ud800"])
    for name in (None, "GET", bytearray(b"GET")):
        with pytest.raises(TypeError, match="name must be bytes"):
            resp_command(name, [])


def test_redis_reads_retry_once_on_a_dropped_connection(redis_url: str, redis_server: Any) -> None:
    """A pooled connection that breaks under a read costs no error: GET and MGET go again on a new one.
    (The pool itself replaces a connection the server closed while it was idle, so the socket is shut here
    after the pool handed it out: the break a server restart or an idle timeout causes mid-command.)"""
    from tiercache.l2 import RedisL2

    l2 = RedisL2(redis_url, max_connections=1)
    pool = l2._pool
    handed_out = pool.get_connection
    breaks: List[int] = []

    def breaking_once() -> Any:
        conn = handed_out()
        if not breaks:
            breaks.append(1)
            conn._sock.shutdown(socket.SHUT_RDWR)
        return conn

    try:
        l2.set("t:drop", b"v")
        for read, expected in ((lambda: l2.get("t:drop"), b"v"),
                               (lambda: l2.get_many(["t:drop", "t:no"]), [b"v", None])):
            breaks.clear()
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(pool, "get_connection", breaking_once)
                assert read() == expected
            assert breaks == [1]
    finally:
        l2.close()


def _counting_sends(patch: pytest.MonkeyPatch) -> List[int]:
    """Every write to a Redis socket from now on, counted (each command attempt is one write)."""
    import redis.connection

    sends: List[int] = []
    original = redis.connection.AbstractConnection.send_packed_command

    def counting(self: Any, command: Any, check_health: bool = True) -> None:
        sends.append(1)
        original(self, command, check_health)

    patch.setattr(redis.connection.AbstractConnection, "send_packed_command", counting)
    return sends


@pytest.mark.parametrize("query, attempts", [("", 1), ("?retry_on_timeout=true", 2)])
def test_redis_read_timeouts_follow_the_connections_retry(redis_url: str, redis_server: Any, query: str,
                                                          attempts: int) -> None:
    """A read that times out is not sent again (an unresponsive server costs one socket timeout), unless
    the URL asks redis-py to retry on timeouts; either way the timed-out connection is not reused with its
    reply still pending."""
    from tiercache.l2 import RedisL2

    l2 = RedisL2(redis_url + query, max_connections=1, socket_timeout=0.2)
    try:
        l2.set("t:slow", b"v")
        assert l2.get("t:slow") == b"v"  # (connected)
        def sends_of(read: Callable[[], Any], error: Any) -> int:
            """Socket writes (command attempts, and any reconnect's handshake) of `read` against a stopped server."""
            redis_server.process.send_signal(signal.SIGSTOP)
            try:
                with pytest.MonkeyPatch.context() as patch:
                    sends = _counting_sends(patch)
                    with pytest.raises(error, match="Timeout|timed out"):
                        read()
            finally:
                redis_server.process.send_signal(signal.SIGCONT)
            assert l2.get("t:slow") == b"v" and l2.get_many(["t:slow", "t:no"]) == [b"v", None]
            return len(sends)

        import redis

        # The same writes as redis-py's own client makes for the same read on the same pool. (Before Python
        # 3.10 a socket timeout is not a TimeoutError, and redis-py reports some as a ConnectionError.)
        timed_out = (redis.TimeoutError, redis.ConnectionError)
        by_client = sends_of(lambda: l2.client.get("t:slow"), timed_out)
        if sys.version_info >= (3, 10):  # (before, redis-py retries such a timeout as a connection error)
            assert (by_client == 1) == (attempts == 1)
        assert sends_of(lambda: l2.get("t:slow"), L2Error) == by_client
        assert sends_of(lambda: l2.client.mget(["t:slow"]), timed_out) == by_client
        assert sends_of(lambda: l2.get_many(["t:slow"]), L2Error) == by_client
    finally:
        l2.close()


def test_redis_reads_of_other_keys_go_through_the_client(redis_url: str, redis_server: Any) -> None:
    """Keys the packer does not take (int, a str given as the whole key list) and URLs that choose another
    key encoding are read by redis-py's client, as before: the same keys as its writes."""
    from tiercache.l2 import RedisL2

    l2 = RedisL2(redis_url)
    latin = RedisL2(redis_url + "?encoding=latin-1")
    try:
        l2.set("7", b"seven")
        l2.set("abc", b"whole")
        assert l2.get(7) == b"seven"  # type: ignore[arg-type]
        assert l2.get_many([7, "abc"]) == [b"seven", b"whole"]  # type: ignore[list-item]
        assert l2.get_many("abc") == [b"whole"]  # type: ignore[arg-type]
        assert latin._pack_reads is False and l2._pack_reads is True
        latin.set("t:é", b"latin")
        assert latin.get("t:é") == b"latin" and latin.get_many(["t:é"]) == [b"latin"]
    finally:
        latin.close()
        l2.close()


def test_redis_read_errors_keep_the_pool_whole(redis_url: str, redis_server: Any) -> None:
    """A server error on a read is an L2Error naming the command; the connection goes back to the pool (with
    one connection, the next read would otherwise wait for it and fail)."""
    from tiercache.l2 import RedisL2

    l2 = RedisL2(redis_url, max_connections=1, socket_timeout=0.5)
    raw = redis_server.client()
    try:
        raw.rpush("t:list", "x")
        l2.set("t:str", b"v")
        for _ in range(3):
            with pytest.raises(L2Error, match="GET failed.*WRONGTYPE"):
                l2.get("t:list")
            assert l2.get_many(["t:list", "t:str"]) == [None, b"v"]  # (MGET answers nil for other types)
            assert l2.get("t:str") == b"v"
        assert l2.get_many(iter(["t:str"])) == [b"v"]  # (any iterable of keys, as redis-py's mget takes)
        l2.close()
        with pytest.raises(L2Error, match="is closed"):
            l2.get("t:str")
        with pytest.raises(L2Error, match="is closed"):
            l2.get_many(["t:str"])
    finally:
        raw.close()
        l2.close()


def test_listen_delivers_and_reports_reconnects(redis_url: str, redis_server: Any) -> None:
    from tiercache.l2 import RedisL2

    listener, publisher = RedisL2(redis_url), RedisL2(redis_url)
    received: List[bytes] = []
    reconnects: List[float] = []
    stop = threading.Event()
    thread = threading.Thread(
        target=listener.listen, args=("inv", received.append, lambda: reconnects.append(time.monotonic()), stop),
        kwargs={"poll_interval": 0.02}, daemon=True,
    )
    thread.start()
    try:
        # publish until the listener has subscribed and got one
        eventually(lambda: publisher.publish("inv", b"first") > 0 and bool(received), what="the first message")
        assert received[0] == b"first" and not reconnects
        redis_server.kill()
        redis_server.start()
        eventually(lambda: bool(reconnects), what="on_reconnect after the restart")
        received.clear()
        eventually(lambda: publisher.publish("inv", b"again") > 0 and bool(received), what="messages again")
        assert received[0] == b"again" and len(reconnects) == 1
    finally:
        stop.set()
        thread.join(timeout=5)
        listener.close()
        publisher.close()
    assert not thread.is_alive()


def test_subscription_reports_a_silent_reconnect(redis_url: str, redis_server: Any) -> None:
    from tiercache.l2 import RedisL2

    l2 = RedisL2(redis_url)
    sub = l2.subscribe("chan")
    try:
        redis_server.kill()
        redis_server.start()  # back before the subscriber notices: redis-py (>= 6) would quietly reconnect
        # (older redis-py reports the closed connection instead: an error either way, so L1 is flushed)
        with pytest.raises(L2Error, match="re-established|Connection closed"):
            sub.get_message(timeout=0.05)
        assert sub.closed
    finally:
        sub.close()
        l2.close()

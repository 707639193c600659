"""L2 on Redis (one server) and Redis Cluster, through redis-py (with its hiredis parser when installed).

Every multi-key call is one round trip: MGET for get_many, a non-transactional pipeline of SETs for set_many
(per cluster node, all nodes written before any is read). Failures of any kind — refused, timed out, a server
error, a cluster without coverage — are raised as L2Error wrapping redis-py's exception; the manager's circuit
breaker decides what they mean. Retries are deliberately few (one immediate retry on a broken connection, so a
restarted server costs no error) so that an outage is reported within about one socket timeout.

Invalidation broadcasts use plain pub/sub: `publish(channel, message)` and `subscribe(channel)`, which returns
a Subscription. Any L2Error from `Subscription.get_message` means messages may have been missed (the
connection dropped, or redis-py silently re-established it): close it, subscribe again, and treat everything
cached as possibly stale. `listen(channel, on_message, on_reconnect, stop)` runs that loop for you.
"""

from __future__ import annotations

import math
import threading
import time
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Type
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.cluster import RedisCluster
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.retry import Retry

from .._compat import twin
from .._validate import check_ttl
from ..errors import L2Error

resp_command = twin("tiercache.l2._resp_c", "tiercache.l2._resp_py").resp_command

__all__ = ["RedisL2", "RedisClusterL2", "Subscription", "glob_escape"]

# RedisClusterException (topology and coverage problems) is not a RedisError; OSError covers socket and TLS
# failures redis-py lets through untranslated; TypeError is what the hiredis parser raises on a connection
# that another thread closed under it (close() racing with calls).
_ERRORS: Tuple[Type[BaseException], ...] = (RedisError, RedisClusterException, OSError, TypeError)

HEALTH_CHECK_INTERVAL = 10  # seconds

# Keys removed per UNLINK by clear_namespace, and the SCAN COUNT hint.
_BATCH = 1000


def glob_escape(text: str) -> str:
    """`text` with Redis glob metacharacters escaped, so MATCH treats it literally."""
    return "".join("\\" + ch if ch in "\\*?[]" else ch for ch in text)


def ttl_ms(ttl: Optional[float]) -> Optional[int]:
    """Milliseconds for SET PX, rounded up and at least 1, so an entry never expires sooner than asked."""
    ttl = check_ttl(ttl)
    if ttl is None:
        return None
    return max(1, math.ceil(ttl * 1000.0))


def _where(url: str) -> str:
    """`url` without its credentials, for error messages."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
        return f"{parts.scheme}://{host}{port}{parts.path}"
    except ValueError:
        return "<unparsable url>"


def prefix_pattern(prefix: str) -> str:
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__} {prefix!r}")
    if not prefix:
        raise ValueError("prefix must be a non-empty str: '' would select every key")
    return glob_escape(prefix) + "*"


# unlock(): delete the lock only while it still holds the caller's token (it may have expired and been taken)
UNLOCK_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"

# incr(): tiercache.wire.added in the server, atomically. The new int; nil when the key holds no value; 'no'
# when the value is not a plain msgpack int within ±2**53 (Lua's numbers are doubles): the caller does it.
INCR_SCRIPT = """
local v = redis.call('GET', KEYS[1])
if not v then return nil end
local at = 1
if string.byte(v, 1) == 88 then at = 10 end
if string.byte(v, at) ~= 77 or string.byte(v, at + 1) ~= 0 then return 'no' end
local first = string.byte(v, at + 2)
if not first or not (first < 128 or first >= 224 or (first >= 204 and first <= 211)) then return 'no' end
local body = string.sub(v, at + 2)
local ok, n = pcall(cmsgpack.unpack, body)
if not ok or type(n) ~= 'number' then return 'no' end
local new = n + tonumber(ARGV[1])
if math.abs(n) >= 9007199254740992 or math.abs(new) >= 9007199254740992 or cmsgpack.pack(n) ~= body then
    return 'no'
end
redis.call('SET', KEYS[1], string.sub(v, 1, at + 1) .. cmsgpack.pack(new), 'KEEPTTL')
return new
"""


# swap(): replace the value only while it is still the one read, keeping its expiry.
SWAP_SCRIPT = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
return 1
"""


def incr_answer(reply: Any) -> Any:
    """What incr() returns for INCR_SCRIPT's reply: the int, None, or NotImplemented."""
    return reply if reply is None or type(reply) is int else NotImplemented


# keys(prefix, limit) samples this many times `limit` keys and keeps the most recently used of them
RECENCY_SAMPLE = 4


def most_recent(sample: List[Any], idle: List[Any], limit: int) -> List[str]:
    """The `limit` keys of `sample` with the smallest OBJECT IDLETIME in `idle` (an error or a key gone
    meanwhile goes last), decoded."""
    def idleness(i: int) -> float:
        t = idle[i] if i < len(idle) else None
        return t if isinstance(t, int) and not isinstance(t, bool) else float("inf")

    order = sorted(range(len(sample)), key=idleness)[:limit]
    return [k.decode("utf-8", "surrogateescape") if isinstance(k, bytes) else k for k in (sample[i] for i in order)]


# set_tagged(): a tag's index drops members whose entry expired more than this long ago (by the writer's
# clock: the margin covers clocks of different hosts that disagree)
TAG_PRUNE_MARGIN_MS = 60_000


# After a tagged write, on each tag index: drop members expired before ARGV[1] (ms), then keep the index as
# long as its longest-lived member: no expiry while one never expires, else at least ARGV[2] ms more.
TAG_UPKEEP_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1])
if ARGV[2] == '' then return redis.call('PERSIST', KEYS[1]) end
local left = redis.call('PTTL', KEYS[1])
if left == -1 then
    if redis.call('ZCOUNT', KEYS[1], '+inf', '+inf') > 0 then return 0 end
elseif left >= tonumber(ARGV[2]) then
    return 0
end
return redis.call('PEXPIRE', KEYS[1], ARGV[2])
"""


def queue_tagged(pipe: Any, items: Mapping[str, bytes], ttl: Optional[float], tag_keys: List[str],
                 now: float) -> None:
    """Queue on `pipe` the SETs of `items` and, for each tag index in `tag_keys` (a sorted set scored by
    its entries' expiry, in ms; +inf for none): the items added, members expired more than
    TAG_PRUNE_MARGIN_MS ago dropped, and the index kept as long as its longest-lived member."""
    px = ttl_ms(ttl)
    score: float = float("inf") if px is None else now * 1000.0 + px
    for key, data in items.items():
        pipe.set(key, data, px=px)
    members = dict.fromkeys(items, score)
    prune_below = "%d" % (now * 1000.0 - TAG_PRUNE_MARGIN_MS)
    keep = "" if px is None else "%d" % (px + TAG_PRUNE_MARGIN_MS)
    for tag_key in tag_keys:
        pipe.zadd(tag_key, members)
        pipe.execute_command("EVAL", TAG_UPKEEP_SCRIPT, 1, tag_key, prune_below, keep)  # (a cluster pipeline has no .eval)


def popped_keys(popped: List[Any]) -> List[str]:
    """The members of a ZPOPMIN answer ([(member, score), …]), decoded."""
    return [m.decode("utf-8", "surrogateescape") if isinstance(m, bytes) else m for m, _ in popped]


def _send_and_read(conn: Any, packed: bytes, replies: int = 1) -> Any:
    """Send `packed` (`replies` commands) and read every reply: the one, or a list; an error reply raises
    once all of them are read (the connection stays in step)."""
    conn.send_packed_command((packed,))
    if replies == 1:
        return conn.read_response()
    out, error = [], None
    for _ in range(replies):
        try:
            out.append(conn.read_response())
        except ResponseError as exc:
            error = error or exc
    if error is not None:
        raise error
    return out


class _Closed:
    """Stands in for the client after close(): every use raises L2Error, at no cost to the open path."""

    def __init__(self, where: str) -> None:
        self._where = where

    def __getattr__(self, name: str) -> Any:
        raise L2Error(f"redis L2 {self._where} is closed")


class Subscription:
    """A subscription to one pub/sub channel.

    `get_message(timeout)` waits up to `timeout` seconds (keep it finite and below the socket timeout) and
    returns the payload bytes of the next message, or None. It raises L2Error when the connection failed or
    was silently re-established by redis-py — either way messages may have been missed — and the
    subscription is then closed: subscribe again. `close()` is idempotent. One thread reads a subscription.
    """

    def __init__(self, pubsub: Any, channel: str, where: str, confirm_timeout: float) -> None:
        self.channel = channel
        self._pubsub = pubsub
        self._where = where
        self._closed = False
        self._reconnected = False
        try:
            pubsub.subscribe(channel)
            # Wait for the server's confirmation, so a message published after subscribe() returns is seen.
            confirmed = False
            for _ in range(8):
                reply = pubsub.get_message(timeout=confirm_timeout / 8)
                if reply is not None and reply.get("type") == "subscribe":
                    confirmed = True
                    break
            if not confirmed:
                raise redis.TimeoutError(f"no confirmation of SUBSCRIBE {channel!r} within {confirm_timeout}s")
            # Called by redis-py whenever it re-opens this connection behind our back (it re-subscribes too).
            pubsub.connection.register_connect_callback(self._on_reconnect)
            # An idle subscription is PINGed now and then, so a half-open TCP connection is noticed instead
            # of silently losing invalidations (only this connection: data calls stay one round trip).
            pubsub.connection.health_check_interval = HEALTH_CHECK_INTERVAL
        except _ERRORS as exc:
            pubsub.close()
            raise L2Error(f"redis SUBSCRIBE {channel!r} failed on {where}: {exc}") from exc

    def _on_reconnect(self, connection: Any) -> None:
        self._reconnected = True

    def get_message(self, timeout: float = 0.0) -> Optional[bytes]:
        if self._closed:
            raise L2Error(f"subscription to {self.channel!r} on {self._where} is closed")
        try:
            message = self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        except _ERRORS as exc:
            self.close()
            raise L2Error(f"redis subscription to {self.channel!r} on {self._where} failed: {exc}") from exc
        if self._reconnected:
            self.close()
            raise L2Error(
                f"redis subscription to {self.channel!r} on {self._where} was re-established: messages may be lost"
            )
        if message is None or message.get("type") != "message":
            return None
        return message["data"]  # type: ignore[no-any-return]

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._pubsub.close()

    def __enter__(self) -> "Subscription":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class _Listener:
    """`listen()`, the Invalidations shape of tiercache.l2.base, built on `subscribe()`."""

    def subscribe(self, channel: str) -> Subscription:  # pragma: no cover - implemented by the backends
        raise NotImplementedError

    def listen(
        self,
        channel: str,
        on_message: Callable[[bytes], None],
        on_reconnect: Callable[[], None],
        stop: threading.Event,
        *,
        poll_interval: float = 0.1,
        max_backoff: float = 2.0,
    ) -> None:
        """Call `on_message(payload)` for every message on `channel` until `stop` is set; blocks, so run it in
        a thread. When the subscription fails (or cannot be made at first) it is retried with backoff up to
        `max_backoff` seconds, and once it is back `on_reconnect()` is called before any further message:
        whatever was published meanwhile is lost, so the caller must drop what it may hold stale. Exceptions
        raised by the callbacks end the loop and propagate.
        """
        backoff = 0.05
        lost = False
        while not stop.is_set():
            try:
                subscription = self.subscribe(channel)
            except L2Error:
                lost = True
                stop.wait(backoff)
                backoff = min(backoff * 2, max_backoff)
                continue
            backoff = 0.05
            try:
                if lost:
                    lost = False
                    on_reconnect()
                while not stop.is_set():
                    payload = subscription.get_message(timeout=poll_interval)
                    if payload is not None:
                        on_message(payload)
            except L2Error:
                lost = True
            finally:
                subscription.close()


class RedisBackendBase:
    """What the four Redis backends (sync and async, server and cluster) share: the URL they were given,
    where it points (for messages), the socket timeout, and how a failure is worded. A subclass supplies
    `_c()` (the client, connecting if need be) and the SCAN and PING options a cluster needs."""

    _what = "redis"  # for error messages
    _where: str
    _socket_timeout: float
    _scan_options: Dict[str, Any] = {}
    _ping_options: Dict[str, Any] = {}

    def _set_url(self, url: Any, socket_timeout: float) -> None:
        if not isinstance(url, str):
            raise TypeError(f"url must be a str, got {type(url).__name__} {url!r}")
        self.url = url
        self._where = _where(url)
        self._socket_timeout = socket_timeout

    def _c(self) -> Any:  # pragma: no cover - implemented by the backends
        raise NotImplementedError

    def _fail(self, op: str, exc: BaseException) -> L2Error:
        return L2Error(f"{self._what} {op} failed on {self._where}: {exc}")


class _RedisCommands(RedisBackendBase, _Listener):
    """The L2 protocol over a redis-py client, shared by RedisL2 and RedisClusterL2; a cluster says where
    it differs: how MGET spans slots, which pipeline, and which nodes SCAN and PING address."""

    def _mget(self, client: Any, keys: List[str]) -> List[Optional[bytes]]:
        return client.mget(keys)  # type: ignore[no-any-return]

    def _pipeline(self, client: Any) -> Any:
        return client.pipeline(transaction=False)

    def get(self, key: str) -> Optional[bytes]:
        try:
            return self._c().get(key)  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail("GET", exc) from exc

    def get_many(self, keys: List[str]) -> List[Optional[bytes]]:
        """One MGET (on a cluster: MGET per slot, one pipeline per node)."""
        if not keys:
            return []
        try:
            return self._mget(self._c(), keys)
        except _ERRORS as exc:
            raise self._fail("MGET", exc) from exc

    def set(self, key: str, data: bytes, ttl: Optional[float] = None) -> None:
        px = ttl_ms(ttl)
        try:
            self._c().set(key, data, px=px)
        except _ERRORS as exc:
            raise self._fail("SET", exc) from exc

    def set_many(self, items: Mapping[str, bytes], ttl: Optional[float] = None) -> None:
        """One non-transactional pipeline of SETs (on a cluster: one per node)."""
        px = ttl_ms(ttl)
        if not items:
            return
        try:
            pipe = self._pipeline(self._c())
            for key, data in items.items():
                pipe.set(key, data, px=px)
            pipe.execute()
        except _ERRORS as exc:
            raise self._fail("SET pipeline", exc) from exc

    def delete(self, key: str) -> bool:
        try:
            return self._c().unlink(key) > 0  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail("UNLINK", exc) from exc

    def set_tagged(self, items: Mapping[str, bytes], ttl: Optional[float], tag_keys: List[str]) -> None:
        """set_many, and every key added to each tag index of `tag_keys`, in one pipeline (see queue_tagged)."""
        check_ttl(ttl)
        if not items:
            return
        try:
            pipe = self._pipeline(self._c())
            queue_tagged(pipe, items, ttl, tag_keys, time.time())
            pipe.execute()
        except _ERRORS as exc:
            raise self._fail("tagged SET pipeline", exc) from exc

    def pop_tagged(self, tag_key: str, count: int) -> List[str]:
        """Remove up to `count` keys from the tag index `tag_key` and return them (ZPOPMIN: atomic, so two
        callers never get the same key)."""
        try:
            return popped_keys(self._c().zpopmin(tag_key, count))
        except _ERRORS as exc:
            raise self._fail("ZPOPMIN", exc) from exc

    def keys(self, prefix: str, limit: int) -> List[str]:
        """Up to `limit` keys under `prefix`, the most recently used first: SCAN MATCH prefix* (every primary
        of a cluster) samples up to RECENCY_SAMPLE × limit keys, ordered by OBJECT IDLETIME in one pipeline
        (SCAN order where the server does not track idle time: an LFU maxmemory policy)."""
        pattern = prefix_pattern(prefix)
        sample: List[Any] = []
        try:
            client = self._c()
            for key in client.scan_iter(match=pattern, count=_BATCH, **self._scan_options):
                sample.append(key)
                if len(sample) >= limit * RECENCY_SAMPLE:
                    break
            pipe = self._pipeline(client)
            for key in sample:
                pipe.object("idletime", key)
            idle = pipe.execute(raise_on_error=False) if sample else []
        except _ERRORS as exc:
            raise self._fail("SCAN", exc) from exc
        return most_recent(sample, idle, limit)

    def delete_many(self, keys: List[str]) -> int:
        """UNLINK in batches of 1000 (on a cluster, split by slot)."""
        removed = 0
        try:
            client = self._c()
            for i in range(0, len(keys), _BATCH):
                removed += client.unlink(*keys[i:i + _BATCH])
        except _ERRORS as exc:
            raise self._fail("UNLINK", exc) from exc
        return removed

    def clear_namespace(self, prefix: str) -> int:
        """SCAN MATCH prefix* (every primary of a cluster) and UNLINK in batches of 1000 (never KEYS or
        FLUSHDB); returns how many."""
        pattern = prefix_pattern(prefix)
        removed = 0
        batch: List[bytes] = []
        try:
            client = self._c()
            for key in client.scan_iter(match=pattern, count=_BATCH, **self._scan_options):
                batch.append(key)
                if len(batch) >= _BATCH:
                    removed += client.unlink(*batch)
                    batch = []
            if batch:
                removed += client.unlink(*batch)
        except _ERRORS as exc:
            raise self._fail(f"clear_namespace({prefix!r})", exc) from exc
        return removed

    def ping(self) -> bool:
        """True when the server (every primary of a cluster) answers; raises L2Error otherwise."""
        try:
            return bool(self._c().ping(**self._ping_options))
        except _ERRORS as exc:
            raise self._fail("PING", exc) from exc

    def add(self, key: str, data: bytes, ttl: Optional[float] = None) -> bool:
        """Store `data` unless `key` exists (SET NX PX): whether it was stored."""
        try:
            return bool(self._c().set(key, data, nx=True, px=ttl_ms(ttl)))
        except _ERRORS as exc:
            raise self._fail("SET NX", exc) from exc

    def lock(self, key: str, token: bytes, ttl: float) -> bool:
        """Take the lock `key` for `token` unless another holds it (SET NX PX): whether it was taken."""
        return self.add(key, token, check_ttl(ttl))

    def unlock(self, key: str, token: bytes) -> bool:
        """Release the lock `key` if `token` still holds it (compare and delete, atomically)."""
        try:
            return bool(self._c().eval(UNLOCK_SCRIPT, 1, key, token))
        except _ERRORS as exc:
            raise self._fail("unlock", exc) from exc

    def swap(self, key: str, old: bytes, new: bytes) -> bool:
        """Store `new` under `key` if it still holds `old`, keeping its expiry (SWAP_SCRIPT): whether it did."""
        try:
            return bool(self._c().register_script(SWAP_SCRIPT)(keys=[key], args=[old, new]))
        except _ERRORS as exc:
            raise self._fail("swap", exc) from exc

    def incr(self, key: str, delta: int) -> Any:
        """Add `delta` to the plain msgpack int under `key`, atomically, keeping its expiry (INCR_SCRIPT):
        the new int; None when `key` holds no value; NotImplemented for any other value."""
        try:  # (EVALSHA; the script is loaded on a server that does not have it)
            return incr_answer(self._c().register_script(INCR_SCRIPT)(keys=[key], args=[delta]))
        except _ERRORS as exc:
            raise self._fail("incr", exc) from exc

    def publish(self, channel: str, message: bytes) -> int:
        """Broadcast `message` on `channel`; returns how many subscribers received it."""
        try:
            return self._c().publish(channel, message)  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail(f"PUBLISH {channel!r}", exc) from exc

    def subscribe(self, channel: str) -> Subscription:
        """A Subscription to `channel`, confirmed by the server before this returns (see Subscription)."""
        try:
            pubsub = self._c().pubsub()
        except _ERRORS as exc:
            raise self._fail(f"SUBSCRIBE {channel!r}", exc) from exc
        return Subscription(pubsub, channel, self._where, self._socket_timeout)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - implemented by the backends
        raise NotImplementedError


class RedisL2(_RedisCommands):
    """L2 on one Redis server: `redis://[user:password@]host:port/db`, `rediss://…` (TLS) or `unix:///path`.

    Connections come from a pool of at most `max_connections`; a caller waits up to `socket_timeout` for a
    free one. `socket_timeout` bounds every reply, `socket_connect_timeout` every connect. Thread-safe.
    Query-string options in the URL (e.g. `?socket_timeout=0.5`) override the keyword arguments.
    """

    kind = "redis"

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self._set_url(url, socket_timeout)
        # One immediate retry, on broken connections only: a pooled socket to a restarted server fails once and
        # is replaced; a timeout is not retried, so an unresponsive server costs one socket_timeout, not several.
        retry = Retry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        pool = redis.BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=socket_timeout,
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            retry=retry,
        )
        self._client: Any = redis.Redis.from_pool(pool)
        self._pool: Any = pool
        # GET, MGET, SET and UNLINK of str keys are packed here (resp_command: UTF-8, strictly), so only while
        # the client would send the same bytes for them; a URL asking for another key encoding leaves them to
        # the client.
        options = pool.connection_kwargs
        self._pack_reads = (str(options.get("encoding", "utf-8")).lower().replace("_", "-") in ("utf-8", "utf8")
                            and options.get("encoding_errors", "strict") == "strict")

    def __repr__(self) -> str:
        return f"RedisL2({self._where!r})"

    @property
    def client(self) -> "redis.Redis":
        """The underlying redis-py client (for diagnostics and benchmarks)."""
        return self._client  # type: ignore[no-any-return]

    def _c(self) -> Any:
        return self._client

    # GET, MGET, SET and UNLINK of str keys, the per-item paths, are sent already packed (resp_command) on
    # a pooled connection: what the client does for a command — a connection from the pool, the
    # connection's own Retry (one retry on a broken connection, or what the URL asks for), the reply read
    # (a server error raised), the connection back — without its per-command packing and bookkeeping, which
    # cost about as much as the rest of an MGET of 100 keys. They skip what else the client would add:
    # redis-py's observability hooks and any response callback set on `client`. Other key types and the
    # other commands go through the client.

    def _roundtrip(self, packed: bytes, replies: int = 1) -> Any:
        pool = self._pool
        conn = pool.get_connection()
        try:
            try:
                return _send_and_read(conn, packed, replies)
            except ResponseError:  # (the server answered: nothing to retry)
                raise
            except Exception as exc:  # the connection's Retry decides what follows, this failure counted
                failed = [exc]

                def attempt() -> Any:
                    if failed:
                        raise failed.pop()
                    return _send_and_read(conn, packed, replies)

                return conn.retry.call_with_retry(attempt, lambda _error: conn.disconnect())
        finally:
            pool.release(conn)

    def get(self, key: str) -> Optional[bytes]:
        try:
            if type(key) is str and self._pack_reads:
                return self._roundtrip(resp_command(b"GET", (key,)))  # type: ignore[no-any-return]
            return self._client.get(key)  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail("GET", exc) from exc

    def set(self, key: str, data: bytes, ttl: Optional[float] = None) -> None:
        if not (type(key) is str and type(data) is bytes and self._pack_reads):
            return super().set(key, data, ttl)
        px = ttl_ms(ttl)
        try:
            self._roundtrip(resp_command(b"SET", (key, data) if px is None else (key, data, b"PX", b"%d" % px)))
        except _ERRORS as exc:
            raise self._fail("SET", exc) from exc

    def set_many(self, items: Mapping[str, bytes], ttl: Optional[float] = None) -> None:
        """Every SET sent at once, one round trip."""
        if not (items and self._pack_reads and all(type(k) is str and type(d) is bytes for k, d in items.items())):
            return super().set_many(items, ttl)
        px = ttl_ms(ttl)
        tail = () if px is None else (b"PX", b"%d" % px)
        try:
            self._roundtrip(b"".join([resp_command(b"SET", (k, d, *tail)) for k, d in items.items()]), len(items))
        except _ERRORS as exc:
            raise self._fail("SET pipeline", exc) from exc

    def delete(self, key: str) -> bool:
        if not (type(key) is str and self._pack_reads):
            return super().delete(key)
        try:
            return self._roundtrip(resp_command(b"UNLINK", (key,))) > 0  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail("UNLINK", exc) from exc

    def get_many(self, keys: List[str]) -> List[Optional[bytes]]:
        if not keys:
            return []
        try:
            if (type(keys) is list or type(keys) is tuple) and self._pack_reads:
                try:
                    packed = resp_command(b"MGET", keys)
                except TypeError:  # (keys other than str and bytes: the client encodes those its own way)
                    return self._client.mget(keys)  # type: ignore[no-any-return]
                return self._roundtrip(packed)  # type: ignore[no-any-return]
            return self._client.mget(keys)  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail("MGET", exc) from exc

    def close(self) -> None:
        """Disconnect the pool; later calls raise L2Error. Idempotent."""
        client, self._client = self._client, _Closed(self._where)
        self._pool = client if isinstance(client, _Closed) else _Closed(self._where)
        if not isinstance(client, _Closed):
            client.close()


def cluster_url_to_redis(url: str) -> str:
    """`redis+cluster://…` → `redis://…` and `rediss+cluster://…` → `rediss://…`, as redis-py expects."""
    scheme, sep, rest = url.partition("://")
    lowered = scheme.lower()
    if not sep or lowered not in ("redis+cluster", "rediss+cluster"):
        raise ValueError(f"url must start with redis+cluster:// or rediss+cluster://, got {url!r}")
    return lowered[: -len("+cluster")] + "://" + rest


class RedisClusterL2(_RedisCommands):
    """L2 on a Redis Cluster: `redis+cluster://host:port` (any node; the rest are discovered), or
    `rediss+cluster://…` for TLS.

    The client is created on first use (creating it contacts the cluster), so constructing this never fails
    for an unreachable cluster; the first call raises L2Error instead and the next one tries again.
    Multi-key calls span slots: get_many is MGET per slot, set_many SET per key, each sent as one pipeline
    per node. Thread-safe.
    """

    kind = "redis-cluster"
    _what = "redis cluster"
    _scan_options = {"target_nodes": RedisCluster.PRIMARIES}
    _ping_options = {"target_nodes": RedisCluster.PRIMARIES}

    def __init__(
        self,
        url: str,
        *,
        socket_timeout: float = 1.0,
        socket_connect_timeout: float = 1.0,
        max_connections: int = 64,
    ) -> None:
        self._set_url(url, socket_timeout)
        self._redis_url = cluster_url_to_redis(url)
        self._options = dict(
            socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            # Per-node pools block (up to socket_timeout) for a free connection instead of failing at once.
            connection_pool_class=redis.BlockingConnectionPool,
            timeout=socket_timeout,
            # The cluster client retries refused connections, timeouts and CLUSTERDOWN after refreshing its slot
            # map (MOVED/ASK are followed apart); two quick retries ride out a failover's first moments without
            # hiding an outage.
            retry=Retry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 2),
        )
        self._lock = threading.Lock()
        self._client: Any = None

    def __repr__(self) -> str:
        return f"RedisClusterL2({self._where!r})"

    @property
    def client(self) -> "RedisCluster":
        """The underlying redis-py cluster client (created, and the cluster contacted, if need be)."""
        return self._connect()  # type: ignore[no-any-return]

    def _c(self) -> Any:
        return self._client or self._connect()

    def _mget(self, client: Any, keys: List[str]) -> List[Optional[bytes]]:
        return client.mget_nonatomic(keys)  # type: ignore[no-any-return]

    def _pipeline(self, client: Any) -> Any:
        return client.pipeline()

    def _connect(self) -> Any:
        client = self._client
        if client is not None:
            return client
        with self._lock:
            if self._client is None:
                try:
                    self._client = RedisCluster.from_url(self._redis_url, **self._options)
                except _ERRORS as exc:
                    raise self._fail("connect", exc) from exc
            return self._client

    def close(self) -> None:
        """Disconnect from every node; later calls raise L2Error. Idempotent."""
        with self._lock:
            client, self._client = self._client, _Closed(self._where)
        if client is not None and not isinstance(client, _Closed):
            client.close()

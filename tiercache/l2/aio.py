"""Async L2 backends for AsyncCacheManager: the L2 protocol with awaitables.

    AsyncRedisL2         redis.asyncio, one server        redis:// rediss:// unix://
    AsyncRedisClusterL2  redis.asyncio's cluster client   redis+cluster:// rediss+cluster://
    ThreadedL2           any sync L2 (the SQLite store) run on a small worker-thread pool; ThreadedPubSubL2
                         when it also carries invalidation messages (SQLite's publish/subscribe)

Same semantics and errors as the sync backends (tiercache/l2/redis.py): every failure is raised as
L2Error; get_many is one MGET (per slot on a cluster), set_many one pipeline; clear_namespace is SCAN +
UNLINK in batches. `subscribe(channel)` returns an AsyncSubscription for the invalidation listener task.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import time
from typing import Any, Callable, List, Mapping, Optional, Tuple, Type

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.exceptions import RedisClusterException, RedisError

from .._validate import check_ttl
from ..errors import L2Error
from .redis import (HEALTH_CHECK_INTERVAL, INCR_SCRIPT, RECENCY_SAMPLE, SWAP_SCRIPT, UNLOCK_SCRIPT, RedisBackendBase,
                    cluster_url_to_redis, incr_answer, most_recent, popped_keys, prefix_pattern, queue_tagged,
                    ttl_ms)

__all__ = ["AsyncRedisL2", "AsyncRedisClusterL2", "AsyncSubscription", "ThreadedL2", "ThreadedPubSubL2",
           "ThreadedSubscription", "from_url", "threaded"]

_ERRORS: Tuple[Type[BaseException], ...] = (RedisError, RedisClusterException, OSError, TypeError,
                                            asyncio.TimeoutError)
_BATCH = 1000


class AsyncSubscription:
    """A subscription to one pub/sub channel (see tiercache.l2.redis.Subscription; async here)."""

    def __init__(self, pubsub: Any, channel: str, where: str) -> None:
        self.channel = channel
        self._pubsub = pubsub
        self._where = where
        self._closed = False

    @classmethod
    async def open(cls, client: Any, channel: str, where: str, confirm_timeout: float) -> "AsyncSubscription":
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel)
            confirmed = False
            for _ in range(8):
                reply = await pubsub.get_message(timeout=confirm_timeout / 8)
                if reply is not None and reply.get("type") == "subscribe":
                    confirmed = True
                    break
            if not confirmed:
                raise redis.TimeoutError(f"no confirmation of SUBSCRIBE {channel!r} within {confirm_timeout}s")
            pubsub.connection.health_check_interval = HEALTH_CHECK_INTERVAL
        except _ERRORS as exc:
            await pubsub.aclose()
            raise L2Error(f"redis SUBSCRIBE {channel!r} failed on {where}: {exc}") from exc
        return cls(pubsub, channel, where)

    async def get_message(self, timeout: float = 0.0) -> Optional[bytes]:
        if self._closed:
            raise L2Error(f"subscription to {self.channel!r} on {self._where} is closed")
        try:
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        except _ERRORS as exc:
            await self.aclose()
            raise L2Error(f"redis subscription to {self.channel!r} on {self._where} failed: {exc}") from exc
        if message is None or message.get("type") != "message":
            return None
        return message["data"]  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                await self._pubsub.aclose()
            except _ERRORS:
                pass


class _AsyncRedisCommands(RedisBackendBase):
    """The L2 protocol over a redis.asyncio client, shared by AsyncRedisL2 and AsyncRedisClusterL2."""

    async def _mget(self, client: Any, keys: List[str]) -> List[Optional[bytes]]:
        return await client.mget(keys)  # type: ignore[no-any-return]

    def _pipeline(self, client: Any) -> Any:
        return client.pipeline(transaction=False)

    async def get(self, key: str) -> Optional[bytes]:
        try:
            return await self._c().get(key)  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail("GET", exc) from exc

    async def get_many(self, keys: List[str]) -> List[Optional[bytes]]:
        if not keys:
            return []
        try:
            return await self._mget(self._c(), keys)
        except _ERRORS as exc:
            raise self._fail("MGET", exc) from exc

    async def set(self, key: str, data: bytes, ttl: Optional[float] = None) -> None:
        px = ttl_ms(ttl)
        try:
            await self._c().set(key, data, px=px)
        except _ERRORS as exc:
            raise self._fail("SET", exc) from exc

    async def set_many(self, items: Mapping[str, bytes], ttl: Optional[float] = None) -> None:
        px = ttl_ms(ttl)
        if not items:
            return
        try:
            pipe = self._pipeline(self._c())
            for key, data in items.items():
                pipe.set(key, data, px=px)
            await pipe.execute()
        except _ERRORS as exc:
            raise self._fail("SET pipeline", exc) from exc

    async def delete(self, key: str) -> bool:
        try:
            return await self._c().unlink(key) > 0  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail("UNLINK", exc) from exc

    async def set_tagged(self, items: Mapping[str, bytes], ttl: Optional[float], tag_keys: List[str]) -> None:
        check_ttl(ttl)
        if not items:
            return
        try:
            pipe = self._pipeline(self._c())
            queue_tagged(pipe, items, ttl, tag_keys, time.time())
            await pipe.execute()
        except _ERRORS as exc:
            raise self._fail("tagged SET pipeline", exc) from exc

    async def pop_tagged(self, tag_key: str, count: int) -> List[str]:
        try:
            return popped_keys(await self._c().zpopmin(tag_key, count))
        except _ERRORS as exc:
            raise self._fail("ZPOPMIN", exc) from exc

    async def keys(self, prefix: str, limit: int) -> List[str]:
        pattern = prefix_pattern(prefix)
        sample: List[Any] = []
        try:
            client = self._c()
            async for key in client.scan_iter(match=pattern, count=_BATCH, **self._scan_options):
                sample.append(key)
                if len(sample) >= limit * RECENCY_SAMPLE:
                    break
            pipe = self._pipeline(client)
            for key in sample:
                pipe.object("idletime", key)
            idle = await pipe.execute(raise_on_error=False) if sample else []
        except _ERRORS as exc:
            raise self._fail("SCAN", exc) from exc
        return most_recent(sample, idle, limit)

    async def delete_many(self, keys: List[str]) -> int:
        removed = 0
        try:
            client = self._c()
            for i in range(0, len(keys), _BATCH):
                removed += await client.unlink(*keys[i:i + _BATCH])
        except _ERRORS as exc:
            raise self._fail("UNLINK", exc) from exc
        return removed

    async def clear_namespace(self, prefix: str) -> int:
        pattern = prefix_pattern(prefix)
        removed = 0
        batch: List[bytes] = []
        try:
            client = self._c()
            async for key in client.scan_iter(match=pattern, count=_BATCH, **self._scan_options):
                batch.append(key)
                if len(batch) >= _BATCH:
                    removed += await client.unlink(*batch)
                    batch = []
            if batch:
                removed += await client.unlink(*batch)
        except _ERRORS as exc:
            raise self._fail(f"clear_namespace({prefix!r})", exc) from exc
        return removed

    async def ping(self) -> bool:
        try:
            return bool(await self._c().ping(**self._ping_options))
        except _ERRORS as exc:
            raise self._fail("PING", exc) from exc

    async def add(self, key: str, data: bytes, ttl: Optional[float] = None) -> bool:
        try:
            return bool(await self._c().set(key, data, nx=True, px=ttl_ms(ttl)))
        except _ERRORS as exc:
            raise self._fail("SET NX", exc) from exc

    async def lock(self, key: str, token: bytes, ttl: float) -> bool:
        return await self.add(key, token, check_ttl(ttl))

    async def unlock(self, key: str, token: bytes) -> bool:
        try:
            return bool(await self._c().eval(UNLOCK_SCRIPT, 1, key, token))
        except _ERRORS as exc:
            raise self._fail("unlock", exc) from exc

    async def swap(self, key: str, old: bytes, new: bytes) -> bool:
        try:
            return bool(await self._c().register_script(SWAP_SCRIPT)(keys=[key], args=[old, new]))
        except _ERRORS as exc:
            raise self._fail("swap", exc) from exc

    async def incr(self, key: str, delta: int) -> Any:
        try:
            return incr_answer(await self._c().register_script(INCR_SCRIPT)(keys=[key], args=[delta]))
        except _ERRORS as exc:
            raise self._fail("incr", exc) from exc

    async def publish(self, channel: str, message: bytes) -> int:
        try:
            return await self._c().publish(channel, message)  # type: ignore[no-any-return]
        except _ERRORS as exc:
            raise self._fail(f"PUBLISH {channel!r}", exc) from exc

    async def subscribe(self, channel: str) -> AsyncSubscription:
        try:
            client = self._c()
        except _ERRORS as exc:
            raise self._fail(f"SUBSCRIBE {channel!r}", exc) from exc
        return await AsyncSubscription.open(client, channel, self._where, self._socket_timeout)


class AsyncRedisL2(_AsyncRedisCommands):
    """L2 on one Redis server through redis.asyncio (pooled connections, socket timeouts, as RedisL2)."""

    kind = "redis"

    def __init__(self, url: str, *, socket_timeout: float = 1.0, socket_connect_timeout: float = 1.0,
                 max_connections: int = 64) -> None:
        self._set_url(url, socket_timeout)
        retry = AsyncRetry(NoBackoff(), 1, supported_errors=(redis.ConnectionError,))
        pool = aioredis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=socket_timeout, socket_timeout=socket_timeout,
            socket_connect_timeout=socket_connect_timeout, retry=retry)
        self._client: Any = aioredis.Redis.from_pool(pool)
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncRedisL2({self._where!r})"

    @property
    def client(self) -> Any:
        return self._client

    def _c(self) -> Any:
        if self._closed:
            raise L2Error(f"redis L2 {self._where} is closed")
        return self._client

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()


class AsyncRedisClusterL2(_AsyncRedisCommands):
    """L2 on a Redis Cluster through redis.asyncio's cluster client (`redis+cluster://host:port`)."""

    kind = "redis-cluster"
    _what = "redis cluster"
    _scan_options = {"target_nodes": AsyncRedisCluster.PRIMARIES}
    _ping_options = {"target_nodes": AsyncRedisCluster.PRIMARIES}

    def __init__(self, url: str, *, socket_timeout: float = 1.0, socket_connect_timeout: float = 1.0,
                 max_connections: int = 64) -> None:
        self._set_url(url, socket_timeout)
        self._client: Any = AsyncRedisCluster.from_url(
            cluster_url_to_redis(url), socket_timeout=socket_timeout, socket_connect_timeout=socket_connect_timeout,
            max_connections=max_connections,
            retry=AsyncRetry(ExponentialWithJitterBackoff(base=0.01, cap=0.1), 2))
        self._closed = False

    def __repr__(self) -> str:
        return f"AsyncRedisClusterL2({self._where!r})"

    def _c(self) -> Any:
        if self._closed:
            raise L2Error(f"redis cluster L2 {self._where} is closed")
        return self._client

    async def _mget(self, client: Any, keys: List[str]) -> List[Optional[bytes]]:
        return await client.mget_nonatomic(keys)  # type: ignore[no-any-return]

    def _pipeline(self, client: Any) -> Any:
        return client.pipeline()

    async def subscribe(self, channel: str) -> AsyncSubscription:
        # Cluster pub/sub is broadcast to every node: subscribing on any one node sees every PUBLISH.
        try:
            node = self._c().get_random_node()
            client = aioredis.Redis(host=node.host, port=node.port, socket_timeout=self._socket_timeout)
        except _ERRORS as exc:
            raise self._fail(f"SUBSCRIBE {channel!r}", exc) from exc
        return await AsyncSubscription.open(client, channel, self._where, self._socket_timeout)

    async def aclose(self) -> None:
        if not self._closed:
            self._closed = True
            await self._client.aclose()


# The optional parts of the L2 protocol (tiercache.l2.base.Writes) a ThreadedL2 runs when its store has them.
OPTIONAL = ("add", "lock", "unlock", "incr", "swap", "set_tagged", "pop_tagged")


class ThreadedL2:
    """A sync L2 (the embedded SQLite store) behind the async protocol: each call runs on a worker thread
    of a small pool of this backend's own, so the event loop never blocks on disk."""

    def __init__(self, l2: Any, workers: int = 4) -> None:
        self.sync = l2
        self.kind = getattr(l2, "kind", type(l2).__name__)
        self._pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tiercache-l2")
        self._closed = False
        for name in OPTIONAL:  # (only what the store has: the manager asks hasattr to know what it can do)
            method = getattr(l2, name, None)
            if method is not None:
                setattr(self, name, functools.partial(self._run, method))

    def __repr__(self) -> str:
        return f"ThreadedL2({self.sync!r})"

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._closed:
            raise L2Error(f"{self.sync!r} is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args))

    async def get(self, key: str) -> Optional[bytes]:
        return await self._run(self.sync.get, key)  # type: ignore[no-any-return]

    async def get_many(self, keys: List[str]) -> List[Optional[bytes]]:
        return await self._run(self.sync.get_many, keys)  # type: ignore[no-any-return]

    async def set(self, key: str, data: bytes, ttl: Optional[float] = None) -> None:
        await self._run(self.sync.set, key, data, ttl)

    async def set_many(self, items: Mapping[str, bytes], ttl: Optional[float] = None) -> None:
        await self._run(self.sync.set_many, dict(items), ttl)

    async def delete(self, key: str) -> bool:
        return await self._run(self.sync.delete, key)  # type: ignore[no-any-return]


    async def keys(self, prefix: str, limit: int) -> List[str]:
        return await self._run(self.sync.keys, prefix, limit)  # type: ignore[no-any-return]


    async def delete_many(self, keys: List[str]) -> int:
        return await self._run(self.sync.delete_many, list(keys))  # type: ignore[no-any-return]

    async def clear_namespace(self, prefix: str) -> int:
        return await self._run(self.sync.clear_namespace, prefix)  # type: ignore[no-any-return]

    async def ping(self) -> bool:
        return await self._run(self.sync.ping)  # type: ignore[no-any-return]

    async def aclose(self) -> None:
        """Stop the workers, once the calls they are running are done (a call of a cancelled task goes on
        running: its connection must not be closed under it), then close the store; later calls raise
        L2Error. Idempotent."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(None, functools.partial(self._pool.shutdown, wait=True))
        self.sync.close()


class ThreadedSubscription:
    """A sync subscription (SQLite's) behind the async one: each look for a message runs on a worker
    thread without waiting there (the waiting is an asyncio sleep), so a worker is never held."""

    def __init__(self, sub: Any, run: Callable[..., Any]) -> None:
        self._sub, self._run = sub, run

    async def get_message(self, timeout: float = 0.0) -> Optional[bytes]:
        from .sqlite import POLL_INTERVAL

        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            message = await self._run(self._sub.get_message, 0.0)
            left = deadline - loop.time()
            if message is not None or left <= 0:
                return message  # type: ignore[no-any-return]
            await asyncio.sleep(min(POLL_INTERVAL, left))

    async def aclose(self) -> None:
        try:
            await self._run(self._sub.close)
        except L2Error:  # (the store's workers have stopped: no poll can be running)
            self._sub.close()


class ThreadedPubSubL2(ThreadedL2):
    """ThreadedL2 over a store that also carries invalidation messages (SQLite's publish/subscribe)."""

    async def publish(self, channel: str, message: bytes) -> int:
        return await self._run(self.sync.publish, channel, message)  # type: ignore[no-any-return]

    async def subscribe(self, channel: str) -> ThreadedSubscription:
        return ThreadedSubscription(await self._run(self.sync.subscribe, channel), self._run)


def threaded(l2: Any) -> ThreadedL2:
    """A sync L2 behind the async protocol, with publish/subscribe when it has them."""
    return ThreadedPubSubL2(l2) if hasattr(l2, "publish") and hasattr(l2, "subscribe") else ThreadedL2(l2)


def from_url(url: Optional[str] = None) -> Any:
    """The async L2 for `url` (None: $TIERCACHE_L2_URL, else the embedded SQLite store, on worker threads)."""
    import os

    from . import ENV_URL
    from . import from_url as sync_from_url

    if url is None:
        url = os.environ.get(ENV_URL) or None
    if url is None:
        return threaded(sync_from_url(None))
    if not isinstance(url, str):
        raise TypeError(f"url must be a str or None, got {type(url).__name__} {url!r}")
    scheme = url.partition("://")[0].lower()
    if scheme in ("redis+cluster", "rediss+cluster"):
        return AsyncRedisClusterL2(url)
    if scheme in ("redis", "rediss", "unix"):
        return AsyncRedisL2(url)
    return threaded(sync_from_url(url))  # sqlite://, and the errors for anything else

"""The shared (L2) tier: one protocol (`L2`), three backends, and `from_url` to pick one.

| URL                                   | backend                                   |
| ------------------------------------- | ----------------------------------------- |
| `redis://host:port/db`, `rediss://…`, `unix:///path/redis.sock` | RedisL2 (redis-py)  |
| `redis+cluster://host:port`, `rediss+cluster://…` | RedisClusterL2 (redis-py's cluster client) |
| `sqlite:///abs/path/to/file.db`       | SQLiteL2 (stdlib sqlite3, WAL)            |
| None                                  | $TIERCACHE_L2_URL, else SQLiteL2 in the user's cache directory |

redis-py is imported only when a Redis backend is asked for, so the SQLite tier works without it.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from .base import L2
from .sqlite import SQLiteL2

if TYPE_CHECKING:  # pragma: no cover
    from .redis import RedisClusterL2, RedisL2

__all__ = ["L2", "SQLiteL2", "RedisL2", "RedisClusterL2", "from_url", "ENV_URL"]

ENV_URL = "TIERCACHE_L2_URL"

_REDIS_SCHEMES = ("redis", "rediss", "unix")
_CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")


def __getattr__(name: str) -> Any:
    # Lazy: importing tiercache.l2 must not import redis.
    if name in ("RedisL2", "RedisClusterL2"):
        from . import redis as _redis

        return getattr(_redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _sqlite_from_url(url: str) -> SQLiteL2:
    parts = urlsplit(url)
    if parts.netloc:
        raise ValueError(
            f"sqlite URL {url!r} has a host part {parts.netloc!r}: write sqlite:///absolute/path/to/file.db"
        )
    path = unquote(parts.path)
    if path in ("", "/"):
        raise ValueError(f"sqlite URL {url!r} names no file: write sqlite:///absolute/path/to/file.db")
    if path == "/:memory:" or path.startswith("/file:"):
        raise ValueError(
            f"sqlite URL {url!r}: an in-memory database is not allowed as L2 (each connection would see its "
            "own empty database); name a file"
        )
    timeout = 5.0
    for name, values in parse_qs(parts.query, keep_blank_values=True).items():
        if name != "timeout":
            raise ValueError(f"sqlite URL {url!r}: unknown option {name!r} (known: timeout)")
        try:
            timeout = float(values[-1])
        except ValueError:
            raise ValueError(f"sqlite URL {url!r}: timeout must be a number of seconds, got {values[-1]!r}") from None
    return SQLiteL2(path, timeout=timeout)


def from_url(url: Optional[str] = None) -> L2:
    """The L2 backend a URL names; None means $TIERCACHE_L2_URL, else SQLite in the user's cache directory.

    Raises ValueError for an unknown scheme or a malformed URL. Nothing connects here: a backend that cannot
    be reached fails (with L2Error) on its first call.
    """
    if url is None:
        url = os.environ.get(ENV_URL) or None
        if url is None:
            return SQLiteL2(SQLiteL2.default_path())
    if not isinstance(url, str):
        raise TypeError(f"url must be a str or None, got {type(url).__name__} {url!r}")
    scheme, sep, _ = url.partition("://")
    scheme = scheme.lower()
    if not sep:
        raise ValueError(f"L2 url must look like scheme://…, got {url!r}")
    if scheme == "sqlite":
        return _sqlite_from_url(url)
    if scheme in _REDIS_SCHEMES:
        from .redis import RedisL2

        return RedisL2(url)
    if scheme in _CLUSTER_SCHEMES:
        from .redis import RedisClusterL2

        return RedisClusterL2(url)
    known = ", ".join(f"{s}://" for s in ("sqlite",) + _REDIS_SCHEMES + _CLUSTER_SCHEMES)
    raise ValueError(f"L2 url {url!r} has an unknown scheme {scheme!r} (known: {known})")

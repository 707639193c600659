"""The embedded L2: one SQLite file shared by every thread and process of one host.

Layout: a table `entries(key TEXT PRIMARY KEY, value BLOB NOT NULL, expires REAL)`, `expires` being
wall-clock seconds (`clock() + ttl`) or NULL. The database runs in WAL mode with `synchronous=NORMAL`: readers
never block the writer, and a crash can lose the last transactions but never corrupt the file — the right
trade for a cache. Each thread of each process gets its own connection (SQLite connections are not meant to
be shared across threads or carried across fork); the file's locks and the busy timeout arbitrate between them.
Beside it: `tags(tag, key, expires)`, the keys written under each tag (a row goes with its entry's, by a
trigger), and `messages`, the invalidation log.

Reads never write: expired rows are invisible to them, and are purged in bulk every `purge_every` writes and
on `clear_namespace`, through a partial index on `expires`. A purge is best effort (another process may hold
the write lock): a failed one is logged once and tried again at the next occasion, and never fails the write
or the clear that triggered it.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Union

from .._validate import check_ttl
from ..errors import L2Error
from ..wire import added

__all__ = ["SQLiteL2", "SQLiteSubscription"]

log = logging.getLogger("tiercache")

# SQLite's default SQLITE_MAX_VARIABLE_NUMBER was 999 before 3.32; stay well under it.
_MAX_PARAMS = 500

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    key TEXT PRIMARY KEY,
    value BLOB NOT NULL,
    expires REAL
);
CREATE INDEX IF NOT EXISTS entries_expires ON entries(expires) WHERE expires IS NOT NULL;
CREATE TABLE IF NOT EXISTS tags (
    tag TEXT NOT NULL,
    key TEXT NOT NULL,
    expires REAL,
    PRIMARY KEY (tag, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tags_expires ON tags(expires) WHERE expires IS NOT NULL;
CREATE INDEX IF NOT EXISTS tags_key ON tags(key);
CREATE TRIGGER IF NOT EXISTS entries_untag AFTER DELETE ON entries BEGIN
    DELETE FROM tags WHERE key = old.key;
END;
CREATE TABLE IF NOT EXISTS messages (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    channel TEXT NOT NULL,
    message BLOB NOT NULL,
    created REAL NOT NULL
);
"""

# publish(): a message is kept this many seconds for the subscribers to read (a subscriber that fell further
# behind has lost messages, and says so); every PRUNE_EVERY messages the oldest are pruned, always a prefix
# in message order, so a reader's gap check sees any loss.
KEEP_MESSAGES = 60.0
PRUNE_EVERY = 256
# A subscription looks for new messages this often (PRAGMA data_version: does not touch the tables).
POLL_INTERVAL = 0.002

# Bumped in a forked child: connections inherited from the parent must not be used (or closed) there.
_fork_generation = 0


# Held by this module's own background work (a subscription's poll, a publish) and by a fork while it
# happens: a child never starts with such a call half done inside SQLite, whose locks it would inherit
# held. (What the application's own threads do in SQLite at a fork is, as ever, theirs to order.)
_background = threading.Lock()


def _after_fork_in_child() -> None:
    global _fork_generation, _background
    _fork_generation += 1
    _background = threading.Lock()


def _before_fork() -> None:
    _background.acquire()


def _after_fork_in_parent() -> None:
    _background.release()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(before=_before_fork, after_in_parent=_after_fork_in_parent,
                        after_in_child=_after_fork_in_child)


def _prefix_successor(prefix: str) -> Optional[str]:
    """The smallest string greater than every string that starts with `prefix` (None: no such bound).

    SQLite compares TEXT by its UTF-8 bytes, and UTF-8 byte order is code point order, so bumping the last
    code point gives an exact upper bound for the range [prefix, successor). (A fixed `prefix + '\\uffff'`
    would miss keys whose next character lies above the BMP.)
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            nxt = last + 1
            if 0xD800 <= nxt <= 0xDFFF:  # surrogates cannot be encoded; no key contains one
                nxt = 0xE000
            chars.append(chr(nxt))
            return "".join(chars)
    return None


@contextlib.contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    """One write transaction. IMMEDIATE takes the write lock up front, so the busy timeout applies instead of
    a deadlock error; anything raised inside rolls it back."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _prefix_range(prefix: str) -> "tuple[str, tuple]":
    """(an SQL condition, its parameters) selecting the keys that start with `prefix`: a primary-key range,
    no table scan. TypeError / ValueError for a prefix that is not a non-empty str (an empty one would
    select every key)."""
    if not isinstance(prefix, str):
        raise TypeError(f"prefix must be a str, got {type(prefix).__name__} {prefix!r}")
    if not prefix:
        raise ValueError("prefix must be a non-empty str: '' would select every key")
    upper = _prefix_successor(prefix)
    return ("key >= ?", (prefix,)) if upper is None else ("key >= ? AND key < ?", (prefix, upper))


class _Connection:
    """One thread's connection; dropped with the thread (threading.local), closed by SQLiteL2.close()."""

    __slots__ = ("conn", "generation", "__weakref__")

    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn
        self.generation = _fork_generation


class SQLiteL2:
    """L2 on a local SQLite file; safe for many threads and several processes of one host.

    `path` is the database file (parent directories are created); `timeout` is how long, in seconds, a call
    waits for another connection's write lock before failing with L2Error. `clock` gives wall-clock seconds
    (inject a fake one in tests). `purge_every` is how many written rows trigger a purge of expired rows.
    Nothing touches the file until the first call, so a bad path surfaces as L2Error from that call (or
    from `ping()`), not from the constructor.
    """

    kind = "sqlite"

    def __init__(
        self,
        path: Union[str, "os.PathLike[str]"],
        *,
        timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
        purge_every: int = 1000,
    ) -> None:
        if not isinstance(path, (str, os.PathLike)):
            raise TypeError(f"path must be a str or os.PathLike, got {type(path).__name__} {path!r}")
        path_str = os.fspath(path)
        if not path_str or path_str == ":memory:" or path_str.startswith("file:"):
            # Each connection would get its own private database: threads would not share entries.
            raise ValueError(
                f"path must name a database file, not {path_str!r}: every thread opens its own connection"
            )
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0:
            raise ValueError(f"timeout must be a number of seconds >= 0, got {timeout!r}")
        if isinstance(purge_every, bool) or not isinstance(purge_every, int) or purge_every <= 0:
            raise ValueError(f"purge_every must be a positive int, got {purge_every!r}")
        if not callable(clock):
            raise TypeError(f"clock must be callable, got {type(clock).__name__} {clock!r}")
        self.path = Path(path_str)
        self.timeout = float(timeout)
        self.purge_every = purge_every
        self._clock = clock
        self._local = threading.local()
        self._lock = threading.Lock()  # guards _connections, _closed and _writes
        self._prepare_lock = threading.Lock()  # one connection of this process at a time sets WAL up
        self._connections: "weakref.WeakSet[_Connection]" = weakref.WeakSet()
        self._inherited: List[_Connection] = []  # a parent's connections, kept open and unused after fork
        self._closed = False
        self._writes = 0
        self._purge_failing = False  # the last purge failed (logged once until one succeeds)

    @staticmethod
    def default_path() -> Path:
        """$XDG_CACHE_HOME/tiercache/l2.sqlite3, else ~/.cache/tiercache/l2.sqlite3."""
        base = os.environ.get("XDG_CACHE_HOME")
        root = Path(base) if base and os.path.isabs(base) else Path.home() / ".cache"
        return root / "tiercache" / "l2.sqlite3"

    def __repr__(self) -> str:
        return f"SQLiteL2({str(self.path)!r})"

    # -- connections ---------------------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        holder: Optional[_Connection] = getattr(self._local, "holder", None)
        if holder is not None and holder.generation == _fork_generation:
            return holder.conn
        return self._open(holder)

    def _open(self, stale: Optional[_Connection]) -> sqlite3.Connection:
        with self._lock:
            if stale is not None:
                self._inherited.append(stale)
        holder = self._connect()
        self._local.holder = holder
        return holder.conn

    def _connect(self, register: bool = True) -> _Connection:
        """A new connection, prepared (WAL, the schema), and registered for close() unless `register` is
        False (a subscription's, which its own close() closes, never while it polls)."""
        with self._lock:
            if self._closed:
                raise L2Error(f"sqlite L2 {self.path} is closed")
        try:
            # Private by default: a new directory 0700, a new database 0600 (SQLite gives its -wal and -shm
            # files the database's permissions).
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            try:  # (an existing file is left as it is, read-only included)
                os.close(os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
            except FileExistsError:
                pass
            conn = sqlite3.connect(
                str(self.path), timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise L2Error(f"sqlite L2: cannot open {self.path}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA synchronous = NORMAL")
            # Switching to WAL and creating the table take the write lock, and SQLite may answer "locked" at
            # once (no busy wait) when connections race to do so: one thread of this process at a time, and
            # a bounded retry for other processes.
            with self._prepare_lock:
                deadline = time.monotonic() + self.timeout
                while True:
                    try:
                        if str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower() != "wal":
                            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                            if str(mode).lower() != "wal":
                                raise sqlite3.OperationalError(f"journal_mode is {mode!r}, WAL could not be enabled")
                        conn.executescript(_SCHEMA)
                        break
                    except sqlite3.OperationalError as exc:
                        if "locked" not in str(exc) and "busy" not in str(exc) or time.monotonic() > deadline:
                            raise
                        time.sleep(0.01)
        except sqlite3.Error as exc:
            conn.close()
            raise L2Error(f"sqlite L2: cannot prepare {self.path}: {exc}") from exc
        holder = _Connection(conn)
        with self._lock:
            if self._closed:
                conn.close()
                raise L2Error(f"sqlite L2 {self.path} is closed")
            if register:
                self._connections.add(holder)
        return holder

    def _fail(self, op: str, exc: BaseException) -> L2Error:
        return L2Error(f"sqlite L2 {op} failed on {self.path}: {exc}")

    def _count_writes(self, n: int) -> None:
        with self._lock:
            before = self._writes
            self._writes = before + n
            due = before // self.purge_every != self._writes // self.purge_every
        if due:
            self._purge_quietly()

    def _purge_quietly(self) -> None:
        """purge_expired(), best effort: a failure is logged (once until a purge succeeds again)."""
        try:
            self.purge_expired()
        except L2Error as exc:
            if not self._purge_failing:
                log.warning("tiercache: could not purge expired rows from %s (will retry): %s", self.path, exc)
            self._purge_failing = True
        else:
            self._purge_failing = False

    # -- the L2 protocol -----------------------------------------------------------------------------------

    def get(self, key: str) -> Optional[bytes]:
        """The bytes stored under `key`, or None (also when the row has expired)."""
        try:
            conn = self._conn()
            row = conn.execute("SELECT value, expires FROM entries WHERE key = ?", (key,)).fetchone()
            if row is None:
                return None
            value, expires = row
            if expires is not None and expires <= self._clock():
                return None  # (left for the next purge: a read never takes the write lock)
            return value  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise self._fail("get", exc) from exc

    def get_many(self, keys: List[str]) -> List[Optional[bytes]]:
        """Bytes for each key in order, None where absent or expired; one SELECT per 500 keys."""
        if not keys:
            return []
        found: Dict[str, bytes] = {}
        try:
            conn = self._conn()
            now = self._clock()
            for start in range(0, len(keys), _MAX_PARAMS):
                chunk = keys[start:start + _MAX_PARAMS]
                sql = f"SELECT key, value, expires FROM entries WHERE key IN ({','.join('?' * len(chunk))})"
                for key, value, expires in conn.execute(sql, chunk):
                    if expires is None or expires > now:  # (expired rows are left for the next purge)
                        found[key] = value
        except sqlite3.Error as exc:
            raise self._fail("get_many", exc) from exc
        return [found.get(key) for key in keys]

    def set(self, key: str, data: bytes, ttl: Optional[float] = None) -> None:
        """Store `data` under `key`; `ttl` in seconds (None: kept until deleted)."""
        ttl = check_ttl(ttl)
        try:
            conn = self._conn()
            expires = None if ttl is None else self._clock() + ttl
            conn.execute(
                "INSERT OR REPLACE INTO entries (key, value, expires) VALUES (?, ?, ?)", (key, data, expires)
            )
        except sqlite3.Error as exc:
            raise self._fail("set", exc) from exc
        self._count_writes(1)

    def set_many(self, items: Mapping[str, bytes], ttl: Optional[float] = None) -> None:
        """Store every item with the same ttl, in one transaction."""
        self._write(items, ttl, (), "set_many")

    def set_tagged(self, items: Mapping[str, bytes], ttl: Optional[float], tag_keys: List[str]) -> None:
        """set_many, and every key recorded under each tag of `tag_keys` (the `tags` table), in one
        transaction. A tag's rows go with their entry's (a trigger; the purge of expired rows)."""
        self._write(items, ttl, tag_keys, "set_tagged")

    def _write(self, items: Mapping[str, bytes], ttl: Optional[float], tag_keys: "Iterable[str]", op: str) -> None:
        ttl = check_ttl(ttl)
        if not items:
            return
        try:
            conn = self._conn()
            expires = None if ttl is None else self._clock() + ttl
            rows = [(key, data, expires) for key, data in items.items()]
            with _transaction(conn):
                conn.executemany("INSERT OR REPLACE INTO entries (key, value, expires) VALUES (?, ?, ?)", rows)
                if tag_keys:
                    conn.executemany("INSERT OR REPLACE INTO tags (tag, key, expires) VALUES (?, ?, ?)",
                                     [(tag, key, expires) for tag in tag_keys for key in items])
        except sqlite3.Error as exc:
            raise self._fail(op, exc) from exc
        self._count_writes(len(rows))

    def pop_tagged(self, tag_key: str, count: int) -> List[str]:
        """Remove up to `count` keys recorded under the tag `tag_key` and return them (one transaction: two
        callers never get the same key)."""
        try:
            conn = self._conn()
            with _transaction(conn):
                keys = [key for (key,) in conn.execute("SELECT key FROM tags WHERE tag = ? LIMIT ?",
                                                       (tag_key, count))]
                for i in range(0, len(keys), _MAX_PARAMS - 1):
                    batch = keys[i:i + _MAX_PARAMS - 1]
                    conn.execute(f"DELETE FROM tags WHERE tag = ? AND key IN ({','.join('?' * len(batch))})",
                                 (tag_key, *batch))
            return keys
        except sqlite3.Error as exc:
            raise self._fail("pop_tagged", exc) from exc

    def delete(self, key: str) -> bool:
        """Remove `key`; True when it existed and had not expired."""
        try:
            conn = self._conn()
            now = self._clock()
            live = conn.execute(
                "DELETE FROM entries WHERE key = ? AND (expires IS NULL OR expires > ?)", (key, now)
            ).rowcount > 0
            if not live:
                conn.execute("DELETE FROM entries WHERE key = ?", (key,))  # an expired leftover, if any
            return live
        except sqlite3.Error as exc:
            raise self._fail("delete", exc) from exc

    def keys(self, prefix: str, limit: int) -> List[str]:
        """Up to `limit` live keys starting with `prefix`, the most recently written first (a write replaces
        the row, which takes a new rowid)."""
        where, params = _prefix_range(prefix)
        try:
            rows = self._conn().execute(f"SELECT key FROM entries WHERE {where} AND (expires IS NULL OR expires > ?) "
                                        "ORDER BY rowid DESC LIMIT ?", (*params, self._clock(), limit))
            return [key for (key,) in rows]
        except sqlite3.Error as exc:
            raise self._fail("keys", exc) from exc

    def delete_many(self, keys: List[str]) -> int:
        """Remove every key in `keys` (up to 499 per statement) in one transaction; returns how many were live."""
        removed = 0
        try:
            conn = self._conn()
            now = self._clock()
            with _transaction(conn):
                for i in range(0, len(keys), _MAX_PARAMS - 1):
                    batch = keys[i:i + _MAX_PARAMS - 1]
                    marks = ",".join("?" * len(batch))
                    removed += conn.execute(
                        f"DELETE FROM entries WHERE key IN ({marks}) AND (expires IS NULL OR expires > ?)",
                        (*batch, now)).rowcount
                    conn.execute(f"DELETE FROM entries WHERE key IN ({marks})", batch)  # expired leftovers
        except sqlite3.Error as exc:
            raise self._fail("delete_many", exc) from exc
        return removed

    def clear_namespace(self, prefix: str) -> int:
        """Remove every key starting with `prefix` (a primary-key range, no table scan); returns how many."""
        where, params = _prefix_range(prefix)
        self._purge_quietly()
        try:
            cur = self._conn().execute(f"DELETE FROM entries WHERE {where}", params)
            return cur.rowcount  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise self._fail("clear_namespace", exc) from exc

    def purge_expired(self) -> int:
        """Delete every expired row now; returns how many."""
        try:
            conn = self._conn()
            now = self._clock()
            with _transaction(conn):
                conn.execute("DELETE FROM tags WHERE expires IS NOT NULL AND expires <= ?", (now,))
                cur = conn.execute("DELETE FROM entries WHERE expires IS NOT NULL AND expires <= ?", (now,))
            return cur.rowcount  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            raise self._fail("purge_expired", exc) from exc

    def add(self, key: str, data: bytes, ttl: Optional[float] = None) -> bool:
        """Store `data` unless `key` holds a live value (one statement: atomic across processes): whether
        it was stored."""
        ttl = check_ttl(ttl)
        try:
            now = self._clock()
            cur = self._conn().execute(
                "INSERT INTO entries (key, value, expires) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET "
                "value = excluded.value, expires = excluded.expires "
                "WHERE entries.expires IS NOT NULL AND entries.expires <= ?",
                (key, bytes(data), None if ttl is None else now + ttl, now))
        except sqlite3.Error as exc:
            raise self._fail("add", exc) from exc
        if cur.rowcount > 0:
            self._count_writes(1)
            return True
        return False

    def incr(self, key: str, delta: int) -> Any:
        """Add `delta` to the plain msgpack int under `key` in one transaction, keeping its expiry
        (tiercache.wire.added): the new int; None when `key` holds no live value; NotImplemented for any
        other value."""
        try:
            conn = self._conn()
            with _transaction(conn):
                row = conn.execute("SELECT value, expires FROM entries WHERE key = ?", (key,)).fetchone()
                if row is None or row[1] is not None and row[1] <= self._clock():
                    return None
                done = added(bytes(row[0]), delta)
                if done is None:
                    return NotImplemented
                conn.execute("UPDATE entries SET value = ? WHERE key = ?", (done[0], key))
                return done[1]
        except sqlite3.Error as exc:
            raise self._fail("incr", exc) from exc

    def swap(self, key: str, old: bytes, new: bytes) -> bool:
        """Store `new` under `key` if it still holds `old` (live), keeping its expiry: whether it did."""
        try:
            return self._conn().execute(  # type: ignore[no-any-return]
                "UPDATE entries SET value = ? WHERE key = ? AND value = ? AND (expires IS NULL OR expires > ?)",
                (bytes(new), key, bytes(old), self._clock())).rowcount > 0
        except sqlite3.Error as exc:
            raise self._fail("swap", exc) from exc

    def lock(self, key: str, token: bytes, ttl: float) -> bool:
        """Take the lock `key` (a row of `entries` expiring in `ttl` seconds) for `token` unless another
        holds it: whether it was taken."""
        return self.add(key, token, check_ttl(ttl))

    def unlock(self, key: str, token: bytes) -> bool:
        """Release the lock `key` if `token` still holds it."""
        try:
            return self._conn().execute("DELETE FROM entries WHERE key = ? AND value = ?",  # type: ignore[no-any-return]
                                        (key, bytes(token))).rowcount > 0
        except sqlite3.Error as exc:
            raise self._fail("unlock", exc) from exc

    def publish(self, channel: str, message: bytes) -> int:
        """Append `message` to `channel` for every subscription of every process on this file (see
        subscribe); returns 0 (how many will read it is not known)."""
        try:
            with _background:
                conn = self._conn()
                now = self._clock()
                seq = conn.execute("INSERT INTO messages (channel, message, created) VALUES (?, ?, ?)",
                                   (channel, bytes(message), now)).lastrowid
                if seq and seq % PRUNE_EVERY == 0:  # (a prefix in message order: a reader's gap check sees any loss)
                    conn.execute("DELETE FROM messages WHERE seq <= (SELECT max(seq) FROM messages WHERE created < ?)",
                                 (now - KEEP_MESSAGES,))
        except sqlite3.Error as exc:
            raise self._fail("publish", exc) from exc
        return 0

    def subscribe(self, channel: str) -> "SQLiteSubscription":
        """The messages published on `channel` from now on, by any process (see SQLiteSubscription)."""
        with _background:
            return SQLiteSubscription(self._connect(register=False), channel, self.path)

    def ping(self) -> bool:
        """True when the database answers; raises L2Error when it cannot be opened or read."""
        try:
            self._conn().execute("SELECT 1 FROM entries LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise self._fail("ping", exc) from exc
        return True

    def close(self) -> None:
        """Close every connection this process opened; later calls raise L2Error. Idempotent."""
        with self._lock:
            self._closed = True
            holders = list(self._connections)
            self._connections = weakref.WeakSet()
        for holder in holders:
            if holder.generation == _fork_generation:
                try:
                    holder.conn.close()
                except sqlite3.Error:  # pragma: no cover - close() of a healthy connection does not fail
                    pass
        self._local = threading.local()

    def __enter__(self) -> "SQLiteL2":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class SQLiteSubscription:
    """Messages published on one channel of an SQLite file, read on a connection of its own.

    `get_message(timeout)` polls `PRAGMA data_version` (which changes when another connection commits)
    every POLL_INTERVAL and reads the new rows of the `messages` table in order. A subscription that fell
    more than KEEP_MESSAGES behind, so that messages it never read were pruned, raises L2Error: as with a
    lost Redis connection, its listener flushes L1 and subscribes again.
    """

    def __init__(self, holder: _Connection, channel: str, path: Path) -> None:
        self._holder, self._channel, self._path = holder, channel, path
        self._lock = threading.Lock()  # a poll and close() never overlap (the async manager's run on threads)
        self._closed = False
        self._pending: "collections.deque[bytes]" = collections.deque()
        self._version: Optional[int] = None
        try:
            self._last = self._high_water()
        except sqlite3.Error as exc:
            self.close()
            raise L2Error(f"sqlite L2 subscribe failed on {path}: {exc}") from exc

    def _high_water(self) -> int:
        row = self._holder.conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'messages'").fetchone()
        return int(row[0]) if row else 0

    def _poll(self) -> None:
        conn = self._holder.conn
        version = conn.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version:
            return
        self._version = version
        conn.execute("BEGIN")  # (one snapshot for both reads: a message committed between them is no gap)
        try:
            rows = conn.execute("SELECT seq, channel, message FROM messages WHERE seq > ? ORDER BY seq",
                                (self._last,)).fetchall()
            behind = rows[0][0] != self._last + 1 if rows else self._high_water() > self._last
        finally:
            conn.execute("COMMIT")
        if behind:
            raise L2Error(f"sqlite L2 subscription on {self._path} fell behind: messages were pruned unread")
        for seq, channel, message in rows:
            self._last = seq
            if channel == self._channel:
                self._pending.append(message)

    def get_message(self, timeout: float = 0.0) -> Optional[bytes]:
        """The next message, waiting up to `timeout` seconds; None when none came."""
        deadline = time.monotonic() + timeout
        while True:
            if not self._pending:
                try:
                    with self._lock, _background:
                        if self._closed:
                            raise L2Error(f"sqlite L2 subscription on {self._path} is closed")
                        self._poll()
                except sqlite3.Error as exc:
                    raise L2Error(f"sqlite L2 subscription on {self._path} failed: {exc}") from exc
            if self._pending:
                return self._pending.popleft()
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            time.sleep(min(POLL_INTERVAL, left))

    def close(self) -> None:
        """Close the subscription's connection (idempotent); a later get_message raises L2Error."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            if self._holder.generation == _fork_generation:
                try:
                    self._holder.conn.close()
                except sqlite3.Error:  # pragma: no cover - close() of a healthy connection does not fail
                    pass

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self.close()

    def __enter__(self) -> "SQLiteSubscription":
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

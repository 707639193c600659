"""Cross-process invalidation: the message every write publishes, and the listener that applies them.

    message   JSON {"o": sender id, "n": namespace, "k": [encoded key parts] or null (the whole namespace)},
              with an HMAC key: b"S" + HMAC-SHA256(message key, JSON) + JSON, and unsigned messages are ignored

Anyone who can publish on the channel could otherwise drop any namespace's L1; with a key configured only
the managers that share it can. A message naming a namespace that is not a valid name, or that this process
holds no L1 for, changes nothing and creates no state.

A write does not wait for its message: it queues its keys in the manager's Outbox and returns after its own
L2 round trip. The publisher (a thread here, a task in the async manager) sends what the outbox holds, one
message per namespace, at once after a quiet spell and at most once per LINGER during a burst, so a burst of
writes shares a few PUBLISHes; close() sends what is left. The outbox is bounded: past MAX_PENDING keys a namespace's message invalidates all of it.

A listener that lost its connection flushes L1 once it is back, since invalidations sent meanwhile were
lost; it retries with exponential backoff (Backoff, shared by the thread here and the async manager's task).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

from ..config import check_namespace
from ..wire import decode_key

__all__ = ["Backoff", "InvalidationListener", "Outbox", "Publisher", "decode_message", "encode_message",
           "message_key", "LINGER"]

# The publisher sends at most one round of messages per LINGER seconds: the first write after a quiet spell
# goes out at once, those of a burst share messages. (Each message costs the server a fan-out to every
# subscriber and each subscriber a wake-up: a write-heavy process must not pay that per write.)
LINGER = 0.01
MAX_PARTS = 500  # keys per message
MAX_PENDING = 10_000  # keys queued for one namespace before its message invalidates all of it

log = logging.getLogger("tiercache")


_SIGNED = b"S"
_MAC_SIZE = 32


def message_key(hmac_key: Optional[bytes]) -> Optional[bytes]:
    """The key that signs invalidation messages, derived from the manager's HMAC key (None: unsigned)."""
    if hmac_key is None:
        return None
    return hmac.new(hmac_key, b"tiercache invalidation messages", hashlib.sha256).digest()


_last_unsigned_warning = -1e9


def _warn_unsigned() -> None:
    """Log a rejected signature at most once a minute (a deploy mixing keys would flood the log)."""
    global _last_unsigned_warning
    now = time.monotonic()
    if now - _last_unsigned_warning >= 60.0:
        _last_unsigned_warning = now
        log.warning("tiercache: ignoring invalidation messages that are not signed with this HMAC key "
                    "(do all processes on the channel share it?)")


def encode_message(sender: str, namespace: str, key_parts: Optional[List[str]], key: Optional[bytes] = None) -> bytes:
    body = json.dumps({"o": sender, "n": namespace, "k": key_parts}, separators=(",", ":")).encode()
    if key is None:
        return body
    return _SIGNED + hmac.new(key, body, hashlib.sha256).digest() + body


def decode_message(message: bytes, own_id: str,
                   key: Optional[bytes] = None) -> Optional[Tuple[str, Optional[List[Any]]]]:
    """(namespace, user keys or None for all of it); None for this process's own message, a malformed one,
    or (with `key`) one that is not signed with it (logged)."""
    try:
        if isinstance(message, str):  # (a backend whose subscription decodes messages)
            message = message.encode("utf-8", "surrogatepass")
        if not isinstance(message, (bytes, bytearray, memoryview)):
            raise TypeError("not bytes")
        message = bytes(message)
        signed = message[:1] == _SIGNED
        body = message[1 + _MAC_SIZE:] if signed else message
        if key is not None and not (
                signed and hmac.compare_digest(message[1:1 + _MAC_SIZE], hmac.new(key, body, hashlib.sha256).digest())):
            _warn_unsigned()
            return None
        data = json.loads(body)
        if data.get("o") == own_id:
            return None
        namespace, parts = check_namespace(data["n"]), data.get("k")
        if not (parts is None or isinstance(parts, list)):
            raise TypeError("bad field types")
        return namespace, None if parts is None else [decode_key(p) for p in parts]
    except (ValueError, KeyError, TypeError, AttributeError):
        log.warning("tiercache: ignoring a malformed invalidation message")
        return None


class Backoff:
    """Reconnect delays: 50 ms, doubling up to 2 s; back to the start after a connection succeeds."""

    FIRST, LAST = 0.05, 2.0

    def __init__(self) -> None:
        self.delay = self.FIRST
        self.lost = False

    def connected(self) -> bool:
        """The connection is (back) up: True when it had been lost (L1 must be flushed)."""
        lost, self.lost, self.delay = self.lost, False, self.FIRST
        return lost

    def failed(self, exc: BaseException) -> float:
        """The connection failed: the seconds to wait before the next try (logged once per outage)."""
        if not self.lost:
            log.warning("tiercache: invalidation listener lost its connection (%s); L1 will be flushed once "
                        "it is back", exc)
        self.lost = True
        delay, self.delay = self.delay, min(self.delay * 2, self.LAST)
        return delay


class InvalidationListener:
    """A daemon thread subscribed to `channel` through `subscribe`; hands every message to `apply` and
    calls `flush` after every reconnect."""

    def __init__(self, subscribe: Callable[[str], Any], channel: str, apply: Callable[[bytes], None],
                 flush: Callable[[], None]) -> None:
        self._subscribe, self._channel, self._apply, self._flush = subscribe, channel, apply, flush
        self._stop = threading.Event()
        self.connected = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tiercache-invalidation", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5.0)

    def _run(self) -> None:
        backoff = Backoff()
        while not self._stop.is_set():
            sub = None
            try:
                sub = self._subscribe(self._channel)
                if backoff.connected():
                    self._flush()
                self.connected.set()
                while not self._stop.is_set():
                    message = sub.get_message(timeout=0.2)
                    if isinstance(message, dict):  # a raw redis-py PubSub message
                        message = message.get("data") if message.get("type") == "message" else None
                    if message is not None:
                        apply_safely(self._apply, message)
            except Exception as exc:  # connection lost: any exception from the client
                self.connected.clear()
                self._stop.wait(backoff.failed(exc))
            finally:
                if sub is not None:
                    try:
                        sub.close()
                    except Exception:  # closing a broken connection may fail too; nothing to do
                        pass


def apply_safely(apply: Callable[[bytes], None], message: bytes) -> None:
    """A bug handling one message is not a lost connection: log it and go on."""
    try:
        apply(message)
    except Exception:
        log.exception("tiercache: failed to apply an invalidation message")


class Outbox:
    """The invalidations waiting to be published: per namespace, its keys' encoded parts (each once, in
    order), or None for the whole namespace. Thread-safe; at most MAX_PENDING keys per namespace."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: Dict[str, Optional[Dict[str, None]]] = {}

    def add(self, namespace: str, parts: Optional[List[str]]) -> bool:
        """Queue `parts` of `namespace` (None: all of it); True when the outbox was empty, so the caller
        schedules a flush."""
        with self._lock:
            was_empty = not self._pending
            if parts is None:
                self._pending[namespace] = None
            elif namespace not in self._pending or self._pending[namespace] is not None:
                held = self._pending.setdefault(namespace, {})
                assert held is not None
                held.update(dict.fromkeys(parts))
                if len(held) > MAX_PENDING:
                    self._pending[namespace] = None
            return was_empty

    def take(self) -> List[Tuple[str, Optional[List[str]]]]:
        """Everything queued, emptied, as messages: (namespace, at most MAX_PARTS parts, or None)."""
        with self._lock:
            pending, self._pending = self._pending, {}
        messages: List[Tuple[str, Optional[List[str]]]] = []
        for namespace, parts in pending.items():
            if parts is None:
                messages.append((namespace, None))
            else:
                keys = list(parts)
                messages += [(namespace, keys[i:i + MAX_PARTS]) for i in range(0, len(keys), MAX_PARTS)]
        return messages

    def __len__(self) -> int:
        with self._lock:
            return len(self._pending)


class Publisher:
    """A daemon thread that calls `flush` after each wake-up, at most once per LINGER (and once more when
    stopped)."""

    def __init__(self, flush: Callable[[], Any]) -> None:
        self._flush = flush
        self._last = -LINGER
        self._wake = threading.Event()
        self._stop = False
        self._thread = threading.Thread(target=self._run, name="tiercache-publisher", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        """Send what is queued and end the thread."""
        self._stop = True
        self._wake.set()
        self._thread.join(10.0)
        try:
            self._flush()  # (what a write queued while the thread was finishing)
        except Exception:
            log.exception("tiercache: failed to publish invalidations")

    def _run(self) -> None:
        while not self._stop:
            self._wake.wait()
            due = self._last + LINGER - time.monotonic()
            if due > 0 and not self._stop:
                time.sleep(due)
            self._wake.clear()
            try:
                self._flush()
            except Exception:  # (strict mode raises L2 failures; nobody is waiting for this one)
                log.exception("tiercache: failed to publish invalidations")
            self._last = time.monotonic()

"""Where alert notifications go: the log, and a webhook delivered from its own thread.

    Alerts ──note──> LogSink     (logger "tiercache.alerts": firing at WARNING, critical at ERROR, resolved at INFO)
                └──> WebhookSink ──bounded queue──> sender thread ──JSON POST──> receiver
                                                         └── retry with doubling backoff on errors and 5xx

The webhook never blocks its caller: a full queue drops the new notification (counted and logged), and a
receiver that is down or slow only delays the sender thread, each attempt cut off after `timeout` seconds
however the receiver dribbles its answer. The JSON body is the notification itself (alert, state,
severity, summary, namespace, value, threshold, timestamp, ...) with a `text` field that Slack-compatible
receivers show as the message. Requests go straight to the URL's host (no proxy); a redirect is a failure
(a POST turned into a GET would lose the notification): give the final URL.
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import socket
import ssl
import threading
from typing import Any, Callable, Dict, Optional, Tuple
from urllib.parse import urlsplit

__all__ = ["LogSink", "WebhookSink", "redacted", "webhook_problem"]

log = logging.getLogger("tiercache.alerts")


def webhook_problem(url: Any) -> Optional[str]:
    """None when `url` is an http(s) URL with a host and nothing a request line cannot carry; else why not."""
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        return "must be an http:// or https:// URL"
    if any(c.isspace() or ord(c) < 32 or ord(c) == 127 for c in url):
        return "must not contain spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (raises for a port that is not a number in range)
    except ValueError as exc:
        return f"is not a valid URL ({exc})"
    if not parts.hostname:
        return "must name a host"
    return None


def redacted(url: str) -> str:
    """`url` without its path and query (where webhook tokens live), for logs and displays."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}/…" if parts.netloc else "…"


class LogSink:
    """Logs each notification's text."""

    def __call__(self, note: Dict[str, Any]) -> None:
        if note["state"] == "resolved":
            level = logging.INFO
        else:
            level = logging.ERROR if note["severity"] == "critical" else logging.WARNING
        log.log(level, "tiercache alert: %s", note["text"])


class WebhookSink:
    """POSTs each notification as JSON to `url` from a background thread.

    `timeout` s per attempt; `retries` more attempts after a failed one (a connection error, a timeout, a
    408/429 or 5xx answer), waiting `backoff`, then twice that, ... (at most a minute); other 4xx answers,
    and redirects, are not retried.
    At most `queue_size` notifications wait; beyond that new ones are dropped. `stats()` counts them.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, queue_size: int = 1000,
                 backoff: float = 0.5, post: Optional[Callable[[str, bytes, float], int]] = None) -> None:
        problem = webhook_problem(url)
        if problem is not None:
            raise ValueError(f"webhook {problem}, got {url!r}")
        self.url = url
        self.shown = redacted(url)  # (what logs show: the token in the path stays out of them)
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._post = post or _post
        self._queue: "queue.Queue[Optional[Tuple[str, bytes]]]" = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._pending = 0  # notifications queued and not yet delivered or given up
        self.delivered = self.failed = self.dropped = self.retried = 0

    def __call__(self, note: Dict[str, Any]) -> None:
        self._ensure_thread()
        # (serialized now: the body is what the notification said when it was made)
        item = (f"{note.get('alert')} {note.get('state')}", json.dumps(note, default=str).encode())
        with self._idle:
            self._pending += 1  # (counted before it is queued, so flush() cannot miss it)
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self._finished()
            self.dropped += 1
            log.warning("tiercache: alert webhook queue full (%d waiting): dropped %s %s",
                        self._queue.qsize(), note.get("alert"), note.get("state"))

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None and not self._stop.is_set():
                    self._thread = threading.Thread(target=self._run, name="tiercache-webhook", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None or self._stop.is_set():
                return
            try:
                self._send(*item)
            except Exception:  # (a bug, not the receiver: logged, and the thread goes on)
                self.failed += 1
                log.exception("tiercache: alert webhook %s: sending failed", self.shown)
            finally:
                self._finished()

    def _finished(self) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def _send(self, what: str, body: bytes) -> None:
        wait = self.backoff
        problem = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                if self._stop.wait(wait):
                    break  # (closing: no more waiting)
                wait = min(wait * 2, 60.0)
            try:
                status = self._post(self.url, body, self.timeout)
            except Exception as exc:  # refused, reset, timed out, not HTTP at all: the receiver's trouble
                problem, again = f"{type(exc).__name__}: {exc}", True
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    return
                problem = f"HTTP {status}" + (" (a redirect: give the final URL)" if 300 <= status < 400 else "")
                again = status >= 500 or status in (408, 429)
            if not again:
                break
        self.failed += 1
        log.warning("tiercache: alert webhook %s: %s not delivered (%s)", self.shown, what, problem)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued notification is delivered or given up (True), or `timeout` s pass."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._pending, timeout)

    def close(self, timeout: float = 0.0) -> None:
        """Stop the sender, after giving the queue `timeout` s to drain (default: none; what is left is
        dropped, and an attempt under way ends within its own timeout, on the sender's daemon thread)."""
        if self._thread is not None and timeout > 0:
            self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            left = self._queue.qsize()
            if left:
                log.warning("tiercache: alert webhook %s: %d notifications not sent before closing", self.shown, left)
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass

    def stats(self) -> Dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed, "dropped": self.dropped,
                "retried": self.retried, "waiting": self._queue.qsize()}


def _post(url: str, body: bytes, timeout: float) -> int:
    """One JSON POST, over within `timeout` s whatever the receiver does; the answer's status."""
    from .. import __version__  # (the package has finished importing by the time anything is sent)

    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    extra: Dict[str, Any] = {"context": ssl.create_default_context()} if parts.scheme == "https" else {}
    connection = kind(parts.hostname, parts.port, timeout=timeout, **extra)
    # Socket timeouts bound each read, not the attempt: past the deadline the socket is shut, which ends
    # whatever read or write is waiting on it.
    watchdog = threading.Timer(timeout, _shut, (connection,))
    watchdog.daemon = True
    watchdog.start()
    try:
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.request("POST", path, body=body, headers={
            "Content-Type": "application/json", "User-Agent": f"tiercache/{__version__}"})
        response = connection.getresponse()
        response.read(1 << 16)  # (the answer's start: its body is not needed)
        return int(response.status)
    finally:
        watchdog.cancel()
        connection.close()


def _shut(connection: http.client.HTTPConnection) -> None:
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

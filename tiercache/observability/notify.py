"""Where alert notifications go: the log, and a webhook delivered from its own thread.

    Alerts ──note──> LogSink     (logger "tiercache.alerts": firing at WARNING, critical at ERROR, resolved at INFO)
                └──> WebhookSink ──bounded queue──> sender thread ──JSON POST──> receiver
                                                         └── retry with doubling backoff on errors and 5xx

The webhook never blocks its caller: a full queue drops the new notification (counted and logged), and a
receiver that is down or slow only delays the sender thread. The JSON body is the notification itself
(alert, state, severity, summary, namespace, value, threshold, timestamp, ...) with a `text` field that
Slack-compatible receivers show as the message.
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import urllib.error
import urllib.request
from typing import Any, Callable, Dict, Optional

__all__ = ["LogSink", "WebhookSink"]

log = logging.getLogger("tiercache.alerts")


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
    408/429 or 5xx answer), waiting `backoff`, then twice that, ...; other 4xx answers are not retried.
    At most `queue_size` notifications wait; beyond that new ones are dropped. `stats()` counts them.
    """

    def __init__(self, url: str, *, timeout: float = 5.0, retries: int = 3, queue_size: int = 1000,
                 backoff: float = 0.5, post: Optional[Callable[[str, bytes, float], int]] = None) -> None:
        if not (isinstance(url, str) and url.startswith(("http://", "https://"))):
            raise ValueError(f"webhook must be an http:// or https:// URL, got {url!r}")
        self.url = url
        self.timeout, self.retries, self.backoff = timeout, retries, backoff
        self._post = post or _post
        self._queue: "queue.Queue[Optional[Dict[str, Any]]]" = queue.Queue(maxsize=queue_size)
        self._lock = threading.Lock()
        self._thread: Optional[threading.Thread] = None
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._busy = 0  # notifications taken from the queue and not yet finished
        self.delivered = self.failed = self.dropped = self.retried = 0

    def __call__(self, note: Dict[str, Any]) -> None:
        self._ensure_thread()
        try:
            self._queue.put_nowait(note)
        except queue.Full:
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
            note = self._queue.get()
            if note is None or self._stop.is_set():
                return
            with self._idle:
                self._busy += 1
            try:
                self._send(note)
            finally:
                with self._idle:
                    self._busy -= 1
                    self._idle.notify_all()

    def _send(self, note: Dict[str, Any]) -> None:
        body = json.dumps(note, default=str).encode()
        wait = self.backoff
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                if self._stop.wait(wait):
                    break  # (closing: no more waiting)
                wait *= 2
            try:
                status = self._post(self.url, body, self.timeout)
            except (OSError, ValueError) as exc:  # (URLError, timeouts and refused connections are OSErrors)
                problem = str(getattr(exc, "reason", exc))
                continue_ = True
            else:
                if 200 <= status < 300:
                    self.delivered += 1
                    return
                problem = f"HTTP {status}"
                continue_ = status >= 500 or status in (408, 429)
            if not continue_:
                break
        self.failed += 1
        log.warning("tiercache: alert webhook %s: %s not delivered (%s)", self.url, note.get("alert"), problem)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every queued notification is delivered or given up (True), or `timeout` s pass."""
        with self._idle:
            return self._idle.wait_for(lambda: self._queue.empty() and not self._busy, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Give the queue `timeout` s to drain, then stop the thread (what is left is dropped)."""
        if self._thread is not None:
            self.flush(timeout)
        self._stop.set()
        if self._thread is not None:
            try:
                self._queue.put_nowait(None)
            except queue.Full:
                pass
            self._thread.join(timeout=1.0)

    def stats(self) -> Dict[str, int]:
        return {"delivered": self.delivered, "failed": self.failed, "dropped": self.dropped,
                "retried": self.retried, "waiting": self._queue.qsize()}


def _post(url: str, body: bytes, timeout: float) -> int:
    """One JSON POST; the answer's status (an HTTP error status is returned, not raised)."""
    from .. import __version__  # (the package has finished importing by the time anything is sent)

    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": "application/json", "User-Agent": f"tiercache/{__version__}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (http/https checked)
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)

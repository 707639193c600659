"""The optional background expiry thread behind `HashCache(cleanup_interval=...)`.

The thread holds only a weak reference to its cache, so an unreferenced cache is still collected; it stops
on `close()`, when its cache is gone, and at interpreter exit.
"""

from __future__ import annotations

import atexit
import logging
import threading
import weakref
from typing import Any

log = logging.getLogger("tiercache")

_live: "weakref.WeakSet[Cleaner]" = weakref.WeakSet()


class Cleaner:
    """Runs `cache.expire()` every `interval` seconds on a daemon thread until stopped."""

    def __init__(self, cache: Any, interval: float) -> None:
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=_run, args=(weakref.ref(cache), interval, self._stop), name="tiercache-cleanup", daemon=True
        )
        _live.add(self)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()


def _run(ref: "weakref.ReferenceType[Any]", interval: float, stop: threading.Event) -> None:
    failures = 0
    while not stop.wait(interval):
        cache = ref()
        if cache is None:
            return
        try:
            cache.expire()
            failures = 0
        except Exception:  # a user timer may raise; log once per burst, keep running
            if failures == 0:
                log.exception("tiercache: background expire() failed")
            failures += 1
        del cache


def start(cache: Any, interval: float) -> Cleaner:
    return Cleaner(cache, interval)


@atexit.register
def _stop_all() -> None:
    for cleaner in list(_live):
        cleaner.stop(timeout=1.0)

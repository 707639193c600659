"""A circuit breaker for the L2 tier.

    closed --(failure_threshold consecutive failures)--> open --(backoff elapsed)--> half-open
      ^                                                    ^                             |
      +------------------- probe succeeds -----------------+------- probe fails ---------+

While open, calls are not attempted (the manager serves from L1 and counts the miss). After the backoff
one call is let through as a probe; its outcome closes the circuit or reopens it with a doubled backoff
(capped). Every transition is counted and logged once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Dict, Optional

log = logging.getLogger("tiercache")

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


class CircuitBreaker:
    def __init__(self, failure_threshold: int = 5, backoff: float = 0.5, max_backoff: float = 30.0,
                 timer: Optional[Callable[[], float]] = None, name: str = "l2") -> None:
        if failure_threshold < 1:
            raise ValueError(f"failure_threshold must be >= 1, got {failure_threshold!r}")
        if not backoff > 0 or not max_backoff >= backoff:
            raise ValueError(f"backoff must be > 0 and <= max_backoff, got {backoff!r}, {max_backoff!r}")
        self.failure_threshold = failure_threshold
        self.base_backoff = backoff
        self.max_backoff = max_backoff
        self.name = name
        self._timer = timer or time.monotonic
        self._lock = threading.Lock()
        self.state = CLOSED
        self._failures = 0
        self._backoff = backoff
        self._retry_at = 0.0
        self._probing = False
        self.healthy = True  # closed with no failure since the last success: success() has nothing to do
        self.transitions: Dict[str, int] = {"opened": 0, "half_opened": 0, "closed": 0}

    def allow(self) -> bool:
        """Whether to attempt an L2 call now (in half-open state, only the one probe)."""
        if self.state == CLOSED:
            return True
        with self._lock:
            if self.state == OPEN and self._timer() >= self._retry_at:
                self.state = HALF_OPEN
                self.transitions["half_opened"] += 1
                log.info("tiercache: %s circuit half-open, probing", self.name)
            if self.state == HALF_OPEN and not self._probing:
                self._probing = True
                return True
            return False

    def success(self) -> None:
        if self.healthy:
            return
        with self._lock:
            self._failures = 0
            self.healthy = True
            self._probing = False
            if self.state != CLOSED:
                self.state = CLOSED
                self._backoff = self.base_backoff
                self.transitions["closed"] += 1
                log.warning("tiercache: %s circuit closed: the server answers again", self.name)

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            self.healthy = False
            if self.state == HALF_OPEN:
                self._probing = False
                self._backoff = min(self._backoff * 2, self.max_backoff)
                self._open()
            elif self.state == CLOSED and self._failures >= self.failure_threshold:
                self._open()

    def _open(self) -> None:
        self.state = OPEN
        self._retry_at = self._timer() + self._backoff
        self.transitions["opened"] += 1
        log.warning("tiercache: %s circuit open after %d consecutive failures; retrying in %.1f s",
                    self.name, self._failures, self._backoff)

    def snapshot(self) -> Dict[str, object]:
        return {"state": self.state, "consecutive_failures": self._failures, "backoff": self._backoff,
                **{f"transitions_{k}": v for k, v in self.transitions.items()}}

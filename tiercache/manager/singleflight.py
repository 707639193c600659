"""Per-key single-flight: concurrent misses on one key run the loader once.

The first caller (the leader) runs the loader; the others wait for its result or its exception. Keys are
forgotten as soon as the flight lands, so a later miss loads afresh.
"""

from __future__ import annotations

import threading
from typing import Any, Callable, Dict, Hashable, Tuple


class _Flight:
    __slots__ = ("done", "result", "error", "leader")

    def __init__(self) -> None:
        self.leader = threading.get_ident()
        self.done = threading.Event()
        self.result: Any = None
        self.error: BaseException | None = None


class SingleFlight:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: Dict[Hashable, _Flight] = {}

    def do(self, key: Hashable, fn: Callable[[], Any]) -> Tuple[Any, bool]:
        """(fn's result, whether this caller ran fn); raises what fn raised, in every waiter."""
        with self._lock:
            flight = self._flights.get(key)
            leader = flight is None
            if leader:
                flight = self._flights[key] = _Flight()
        if not leader and flight.leader == threading.get_ident():
            return fn(), True  # the loader asked for its own key: waiting on ourselves would deadlock
        if not leader:
            flight.done.wait()
            if flight.error is not None:
                raise flight.error
            return flight.result, False
        try:
            flight.result = fn()
        except Exception as exc:
            flight.error = exc
            raise
        except BaseException as exc:  # KeyboardInterrupt and the like stay in the leader's thread
            flight.error = RuntimeError(f"the loader was interrupted: {exc!r}")
            raise
        finally:
            with self._lock:
                del self._flights[key]
            flight.done.set()
        return flight.result, True

    def __len__(self) -> int:
        return len(self._flights)

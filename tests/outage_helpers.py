"""An L2 that an outage can be staged on, for the repair tests (sync and async managers alike)."""

from __future__ import annotations

import threading
from typing import Any, List

from tiercache.errors import L2Error


class Flaky:
    """An L2 whose deletes fail while `down`, and whose batched deletes (the repair) wait for `release`."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.down = inner, False
        self.release = threading.Event()
        self.release.set()
        self.batches: List[int] = []
        self.threads: List[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def delete(self, key: str) -> Any:
        if self.down:
            raise L2Error("connection refused")
        return self.inner.delete(key)

    def delete_many(self, keys: List[str]) -> Any:
        self.threads.append(threading.current_thread())
        assert self.release.wait(10)
        self.batches.append(len(keys))
        return self.inner.delete_many(keys)

"""The most read keys, approximately, in bounded memory: what the admin API shows as access patterns.

A space-saving style counter over a sample of L2 reads (one key in `every`): at most `capacity` keys are
counted; when the table is full the less-read half is dropped (amortized O(log capacity) a sample), so a key
read often stays and its count is a lower bound of its sampled reads. Never a scan of the cache.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Dict, List, Optional, Tuple

__all__ = ["HotKeys", "iso_time"]


class HotKeys:
    def __init__(self, capacity: int = 256, every: int = 16) -> None:
        self.capacity = capacity
        self.every = every
        self._counts: Dict[Tuple[str, Any], List[float]] = {}  # (namespace, key) -> [count, last access]
        self._tick = 0
        self._lock = threading.Lock()

    def sample(self, namespace: str, keys: List[Any], answered: List[Any]) -> None:
        """L2 answered `answered[i]` for `keys[i]` (None: absent): count the present ones among the sampled."""
        n = len(keys)
        start = -self._tick % self.every
        self._tick += n
        if start >= n:
            return
        now = time.time()
        with self._lock:
            counts = self._counts
            for key, data in zip(keys[start::self.every], answered[start::self.every]):
                if data is None:
                    continue
                entry = counts.get((namespace, key))
                if entry is None:
                    if len(counts) >= self.capacity:
                        self._shrink()
                    counts[(namespace, key)] = [1.0, now]
                else:
                    entry[0] += 1.0
                    entry[1] = now

    def _shrink(self) -> None:
        kept = sorted(self._counts.items(), key=lambda item: item[1][0], reverse=True)[: self.capacity // 2]
        self._counts = dict(kept)

    def top(self, n: int = 10, exclude: Optional[str] = None) -> List[Dict[str, Any]]:
        """The `n` most read keys: namespace, key (as the caller gave it), hits (estimated: sampled reads ×
        `every`), last access."""
        with self._lock:
            items = sorted(((k, v) for k, v in self._counts.items() if k[0] != exclude),
                           key=lambda item: item[1][0], reverse=True)[:n]
        return [{"namespace": ns, "key": key, "hits": int(count * self.every), "lastAccess": iso_time(last)}
                for (ns, key), (count, last) in items]


def iso_time(seconds: Optional[float] = None) -> str:
    """`seconds` (default: now) as ISO 8601 UTC to the millisecond, as JavaScript's toISOString writes it."""
    seconds = time.time() if seconds is None else seconds
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1000):03d}Z"

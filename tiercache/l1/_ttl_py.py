"""The expiry heap of a pure-Python HashCache (twin of ext/tiercache/_ttl.pxi).

A min-heap of (expires, seq, key) records for the entries that have a TTL. Deletion is lazy: a record is
stale once its key maps to no entry, or to an entry with another `seq` (a new TTL, or a new entry), and is
dropped when it reaches the top; the heap is rebuilt from the live entries when stale records outnumber
live ones three to one, so a push stays O(log n) amortised.
"""

from __future__ import annotations

import heapq
from typing import Any, Dict, Hashable, List, Optional, Tuple

from ._wtinylfu_py import EXPIRES, SEQ

__all__ = ["ExpiryHeap"]


class ExpiryHeap:
    """The TTL records of one cache; `count` is the number of entries that have an expiry."""

    __slots__ = ("records", "count", "seq")

    def __init__(self) -> None:
        self.records: List[Tuple[float, int, Hashable]] = []
        self.count = 0
        self.seq = 0

    def track(self, key: Hashable, entry: List[Any], expires: Optional[float], entries: Dict[Hashable, Any]) -> None:
        """Give `entry` (of `key`) a new expiry, or none; its old record, if any, goes stale. `entries` is
        the cache's key -> entry map, read when the heap is rebuilt."""
        if entry[EXPIRES] is not None:
            self.count -= 1
        entry[EXPIRES] = expires
        if expires is not None:
            self.count += 1
            self.seq += 1
            entry[SEQ] = self.seq
            heapq.heappush(self.records, (expires, self.seq, key))
            if len(self.records) > 3 * self.count + 64:
                self.rebuild(entries)

    def forget(self, entry: List[Any]) -> None:
        """`entry` left the cache (its record, if any, goes stale)."""
        if entry[EXPIRES] is not None:
            self.count -= 1

    def rebuild(self, entries: Dict[Hashable, Any]) -> None:
        records = [(e[EXPIRES], e[SEQ], k) for k, e in entries.items() if e[EXPIRES] is not None]
        heapq.heapify(records)
        self.records = records

    def due(self, now: float) -> Optional[Tuple[int, Hashable]]:
        """(seq, key) of the first record due at `now`, or None."""
        records = self.records
        if records and records[0][0] <= now:
            return records[0][1], records[0][2]
        return None

    def pop(self, seq: int) -> None:
        """Drop the first record if it is still the one numbered `seq` (user code may have rebuilt the heap)."""
        records = self.records
        if records and records[0][1] == seq:
            heapq.heappop(records)

    @staticmethod
    def is_current(entry: Optional[List[Any]], seq: int) -> bool:
        """Whether the record numbered `seq` is `entry`'s expiry (not a stale one)."""
        return entry is not None and entry[SEQ] == seq and entry[EXPIRES] is not None

    def clear(self) -> None:
        self.records = []
        self.count = 0

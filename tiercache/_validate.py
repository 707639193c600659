"""Argument checks shared by both HashCache implementations.

Both implementations raise the same exception types with the same messages, so these live in one place.
They run on construction and on the slow paths only; the compiled hot path repeats the cheap checks
(ttl, size) inline with identical messages.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional

__all__ = [
    "check_max_bytes",
    "check_max_entries",
    "check_ttl",
    "check_default_ttl",
    "check_callable",
    "check_size",
    "check_interval",
    "unhashable",
]

# The largest number of entries one HashCache can hold: the compiled core links entries by int32 index.
MAX_ENTRIES_LIMIT = 2**31 - 2
# The byte total is an int64 in the compiled core. Weights are < 2**56 each and the total never exceeds
# 2**62 after a call (max_bytes=None means this ceiling), so it cannot overflow even mid-call.
BYTES_CEILING = 2**62
SIZE_CEILING = 2**56  # one entry's weight: the compiled core keeps it in 57 bits of its record


def check_max_bytes(max_bytes: Any) -> Optional[int]:
    if max_bytes is None:
        return None
    if isinstance(max_bytes, bool) or not isinstance(max_bytes, int):
        raise TypeError(f"max_bytes must be an int or None, got {type(max_bytes).__name__} {max_bytes!r}")
    if max_bytes <= 0:
        raise ValueError(f"max_bytes must be > 0, got {max_bytes!r}")
    if max_bytes > BYTES_CEILING:
        raise ValueError(f"max_bytes must be at most 2**62, got {max_bytes!r}")
    return max_bytes


POLICIES = ("lru", "tinylfu")


def check_policy(policy: Any) -> int:
    """0 for "lru", 1 for "tinylfu"."""
    if not isinstance(policy, str):
        raise TypeError(f"policy must be a str, got {type(policy).__name__} {policy!r}")
    if policy not in POLICIES:
        raise ValueError(f"policy must be one of {', '.join(map(repr, POLICIES))}, got {policy!r}")
    return POLICIES.index(policy)


def check_max_entries(max_entries: Any) -> Optional[int]:
    if max_entries is None:
        return None
    if isinstance(max_entries, bool) or not isinstance(max_entries, int):
        raise TypeError(f"max_entries must be an int or None, got {type(max_entries).__name__} {max_entries!r}")
    if max_entries <= 0 or max_entries > MAX_ENTRIES_LIMIT:
        raise ValueError(f"max_entries must be between 1 and {MAX_ENTRIES_LIMIT}, got {max_entries!r}")
    return max_entries


def _positive_seconds(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds or None, got {type(value).__name__} {value!r}")
    try:
        seconds = float(value)
    except OverflowError:
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}") from None
    if not (seconds > 0.0 and seconds != math.inf):  # also false for NaN
        raise ValueError(f"{name} must be a positive finite number of seconds, got {value!r}")
    return seconds


def check_ttl(ttl: Any) -> Optional[float]:
    """`ttl` as float seconds, or None; raises on negative, zero, NaN, infinite and non-numbers."""
    if ttl is None:
        return None
    return _positive_seconds("ttl", ttl)


def check_default_ttl(default_ttl: Any) -> Optional[float]:
    if default_ttl is None:
        return None
    return _positive_seconds("default_ttl", default_ttl)


def check_interval(cleanup_interval: Any) -> Optional[float]:
    if cleanup_interval is None:
        return None
    return _positive_seconds("cleanup_interval", cleanup_interval)


def check_callable(name: str, func: Any) -> Optional[Callable[..., Any]]:
    if func is not None and not callable(func):
        raise TypeError(f"{name} must be callable or None, got {type(func).__name__} {func!r}")
    return func


def check_size(size: Any, what: str = "size") -> int:
    """An entry weight: a non-negative int (bool excluded)."""
    if isinstance(size, bool) or not isinstance(size, int):
        raise TypeError(f"{what} must be an int, got {type(size).__name__} {size!r}")
    if size < 0:
        raise ValueError(f"{what} must be >= 0, got {size!r}")
    if size >= SIZE_CEILING:
        raise ValueError(f"{what} must be < 2**56, got {size!r}")
    return size


def unhashable(key: Any) -> TypeError:
    return TypeError(f"key must be hashable, got unhashable type {type(key).__name__!r}")


def too_heavy(max_bytes: Optional[int]) -> ValueError:
    """`cache[key] = value` for a value that alone outweighs max_bytes (set() returns False instead)."""
    return ValueError(
        f"value outweighs max_bytes={max_bytes!r} on its own: not stored (any older value for the key was dropped)"
    )

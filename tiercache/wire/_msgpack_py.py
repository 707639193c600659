"""Reading L2 values, pure Python (twin of ext/tiercache/_msgpack.pxi, the compiled msgpack reader).

Here the codec reads everything; the compiled twin reads plain msgpack values in C with the
same results (tests/test_serialization.py compares them)."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["decode_l2"]


def decode_l2(data: bytes, start: int, read: Callable[[bytes, int, str], Any], l2_key: str) -> Any:
    """read(data, start, l2_key) for the bytes of the L2 value under `l2_key` (start: past any expiry header):
    the namespace's Codec.read."""
    if type(data) is not bytes:
        raise TypeError(f"L2 values are bytes, got {type(data).__name__}")
    if not 0 <= start <= len(data):
        raise ValueError(f"start {start} is outside the value")
    return read(data, start, l2_key)


def read_l2_value(data: bytes, loads: Callable[[bytes], Any]) -> Any:
    """loads(data) through decode_l2, for a whole value (for the tests)."""
    return decode_l2(data, 0, lambda d, start, key: loads(d), "")

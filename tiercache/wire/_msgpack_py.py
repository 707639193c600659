"""Reading L2 values, pure Python (twin of ext/tiercache/_msgpack.pxi, the compiled msgpack reader).

Here the codec's own loads reads everything; the compiled twin reads plain msgpack values in C with the
same results (tests/test_serialization.py compares them)."""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["decode_l2"]


def decode_l2(data: bytes, start: int, loads: Callable[[bytes], Any]) -> Any:
    """loads(data[start:]) for the bytes of an L2 value (start: past any expiry header)."""
    if type(data) is not bytes:
        raise TypeError(f"L2 values are bytes, got {type(data).__name__}")
    if not 0 <= start <= len(data):
        raise ValueError(f"start {start} is outside the value")
    return loads(data if start == 0 else data[start:])


def read_l2_value(data: bytes, loads: Callable[[bytes], Any]) -> Any:
    """decode_l2 of a whole value (for the tests)."""
    return decode_l2(data, 0, loads)

"""Packing Redis commands, pure Python (twin of ext/tiercache/l2/_resp_c.pyx): the RESP bytes RedisL2 sends for
its GET and MGET."""

from __future__ import annotations

from typing import Any, List, Tuple, Union

__all__ = ["resp_command"]


def resp_command(name: bytes, args: Union[List[Any], Tuple[Any, ...]]) -> bytes:
    """The RESP bytes of the command `name` with the str or bytes arguments `args` (a list or tuple), as
    redis-py's connection sends name(*args). TypeError for any other argument; str must encode as UTF-8."""
    if not isinstance(name, bytes):
        raise TypeError(f"name must be bytes, got {type(name).__name__}")
    if type(args) is not list and type(args) is not tuple:
        raise TypeError(f"args must be a list or tuple, got {type(args).__name__}")
    parts = [b"*%d\r\n$%d\r\n%s\r\n" % (len(args) + 1, len(name), name)]
    for arg in args:
        if isinstance(arg, str):
            data = arg.encode("utf-8")
        elif isinstance(arg, bytes):
            data = arg
        else:
            raise TypeError(f"Redis command arguments here are str or bytes, got {type(arg).__name__} {arg!r}")
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)

"""The keys `cached` gives a call: the same in every process, for every way of passing the same arguments.

    key = "<module>.<qualname>:v1:" + hex(blake2b-128(canonical encoding of the bound arguments))

The arguments are bound to the function's signature with its defaults applied, so `f(1)`, `f(x=1)` and
`f(1, y=2)` (where 2 is y's default) are one key. Each argument is encoded by value, the same under every
hash seed and in every process (no repr, no id): None, bool, int, float, str, bytes, tuples and lists
(alike), dicts and sets (items ordered by their encoding), datetime, date, time, timedelta, Decimal (by
value: 1.0 and 1.00 are one key), UUID, Enum members (by class and value) and dataclass instances (by
class and fields), nested. Anything else is a TypeError naming the argument: pass `key=` to say how such
calls are told apart, or `ignore=` to leave an argument out. "v1" is the encoding's version: a change of
encoding takes a new one, so it never reads entries written under another.
"""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import hashlib
import inspect
import struct
import uuid
from typing import Any, Callable, Dict, FrozenSet, Iterable, List, Optional, Tuple

__all__ = ["KEY_VERSION", "CallKey", "encode_argument", "key_maker"]

KEY_VERSION = 1
_MAX_DEPTH = 64
_NAN = float("nan")


def key_maker(fn: Callable[..., Any], key: Optional[Callable[..., Any]],
              ignore: Iterable[str]) -> Callable[[Tuple[Any, ...], Dict[str, Any]], Any]:
    """How `cached` keys a call of `fn`: `key(*args, **kwargs)` when given, else CallKey(fn, ignore)."""
    ignore = tuple(ignore)
    if key is None:
        return CallKey(fn, ignore)
    if not callable(key):
        raise TypeError(f"key must be callable, got {type(key).__name__}")
    if ignore:
        raise TypeError("ignore= applies to the default key; a key= function chooses its arguments itself")
    return lambda args, kwargs: key(*args, **kwargs)


class CallKey:
    """The key function of one decorated function: CallKey(fn, ignore)(args, kwargs) -> str."""

    def __init__(self, fn: Callable[..., Any], ignore: Iterable[str] = ()) -> None:
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        self._signature = inspect.signature(fn)
        self._ignore: FrozenSet[str] = frozenset(ignore)
        unknown = self._ignore - set(self._signature.parameters)
        if unknown:
            raise TypeError(f"ignore names no parameter of {self.name}: {', '.join(sorted(unknown))}")

    def __call__(self, args: Tuple[Any, ...], kwargs: Dict[str, Any]) -> str:
        bound = self._signature.bind(*args, **kwargs)  # (TypeError for a call the function would refuse)
        bound.apply_defaults()
        digest = hashlib.blake2b(digest_size=16)
        for name, value in bound.arguments.items():
            if name in self._ignore:
                continue
            digest.update(_text(name))
            try:
                digest.update(encode_argument(value))
            except TypeError as exc:
                raise TypeError(f"{self.name}: argument {name!r}: {exc}; pass key= to cached() to build "
                                f"keys for such calls, or ignore=({name!r},) to leave it out") from None
        return f"{self.name}:v{KEY_VERSION}:{digest.hexdigest()}"


def encode_argument(value: Any) -> bytes:
    """The canonical bytes of `value` (see the module's docstring); TypeError for a type it does not know."""
    out: List[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _text(s: str) -> bytes:
    data = s.encode("utf-8", "surrogatepass")
    return b"%d:" % len(data) + data


def _encode(v: Any, out: List[bytes], depth: int) -> None:
    if depth > _MAX_DEPTH:
        raise TypeError(f"nested more than {_MAX_DEPTH} levels deep")
    if v is None:
        out.append(b"N")
    elif v is True or v is False:
        out.append(b"T" if v else b"F")
    elif isinstance(v, enum.Enum):  # (before int and str: IntEnum, StrEnum)
        out.append(b"E" + _text(f"{type(v).__module__}.{type(v).__qualname__}"))
        _encode(v.value, out, depth + 1)
    elif isinstance(v, int):
        n = int(v)
        data = n.to_bytes(n.bit_length() // 8 + 1, "big", signed=True)
        out.append(b"i%d:" % len(data) + data)
    elif isinstance(v, float):
        out.append(b"f" + struct.pack(">d", _NAN if v != v else v))  # (every NaN alike, 8 bytes as any float)
    elif isinstance(v, str):
        out.append(b"s" + _text(str(v)))
    elif isinstance(v, (bytes, bytearray, memoryview)):
        data = bytes(v)
        out.append(b"b%d:" % len(data) + data)
    elif isinstance(v, (tuple, list)):
        out.append(b"l%d:" % len(v))
        for item in v:
            _encode(item, out, depth + 1)
    elif isinstance(v, dict):
        items = sorted((_encoded(k, depth), _encoded(x, depth)) for k, x in v.items())
        out.append(b"d%d:" % len(items))
        for k, x in items:
            out.append(k)
            out.append(x)
    elif isinstance(v, (set, frozenset)):
        members = sorted(_encoded(m, depth) for m in v)
        out.append(b"e%d:" % len(members))
        out.extend(members)
    elif isinstance(v, datetime.datetime):  # (before date: a datetime is a date)
        out.append(b"t" + _text(v.isoformat()))
    elif isinstance(v, datetime.date):
        out.append(b"D" + _text(v.isoformat()))
    elif isinstance(v, datetime.time):
        out.append(b"h" + _text(v.isoformat()))
    elif isinstance(v, datetime.timedelta):
        out.append(b"r" + _text(f"{v.days},{v.seconds},{v.microseconds}"))
    elif isinstance(v, decimal.Decimal):
        out.append(b"m" + _text(_decimal_text(v)))
    elif isinstance(v, uuid.UUID):
        out.append(b"u" + v.bytes)
    elif dataclasses.is_dataclass(v) and not isinstance(v, type):
        fields = dataclasses.fields(v)
        out.append(b"c" + _text(f"{type(v).__module__}.{type(v).__qualname__}") + b"%d:" % len(fields))
        for f in fields:
            out.append(_text(f.name))
            _encode(getattr(v, f.name), out, depth + 1)
    else:
        raise TypeError(f"{type(v).__module__}.{type(v).__qualname__} has no canonical encoding")


def _decimal_text(d: decimal.Decimal) -> str:
    """A Decimal by value, whatever the thread's decimal context: 1.0 and 1.00 alike, no rounding."""
    if not d.is_finite():
        return str(d)
    sign, digits, exponent = d.as_tuple()
    assert isinstance(exponent, int)
    stripped = list(digits)
    while len(stripped) > 1 and stripped[-1] == 0:
        stripped.pop()
        exponent += 1
    if stripped == [0]:
        return "0"
    return f"{'-' if sign else ''}{''.join(map(str, stripped))}e{exponent}"


def _encoded(value: Any, depth: int) -> bytes:
    """The encoding of an item of a dict or set, alone (to be ordered among its siblings)."""
    out: List[bytes] = []
    _encode(value, out, depth + 1)
    return b"".join(out)

"""The L2 wire format: what a key and a value look like in L2, defined once.

    key     tiercache:v1:{env}:{namespace}:{part}
            part: a str key as it is; "#s:" + key for a str starting with "#"; "#i:" + decimal for an int;
            "#b:" + hex for bytes (so 1, "1" and b"1" stay distinct in L2 as they are in L1)
    value   [ b"X" | expiry: little-endian double, wall-clock seconds ]   only when the value has a TTL
            [ format tag: b"M" msgpack, b"J" json, b"S" signed pickle | flags: bit 0 = zlib ]
            [ 32-byte HMAC-SHA256, pickle only ] payload

    The pickle HMAC covers mac_context(L2 key, expiry header) + tag + flags + payload: signed bytes copied to
    another key, or given another expiry, fail verification. (b"P", pickle signed over tag, flags and payload
    only, is what earlier versions wrote: refused, never unpickled.)

The version segment (`v1`) covers all of it: a future format change uses a new prefix and never misreads
old data. The compiled core takes the same numbers from ext/tiercache/_wire.pxd; tests/test_readpath.py checks
that the two agree and that each implementation reads what the other wrote.
"""

from __future__ import annotations

import struct
import time
from typing import Any, Optional, Tuple

__all__ = [
    "KEY_VERSION", "EXPIRY_TAG", "EXPIRY_HEADER_SIZE", "TAG_MSGPACK", "TAG_JSON", "TAG_PICKLE", "FLAG_ZLIB",
    "FORMAT_HEADER_SIZE", "MAC_SIZE", "key_prefix", "lock_key", "tag_key", "channel", "encode_key", "decode_key", "expiry_header", "seal",
    "open_sealed", "mac_context",
]

KEY_VERSION = "v1"
KEY_MARK = "#"  # starts every encoded (non-plain) key part
INT_MARK, BYTES_MARK, STR_MARK = "#i:", "#b:", "#s:"

EXPIRY_TAG = 0x58  # b"X": the value carries its expiry (never a format tag)
EXPIRY = struct.Struct("<d")
EXPIRY_HEADER_SIZE = 1 + EXPIRY.size

TAG_MSGPACK, TAG_JSON, TAG_PICKLE = 0x4D, 0x4A, 0x53  # b"M", b"J", b"S"
TAG_UNBOUND_PICKLE = 0x50  # b"P": pickle whose HMAC did not cover its key and expiry (refused)
FLAG_ZLIB = 0x01
FORMAT_HEADER_SIZE = 2  # format tag + flags
MAC_SIZE = 32  # HMAC-SHA256, pickle only
_MAC_DOMAIN = f"tiercache:{KEY_VERSION}:mac:{chr(TAG_PICKLE)}\x00".encode("ascii")
_KEY_LENGTH = struct.Struct(">I")

_SEALED = bytes((EXPIRY_TAG,))

# What the compiled core is built with (ext/tiercache/_wire.pxd); the pure twin exports the same dict.
WIRE_CONSTANTS = {
    "EXPIRY_TAG": EXPIRY_TAG,
    "EXPIRY_HEADER_SIZE": EXPIRY_HEADER_SIZE,
    "TAG_MSGPACK": TAG_MSGPACK,
    "FORMAT_HEADER_SIZE": FORMAT_HEADER_SIZE,
    "KEY_MARK": ord(KEY_MARK),
}


def key_prefix(env: str) -> str:
    """The prefix of every L2 key of `env` (namespace and key part follow)."""
    return f"tiercache:{KEY_VERSION}:{env}:"


def lock_key(env: str, namespace: str, part: str) -> str:
    """The L2 key of the distributed single-flight lock of one key ('#' is in no namespace name, so no
    namespace's keys, nor clear(), reach it)."""
    return f"tiercache:{KEY_VERSION}:{env}:#lock:{namespace}:{part}"


def tag_key(env: str, namespace: str, tag: str) -> str:
    """The L2 key of the index of one tag's entries in one namespace (reached by no namespace's keys,
    nor by clear(), as lock_key)."""
    return f"tiercache:{KEY_VERSION}:{env}:#tag:{namespace}:{tag}"


def channel(env: str) -> str:
    """The pub/sub channel on which the processes of `env` invalidate each other's L1."""
    return f"tiercache:{KEY_VERSION}:{env}:invalidate"


def encode_key(key: Any) -> str:
    """The L2 form of a user key (reversible: see decode_key). TypeError for a key that is not str, int
    or bytes; ValueError for a str that is not valid UTF-8."""
    tp = type(key)
    if tp is str:
        if not key.isascii():  # (ASCII, the common case, is always valid UTF-8)
            try:
                key.encode("utf-8")
            except UnicodeEncodeError:
                raise ValueError(f"key must be encodable as UTF-8, got {key!r}") from None
        return STR_MARK + key if key[:1] == KEY_MARK else key
    if tp is int:
        return "%s%d" % (INT_MARK, key)
    if tp is bytes:
        return BYTES_MARK + key.hex()
    raise TypeError(f"key must be str, bytes or int, got {tp.__name__} {key!r}")


def decode_key(part: str) -> Any:
    """The user key of an encoded key part."""
    if part.startswith(KEY_MARK):
        marker, rest = part[:3], part[3:]
        if marker == INT_MARK:
            return int(rest)
        if marker == BYTES_MARK:
            return bytes.fromhex(rest)
        if marker == STR_MARK:
            return rest
    return part


def expiry_header(l2_ttl: Optional[float], now: Optional[float] = None) -> bytes:
    """What goes in front of a value that L2 keeps `l2_ttl` seconds from `now` (b"" for no expiry), so a reader
    never keeps a copy in L1 longer than L2 keeps the value."""
    if l2_ttl is None:
        return b""
    return _SEALED + EXPIRY.pack((time.time() if now is None else now) + l2_ttl)


def seal(data: bytes, l2_ttl: Optional[float], now: Optional[float] = None) -> bytes:
    """`data` with its expiry header in front (none when `l2_ttl` is None)."""
    return expiry_header(l2_ttl, now) + data


# added(): the integers an increment handles, here and in Redis's script (Lua numbers are doubles)
EXACT_INT = 2**53
_PLAIN_MSGPACK = bytes((TAG_MSGPACK, 0))


def added(data: bytes, delta: int) -> Optional[Tuple[bytes, int]]:
    """(the value with `delta` added, the new int) for an L2 value that is a plain msgpack int (after any
    expiry header, kept as it is), both within ±EXACT_INT; None for any other value (the caller reads it
    and writes it back itself). What INCR_SCRIPT does in Redis, for the other stores."""
    import msgpack

    start = EXPIRY_HEADER_SIZE if data[:1] == _SEALED else 0
    if data[start:start + FORMAT_HEADER_SIZE] != _PLAIN_MSGPACK:
        return None
    try:
        value = msgpack.unpackb(data[start + FORMAT_HEADER_SIZE:])
    except Exception:
        return None
    if type(value) is not int or not -EXACT_INT < value < EXACT_INT or not -EXACT_INT < value + delta < EXACT_INT:
        return None
    return data[:start + FORMAT_HEADER_SIZE] + msgpack.packb(value + delta), value + delta


def mac_context(l2_key: str, header: bytes) -> bytes:
    """What a signed value's HMAC covers besides its own bytes: the format version, the L2 key it is stored
    under and its expiry header (b"" for none)."""
    key = l2_key.encode("utf-8", "surrogatepass")
    return _MAC_DOMAIN + _KEY_LENGTH.pack(len(key)) + key + header


def open_sealed(data: bytes, now: float) -> Tuple[int, Optional[float]]:
    """(where the serialized value starts, seconds it has left or None when it carries no expiry).

    ValueError for a header cut short. The seconds left can be <= 0 (expired: L2's own expiry is lazy or
    coarser) or not finite (a corrupt header); the caller decides."""
    if not data or data[0] != EXPIRY_TAG:
        return 0, None
    if len(data) < EXPIRY_HEADER_SIZE:
        raise ValueError("truncated expiry header")
    return EXPIRY_HEADER_SIZE, EXPIRY.unpack_from(data, 1)[0] - now

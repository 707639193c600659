"""Values to bytes and back for the shared (L2) tier.

The envelope is defined in tiercache.wire: a format tag (b"M" msgpack, b"J" json, b"S" pickle), a flags byte
(bit 0: the payload is zlib-compressed; any other bit set -> SerializationError), for pickle an
HMAC-SHA256 over a context (the L2 key and expiry, see Codec.read) + tag + flags + payload, then the payload.

A Codec writes one format but reads every format it can (msgpack and json always, pickle only with a key),
so a namespace can change serializer without misreading what is already stored.

What comes back (== the value written, with the same types, unless noted):

    type                          msgpack (default)        json                     pickle
    None, bool, str               yes                      yes                      yes
    int                           yes, any size            yes, up to Python's      yes
                                                           int/str digit limit
    float                         yes (nan, inf, -0.0)     yes; nan/inf rejected    yes
    bytes                         yes                      rejected                 yes
    bytearray, memoryview         as bytes                 rejected                 yes (memoryview rejected)
    list                          yes                      yes                      yes
    tuple                         yes (an ext type)        as list                  yes
    dict                          yes, any msgpack keys    str keys only            yes
    set, frozenset                yes                      rejected                 yes
    datetime.datetime             yes, to the µs, fold     rejected                 yes
    datetime.date / time          yes                      rejected                 yes
    datetime.timedelta            yes                      rejected                 yes
    decimal.Decimal               yes (exponent, NaN)      rejected                 yes
    uuid.UUID                     yes                      rejected                 yes
    anything else                 rejected                 rejected                 whatever pickles

msgpack checks exact types: subclasses (IntEnum, OrderedDict, defaultdict, a str subclass) are rejected
rather than silently turned into their base type. Aware datetimes and times keep `datetime.timezone`
tzinfo exactly (offset and name); any other tzinfo (zoneinfo, pytz) comes back as `datetime.timezone` with
the offset in force at that instant: the same instant (and ==, except for the ambiguous hour of a DST
change, which PEP 495 never calls equal across zones) but without the zone's rules. A time whose tzinfo
gives no offset (a zoneinfo time) is rejected. json encodes subclasses of its types as the base type, like
the stdlib. "Rejected" means dumps raises SerializationError naming the type.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import hmac
import json
import os
import pickle
import struct
import uuid
import zlib
from typing import Any, Callable, Dict, Optional, Union

import msgpack

from .. import wire
from ..errors import ConfigError, IntegrityError, SerializationError

__all__ = ["Codec", "get_codec", "msgpack_ext_hook", "resolve_hmac_key", "SERIALIZERS", "COMPRESSIONS", "HMAC_KEY_ENV",
           "MAX_VALUE_BYTES"]

SERIALIZERS = ("msgpack", "json", "pickle")
COMPRESSIONS = (None, "zlib")
HMAC_KEY_ENV = "TIERCACHE_HMAC_KEY"
MAX_VALUE_BYTES = 16 * 1024 * 1024  # default cap on a serialized value, before compression and after inflating

_TAGS = {"msgpack": wire.TAG_MSGPACK, "json": wire.TAG_JSON, "pickle": wire.TAG_PICKLE}
_TAG_MSGPACK, _TAG_JSON, _TAG_PICKLE = wire.TAG_MSGPACK, wire.TAG_JSON, wire.TAG_PICKLE
_FLAG_ZLIB = wire.FLAG_ZLIB
_HEADER_SIZE = wire.FORMAT_HEADER_SIZE
_MAC_SIZE = wire.MAC_SIZE
# Level 1: cached values are written on the request path, and level 6 buys only a few percent on typical
# JSON-like data for several times the CPU.
_ZLIB_LEVEL = 1
# Pinned: every Python tiercache supports reads protocol 5, while HIGHEST_PROTOCOL could move past what an
# older interpreter sharing the same L2 can read.
_PICKLE_PROTOCOL = 5


def _type_name(obj: Any) -> str:
    cls = type(obj)
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


# --- msgpack --------------------------------------------------------------------------------------------
# Ext type codes. They are part of the wire format: changing one means bumping the L2 key version.
_EXT_BIGINT = 1  # int outside msgpack's [-2**63, 2**64 - 1]: signed big-endian two's complement
_EXT_TUPLE = 2  # a msgpack array of the items
_EXT_SET = 3  # a msgpack array of the items
_EXT_FROZENSET = 4  # a msgpack array of the items
_EXT_DATETIME = 5  # _DATETIME then the tz suffix
_EXT_DATE = 6  # _DATE
_EXT_TIME = 7  # _TIME then the tz suffix
_EXT_TIMEDELTA = 8  # _TIMEDELTA
_EXT_DECIMAL = 9  # str(d) in ASCII: exact, keeps the exponent, sign of zero and NaN payloads
_EXT_UUID = 10  # the 16 bytes

# Fixed-size fields, no isoformat parsing: exact to the microsecond, and fold survives.
_DATETIME = struct.Struct(">HBBBBBIBB")  # year month day hour minute second microsecond fold tzkind
_TIME = struct.Struct(">BBBIBB")  # hour minute second microsecond fold tzkind
_DATE = struct.Struct(">HBB")  # year month day
_TIMEDELTA = struct.Struct(">iII")  # days seconds microseconds (as normalised by timedelta)
_OFFSET = struct.Struct(">q")  # UTC offset in microseconds
# tzkind: 0 naive; 1 offset follows; 2 offset then the timezone's name (UTF-8) follow.
_TZ_NAIVE, _TZ_OFFSET, _TZ_NAMED = 0, 1, 2


def _encode_tz(what: Any, tz: Optional[_dt.tzinfo], offset: Optional[_dt.timedelta]) -> "tuple[int, bytes]":
    if tz is None:
        return _TZ_NAIVE, b""
    if offset is None:
        raise SerializationError(f"msgpack cannot encode {what!r}: its tzinfo gives no UTC offset")
    suffix = _OFFSET.pack((offset.days * 86400 + offset.seconds) * 1_000_000 + offset.microseconds)
    if type(tz) is _dt.timezone:
        args = tz.__getinitargs__()  # (offset,) or (offset, name): only an explicit name is kept
        if len(args) == 2:
            return _TZ_NAMED, suffix + args[1].encode("utf-8", "surrogatepass")
    return _TZ_OFFSET, suffix


def _decode_tz(kind: int, rest: bytes) -> Optional[_dt.tzinfo]:
    if kind == _TZ_NAIVE and not rest:
        return None
    if kind == _TZ_OFFSET and len(rest) == _OFFSET.size:
        return _dt.timezone(_dt.timedelta(microseconds=_OFFSET.unpack(rest)[0]))
    if kind == _TZ_NAMED and len(rest) >= _OFFSET.size:
        offset = _dt.timedelta(microseconds=_OFFSET.unpack_from(rest)[0])
        return _dt.timezone(offset, rest[_OFFSET.size :].decode("utf-8", "surrogatepass"))
    raise SerializationError(f"corrupt msgpack payload: bad timezone field (kind {kind}, {len(rest)} bytes)")


def _ext_bigint(value: int, packb: Callable[[Any], bytes]) -> msgpack.ExtType:
    # Only reached for ints msgpack cannot hold natively; +8 leaves room for the sign bit.
    return msgpack.ExtType(_EXT_BIGINT, value.to_bytes((value.bit_length() + 8) // 8, "big", signed=True))


def _ext_datetime(value: _dt.datetime, packb: Callable[[Any], bytes]) -> msgpack.ExtType:
    kind, tz = _encode_tz(value, value.tzinfo, value.utcoffset())
    head = _DATETIME.pack(
        value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond,
        value.fold, kind,
    )  # fmt: skip
    return msgpack.ExtType(_EXT_DATETIME, head + tz)


def _ext_time(value: _dt.time, packb: Callable[[Any], bytes]) -> msgpack.ExtType:
    kind, tz = _encode_tz(value, value.tzinfo, value.utcoffset())
    head = _TIME.pack(value.hour, value.minute, value.second, value.microsecond, value.fold, kind)
    return msgpack.ExtType(_EXT_TIME, head + tz)


_EXT_ENCODERS: Dict[type, Callable[[Any, Callable[[Any], bytes]], msgpack.ExtType]] = {
    int: _ext_bigint,
    tuple: lambda v, packb: msgpack.ExtType(_EXT_TUPLE, packb(list(v))),
    set: lambda v, packb: msgpack.ExtType(_EXT_SET, packb(list(v))),
    frozenset: lambda v, packb: msgpack.ExtType(_EXT_FROZENSET, packb(list(v))),
    _dt.datetime: _ext_datetime,
    _dt.date: lambda v, packb: msgpack.ExtType(_EXT_DATE, _DATE.pack(v.year, v.month, v.day)),
    _dt.time: _ext_time,
    _dt.timedelta: lambda v, packb: msgpack.ExtType(
        _EXT_TIMEDELTA, _TIMEDELTA.pack(v.days, v.seconds, v.microseconds)
    ),
    decimal.Decimal: lambda v, packb: msgpack.ExtType(_EXT_DECIMAL, str(v).encode("ascii")),
    uuid.UUID: lambda v, packb: msgpack.ExtType(_EXT_UUID, v.bytes),
}


def _make_packb(unicode_errors: Optional[str]) -> Callable[[Any], bytes]:
    def default(value: Any) -> msgpack.ExtType:
        encode = _EXT_ENCODERS.get(type(value))
        if encode is None:
            raise SerializationError(f"msgpack cannot encode a value of type {_type_name(value)}")
        return encode(value, packb)  # containers inside an ext type are packed the same way

    def packb(value: Any) -> bytes:
        # strict_types: tuples and subclasses reach `default` instead of being packed as their base type.
        return msgpack.packb(
            value, default=default, use_bin_type=True, strict_types=True, unicode_errors=unicode_errors
        )

    return packb


_msgpack_packb = _make_packb(None)
# For str holding lone surrogates (os.fsdecode output, say), which strict UTF-8 refuses. Only the values
# that need it take this path: unicode_errors costs ~0.3 µs per packb call.
_msgpack_packb_surrogates = _make_packb("surrogatepass")


def _ext_decode_datetime(data: bytes) -> _dt.datetime:
    y, mo, d, h, mi, s, us, fold, kind = _DATETIME.unpack_from(data)
    return _dt.datetime(y, mo, d, h, mi, s, us, tzinfo=_decode_tz(kind, data[_DATETIME.size :]), fold=fold)


def _ext_decode_time(data: bytes) -> _dt.time:
    h, mi, s, us, fold, kind = _TIME.unpack_from(data)
    return _dt.time(h, mi, s, us, tzinfo=_decode_tz(kind, data[_TIME.size :]), fold=fold)


def _ext_decode_timedelta(data: bytes) -> _dt.timedelta:
    days, seconds, microseconds = _TIMEDELTA.unpack(data)
    return _dt.timedelta(days=days, seconds=seconds, microseconds=microseconds)


def _ext_decode_decimal(data: bytes) -> decimal.Decimal:
    # Decimal() under a context that does not trap InvalidOperation would turn garbage into NaN.
    with decimal.localcontext() as ctx:
        ctx.traps[decimal.InvalidOperation] = True
        return decimal.Decimal(data.decode("ascii"))


def _ext_decode_uuid(data: bytes) -> uuid.UUID:
    return uuid.UUID(bytes=data)


# --- hash collisions ------------------------------------------------------------------------------------
# str and bytes hash with a per-process secret, and a native msgpack int or a float shares its hash with a few
# others at most; but big ints, Decimal, UUID, tuples and frozensets hash deterministically, so a value written
# by someone else can hold thousands of distinct keys with one hash, and building a dict or set of them is
# quadratic (seconds for half a megabyte). Map keys and set members of those types are hashed first, and a map
# or set in which more than _MAX_SHARED_HASHES of them share a hash with another is refused as corrupt.
_MAX_SHARED_HASHES = 16
_FIXED_HASH_SAFE = frozenset((str, bytes, float, bool, type(None), _dt.date, _dt.datetime, _dt.time,
                              _dt.timedelta))  # (the date and time types hash their bytes, with the secret)


def _check_hashes(items: Any, what: str) -> None:
    hashes = []
    for item in items:
        tp = type(item)
        if tp in _FIXED_HASH_SAFE or (tp is int and -(1 << 63) <= item < (1 << 64)):
            continue
        hashes.append(hash(item))
    shared = len(hashes) - len(set(hashes))
    if shared > _MAX_SHARED_HASHES:
        raise SerializationError(
            f"corrupt msgpack payload: a {what} with {shared} items sharing another's hash "
            f"(more than {_MAX_SHARED_HASHES}: refused, as a hash-collision attack would be)"
        )


def _checked_map(pairs: Any) -> Dict[Any, Any]:
    _check_hashes([key for key, _ in pairs], "map")
    return dict(pairs)


def _checked_set(data: bytes, cls: Callable[[Any], Any]) -> Any:
    items = _msgpack_unpackb(data)
    _check_hashes(items, "set")
    return cls(items)


_EXT_DECODERS: Dict[int, Callable[[bytes], Any]] = {
    _EXT_BIGINT: lambda data: int.from_bytes(data, "big", signed=True),
    _EXT_TUPLE: lambda data: tuple(_msgpack_unpackb(data)),
    _EXT_SET: lambda data: _checked_set(data, set),
    _EXT_FROZENSET: lambda data: _checked_set(data, frozenset),
    _EXT_DATETIME: _ext_decode_datetime,
    _EXT_DATE: lambda data: _dt.date(*_DATE.unpack(data)),
    _EXT_TIME: _ext_decode_time,
    _EXT_TIMEDELTA: _ext_decode_timedelta,
    _EXT_DECIMAL: _ext_decode_decimal,
    _EXT_UUID: _ext_decode_uuid,
}


def msgpack_ext_hook(code: int, data: bytes) -> Any:
    decode = _EXT_DECODERS.get(code)
    if decode is None:
        raise SerializationError(f"corrupt msgpack payload: unknown ext type {code}")
    return decode(data)


# The options every msgpack read takes (see _msgpack_unpackb for why). The compiled core reads the common
# values of L2 itself the same way (ext/tiercache/_msgpack.pxi): change one, change both.
_UNPACK_OPTIONS: Dict[str, Any] = dict(
    ext_hook=msgpack_ext_hook, raw=False, use_list=True, strict_map_key=True, unicode_errors="surrogatepass"
)
# A payload with a map key other than str or bytes is read again with these: every map built by
# _checked_map, which hashes the keys first.
_UNPACK_CHECKED: Dict[str, Any] = dict(_UNPACK_OPTIONS, strict_map_key=False, object_pairs_hook=_checked_map)
_MAP_KEY_REFUSED = "is not allowed for map key"  # (msgpack's ValueError under strict_map_key)


def _make_fast_unpackb() -> Any:
    """_msgpack_unpackb with the options bound once (no keyword parsing per call)."""
    import functools

    strict = functools.partial(msgpack.unpackb, **_UNPACK_OPTIONS)
    checked = functools.partial(msgpack.unpackb, **_UNPACK_CHECKED)

    def unpackb(data: bytes) -> Any:
        try:
            return strict(data)
        except ValueError as exc:
            if _MAP_KEY_REFUSED not in str(exc):
                raise
        return checked(data)

    return unpackb


def _msgpack_unpackb(data: bytes) -> Any:
    # Tuples are an ext type, so use_list=True loses nothing and lists stay lists. Map keys other than str and
    # bytes (int, tuple...) are legitimate, and read on a second pass through _checked_map (hash collisions).
    # surrogatepass reads what _msgpack_packb_surrogates wrote.
    return _FAST_UNPACKB(data)


def _msgpack_dumps(value: Any) -> bytes:
    try:
        try:
            return _msgpack_packb(value)
        except UnicodeEncodeError:
            return _msgpack_packb_surrogates(value)
    except SerializationError:
        raise
    except (TypeError, ValueError, OverflowError, RecursionError, struct.error) as exc:
        # ValueError covers "recursion limit exceeded" (a container holding itself, or very deep nesting).
        raise SerializationError(f"msgpack cannot encode value: {type(exc).__name__}: {exc}") from exc


def _msgpack_loads(payload: bytes) -> Any:
    try:
        return _msgpack_unpackb(payload)
    except SerializationError:
        raise
    except Exception as exc:  # any failure here is a corrupt payload: msgpack, struct, datetime, decimal...
        raise SerializationError(f"corrupt msgpack payload: {type(exc).__name__}: {exc}") from exc


# --- json -----------------------------------------------------------------------------------------------
def _json_default(value: Any) -> Any:
    raise SerializationError(f"json cannot encode a value of type {_type_name(value)}")


def _json_reject_constant(name: str) -> Any:
    raise SerializationError(f"corrupt json payload: {name} is not a value tiercache writes")


# One encoder and decoder for the process: they hold configuration only (json.loads shares one likewise).
# ensure_ascii=False keeps non-ASCII text compact; it is encoded with surrogatepass, which json's bytes
# decoding mirrors, so every str round-trips.
_JSON_ENCODER = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
)
_JSON_DECODER = json.JSONDecoder(parse_constant=_json_reject_constant)
_JSON_CONTAINERS = (dict, list, tuple)


def _json_check_keys(value: Any) -> None:
    """Reject non-str dict keys, which json.dumps would silently turn into strings ({1: x} -> {"1": x})."""
    # Runs after a successful encode, so the value holds no cycle.
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if not isinstance(key, str):
                    raise SerializationError(
                        f"json cannot encode a dict key of type {_type_name(key)} ({key!r}): keys must be str"
                    )
                if isinstance(child, _JSON_CONTAINERS):
                    stack.append(child)
        else:
            stack.extend(child for child in item if isinstance(child, _JSON_CONTAINERS))


def _json_dumps(value: Any) -> bytes:
    try:
        text = _JSON_ENCODER.encode(value)
    except SerializationError:
        raise
    except (TypeError, ValueError, RecursionError) as exc:  # NaN/inf, cycles, unsupported key types
        raise SerializationError(f"json cannot encode value: {exc}") from exc
    if "{" in text and isinstance(value, _JSON_CONTAINERS):  # no "{" anywhere: no dict to check
        _json_check_keys(value)
    return text.encode("utf-8", "surrogatepass")


def _json_loads(payload: bytes) -> Any:
    try:
        return _JSON_DECODER.decode(payload.decode("utf-8", "surrogatepass"))
    except SerializationError:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise SerializationError(f"corrupt json payload: {exc}") from exc


# --- pickle ---------------------------------------------------------------------------------------------
def _pickle_dumps(value: Any) -> bytes:
    try:
        return pickle.dumps(value, protocol=_PICKLE_PROTOCOL)
    except Exception as exc:  # __reduce__ and friends may raise anything; the cause is kept
        raise SerializationError(f"pickle cannot encode a value of type {_type_name(value)}: {exc}") from exc


def _pickle_loads(payload: bytes) -> Any:
    # Only ever called on data whose HMAC verified.
    try:
        return pickle.loads(payload)
    except Exception as exc:  # e.g. the class moved or its module is gone in this process
        raise SerializationError(
            f"signed pickle payload could not be loaded: {type(exc).__name__}: {exc}"
        ) from exc


# --- the codec ------------------------------------------------------------------------------------------
_ENCODERS: Dict[str, Callable[[Any], bytes]] = {
    "msgpack": _msgpack_dumps,
    "json": _json_dumps,
    "pickle": _pickle_dumps,
}
_DECODERS: Dict[int, Callable[[bytes], Any]] = {
    _TAG_MSGPACK: _msgpack_loads,
    _TAG_JSON: _json_loads,
    _TAG_PICKLE: _pickle_loads,
}


def resolve_hmac_key(hmac_key: Union[str, bytes, bytearray, None]) -> Optional[bytes]:
    """The HMAC key in force: `hmac_key` as bytes, else TIERCACHE_HMAC_KEY, else None."""
    if hmac_key is None:
        env = os.environ.get(HMAC_KEY_ENV, "")
        # surrogateescape gives back the raw bytes of a key that is not valid UTF-8 (POSIX).
        return env.encode("utf-8", "surrogateescape") if env else None
    if isinstance(hmac_key, str):
        key = hmac_key.encode("utf-8", "surrogateescape")
    elif isinstance(hmac_key, (bytes, bytearray)):
        key = bytes(hmac_key)
    else:
        raise TypeError(f"hmac_key must be str, bytes or None, got {_type_name(hmac_key)}")
    if not key:
        raise ConfigError("hmac_key must not be empty")
    return key


def _inflate(payload: bytes, limit: int) -> bytes:
    """The zlib stream `payload` inflated, refused once it passes `limit` bytes (no more is inflated)."""
    inflater = zlib.decompressobj()
    try:
        out = inflater.decompress(payload, limit + 1)
    except zlib.error as exc:
        raise SerializationError(f"corrupt zlib stream: {exc}") from exc
    if len(out) > limit:
        del out  # (the traceback keeps this frame)
        raise SerializationError(f"compressed value inflates past max_value_bytes ({limit}); not inflated further")
    # zlib.decompress() would accept a stream followed by junk; a stored value is exactly one stream.
    if not inflater.eof or inflater.unused_data:
        raise SerializationError("corrupt zlib stream: truncated, or followed by stray bytes")
    return out


def _too_large(size: int, limit: int) -> SerializationError:
    return SerializationError(f"value is {size} bytes serialized, more than max_value_bytes ({limit})")


class Codec:
    """Turns values into tagged bytes for L2 and back. Immutable after construction, so thread-safe.

    `serializer` is the format dumps() writes ("msgpack", "json" or "pickle"); loads() reads any format
    this codec can (pickle only with an HMAC key). `compression="zlib"` compresses payloads longer than
    `compress_threshold` bytes, keeping the result only when it is smaller. `hmac_key` (str or bytes,
    default: the TIERCACHE_HMAC_KEY environment variable) signs and verifies pickle; "pickle" without a
    key raises ConfigError. loads() raises SerializationError for bytes it cannot decode, and its subclass
    IntegrityError for pickle data that is unsigned, truncated, tampered or signed with another key.

    `max_value_bytes` caps a serialized value (uncompressed): dumps() raises SerializationError for a larger
    one, and loads() refuses a larger payload or one that inflates past it. A codec without compression
    refuses compressed values rather than inflate them.
    """

    __slots__ = ("name", "compression", "compress_threshold", "max_value_bytes", "_largest", "_tag", "_encode",
                 "_key")

    name: str
    compression: Optional[str]
    compress_threshold: int
    max_value_bytes: int

    def __init__(
        self,
        serializer: str = "msgpack",
        *,
        compression: Optional[str] = None,
        compress_threshold: int = 1024,
        hmac_key: Union[str, bytes, bytearray, None] = None,
        max_value_bytes: int = MAX_VALUE_BYTES,
    ) -> None:
        if not isinstance(serializer, str):
            raise TypeError(f"serializer must be a str, got {_type_name(serializer)} {serializer!r}")
        if serializer not in SERIALIZERS:
            raise ConfigError(f"serializer must be one of {', '.join(SERIALIZERS)}; got {serializer!r}")
        if compression not in COMPRESSIONS:
            raise ConfigError(f"compression must be None or 'zlib', got {compression!r}")
        if isinstance(compress_threshold, bool) or not isinstance(compress_threshold, int):
            got = f"{_type_name(compress_threshold)} {compress_threshold!r}"
            raise TypeError(f"compress_threshold must be an int, got {got}")
        if compress_threshold < 0:
            raise ConfigError(f"compress_threshold must be >= 0, got {compress_threshold!r}")
        if isinstance(max_value_bytes, bool) or not isinstance(max_value_bytes, int):
            raise TypeError(f"max_value_bytes must be an int, got {_type_name(max_value_bytes)} {max_value_bytes!r}")
        if max_value_bytes <= 0:
            raise ConfigError(f"max_value_bytes must be > 0, got {max_value_bytes!r}")
        key = resolve_hmac_key(hmac_key)
        if serializer == "pickle" and key is None:
            raise ConfigError(
                f"serializer='pickle' requires an HMAC key: pass hmac_key= or set {HMAC_KEY_ENV} "
                "(unsigned pickle read from a shared cache would run code for anyone able to write to it)"
            )
        self.name = serializer
        self.compression = compression
        self.compress_threshold = compress_threshold
        self.max_value_bytes = max_value_bytes
        self._largest = max_value_bytes + _HEADER_SIZE  # the longest plain msgpack value loads() takes whole
        self._tag = _TAGS[serializer]
        self._encode = _ENCODERS[serializer]
        self._key = key

    def __repr__(self) -> str:
        key = "<set>" if self._key is not None else None
        return (
            f"Codec({self.name!r}, compression={self.compression!r}, "
            f"compress_threshold={self.compress_threshold!r}, max_value_bytes={self.max_value_bytes!r}, "
            f"hmac_key={key})"
        )

    def __setattr__(self, name: str, value: Any) -> None:
        if hasattr(self, "_key"):  # set last in __init__
            raise AttributeError(f"Codec is immutable; cannot set {name!r}")
        object.__setattr__(self, name, value)

    @property
    def signs(self) -> bool:
        """Whether dumps() signs (pickle): its context then matters."""
        return self._tag == _TAG_PICKLE

    def dumps(self, value: Any, context: bytes = b"") -> bytes:
        """Encode `value` as tagged bytes; SerializationError when this format cannot hold it. A signed format
        (pickle) signs `context` too: loads() then needs the same context (the managers pass
        tiercache.wire.mac_context of the value's L2 key and expiry header)."""
        if self._tag == _TAG_PICKLE and type(value) is int and _INT64_MIN <= value <= _INT64_MAX:
            # an int as msgpack, as msgpack namespaces write it: L2 can add to it (tiercache.wire.added)
            return _PLAIN_MSGPACK + msgpack.packb(value)
        payload = self._encode(value)
        if len(payload) > self.max_value_bytes:
            raise _too_large(len(payload), self.max_value_bytes)
        flags = 0
        if self.compression is not None and len(payload) > self.compress_threshold:
            packed = zlib.compress(payload, _ZLIB_LEVEL)
            if len(packed) < len(payload):
                payload = packed
                flags = _FLAG_ZLIB
        header = bytes((self._tag, flags))
        if self._tag == _TAG_PICKLE:
            assert self._key is not None  # __init__ refuses pickle without a key
            return header + hmac.digest(self._key, context + header + payload, "sha256") + payload
        return header + payload

    def loads(self, data: bytes, context: bytes = b"") -> Any:
        """Decode bytes written by any Codec; SerializationError (IntegrityError for pickle) if invalid.
        `context`: what dumps() was given (signed formats only)."""
        if type(data) is bytes and data[:2] == _PLAIN_MSGPACK and len(data) <= self._largest:  # the common case
            try:
                return _FAST_UNPACKB(data[_HEADER_SIZE:])
            except SerializationError:
                raise
            except Exception as exc:  # any failure here is a corrupt payload (as in _msgpack_loads)
                raise SerializationError(f"corrupt msgpack payload: {type(exc).__name__}: {exc}") from exc
        if type(data) is not bytes:
            if not isinstance(data, (bytearray, memoryview)):
                raise TypeError(f"data must be bytes, got {_type_name(data)}")
            data = bytes(data)
        if len(data) < _HEADER_SIZE:
            raise SerializationError(f"stored value is {len(data)} byte(s), shorter than the 2-byte header")
        tag, flags = data[0], data[1]
        decode = _DECODERS.get(tag)
        if decode is None:
            if tag == wire.TAG_UNBOUND_PICKLE:
                raise IntegrityError("pickle value signed without its key and expiry (an earlier tiercache "
                                     "wrote it); not unpickled")
            raise SerializationError(f"unknown format tag {data[:1]!r} (expected b'M', b'J' or b'S')")
        if tag == _TAG_PICKLE:
            # Verified before anything else is read, flags included: nothing unauthenticated is acted on.
            payload = self._verify(data, context)
        else:
            payload = data[_HEADER_SIZE:]
        if flags & ~_FLAG_ZLIB:
            raise SerializationError(f"unknown flags 0x{flags:02x} in stored value (only bit 0 is defined)")
        if len(payload) > self.max_value_bytes:
            raise _too_large(len(payload), self.max_value_bytes)
        if flags & _FLAG_ZLIB:
            if self.compression is None:
                raise SerializationError("compressed value in a namespace without compression: not inflated")
            payload = _inflate(payload, self.max_value_bytes)
        return decode(payload)

    def read(self, data: bytes, start: int, l2_key: str) -> Any:
        """loads() of a value as L2 holds it under `l2_key`: `data[start:]`, past its expiry header
        `data[:start]`, which a signed value's HMAC covers with the key (tiercache.wire.mac_context)."""
        if len(data) > start and data[start] == _TAG_PICKLE:
            return self.loads(data[start:], wire.mac_context(l2_key, data[:start]))
        return self.loads(data if start == 0 else data[start:])

    def _verify(self, data: bytes, context: bytes) -> bytes:
        if self._key is None:
            raise IntegrityError(
                "stored value is pickle but this codec has no HMAC key "
                f"(pass hmac_key= or set {HMAC_KEY_ENV}); it was not unpickled"
            )
        start = _HEADER_SIZE + _MAC_SIZE
        if len(data) < start:
            raise IntegrityError(f"pickle value is {len(data)} bytes, too short for its HMAC; not unpickled")
        payload = data[start:]
        expected = hmac.digest(self._key, context + data[:_HEADER_SIZE] + payload, "sha256")
        if not hmac.compare_digest(expected, data[_HEADER_SIZE:start]):
            raise IntegrityError(
                "pickle value failed HMAC verification (unsigned, tampered, another key, or moved from "
                "another key or expiry); not unpickled"
            )
        return payload


def get_codec(name: str, **opts: Any) -> Codec:
    """The Codec for serializer `name` ("msgpack", "json" or "pickle"); `opts` as for Codec."""
    if name not in SERIALIZERS:
        raise ConfigError(f"unknown serializer {name!r}; choose one of {', '.join(SERIALIZERS)}")
    return Codec(name, **opts)


_PLAIN_MSGPACK = bytes((_TAG_MSGPACK, 0))  # msgpack, no flags: the fast path of Codec.loads
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_FAST_UNPACKB = _make_fast_unpackb()

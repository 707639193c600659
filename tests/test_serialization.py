"""tiercache.wire.serialization: wire format, round trips per format, compression, corrupt input, signed pickle.

Values are compared through `canon()`, which keeps types (tuple vs list, bytes vs bytearray, 1 vs True vs
1.0), float bit patterns (-0.0, nan), Decimal exponents, datetime fold and tzinfo (offset and name), so a
round trip that comes back merely == does not pass.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hmac
import json
import pickle
import random
import uuid
import zlib
from collections import OrderedDict, defaultdict
from enum import IntEnum
from typing import Any, List

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tiercache.errors import ConfigError, IntegrityError, SerializationError
from tiercache.wire.serialization import HMAC_KEY_ENV, SERIALIZERS, Codec, get_codec

from serialization_helpers import FAST, MAX_OFFSET, canon, json_values, msgpack_codec, msgpack_values

KEY = b"test-key-0123456789"


@pytest.fixture(autouse=True)
def _no_env_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test sees a TIERCACHE_HMAC_KEY from the environment running the suite."""
    monkeypatch.delenv(HMAC_KEY_ENV, raising=False)


def assert_round_trip(codec: Codec, value: Any, expected: Any = None) -> bytes:
    data = codec.dumps(value)
    assert type(data) is bytes
    back = codec.loads(data)
    assert canon(back) == canon(value if expected is None else expected)
    return data


def codecs_that_keep_python_types() -> List[Codec]:
    return [Codec("msgpack"), Codec("pickle", hmac_key=KEY)]


# --- the wire format ------------------------------------------------------------------------------------
def test_header_tags_and_plain_payloads() -> None:
    value = {"a": [1, 2]}
    m = Codec("msgpack").dumps(value)
    assert m[:2] == b"M\x00" and msgpack.unpackb(m[2:]) == value
    j = Codec("json").dumps(value)
    assert j == b'J\x00{"a":[1,2]}'
    p = Codec("pickle", hmac_key=KEY).dumps(value, b"context")
    assert p[:2] == b"S\x00"
    assert p[2:34] == hmac.new(KEY, b"context" + p[:2] + p[34:], "sha256").digest()
    assert pickle.loads(p[34:]) == value


def test_ints_msgpack_holds_natively_use_no_ext_type() -> None:
    for n in (0, -1, 2**63 - 1, 2**64 - 1, -(2**63)):
        assert msgpack_codec().dumps(n)[2:] == msgpack.packb(n)


def test_serializers_and_names() -> None:
    assert SERIALIZERS == ("msgpack", "json", "pickle")
    assert Codec().name == "msgpack"
    for name in SERIALIZERS:
        codec = get_codec(name, hmac_key=KEY, compression="zlib", compress_threshold=10)
        assert (codec.name, codec.compression, codec.compress_threshold) == (name, "zlib", 10)


def test_every_codec_reads_every_format_it_can() -> None:
    value = {"k": [1, "two", None]}
    written = {name: Codec(name, hmac_key=KEY).dumps(value) for name in SERIALIZERS}
    for reader in SERIALIZERS:
        codec = Codec(reader, hmac_key=KEY)
        for data in written.values():
            assert codec.loads(data) == value
    for name in ("msgpack", "json"):
        keyless = Codec(name)
        assert keyless.loads(written["msgpack"]) == keyless.loads(written["json"]) == value
        with pytest.raises(IntegrityError):
            keyless.loads(written["pickle"])


def test_loads_accepts_bytes_like_and_rejects_other_types() -> None:
    data = msgpack_codec().dumps([1])
    assert msgpack_codec().loads(bytearray(data)) == [1]
    assert msgpack_codec().loads(memoryview(data)) == [1]
    with pytest.raises(TypeError, match="data must be bytes, got str"):
        msgpack_codec().loads("M\x00\x91\x01")  # type: ignore[arg-type]


# --- round trips: msgpack and pickle keep Python types --------------------------------------------------
EXACT_VALUES = [
    None, True, False, 0, -1, 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, 2**1000, -(2**1000),
    0.0, -0.0, 1.5, float("inf"), float("-inf"), float("nan"), 5e-324, 1.7976931348623157e308,
    "", "é€😀", "\x00", "\ud800 lone surrogate", ("ok", ["\udcff"]), "x" * 70000,
    b"", bytes(range(256)),
    [], [1, [2, [3]]], (), (1,), (1, (2, [3, (4,)])), [(1, 2), (3, 4)],
    {}, {1: "int key", "s": 2, b"b": 3, None: 4, 1.5: 5, (1, 2): 6, frozenset({1}): 7, True: 8},
    {"nested": {"deeper": {(): [set(), frozenset()]}}},
    set(), {1, "a", (2, 3)}, frozenset({b"x", 1.5}), {frozenset({1, 2}), frozenset()},
    dt.datetime(2024, 2, 29, 23, 59, 59, 999999),
    dt.datetime.min, dt.datetime.max,
    dt.datetime(2024, 10, 27, 2, 30, fold=1),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc),
    dt.datetime(2024, 1, 1, 12, 0, 0, 1, tzinfo=dt.timezone(dt.timedelta(hours=5, minutes=30))),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(-dt.timedelta(hours=3, seconds=7, microseconds=11))),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(MAX_OFFSET, "far east")),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(-MAX_OFFSET)),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(0), "")),
    dt.datetime(2024, 1, 1, tzinfo=dt.timezone(dt.timedelta(0), "UTC")),
    dt.date(1, 1, 1), dt.date(9999, 12, 31), dt.date(2024, 2, 29),
    dt.time(0), dt.time.max, dt.time(1, 2, 3, 4, fold=1),
    dt.time(23, 59, tzinfo=dt.timezone(dt.timedelta(hours=-11), "SST")),
    dt.timedelta(0), dt.timedelta.min, dt.timedelta.max, dt.timedelta(days=-1, microseconds=1),
    decimal.Decimal("0"), decimal.Decimal("-0.000"), decimal.Decimal("1.10"), decimal.Decimal("1E+1000"),
    decimal.Decimal("-1e-1000"), decimal.Decimal("NaN"), decimal.Decimal("-NaN123"), decimal.Decimal("sNaN"),
    decimal.Decimal("Infinity"), decimal.Decimal("-Infinity"),
    decimal.Decimal("3.14159265358979323846264338"),
    uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID("12345678-1234-5678-1234-567812345678"),
]  # fmt: skip


@pytest.mark.parametrize("value", EXACT_VALUES, ids=repr)
@pytest.mark.parametrize("name", ["msgpack", "pickle"])
def test_exact_round_trip(name: str, value: Any) -> None:
    assert_round_trip(Codec(name, hmac_key=KEY), value)


@pytest.mark.parametrize("codec", codecs_that_keep_python_types(), ids=lambda c: c.name)
def test_all_supported_types_in_one_value(codec: Codec) -> None:
    assert_round_trip(codec, EXACT_VALUES)
    assert_round_trip(codec, tuple(EXACT_VALUES))
    assert_round_trip(codec, {i: v for i, v in enumerate(EXACT_VALUES)})


def test_msgpack_bytearray_and_memoryview_come_back_as_bytes() -> None:
    codec = msgpack_codec()
    assert_round_trip(codec, bytearray(b"abc"), expected=b"abc")
    assert_round_trip(codec, [memoryview(b"xy")], expected=[b"xy"])
    assert_round_trip(Codec("pickle", hmac_key=KEY), bytearray(b"abc"))  # pickle keeps bytearray


def test_msgpack_other_tzinfo_comes_back_as_its_fixed_offset() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        paris = zoneinfo.ZoneInfo("Europe/Paris")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no tz database")
    summer = dt.datetime(2024, 7, 1, 12, tzinfo=paris)
    back = msgpack_codec().loads(msgpack_codec().dumps(summer))
    assert back == summer and back.tzinfo == dt.timezone(dt.timedelta(hours=2))
    for fold in (0, 1):  # 02:30 happens twice that night: the offset depends on fold
        value = dt.datetime(2024, 10, 27, 2, 30, tzinfo=paris, fold=fold)
        back = msgpack_codec().loads(msgpack_codec().dumps(value))
        # PEP 495: an ambiguous time never compares equal across zones, so compare instants.
        assert back.timestamp() == value.timestamp() and back.utcoffset() == value.utcoffset()
        assert back.tzinfo == dt.timezone(value.utcoffset())  # type: ignore[arg-type]
    with pytest.raises(SerializationError, match="gives no UTC offset"):
        msgpack_codec().dumps(dt.time(12, tzinfo=paris))  # a time cannot know which offset applies


@FAST
@given(msgpack_values)
def test_msgpack_and_pickle_round_trip_nested_values(value: Any) -> None:
    for codec in codecs_that_keep_python_types():
        assert_round_trip(codec, value)


class Color(IntEnum):
    RED = 1


class MyStr(str):
    pass


@pytest.mark.parametrize(
    "value, type_name",
    [
        (object(), "object"),
        (Color.RED, "Color"),
        (MyStr("x"), "MyStr"),
        (OrderedDict(a=1), "collections.OrderedDict"),
        (defaultdict(list), "collections.defaultdict"),
        ([1, {"a": [complex(1, 2)]}], "complex"),
        ({"k": (1, {2: {3: range(3)}})}, "range"),
        ({1: {frozenset({1j})}}, "complex"),
    ],
    ids=lambda v: type(v).__name__,
)
def test_msgpack_rejects_other_types_naming_them(value: Any, type_name: str) -> None:
    pattern = rf"msgpack cannot encode a value of type (\w+\.)*{type_name}$"
    with pytest.raises(SerializationError, match=pattern):
        msgpack_codec().dumps(value)


def test_msgpack_rejects_a_value_that_contains_itself() -> None:
    loop: List[Any] = [1]
    loop.append(loop)
    with pytest.raises(SerializationError, match="msgpack cannot encode value"):
        msgpack_codec().dumps(loop)


# --- round trips: json ----------------------------------------------------------------------------------
@FAST
@given(json_values)
def test_json_round_trips_nested_values(value: Any) -> None:
    assert_round_trip(Codec("json"), value)


@pytest.mark.parametrize(
    "value",
    [None, True, 0, -(2**200), 2**64, -0.0, 5e-324, 1e308, "", "é€😀 \x00 \ud800"]
    + [[], {}, {"a": {"b": [1, 2.5]}}],
    ids=repr,
)
def test_json_exact_round_trip(value: Any) -> None:
    assert_round_trip(Codec("json"), value)


def test_json_tuples_come_back_as_lists() -> None:
    assert_round_trip(Codec("json"), (1, (2, [3, (4,)])), expected=[1, [2, [3, [4]]]])
    assert_round_trip(Codec("json"), {"t": ()}, expected={"t": []})


def test_json_output_is_compact_utf8() -> None:
    assert Codec("json").dumps({"a": [1, "é"], "b": None}) == 'J\x00{"a":[1,"é"],"b":null}'.encode()


@pytest.mark.parametrize(
    "value, message",
    [
        (b"x", "type bytes"),
        (bytearray(b"x"), "type bytearray"),
        ({1, 2}, "type set"),
        (frozenset(), "type frozenset"),
        (dt.datetime(2024, 1, 1), "type datetime.datetime"),
        (dt.date(2024, 1, 1), "type datetime.date"),
        (decimal.Decimal("1"), "type decimal.Decimal"),
        (uuid.UUID(int=1), "type uuid.UUID"),
        ({"a": [object()]}, "type object"),
        ({1: "a"}, r"dict key of type int \(1\): keys must be str"),
        ({"ok": [{None: 1}]}, "dict key of type NoneType"),
        ({1.5: "a"}, "dict key of type float"),
        ({True: "a"}, "dict key of type bool"),
        ({(1, 2): "a"}, "keys must be str"),
        (float("nan"), "Out of range float"),
        ([float("inf")], "Out of range float"),
        ({"x": float("-inf")}, "Out of range float"),
    ],
    ids=repr,
)
def test_json_rejects_non_json_values(value: Any, message: str) -> None:
    with pytest.raises(SerializationError, match=f"json cannot encode .*{message}"):
        Codec("json").dumps(value)


def test_json_rejects_a_value_that_contains_itself() -> None:
    loop: dict = {}
    loop["self"] = loop
    with pytest.raises(SerializationError, match="Circular reference"):
        Codec("json").dumps(loop)


def test_json_str_containing_a_brace_is_not_mistaken_for_a_dict() -> None:
    assert_round_trip(Codec("json"), "{1: 2}")
    assert_round_trip(Codec("json"), ["{", 1])


# --- compression ----------------------------------------------------------------------------------------
BIG = {"rows": [{"id": i, "name": "name-%d" % i, "tags": ["a", "b"]} for i in range(200)]}


@pytest.mark.parametrize("name", SERIALIZERS)
def test_compression_on_off(name: str) -> None:
    plain = Codec(name, hmac_key=KEY).dumps(BIG)
    assert plain[1] == 0
    packed = Codec(name, hmac_key=KEY, compression="zlib").dumps(BIG)
    assert packed[1] == 1 and len(packed) < len(plain) / 3
    offset = 34 if name == "pickle" else 2
    assert zlib.decompress(packed[offset:]) == plain[offset:]
    reader = Codec(name, hmac_key=KEY, compression="zlib")
    assert reader.loads(packed) == reader.loads(plain) == BIG
    # a codec without compression reads plain values only: it never inflates
    assert Codec(name, hmac_key=KEY).loads(plain) == BIG
    with pytest.raises(SerializationError, match="without compression"):
        Codec(name, hmac_key=KEY).loads(packed)


def test_compression_threshold_is_the_largest_payload_left_alone() -> None:
    value = "a" * 500
    payload_len = len(msgpack_codec().dumps(value)) - 2
    at = Codec(compression="zlib", compress_threshold=payload_len).dumps(value)
    above = Codec(compression="zlib", compress_threshold=payload_len - 1).dumps(value)
    assert at[1] == 0 and len(at) == payload_len + 2
    assert above[1] == 1 and len(above) < len(at)
    assert Codec(compression="zlib").loads(at) == Codec(compression="zlib").loads(above) == value
    assert Codec(compression="zlib").dumps(value)[1] == 0  # default threshold 1024
    assert Codec(compression="zlib", compress_threshold=0).dumps(value)[1] == 1


def test_compression_kept_only_when_smaller() -> None:
    noise = random.Random(3).randbytes(4000)  # zlib cannot shrink it
    data = Codec(compression="zlib", compress_threshold=0).dumps(noise)
    assert data[1] == 0 and msgpack_codec().loads(data) == noise
    tiny = Codec(compression="zlib", compress_threshold=0).dumps(1)
    assert tiny == b"M\x00\x01"


# --- corrupt bytes --------------------------------------------------------------------------------------
def _m(payload: bytes) -> bytes:
    return b"M\x00" + payload


def _ext(code: int, data: bytes) -> bytes:
    return _m(msgpack.packb(msgpack.ExtType(code, data)))


GOOD_M = msgpack_codec().dumps([1, 2, 3])
GOOD_J = Codec("json").dumps({"a": [1, 2]})
GOOD_Z = Codec(compression="zlib", compress_threshold=0).dumps("z" * 200)

CORRUPT = {
    "empty": (b"", "shorter than the 2-byte header"),
    "tag only": (b"M", "shorter than the 2-byte header"),
    "unknown tag": (b"X\x00\x01", r"unknown format tag b'X'"),
    "lower-case tag": (b"m" + GOOD_M[1:], "unknown format tag"),
    "flag bit 1": (b"M\x02" + GOOD_M[2:], "unknown flags 0x02"),
    "flag bit 7": (b"J\x80" + GOOD_J[2:], "unknown flags 0x80"),
    "flags with zlib": (b"M\x03" + GOOD_Z[2:], "unknown flags 0x03"),
    "not zlib": (b"M\x01not a zlib stream", "corrupt zlib stream"),
    "zlib flag on plain data": (b"M\x01" + GOOD_M[2:], "corrupt zlib stream"),
    "truncated zlib": (GOOD_Z[:-3], "corrupt zlib stream"),
    "zlib then junk": (GOOD_Z + b"junk", "corrupt zlib stream"),
    "empty msgpack": (b"M\x00", "corrupt msgpack payload"),
    "truncated msgpack": (GOOD_M[:-1], "corrupt msgpack payload"),
    "msgpack extra data": (GOOD_M + b"\x00", "corrupt msgpack payload"),
    "msgpack reserved byte": (_m(b"\xc1"), "corrupt msgpack payload"),
    "msgpack bad utf-8": (_m(b"\xa1\xff"), "corrupt msgpack payload"),
    "unhashable map key": (_m(b"\x81\x90\x00"), "corrupt msgpack payload"),
    "unknown ext": (_ext(99, b""), "unknown ext type 99"),
    "short datetime": (_ext(5, b"\x07"), "corrupt msgpack payload"),
    "datetime month 13": (_ext(5, bytes.fromhex("07e80d01000000000000000000")), "corrupt msgpack payload"),
    "datetime bad tz kind": (_ext(5, bytes.fromhex("07e80101000000000000000009")), "bad timezone field"),
    "datetime naive with tz bytes": (_ext(5, bytes.fromhex("07e80101000000000000000000") + b"x"), "timezone"),
    "datetime offset too short": (_ext(5, bytes.fromhex("07e8010100000000000000000101")), "bad timezone"),
    "datetime offset out of range": (
        _ext(5, bytes.fromhex("07e80101000000000000000001") + (86400 * 10**6).to_bytes(8, "big")),
        "corrupt msgpack payload",
    ),
    "fold 2": (_ext(7, bytes.fromhex("000000000000000200")), "corrupt msgpack payload"),
    "short date": (_ext(6, b"\x07\xe8"), "corrupt msgpack payload"),
    "long timedelta": (_ext(8, bytes(13)), "corrupt msgpack payload"),
    "decimal garbage": (_ext(9, b"one point five"), "corrupt msgpack payload"),
    "decimal not ascii": (_ext(9, b"\xff"), "corrupt msgpack payload"),
    "short uuid": (_ext(10, b"\x00" * 15), "corrupt msgpack payload"),
    "set of lists": (_ext(3, msgpack.packb([[1]])), "corrupt msgpack payload"),
    "tuple of garbage": (_ext(2, b"\xc1"), "corrupt msgpack payload"),
    "empty json": (b"J\x00", "corrupt json payload"),
    "truncated json": (GOOD_J[:-1], "corrupt json payload"),
    "json extra data": (GOOD_J + b"]", "corrupt json payload"),
    "json bad utf-8": (b'J\x00"\xff"', "corrupt json payload"),
    "json NaN": (b"J\x00[NaN]", "NaN is not a value tiercache writes"),
    "json Infinity": (b"J\x00-Infinity", "Infinity is not a value tiercache writes"),
}


@pytest.mark.parametrize("data, message", CORRUPT.values(), ids=CORRUPT.keys())
def test_corrupt_bytes_raise_serialization_error(data: bytes, message: str) -> None:
    for codec in (Codec(compression="zlib"), Codec("json", compression="zlib"),
                  Codec("pickle", hmac_key=KEY, compression="zlib")):
        with pytest.raises(SerializationError, match=message) as info:
            codec.loads(data)
        assert type(info.value) is SerializationError


def test_deeply_nested_data_is_an_error_not_a_crash() -> None:
    deep = b"\x91" * 100_000 + b"\x00"
    with pytest.raises(SerializationError):
        msgpack_codec().loads(_m(deep))
    with pytest.raises(SerializationError):
        Codec("json").loads(b"J\x00" + b"[" * 100_000 + b"]" * 100_000)
    nested: Any = ()
    for _ in range(5000):  # each tuple is an ext type packed on its own
        nested = (nested,)
    with pytest.raises(SerializationError):
        msgpack_codec().dumps(nested)


prefixes = st.sampled_from([b"", b"M\x00", b"M\x01", b"J\x00", b"J\x01", b"P\x00", b"P\x01"])


def _only_serialization_errors(codec: Codec, data: bytes) -> None:
    try:
        codec.loads(data)
    except SerializationError:
        pass


@settings(max_examples=200, deadline=None)
@given(prefixes, st.binary(max_size=64))
def test_random_bytes_never_raise_anything_else(prefix: bytes, tail: bytes) -> None:
    for codec in (msgpack_codec(), Codec("pickle", hmac_key=KEY)):
        _only_serialization_errors(codec, prefix + tail)


@settings(max_examples=100, deadline=None)
@given(msgpack_values, st.sampled_from(SERIALIZERS), st.booleans(), st.data())
def test_damaged_encodings_never_raise_anything_else(
    value: Any, name: str, compress: bool, data: Any
) -> None:
    codec = Codec(name, hmac_key=KEY, compression="zlib" if compress else None, compress_threshold=0)
    try:
        encoded = codec.dumps(value)
    except SerializationError:  # json refuses most of these values
        encoded = codec.dumps([repr(value)])
    cut = data.draw(st.integers(0, len(encoded) - 1), label="position")
    damaged = data.draw(
        st.sampled_from(
            [
                encoded[:cut],
                encoded[:cut] + bytes([encoded[cut] ^ 0xFF]) + encoded[cut + 1 :],
                encoded[:cut] + encoded[cut + 1 :],
            ]
        ),
        label="damaged",
    )
    _only_serialization_errors(codec, damaged)


# --- pickle: opt-in, signed, verified before anything is unpickled --------------------------------------
DETONATED: List[str] = []


def _detonate(label: str) -> str:
    DETONATED.append(label)
    return label


class Bomb:
    """Unpickling this runs _detonate: proof that a payload was (or was not) unpickled."""

    def __reduce__(self) -> Any:
        return (_detonate, ("unpickled",))


@pytest.fixture
def bomb_data() -> bytes:
    DETONATED.clear()
    data = Codec("pickle", hmac_key=KEY).dumps(Bomb())
    assert Codec("pickle", hmac_key=KEY).loads(data) == "unpickled" and DETONATED == ["unpickled"]
    DETONATED.clear()
    return data


def test_pickle_requires_a_key() -> None:
    with pytest.raises(ConfigError, match=f"requires an HMAC key.*{HMAC_KEY_ENV}"):
        Codec("pickle")
    with pytest.raises(ConfigError, match="requires an HMAC key"):
        get_codec("pickle", compression="zlib")


def test_pickle_key_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(HMAC_KEY_ENV, "s3cret-é")
    data = Codec("pickle").dumps({"a": (1, 2)})
    assert Codec("pickle", hmac_key="s3cret-é").loads(data) == {"a": (1, 2)}
    assert Codec("pickle", hmac_key="s3cret-é".encode()).loads(data) == {"a": (1, 2)}
    assert Codec("msgpack").loads(data) == {"a": (1, 2)}  # any codec holding the key reads pickle
    with pytest.raises(IntegrityError):
        Codec("pickle", hmac_key="other").loads(data)  # an explicit key wins over the environment
    monkeypatch.setenv(HMAC_KEY_ENV, "")
    with pytest.raises(ConfigError):
        Codec("pickle")  # an empty variable is no key
    monkeypatch.delenv(HMAC_KEY_ENV)
    with pytest.raises(IntegrityError, match="no HMAC key"):
        Codec("msgpack").loads(data)


def test_key_type_and_emptiness() -> None:
    with pytest.raises(TypeError, match="hmac_key must be str, bytes or None, got int"):
        Codec("pickle", hmac_key=123)  # type: ignore[arg-type]
    for empty in ("", b""):
        with pytest.raises(ConfigError, match="hmac_key must not be empty"):
            Codec("pickle", hmac_key=empty)
    assert Codec("pickle", hmac_key=bytearray(KEY)).loads(Codec("pickle", hmac_key=KEY).dumps(1)) == 1


def test_tampered_pickle_is_rejected_and_never_unpickled(bomb_data: bytes) -> None:
    codec = Codec("pickle", hmac_key=KEY)
    for i in range(1, len(bomb_data)):  # every byte after the tag, flags and MAC included
        for flip in (0x01, 0x80):
            tampered = bomb_data[:i] + bytes([bomb_data[i] ^ flip]) + bomb_data[i + 1 :]
            with pytest.raises(IntegrityError, match="failed HMAC verification"):
                codec.loads(tampered)
    assert DETONATED == []


def test_truncated_or_extended_pickle_is_rejected_and_never_unpickled(bomb_data: bytes) -> None:
    codec = Codec("pickle", hmac_key=KEY)
    for end in range(2, len(bomb_data)):
        with pytest.raises(IntegrityError):
            codec.loads(bomb_data[:end])
    with pytest.raises(IntegrityError):
        codec.loads(bomb_data + b".")
    assert DETONATED == []


def test_unsigned_pickle_is_rejected_and_never_unpickled(bomb_data: bytes) -> None:
    raw = pickle.dumps(Bomb())
    assert len(raw) > 34  # long enough that the reader sees a "MAC" and a payload
    for flags in (b"\x00", b"\x01"):
        with pytest.raises(IntegrityError):
            Codec("pickle", hmac_key=KEY).loads(b"P" + flags + raw)
    assert DETONATED == []


def test_pickle_signed_with_another_key_or_read_without_one_is_never_unpickled(bomb_data: bytes) -> None:
    with pytest.raises(IntegrityError, match="failed HMAC verification"):
        Codec("pickle", hmac_key=KEY + b"x").loads(bomb_data)
    with pytest.raises(IntegrityError, match="this codec has no HMAC key"):
        Codec("msgpack").loads(bomb_data)
    with pytest.raises(IntegrityError, match="this codec has no HMAC key"):
        Codec("json").loads(b"S\x00")  # even when too short to be anything
    compressed = Codec("pickle", hmac_key=KEY, compression="zlib", compress_threshold=0).dumps([Bomb()] * 50)
    assert compressed[1] == 1
    with pytest.raises(IntegrityError):
        Codec("pickle", hmac_key=KEY + b"x").loads(compressed)
    assert DETONATED == []


def test_signed_pickle_that_cannot_load_is_a_serialization_error() -> None:
    payload = b"cno_such_module_for_tiercache\nThing\n."  # protocol 0 GLOBAL of a missing module
    header = b"S\x00"
    data = header + hmac.new(KEY, header + payload, "sha256").digest() + payload
    with pytest.raises(SerializationError, match="signed pickle payload could not be loaded") as info:
        Codec("pickle", hmac_key=KEY).loads(data)
    assert type(info.value) is SerializationError


def test_pickle_dumps_failure_is_a_serialization_error() -> None:
    with pytest.raises(SerializationError, match="pickle cannot encode a value of type function"):
        Codec("pickle", hmac_key=KEY).dumps(lambda: None)


# --- configuration --------------------------------------------------------------------------------------
def test_unknown_serializer_is_a_config_error_naming_it() -> None:
    with pytest.raises(ConfigError, match="'yaml'"):
        Codec("yaml")
    with pytest.raises(ConfigError, match="unknown serializer 'yaml'"):
        get_codec("yaml")
    with pytest.raises(ConfigError, match="unknown serializer None"):
        get_codec(None)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="serializer must be a str"):
        Codec(b"json")  # type: ignore[arg-type]


def test_bad_compression_settings() -> None:
    with pytest.raises(ConfigError, match="compression must be None or 'zlib', got 'gzip'"):
        Codec(compression="gzip")
    with pytest.raises(ConfigError, match="compress_threshold must be >= 0, got -1"):
        Codec(compress_threshold=-1)
    for bad in ("10", 1.5, True):
        with pytest.raises(TypeError, match="compress_threshold must be an int"):
            Codec(compress_threshold=bad)  # type: ignore[arg-type]


def test_codec_is_immutable_and_its_repr_hides_the_key() -> None:
    codec = Codec("pickle", hmac_key=KEY)
    with pytest.raises(AttributeError):
        codec.name = "json"  # type: ignore[misc]
    with pytest.raises(AttributeError):
        codec.compress_threshold = 0  # type: ignore[misc]
    assert KEY.decode() not in repr(codec) and "hmac_key=<set>" in repr(codec)
    assert repr(Codec()) == ("Codec('msgpack', compression=None, compress_threshold=1024, "
                             "max_value_bytes=16777216, hmac_key=None)")


def test_json_module_is_not_configured_globally() -> None:
    # The codec's own encoder settings must not leak into the stdlib's defaults.
    assert json.dumps({"a": 1}) == '{"a": 1}'

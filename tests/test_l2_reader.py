"""The L2 value reader of each implementation (read_l2_value) against Codec.loads: every value, damaged
bytes, formats and edges."""

from __future__ import annotations

import datetime as dt
import gc
import struct
from typing import Any, List

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiercache.errors import SerializationError

from serialization_helpers import canon, msgpack_codec, msgpack_values


# --- reading L2 values: the compiled core's msgpack reader against Codec.loads ------------------------------
def _read_as_loads_does(impl: Any, data: bytes) -> None:
    """impl's L2 reader gives what Codec.loads gives for `data`: the same value, type for type, or the same
    SerializationError."""
    loads = msgpack_codec().loads
    try:
        expected = loads(data)
    except SerializationError as exc:
        with pytest.raises(SerializationError) as caught:
            impl.module.read_l2_value(data, loads)
        assert str(caught.value) == str(exc)
        return
    assert canon(impl.module.read_l2_value(data, loads)) == canon(expected)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=msgpack_values)
def test_l2_reader_reads_every_value_as_codec_loads(impl: Any, value: Any) -> None:
    _read_as_loads_does(impl, msgpack_codec().dumps(value))


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=msgpack_values, cut=st.integers(min_value=0), flips=st.lists(st.tuples(st.integers(min_value=0),
       st.integers(min_value=0, max_value=255)), max_size=3), tail=st.binary(max_size=3))
def test_l2_reader_rejects_or_reads_damaged_values_as_codec_loads(impl: Any, value: Any, cut: int,
                                                                  flips: List[Any], tail: bytes) -> None:
    """Payloads cut short, with bytes changed or left over: read or rejected exactly as Codec.loads does."""
    data = bytearray(msgpack_codec().dumps(value))
    for at, byte in flips:
        data[2 + at % max(1, len(data) - 2)] = byte
    body = bytes(data[:2 + cut % (len(data) - 1)]) if cut % 3 == 0 else bytes(data)
    _read_as_loads_does(impl, body + tail)


def test_l2_reader_formats_and_edges(impl: Any) -> None:
    """Each msgpack format at its edges, nesting deeper than the C reader goes, msgpack's own timestamp
    type, interned map keys, and what Codec.loads rejects."""
    import sys

    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    values: List[Any] = [0, 127, 128, 2**16, 2**32, 2**64 - 1, -32, -33, -2**63, 1.5, float("nan"), "", "x" * 40,
                         "é" * 70000, b"", b"z" * 70000, list(range(20)), list(range(70000)),
                         {i: i for i in range(20)}, {str(i): i for i in range(70000)}, deep, {"d": deep},
                         [{"k": (1, {2}), "t": dt.datetime(2026, 1, 2, 3, 4, 5)}], "\ud800"]
    for value in values:
        _read_as_loads_does(impl, msgpack_codec().dumps(value))
    raw = [msgpack.packb(msgpack.Timestamp(1, 2)), b"\xca" + struct.pack(">f", 1.5), b"\xd0\x80", b"\xd1\x80\x00",
           b"\xdc\x00\x01\x01", b"\xdd\x00\x00\x00\x01\x01", b"\xde\x00\x01\x01\x02", b"\xdf\x00\x00\x00\x01\x01\x02",
           b"\x81\x91\x01\x02", b"\x81\x81\x01\x02\x03", b"\x82\xa1a\x01\xa1a\x02", b"\xc7\x01\x63z", b"\xd4\x63z",
           b"\xc1", b"\x92\x01", b"\x91\x01\x01", b"\xa2\xff\xfe", b"\xdb\xff\xff\xff\xffa", b"\xdd\xff\xff\xff\xff",
           b"\x9f" * 50, b"\xc9\x00\x00\x00\x02"]
    for payload in raw:
        _read_as_loads_does(impl, b"M\x00" + payload)
    key = sys.intern("".join(["interned", "_key"]))
    got = impl.module.read_l2_value(msgpack_codec().dumps({"interned_key": 1}), msgpack_codec().loads)
    assert next(iter(got)) is key  # (as msgpack does: map keys repeat from value to value)
    with pytest.raises(TypeError):
        impl.module.read_l2_value(bytearray(b"M\x00\x01"), msgpack_codec().loads)


def test_l2_reader_map_keys_are_the_interned_strs(impl: Any) -> None:
    """Every str map key comes back as the interned str of its text, whether it is read for the first time
    or again, whatever else the compiled reader's key table holds in its slot (more keys than it has
    slots), ASCII or not, short or long; str values with non-ASCII characters anywhere read as they were."""
    import sys

    codec = msgpack_codec()
    keys = [f"k{i}" for i in range(1500)] + ["", "é", "ключ", "\ud800", "a\x00b", "x" * 31, "y" * 32, "z" * 40,
                                            "w" * 41, "v" * 300]
    texts = ["a" * n for n in range(20)] + ["a" * n + "é" + "b" * m for n in range(10) for m in (0, 1, 7, 8, 9)]
    for _ in range(2):
        for start in range(0, len(keys), 100):
            value = {k: texts[i % len(texts)] for i, k in enumerate(keys[start:start + 100])}
            got = impl.module.read_l2_value(codec.dumps(value), codec.loads)
            assert got == value
            for k in got:
                assert k is sys.intern((k + ".")[:-1]), k  # (a fresh equal str interns to the same object)


def _nested_claims(size: int, levels: int = 33) -> bytes:
    """A msgpack value of about `size` bytes: `levels` nested array headers, each claiming as many items as
    there are bytes left, then zeros. Not a whole value: it reads as corrupt."""
    body = bytearray(b"M\x00")
    header = 5
    for level in range(levels):
        left = size - len(body) - header
        body += b"\xdd" + struct.pack(">I", left)
    body += b"\x00" * (size - len(body))
    return bytes(body)


@pytest.mark.parametrize("make", [
    pytest.param(_nested_claims, marks=pytest.mark.xfail(
        msgpack.version < (1, 2, 4), strict=True,
        reason="msgpack before 1.2.4 (the newest for Python 3.9 is 1.1.2) sizes nested arrays by their claims")),
    lambda n: b"M\x00" + b"\xdf" + struct.pack(">I", n) + b"\x00" * n])
def test_reading_a_value_allocates_in_proportion_to_its_size(impl: Any, make: Any) -> None:
    """Headers that claim more than the value holds do not size anything ahead: peak memory stays within
    16 bytes per byte read, in both implementations."""
    import tracemalloc

    data = make(1 << 20)
    loads = msgpack_codec().loads
    gc.collect()
    tracemalloc.start()
    try:
        try:
            impl.module.read_l2_value(data, loads)
        except SerializationError:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak <= 16 * len(data), f"{peak / len(data):.1f} bytes allocated per byte read"


# --- keys whose hash the writer chooses ----------------------------------------------------------------------
_M61 = (1 << 61) - 1  # ints that are multiples of it all hash to 0


def _colliding(kind: str, n: int) -> Any:
    import decimal
    import uuid

    if kind == "bigint":
        return [(k + 1) * _M61 << 64 for k in range(n)]
    if kind == "decimal":
        return [decimal.Decimal((k + 1) * _M61) for k in range(n)]
    if kind == "uuid":
        return [uuid.UUID(int=(k + 1) * _M61) for k in range(n)]
    return [((k + 1) * _M61 << 64,) for k in range(n)]  # tuples of them


def _packed(container: str, keys: List[Any]) -> bytes:
    """The stored bytes of `container` of `keys`, packed item by item: building the container itself in
    Python would be the quadratic work under test."""
    from tiercache.wire.serialization import _EXT_FROZENSET, _EXT_SET

    packb = lambda v: msgpack_codec().dumps(v)[2:]  # noqa: E731 (one item, without the format header)
    n = len(keys)
    if container in ("map", "nested"):
        body = b"\xdf" + struct.pack(">I", n) + b"".join(packb(k) + b"\x00" for k in keys)
        if container == "nested":  # [{"a": [body]}]
            body = b"\x91\x81\xa1a\x91" + body
        return b"M\x00" + body
    items = b"\xdd" + struct.pack(">I", n) + b"".join(packb(k) for k in keys)
    code = _EXT_SET if container == "set" else _EXT_FROZENSET
    return b"M\x00" + b"\xc9" + struct.pack(">Ib", len(items), code) + items


@pytest.mark.parametrize("kind", ["bigint", "decimal", "uuid", "tuple"])
@pytest.mark.parametrize("container", ["map", "set", "frozenset", "nested"])
def test_keys_sharing_one_hash_are_refused_without_quadratic_work(impl: Any, kind: str, container: str) -> None:
    """A map or set of thousands of distinct keys with one hash (quadratic to build: seconds for half a
    megabyte) reads as corrupt, with the same error in both implementations; a few such keys still read."""
    keys = _colliding(kind, 5000)
    codec = msgpack_codec()
    with pytest.raises(SerializationError, match="sharing another's hash"):
        impl.module.read_l2_value(_packed(container, keys), codec.loads)
    few = {"map": lambda ks: {k: 0 for k in ks}, "set": set, "frozenset": frozenset,
           "nested": lambda ks: [{"a": [{k: 0 for k in ks}]}]}[container](keys[:16])
    assert impl.module.read_l2_value(_packed(container, keys[:16]), codec.loads) == few


def test_keys_of_native_ints_floats_and_text_take_no_check(impl: Any) -> None:
    """int keys within 64 bits (at most a dozen share a hash), floats, str, bytes, dates: read as written."""
    value = {-1: "a", -2: "b", 1: "c", _M61: "d", 2 * _M61: "e", 1.5: "f", "g": 1, b"h": 2, dt.date(2020, 1, 1): 3,
             None: 4, False: 5}  # (False, as 0 is not a key here: True would be the key 1)
    codec = msgpack_codec()
    assert impl.module.read_l2_value(codec.dumps(value), codec.loads) == value

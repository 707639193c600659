"""CacheManager over the embedded SQLite store (no server): keys, the two tiers, get_or_set, corrupt L2
values, failures."""

from __future__ import annotations

import os
import struct
import threading
import time
from typing import Any, Dict, List

import pytest

from tiercache.config import NamespaceConfig
from tiercache.errors import ConfigError, L2Error, SerializationError
from tiercache.manager import CacheManager, decode_key, encode_key

from outage_helpers import Flaky


def free_port_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


# ---------------------------------------------------------------------------------------------- keys

@pytest.mark.parametrize("key", ["a", "#x", "#i:5", "", "ünï", 0, -7, 10**30, b"", b"\x00\xff", b"#i:1"])
def test_key_encoding_round_trips(key: Any) -> None:
    part = encode_key(key)
    assert isinstance(part, str)
    assert decode_key(part) == key and type(decode_key(part)) is type(key)


def test_int_str_and_bytes_keys_stay_distinct(manager: CacheManager, sqlite_url: str) -> None:
    manager.set("ns", 1, "int")
    manager.set("ns", "1", "str")
    manager.set("ns", b"1", "bytes")
    with CacheManager(sqlite_url, env="test") as other:  # a fresh L1: everything comes from L2
        assert [other.get("ns", k) for k in (1, "1", b"1")] == ["int", "str", "bytes"]


@pytest.mark.parametrize("key", [1.5, None, (1, 2), True])
def test_other_key_types_are_rejected(manager: CacheManager, key: Any) -> None:
    with pytest.raises(TypeError, match="key must be str, bytes or int"):
        manager.set("ns", key, 1)
    with pytest.raises(TypeError, match="key must be str, bytes or int"):
        manager.get("ns", key)


@pytest.mark.parametrize("namespace", ["", "a:b", "with space", 3])
def test_bad_namespace_is_rejected(manager: CacheManager, namespace: Any) -> None:
    with pytest.raises((TypeError, ValueError), match="namespace"):
        manager.set(namespace, "k", 1)


# ---------------------------------------------------------------------------------- two-tier semantics

def test_set_writes_both_tiers_and_get_promotes(manager: CacheManager, sqlite_url: str) -> None:
    manager.set("users", "u1", {"name": "Ada", "tags": ("x", "y")})
    assert manager.get("users", "u1") == {"name": "Ada", "tags": ("x", "y")}
    with CacheManager(sqlite_url, env="test") as other:
        assert other.stats()["namespaces"] == {}
        assert other.get("users", "u1") == {"name": "Ada", "tags": ("x", "y")}  # from L2
        assert other.stats()["l2_hits"] == 1 and other.stats()["promotions"] == 1
        assert other.get("users", "u1")["name"] == "Ada"  # now from L1
        assert other.stats()["l2_hits"] == 1
        assert other.stats()["namespaces"]["users"]["hits"] == 1


def test_namespaces_isolate_keys(manager: CacheManager, sqlite_url: str) -> None:
    manager.set("a", "k", 1)
    manager.set("b", "k", 2)
    assert (manager.get("a", "k"), manager.get("b", "k")) == (1, 2)
    manager.clear("a")
    with CacheManager(sqlite_url, env="test") as other:
        assert (other.get("a", "k"), other.get("b", "k")) == (None, 2)


def test_environments_isolate_keys(sqlite_url: str) -> None:
    with CacheManager(sqlite_url, env="test") as t, CacheManager(sqlite_url, env="production") as p:
        t.set("ns", "k", "test-value")
        assert p.get("ns", "k") is None


def test_l1_ttl_then_l2(sqlite_url: str, clock: Any) -> None:
    cfg = {"short": NamespaceConfig(l1_ttl=10, l2_ttl=None)}
    with CacheManager(sqlite_url, env="test", config=cfg, timer=clock) as m:
        m.set("short", "k", "v")
        clock.advance(11)  # gone from L1, still in L2
        assert m.stats()["namespaces"]["short"]["entries"] == 0
        assert m.get("short", "k") == "v"
        assert m.stats()["l2_hits"] == 1


def test_delete_and_missing(manager: CacheManager) -> None:
    assert manager.get("ns", "nope", "dflt") == "dflt"
    manager.set("ns", "k", 1)
    assert manager.delete("ns", "k") is True
    assert manager.get("ns", "k") is None
    assert manager.delete("ns", "k") is False


def test_get_many_and_set_many(manager: CacheManager, sqlite_url: str) -> None:
    assert manager.set_many("ns", {"a": 1, "b": [2], 3: "three"}) == 3
    with CacheManager(sqlite_url, env="test") as other:
        other.set("ns", "c", "only-l1-and-l2")
        assert other.get_many("ns", ["a", "b", 3, "c", "zzz"]) == {"a": 1, "b": [2], 3: "three",
                                                                     "c": "only-l1-and-l2"}
        assert other.stats()["l2_hits"] == 3


def test_set_many_with_an_unserializable_value_stores_nothing(manager: CacheManager) -> None:
    with pytest.raises(SerializationError):
        manager.set_many("ns", {"a": 1, "b": object()})
    assert manager.get_many("ns", ["a", "b"]) == {}


def test_bad_ttl_is_rejected_and_stores_nothing(manager: CacheManager) -> None:
    for ttl in (-1, 0, float("nan"), float("inf"), "10"):
        with pytest.raises(ValueError, match="ttl"):
            manager.set("ns", "k", 1, ttl=ttl)
    assert manager.get("ns", "k") is None


def test_warmup(manager: CacheManager) -> None:
    assert manager.warmup("ns", [("a", 1), ("b", 2)]) == 2
    assert manager.get_many("ns", ["a", "b"]) == {"a": 1, "b": 2}


def test_l1_weighs_values_by_the_memory_they_hold(manager: CacheManager) -> None:
    """An entry weighs what it holds in memory (deep_sizer), written or promoted, so max_bytes bounds memory:
    a thousand empty dicts weigh far more than their thousand bytes of msgpack."""
    from tiercache import deep_sizer

    manager.set("ns", "k", "x" * 1000)
    assert manager.stats()["namespaces"]["ns"]["bytes"] == deep_sizer("x" * 1000)
    dicts = [{} for _ in range(1000)]
    manager.set("ns", "d", dicts)
    manager.l1("ns").clear()
    promoted = manager.get("ns", "d")
    assert promoted == dicts
    assert manager.stats()["namespaces"]["ns"]["bytes"] == deep_sizer(promoted) > 50 * 1000


def test_config_errors_name_namespace_and_field(sqlite_url: str) -> None:
    with pytest.raises(ConfigError, match=r"'reports'.*l1_ttl"):
        CacheManager(sqlite_url, env="test", config={"reports": {"l1_ttl": -5}})
    with pytest.raises(ConfigError, match="env"):
        CacheManager(sqlite_url, env="staging")


# ------------------------------------------------------------------------------ get_or_set, decorator

def test_get_or_set_single_flight_32_threads(manager: CacheManager) -> None:
    calls: List[int] = []
    gate = threading.Event()

    def loader() -> str:
        calls.append(1)
        gate.wait(5)
        return "loaded"

    results: List[Any] = []
    start = threading.Barrier(32)

    def worker() -> None:
        start.wait()
        results.append(manager.get_or_set("ns", "hot", loader))

    threads = [threading.Thread(target=worker) for _ in range(32)]
    for t in threads:
        t.start()
    deadline = time.monotonic() + 5
    while len(manager._flights) == 0 and time.monotonic() < deadline:
        time.sleep(0.001)
    # let the followers reach the flight before the leader finishes
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(10)
    assert results == ["loaded"] * 32
    assert len(calls) == 1
    assert manager.stats()["loader_calls"] == 1


def test_get_or_set_loader_error_reaches_every_waiter(manager: CacheManager) -> None:
    gate = threading.Event()
    calls: List[int] = []

    def loader() -> Any:
        calls.append(1)
        gate.wait(5)
        raise RuntimeError("backend down")

    errors: List[BaseException] = []

    def worker() -> None:
        try:
            manager.get_or_set("ns", "k", loader)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    time.sleep(0.05)
    gate.set()
    for t in threads:
        t.join(10)
    assert len(errors) == 8 and all(str(e) == "backend down" for e in errors)
    assert len(calls) == 1  # one flight: every waiter got the leader's exception
    assert manager.get("ns", "k") is None


def test_cached_decorator(manager: CacheManager) -> None:
    calls: List[Any] = []

    @manager.cached("fn", ttl=60)
    def square(x: int, *, extra: int = 0) -> int:
        calls.append(x)
        return x * x + extra

    assert square(4) == 16 and square(4) == 16
    assert square(4, extra=1) == 17
    assert calls == [4, 4]

    @manager.cached("fn", key=lambda user_id: f"user:{user_id}")
    def load_user(user_id: int) -> dict:
        return {"id": user_id}

    assert load_user(7) == {"id": 7}
    assert manager.get("fn", "user:7") == {"id": 7}


def test_cached_rejects_coroutine_functions(manager: CacheManager) -> None:
    async def coro() -> None:
        return None

    with pytest.raises(TypeError, match="async"):
        manager.cached("ns")(coro)


# -------------------------------------------------------------------------- corrupt and tampered L2

def test_corrupt_bytes_in_l2_are_a_counted_miss(manager: CacheManager, sqlite_url: str) -> None:
    l2 = manager.l2
    l2.set(manager._l2_key("ns", "bad"), b"\x00garbage")
    assert manager.get("ns", "bad", "dflt") == "dflt"
    assert manager.stats()["corrupt_values"] == 1


def _mixed_l2_values(manager: CacheManager) -> "List[tuple]":
    """(key, stored bytes, expected value or None for corrupt) for every kind of value the decoder meets:
    good msgpack between bad ones (cut short, trailing bytes, an unknown ext type, unknown flags), json,
    zlib, a long payload, and a sealed one."""
    import msgpack
    import zlib

    dumps = manager._codec(manager.namespace_config("ns")).dumps
    good = [{"v": i, "t": (i, "x"), "s": {i}} for i in range(4)]
    big = ["y" * 70000, {"z": b"z" * 70000}]
    rows = [
        ("g0", dumps(good[0]), good[0]),
        ("cut", dumps(good[1])[:-3], None),  # the stream would wait for more bytes
        ("g1", dumps(good[1]), good[1]),
        ("trail", dumps(good[2]) + b"\x01", None),  # one value, then a stray byte
        ("g2", dumps(good[2]), good[2]),
        ("ext", b"M\x00" + msgpack.packb(msgpack.ExtType(99, b"zz")), None),
        ("flags", b"M\x02" + msgpack.packb(1), None),
        ("json", b"J\x00" + b'{"a": [1, 2]}', {"a": [1, 2]}),
        ("zlib", b"M\x01" + zlib.compress(msgpack.packb([1, 2, 3])), None),  # (the namespace does not compress)
        ("big", dumps(big), big),
        ("sealed", b"X" + struct.pack("<d", time.time() + 60) + dumps(good[3]), good[3]),
        ("g3", dumps(good[3]), good[3]),
    ]
    for key, data, _ in rows:
        manager.l2.set(manager._l2_key("ns", key), data)
    return rows


def test_every_l2_value_decodes_as_codec_loads_does(manager: CacheManager) -> None:
    """get and get_many decode through one long-lived msgpack stream; whatever it cannot take cleanly
    (and what comes after it) still decodes, or is a counted corrupt value, exactly as Codec.loads says."""
    rows = _mixed_l2_values(manager)
    expected = {key: value for key, _, value in rows if value is not None}
    bad = sum(value is None for _, _, value in rows)
    assert manager.get_many("ns", [key for key, _, _ in rows]) == expected
    assert manager.stats()["corrupt_values"] == bad
    manager.l1("ns").clear()
    for key, _, value in rows:
        assert manager.get("ns", key, "dflt") == ("dflt" if value is None else value)
    assert manager.stats()["corrupt_values"] == 2 * bad


_ABSENT = object()


def _scalar_payloads() -> "List[bytes]":
    """msgpack payloads of one scalar in every format, at the edges of each, and near misses: lengths
    that do not match, invalid UTF-8, a lone surrogate (which tiercache writes with surrogatepass)."""
    import msgpack

    values: List[Any] = [0, 1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**64 - 1, -1, -32, -33,
                         -128, -129, -32768, -32769, -2**31, -2**31 - 1, -2**63, 0.0, -2.5, 1e300, float("inf"),
                         None, True, False, "", "a", "x" * 31, "x" * 32, "é" * 200, "y" * 70000, b"", b"\x00",
                         b"z" * 255, b"z" * 256, b"z" * 70000]
    payloads = [msgpack.packb(v, use_bin_type=True) for v in values]
    payloads += [b"\xca" + struct.pack(">f", 1.5), b"\xcc\x05", b"\xcd\x00\x05", b"\xd0\x80", b"\xd1\x80\x00",
                 b"\xd9\x01a", b"\xda\x00\x01a", b"\xdb\x00\x00\x00\x01a", b"\xc4\x01z", b"\xc5\x00\x01z",
                 b"\xa3" + "\ud800".encode("utf-8", "surrogatepass")]
    # near misses: Codec.loads rejects each, so the fast path must not read them
    payloads += [b"\xa2\xff\xfe", b"\xa2a", b"\xa1ab", b"\xc4\x02z", b"\xc4\x01zz", b"\xc5\x00", b"\xcd\x05",
                 b"\xcc\x05\x00", b"\x05\x00", b"\xff\x00", b"\xc0\x00", b"\xc3\x00", b"\xcb\x00", b"\xd9",
                 b"\xc1", b"\xdb\xff\xff\xff\xffa"]
    return payloads


def test_scalar_l2_values_decode_as_codec_loads_does(manager: CacheManager) -> None:
    """A value that is one msgpack scalar is read without msgpack's unpacker: the same value and type as
    Codec.loads for every format, plain and behind an expiry header; what Codec.loads rejects is a
    counted corrupt value (a miss), through get and get_many alike."""
    from tiercache.errors import SerializationError

    codec = manager._codec(manager.namespace_config("ns"))
    expected: Dict[str, Any] = {}
    keys = []
    for i, payload in enumerate(_scalar_payloads()):
        for sealed in (False, True):
            key = f"s{i}{'x' if sealed else ''}"
            data = b"M\x00" + payload
            try:
                expected[key] = codec.loads(data)
            except SerializationError:
                pass
            if sealed:
                data = b"X" + struct.pack("<d", time.time() + 60) + data
            manager.l2.set(manager._l2_key("ns", key), data)
            keys.append(key)
    bad = len(keys) - len(expected)
    assert bad == 32  # (16 near misses, each plain and sealed)

    def same(got: Dict[Any, Any]) -> None:
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            assert type(got[key]) is type(value) and (got[key] == value or value != value), key

    same(manager.get_many("ns", keys))
    assert manager.stats()["corrupt_values"] == bad
    manager.l1("ns").clear()
    same({key: value for key in keys if (value := manager.get("ns", key, _ABSENT)) is not _ABSENT})
    assert manager.stats()["corrupt_values"] == 2 * bad


def _get_many_story(m: CacheManager) -> List[Any]:
    """A run of get_many calls covering the compiled path and each way out of it; what each returned, then
    the counters, L1's stats and contents."""
    dumps = m._codec(m.namespace_config("hot")).dumps
    m.set_many("hot", {f"k{i}": {"v": i} for i in range(12)})
    m.set_many("hot", {i: [i] for i in range(4)})
    m.set_many("hot", {"#h": 1, "é": 2, b"b": 3})
    m.set_many("gated", {f"k{i}": i for i in range(6)})
    m.set_many("other", {f"k{i}": i for i in range(6)})
    m.l2.set(m._l2_key("hot", "bad"), b"M\x00\xc1")
    m.l2.set(m._l2_key("hot", "old"), b"X" + struct.pack("<d", time.time() - 5) + dumps(1))
    m.l2.set(m._l2_key("hot", "soon"), b"X" + struct.pack("<d", time.time() + 60) + dumps("s"))
    for name in ("hot", "gated", "other"):
        m.l1(name).clear()
    keys = [f"k{i}" for i in range(12)]
    out: List[Any] = [
        m.get_many("hot", keys[:6]),  # all from L2
        m.get_many("hot", keys[3:9] + ["absent", 2, 3]),  # L1 hits, L2 hits, a miss, int keys
        m.get_many("hot", tuple(keys[:4])),  # all L1 hits (a tuple)
        m.get_many("hot", keys[9:] + ["k9", 1]),  # a key twice
        m.get_many("hot", ["#h", "é", b"b", "k0"]),  # encoded key forms
        m.get_many("hot", ["bad", "old", "soon", "k10", "k11"]),  # corrupt, expired, sealed
        m.get_many("hot", iter(["k1", "k2", 0])),  # not a list
        m.get_many("gated", ["k0", "k1", "k2"]),  # a namespace whose promotion is gated
        m.get_many("other", ["k0", "k1", "k9"]),  # default settings
        m.get_many("hot", []),
        m.get_many("hot", [f"m{i}" for i in range(300)] + keys),  # more keys than the stack table holds
        m.get_many("hot", [f"m{i}" for i in range(300)] + ["m7"]),  # ... and one of them twice
    ]
    real = m.l2.get_many

    def overtaken(l2_keys: List[str]) -> Any:
        datas = real(l2_keys)
        m.delete("hot", "k5")  # a write lands while L2 answers: nothing read may go into L1
        return datas

    m.l1("hot").clear()
    m.l2.get_many = overtaken  # type: ignore[method-assign]
    out.append(m.get_many("hot", ["k4", "k6"]))
    m.l2.get_many = real  # type: ignore[method-assign]
    stats = m.stats()
    hot = m.l1("hot")
    held = [k for k in keys + ["bad", "old", "soon", "absent", 0, 1, 2, 3, "#h", "é", b"b"]
            if hot.peek(k, _ABSENT) is not _ABSENT]
    return out + [stats, m.counters.by_namespace(), held]


def test_get_many_compiled_path_counts_as_the_general_one(tmp_path: Any, clock: Any) -> None:
    """The compiled get_many (the common case in C) and the general one return the same values and leave
    the same counters and L1 behind, call for call, including the calls it hands back."""
    cfg = {"hot": NamespaceConfig(promotion="immediate", l1_max_entries=64),
           "gated": NamespaceConfig(promotion="conditional")}
    runs = []
    for fast in (True, False):
        with CacheManager(f"sqlite:///{tmp_path}/{fast}.db", env="test", config=cfg, timer=clock,
                          invalidation=False) as m:  # (when invalidations go out is not the point here)
            runs.append(_get_many_story(m))
    assert runs[0] == runs[1]
    assert runs[0][0] == {f"k{i}": {"v": i} for i in range(6)}
    assert runs[0][5] == {"soon": "s", "k10": {"v": 10}, "k11": {"v": 11}}
    stats = runs[0][-3]
    assert stats["corrupt_values"] == 1 and stats["promotions_skipped_stale"] == 2


def test_get_many_on_a_failing_l2_counts_the_error_and_returns_l1(clock: Any) -> None:
    """An L2 that fails during get_many: what L1 holds comes back, the error is counted once, both ways."""
    cfg = {"hot": NamespaceConfig(promotion="immediate", persist_to_l2=True)}
    for fast in (True, False):
        with CacheManager(free_port_url(), env="test", config=cfg, invalidation=False, timer=clock) as m:
            m.set("hot", "a", 1)
            assert m.get_many("hot", ["a", "b", "c"]) == {"a": 1}
            stats = m.stats()
            assert stats["l2_errors"] == 2 and stats["l2_hits"] == 0  # (the set, then the get_many)


@pytest.mark.parametrize("key", ["plain", "#hash", "ключ", 7, b"\x00b"])
def test_expiry_header_in_l2_is_honoured_and_checked(manager: CacheManager, key: Any) -> None:
    """The L2-hit path reads the expiry in front of a value: past it is a miss, a cut-off header is a counted
    corrupt value, and a value copied into L1 keeps no longer than it has left in L2 (any key form)."""
    l2_key = manager._l2_key("ns", key)
    payload = manager._codec(manager.namespace_config("ns")).dumps({"v": 1})
    manager.l2.set(l2_key, b"X" + struct.pack("<d", time.time() - 5) + payload)
    assert manager.get("ns", key, "dflt") == "dflt"  # expired in L2 (its own expiry is lazy)
    manager.l2.set(l2_key, b"X\x00\x01")
    assert manager.get("ns", key, "dflt") == "dflt"
    assert manager.stats()["corrupt_values"] == 1
    manager.l2.set(l2_key, b"X" + struct.pack("<d", time.time() + 30) + payload)
    assert manager.get("ns", key) == {"v": 1}
    left = manager.l1("ns").ttl(key)
    assert left is not None and 0 < left <= 30
    assert manager.stats()["corrupt_values"] == 1


def test_tampered_pickle_is_rejected_never_unpickled(sqlite_url: str) -> None:
    cfg = {"objs": NamespaceConfig(serializer="pickle")}
    with CacheManager(sqlite_url, env="test", config=cfg, hmac_key=b"k" * 32) as m:
        m.set("objs", "k", {"a": 1})
        key = m._l2_key("objs", "k")
        data = bytearray(m.l2.get(key))
        data[-1] ^= 0xFF
        m.l2.set(key, bytes(data))
        m.l1("objs").clear()
        assert m.get("objs", "k") is None
        assert m.stats()["corrupt_values"] == 1


# ------------------------------------------------------------------------------- failure behaviour

def test_unreachable_redis_never_raises(clock: Any) -> None:
    with CacheManager(free_port_url(), env="test", invalidation=False) as m:
        assert m.set("ns", "k", "v") is True  # L2 write dropped, L1 keeps it
        assert m.get("ns", "k") == "v"
        assert m.get("ns", "absent", "d") == "d"
        assert m.get_many("ns", ["k", "absent"]) == {"k": "v"}
        assert m.get_or_set("ns", "x", lambda: 42) == 42
        assert m.delete("ns", "k") is True
        stats = m.stats()
        assert stats["l2_errors"] >= 1 and stats["l2_writes_dropped"] >= 1
        assert stats["circuit"]["state"] == "open" or stats["l2_errors"] < m.circuit.failure_threshold


def test_strict_mode_raises(clock: Any) -> None:
    with CacheManager(free_port_url(), env="test", strict=True, invalidation=False) as m:
        with pytest.raises(L2Error):
            m.set("ns", "k", "v")
        with pytest.raises(L2Error):
            m.get("ns", "absent")


def test_stale_copy_served_when_l2_and_loader_fail(clock: Any) -> None:
    cfg = {"grace": NamespaceConfig(l1_ttl=10, l1_grace_period=30)}
    with CacheManager(free_port_url(), env="test", config=cfg, timer=clock, invalidation=False) as m:
        m.set("grace", "k", "old")
        clock.advance(15)  # past l1_ttl, within the grace period

        def failing() -> Any:
            raise RuntimeError("loader down")

        assert m.get_or_set("grace", "k", failing) == "old"
        assert m.stats()["stale_served"] == 1
        assert m.get("grace", "k") == "old"
        assert m.stats()["stale_served"] == 2
        m.set("grace", "k2", "old2")
        clock.advance(0.5)
        assert m.stats()["stale_served"] == 2
        clock.advance(30)  # past the grace period too (k2 is stale but within its own)
        assert m.get_or_set("grace", "k2", lambda: "fresh") == "fresh"  # a loader that works wins
        assert m.stats()["stale_served"] == 2
        with pytest.raises(RuntimeError):
            m.get_or_set("grace", "k", failing)
        assert m.get("grace", "k") is None


def test_read_path_counters_survive_a_settings_change(manager: CacheManager) -> None:
    manager.set("ns", "k", 1)
    manager.l1("ns").clear()
    assert manager.get("ns", "k") == 1 and manager.get("ns", "absent") is None
    counts = manager.counters.by_namespace()["ns"]
    assert (counts["l2_hits"], counts["l2_misses"], counts["promotions"]) == (1, 1, 1)
    manager.update_namespace("ns", l1_ttl=20)  # a new namespace state: the counts carry over
    manager.l1("ns").clear()
    assert manager.get("ns", "k") == 1
    counts = manager.counters.by_namespace()["ns"]
    assert (counts["l2_hits"], counts["l2_misses"]) == (2, 1) and manager.stats()["l2_hits"] == 2


# ------------------------------------------------------------------------------- hostile L2 bytes

@pytest.mark.parametrize("l1_ttl", [300.0, None])
def test_rows_that_are_not_values_read_as_counted_misses(sqlite_url: str, clock: Any, l1_ttl: Any) -> None:
    """Rows written by someone else: not BLOBs, or an expiry header that is not a finite time."""
    import math
    import sqlite3

    cfg = {"ns": NamespaceConfig(l1_ttl=l1_ttl, l2_ttl=None)}
    bad = {"text": "text", "int": 42, "real": 1.5,
           "nan": struct.pack("<cd", b"X", math.nan) + b"M\x00\x01",
           "inf": struct.pack("<cd", b"X", math.inf) + b"M\x00\x01",
           "-inf": struct.pack("<cd", b"X", -math.inf) + b"M\x00\x01"}
    with CacheManager(sqlite_url, env="test", config=cfg, timer=clock, invalidation=False) as m:
        m.set_many("ns", {k: 1 for k in bad})
        with sqlite3.connect(sqlite_url[len("sqlite:///"):]) as conn:
            for k, v in bad.items():
                conn.execute("UPDATE entries SET value = ? WHERE key = ?", (v, m._l2_key("ns", k)))
        m.l1("ns").clear()
        assert [m.get("ns", k, "miss") for k in bad] == ["miss"] * len(bad)
        assert m.get_many("ns", list(bad)) == {}
        assert m.stats()["corrupt_values"] == 2 * len(bad) and len(m.l1("ns")) == 0


def _peak_bytes(fn: Any) -> int:
    """Peak memory (tracemalloc) allocated while fn() runs."""
    import gc
    import tracemalloc

    gc.collect()
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("compression", ["zlib", None])
def test_compressed_values_inflate_no_further_than_max_value_bytes(sqlite_url: str, compression: Any) -> None:
    """Values of 64 KiB that inflate to 64 MiB each: a namespace with compression stops inflating at its
    max_value_bytes, one without never inflates; either way a counted corrupt miss, memory bounded."""
    import zlib

    import msgpack

    bomb = b"M\x01" + zlib.compress(msgpack.packb(b"\x00" * (64 << 20)), 9)
    assert len(bomb) < 100_000
    cfg = {"ns": NamespaceConfig(compression=compression, max_value_bytes=1 << 20, l1_max_bytes=1 << 20)}
    with CacheManager(sqlite_url, env="test", config=cfg, invalidation=False) as m:
        keys = [f"b{i}" for i in range(8)]
        for key in keys:
            m.l2.set(m._l2_key("ns", key), bomb)
        assert _peak_bytes(lambda: [m.get("ns", key) for key in keys]) < 8 << 20
        assert _peak_bytes(lambda: m.get_many("ns", keys)) < 8 << 20
        assert m.stats()["corrupt_values"] == 16 and len(m.l1("ns")) == 0


def test_values_larger_than_max_value_bytes_are_refused_both_ways(sqlite_url: str) -> None:
    """A write over the namespace's max_value_bytes raises and stores nothing; such a value in L2 (written by
    someone else) reads as a counted corrupt miss."""
    cfg = {"ns": NamespaceConfig(max_value_bytes=1000), "wide": NamespaceConfig()}
    with CacheManager(sqlite_url, env="test", config=cfg, invalidation=False) as m:
        with pytest.raises(SerializationError, match="max_value_bytes"):
            m.set("ns", "k", "x" * 1000)
        with pytest.raises(SerializationError, match="max_value_bytes"):
            m.set_many("ns", {"a": 1, "k": "x" * 1000})
        assert m.get_many("ns", ["a", "k"]) == {} and m.l2.get(m._l2_key("ns", "a")) is None
        m.set("wide", "k", "x" * 1000)
        m.l2.set(m._l2_key("ns", "k"), m.l2.get(m._l2_key("wide", "k")))
        assert m.get("ns", "k", "miss") == "miss" and m.get_many("ns", ["k"]) == {}
        assert m.stats()["corrupt_values"] == 2
        m.set("ns", "k", "x" * 990)  # at the limit (its msgpack payload: 993 bytes)
        m.l1("ns").clear()
        assert m.get("ns", "k") == "x" * 990


def test_l1_max_bytes_bounds_the_memory_of_what_l1_holds(sqlite_url: str) -> None:
    """Empty maps: one byte of msgpack, about sixty in memory. Values of them read from L2 are weighed by
    what they hold, so a 1 MiB L1 holds no more than that (the 1 MiB value itself is not kept at all)."""
    from tiercache import deep_sizer

    cfg = {"ns": NamespaceConfig(l1_max_bytes=1 << 20)}
    with CacheManager(sqlite_url, env="test", config=cfg, invalidation=False) as m:
        for i in range(8):
            m.l2.set(m._l2_key("ns", f"k{i}"), b"M\x00\xdd" + struct.pack(">I", 1 << 13) + b"\x80" * (1 << 13))
        held = [m.get("ns", f"k{i}") for i in range(8)]  # 8 KiB stored each, over half a MiB in memory
        assert all(len(v) == 1 << 13 for v in held)
        stats = m.l1("ns").stats()
        assert stats["entries"] == 1 and stats["bytes"] == deep_sizer(held[-1]) > (1 << 19)
        m.l2.set(m._l2_key("ns", "big"), b"M\x00\xdd" + struct.pack(">I", 1 << 20) + b"\x80" * (1 << 20))
        assert len(m.get("ns", "big")) == 1 << 20 and "big" not in m.l1("ns")


def test_signed_values_are_bound_to_their_key_and_expiry(sqlite_url: str) -> None:
    """Signed (pickle) bytes moved to another key or namespace, stripped of their expiry or given another
    one, or signed the way earlier versions did (tag, flags and payload only): counted corrupt misses,
    never unpickled."""
    import hmac
    import pickle

    key = b"k" * 32
    cfg = {"a": NamespaceConfig(serializer="pickle", l2_ttl=600.0), "b": NamespaceConfig(serializer="pickle")}
    with CacheManager(sqlite_url, env="test", config=cfg, hmac_key=key, invalidation=False) as m:
        m.set("a", "admin", {"role": "admin"})
        m.set("b", "admin", {"role": "admin"})
        stored, unsealed = m.l2.get(m._l2_key("a", "admin")), m.l2.get(m._l2_key("b", "admin"))
        assert stored[:1] == b"X" and unsealed[:1] == b"S"
        later = b"X" + struct.pack("<d", struct.unpack_from("<d", stored, 1)[0] + 10 * 365 * 86400)
        payload = pickle.dumps({"role": "admin"})
        moved = {("a", "bob"): stored, ("b", "admin"): stored, ("b", "bob"): unsealed,
                 ("a", "cut"): stored[9:], ("a", "later"): later + stored[9:],
                 ("a", "old"): b"P\x00" + hmac.digest(key, b"P\x00" + payload, "sha256") + payload}
        for (ns, k), data in moved.items():
            m.l2.set(m._l2_key(ns, k), data)
        m.l1("a").clear()
        m.l1("b").clear()
        assert [m.get(ns, k, "miss") for ns, k in moved] == ["miss"] * len(moved)
        assert m.get_many("a", ["bob", "cut", "later", "old"]) == {}
        assert m.stats()["corrupt_values"] == len(moved) + 4
        assert m.get("a", "admin") == {"role": "admin"}  # where it was written, it reads
        m.set("b", "admin", {"role": "admin"})
        m.l1("b").clear()
        assert m.get("b", "admin") == {"role": "admin"}


def test_hostile_l2_values_never_break_a_read(sqlite_url: str) -> None:
    """Fuzz (bounded): damaged, random and mislabelled values in SQLite, read by get and get_many."""
    from l2_fuzz_helpers import fuzz_reads

    fuzz_reads(sqlite_url, max_examples=150)


@pytest.mark.parametrize("name", ["a\n", "a\nb", "\na", "a ", "", "a" * 129, "a/b"])
def test_namespace_names_are_matched_whole(manager: CacheManager, tmp_path: Any, name: str) -> None:
    with pytest.raises(ValueError, match="namespace"):
        manager.set(name, "k", 1)
    store = tmp_path / "never" / "l2.sqlite3"
    with pytest.raises(ConfigError):
        CacheManager(f"sqlite:///{store}", env="test", config={name: NamespaceConfig()}, invalidation=False)
    assert not store.parent.exists()  # a rejected configuration opens nothing


def test_a_read_in_flight_across_a_settings_change_is_counted(tmp_path: Any) -> None:
    """A read planned on the namespace's old state and finished after update_namespace counts in the live
    counters (as a hit whose promotion an update overtook), and immediate promotions stay in the stats."""
    from tiercache.l2 import SQLiteL2

    class Gated:
        def __init__(self, inner: Any) -> None:
            self.inner, self.hold = inner, False
            self.entered, self.release = threading.Event(), threading.Event()

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def get(self, key: str) -> Any:
            if self.hold:
                self.entered.set()
                assert self.release.wait(10)
            return self.inner.get(key)

    l2 = Gated(SQLiteL2(tmp_path / "l2.sqlite3"))
    cfg = {"ns": NamespaceConfig(promotion="immediate")}
    with CacheManager(l2, env="test", config=cfg, invalidation=False) as m:
        m.set("ns", "a", 1)
        m.l1("ns").clear()
        assert m.get("ns", "a") == 1  # an L2 hit, promoted
        m.l1("ns").clear()
        l2.hold = True
        got: List[Any] = []
        reader = threading.Thread(target=lambda: got.append(m.get("ns", "a")))
        reader.start()
        assert l2.entered.wait(10)
        m.update_namespace("ns", l1_max_bytes=2 << 20)
        l2.release.set()
        reader.join(10)
        counts = m.counters.by_namespace()["ns"]
        assert got == [1] and counts["l2_hits"] == 2 and counts["promotions_skipped_stale"] == 1
        assert m.promotion_stats()["ns"]["promoted"] == 1
    l2.inner.close()


def _until(predicate: Any, timeout: float = 10.0) -> bool:
    """Wait for `predicate` (work done by a background thread), polling; False at the deadline."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_a_delete_lost_in_an_outage_does_not_come_back(tmp_path: Any) -> None:
    """A delete that could not reach L2 is owed a repair; until the repair is done, the value L2 still holds
    is not served (nor copied into L1), by get or get_many."""
    from tiercache.l2 import SQLiteL2

    l2 = Flaky(SQLiteL2(tmp_path / "l2.sqlite3"))
    with CacheManager(l2, env="test", invalidation=False) as m:
        m.set_many("ns", {"k": 1, "j": 2, "other": 3})
        l2.down = True
        assert m.delete("ns", "k") is True and m.delete("ns", "j") is True  # L2 still holds both
        l2.down = False
        l2.release.clear()  # the repair starts after this read's round trip, and waits
        assert m.get_many("ns", ["k", "j", "other"]) == {"other": 3}
        assert _until(lambda: l2.threads)  # under way, off the caller's thread
        assert l2.threads[0] is not threading.current_thread()
        assert m.get("ns", "k") is None and m.get_many("ns", ["j"]) == {}  # still owed: misses
        assert "k" not in m.l1("ns") and "j" not in m.l1("ns")
        l2.release.set()
        assert _until(lambda: m.stats()["repaired_after_outage"] == 2)
        assert l2.inner.get(m._l2_key("ns", "k")) is None and l2.inner.get(m._l2_key("ns", "j")) is None
        l2.down = True
        assert m.delete("ns", "other") is True
        l2.down = False
        assert m.get("ns", "other") is None and "other" not in m.l1("ns")
        assert _until(lambda: m.stats()["repaired_after_outage"] == 3) and m.get("ns", "other") is None
    l2.inner.close()


def test_ten_thousand_dropped_keys_are_repaired_in_batches_off_the_read_path(tmp_path: Any) -> None:
    """The read that finds L2 back does not wait for the repair: it runs in the background, a thousand keys
    per call, and the keys read as misses until it is done."""
    from tiercache.l2 import SQLiteL2

    l2 = Flaky(SQLiteL2(tmp_path / "l2.sqlite3"))
    with CacheManager(l2, env="test", invalidation=False) as m:
        keys = [f"k{i}" for i in range(10_000)]
        m.set_many("ns", {k: 1 for k in keys + ["live"]})
        l2.down = True
        for k in keys:
            m.delete("ns", k)
        l2.down = False
        m.circuit.success()  # (closed, as a successful probe would leave it)
        l2.release.clear()
        m.l1("ns").clear()
        assert m.get("ns", "live") == 1  # answered while the repair waits
        assert m.get_many("ns", keys[:100]) == {} and m.get("ns", keys[-1]) is None
        l2.release.set()
        assert _until(lambda: m.stats()["repaired_after_outage"] == len(keys))
        assert l2.batches == [1000] * 10 and all(t is not threading.current_thread() for t in l2.threads)
        assert l2.inner.get_many([m._l2_key("ns", k) for k in keys]) == [None] * len(keys)
    l2.inner.close()


# ------------------------------------------------------------------------------- the original's switches

def test_a_disabled_cache_passes_every_call_through(sqlite_url: str) -> None:
    """enabled=False: the loader always runs, nothing is stored or read, bad input is still refused."""
    calls: List[int] = []
    with CacheManager(sqlite_url, env="test", enabled=False, invalidation=False) as m:
        assert m.set("ns", "k", 1) is False and m.set_many("ns", {"a": 1}) == 0  # (stored nowhere)
        assert m.get("ns", "k") is None and m.get_many("ns", ["k", "a"]) == {}
        assert m.get_or_set("ns", "k", lambda: calls.append(1) or len(calls)) == 1
        assert m.get_or_set("ns", "k", lambda: calls.append(1) or len(calls)) == 2
        assert m.delete("ns", "k") is False and m.clear("ns") == 0
        assert len(m.l1("ns")) == 0 and m.l2.get(m._l2_key("ns", "k")) is None
        with pytest.raises(TypeError):
            m.set("ns", 1.5, 1)
        with pytest.raises(SerializationError):
            m.set("ns", "k", object())


def test_without_promotion_l2_hits_are_served_not_copied(sqlite_url: str) -> None:
    cfg = {"hot": NamespaceConfig(promotion="immediate"), "gated": NamespaceConfig(promotion="conditional")}
    with CacheManager(sqlite_url, env="test", config=cfg, enable_promotion=False, invalidation=False) as m:
        for ns in cfg:
            m.set(ns, "k", 1)
            m.l1(ns).clear()
            assert [m.get(ns, "k") for _ in range(3)] == [1, 1, 1] and m.get_many(ns, ["k"]) == {"k": 1}
            assert "k" not in m.l1(ns)
        assert m.stats()["l2_hits"] == 8 and m.stats()["promotions"] == 0


def test_enable_stats_off_keeps_a_namespace_out_of_the_assessment(sqlite_url: str) -> None:
    cfg = {"noisy": NamespaceConfig(enable_stats=False), "main": NamespaceConfig()}
    with CacheManager(sqlite_url, env="test", config=cfg, invalidation=False,
                      health_thresholds={"min_requests": 10}) as m:
        for i in range(50):
            m.get("noisy", f"miss{i}")  # a 0 % hit rate that must not count
            m.set("main", i, i)
            m.get("main", i)
        h = m.perform_health_assessment()
        assert "noisy" not in h["namespaces"] and h["components"]["l1_hit_rate"]["value"] == 1.0
        assert h["status"] == "healthy"


def test_preload_warms_l1_from_l2_after_a_restart(sqlite_url: str) -> None:
    """A new process (cold L1): preload copies keys L2 holds — the most recently written first — into L1,
    even where the promotion strategy would wait for repeated reads; it writes nothing."""
    cfg = {"ns": NamespaceConfig(promotion="conditional", l2_ttl=600.0)}
    with CacheManager(sqlite_url, env="test", config=cfg, invalidation=False) as m:
        m.set_many("ns", {f"k{i}": i for i in range(50)})
        m.set("ns", "newest", "n")
    with CacheManager(sqlite_url, env="test", config=cfg, invalidation=False) as m:
        loaded = m.preload("ns", ["given", "absent"], count=10)
        assert list(loaded)[:3] == ["given", "absent", "newest"] and len(loaded) == 10
        assert loaded["absent"] is False and loaded["given"] is False and loaded["newest"] is True
        held = [k for k, ok in loaded.items() if ok]
        assert len(held) == 8 and all(k in m.l1("ns") for k in held)
        assert 0 < m.l1("ns").ttl("newest") <= 600
        assert m.stats()["sets"] == 0
        with pytest.raises(ValueError):
            m.preload("ns", count=0)


def test_preload_loads_the_configured_warmup_keys_first(sqlite_url: str) -> None:
    cfg = {"ns": NamespaceConfig(l2_ttl=600.0, warmup_keys=["b", 3])}
    with CacheManager(sqlite_url, env="test", config=cfg, invalidation=False) as m:
        m.set_many("ns", {"a": 1, "b": 2, 3: 3})
    with CacheManager(sqlite_url, env="test", config=cfg, invalidation=False) as m:
        assert list(m.preload("ns", ["a"], count=3).items()) == [("a", True), ("b", True), (3, True)]
        assert "b" in m.l1("ns") and 3 in m.l1("ns")
    with pytest.raises(ConfigError, match="warmup_keys: must be a list"):
        CacheManager(sqlite_url, env="test", config={"ns": {"warmup_keys": [1.5]}}, invalidation=False)


def test_preload_takes_the_most_read_keys_as_they_are(sqlite_url: str) -> None:
    """Most-read keys reach preload unchanged (a bytes or int key stays one, it is not turned into text)."""
    with CacheManager(sqlite_url, env="test", invalidation=False) as m:
        m.set_many("ns", {b"\x00raw": 1, 7: 2})
        for _ in range(64):
            m.l1("ns").clear()
            m.get_many("ns", [b"\x00raw", 7])  # (one L2 read in 16 is sampled)
        m.l1("ns").clear()
        loaded = m.preload("ns", count=2)
        assert loaded == {b"\x00raw": True, 7: True} and b"\x00raw" in m.l1("ns")


def test_the_outbox_merges_queued_invalidations_and_stays_bounded() -> None:
    from tiercache.manager.invalidation import MAX_PARTS, MAX_PENDING, Outbox

    box = Outbox()
    assert box.add("a", ["k1", "k2"]) is True  # (was empty: the caller wakes the publisher)
    assert box.add("a", ["k2", "k3"]) is False and box.add("b", ["x"]) is False
    assert box.take() == [("a", ["k1", "k2", "k3"]), ("b", ["x"])] and box.take() == []
    box.add("a", ["k1"])
    box.add("a", None)  # the whole namespace covers its keys
    box.add("a", ["k4"])
    assert box.take() == [("a", None)]
    box.add("big", [str(i) for i in range(MAX_PARTS + 1)])
    assert [len(parts) for _, parts in box.take()] == [MAX_PARTS, 1]  # one message per MAX_PARTS keys
    box.add("huge", [str(i) for i in range(MAX_PENDING + 1)])
    assert box.take() == [("huge", None)] and len(box) == 0


def _write_in_forked_child(m: CacheManager, queue: Any) -> None:
    if "k" in m.l1("ns"):  # (the child's L1 starts empty: invalidations around the fork are lost to it)
        queue.put("the parent's L1 copy came along")
        return
    sent = m.counters.by_namespace()["ns"]["invalidations_sent"]  # (the parent's, inherited)
    m.set("ns", "k", "from the child")  # (no close: the child's own publisher must send it)
    connected = m.listener_connected is not None and m.listener_connected.wait(5)
    deadline = time.monotonic() + 5
    while m.counters.by_namespace()["ns"]["invalidations_sent"] == sent and time.monotonic() < deadline:
        time.sleep(0.005)
    queue.put((connected, m.counters.by_namespace()["ns"]["invalidations_sent"] - sent))


@pytest.mark.skipif(not hasattr(os, "register_at_fork"), reason="needs fork")
def test_a_forked_child_publishes_and_listens_with_threads_of_its_own(sqlite_url: str) -> None:
    """A pre-forking server forks after the manager is made: the child starts with an empty L1, and its
    writes still reach the parent's L1, through a publisher (and a listener) it starts for itself."""
    import multiprocessing

    with CacheManager(sqlite_url, env="test") as m:
        assert m.listener_connected is not None and m.listener_connected.wait(5)
        m.set("ns", "k", "old")
        assert m.get("ns", "k") == "old" and "k" in m.l1("ns")
        ctx = multiprocessing.get_context("fork")
        queue = ctx.Queue()
        child = ctx.Process(target=_write_in_forked_child, args=(m, queue))
        child.start()
        assert queue.get(timeout=20) == (True, 1)
        child.join(20)
        deadline = time.monotonic() + 5
        while "k" in m.l1("ns") and time.monotonic() < deadline:
            time.sleep(0.005)
        assert m.get("ns", "k") == "from the child"

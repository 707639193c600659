"""The read path's I/O-free steps (ReadPath, NamespaceState) and the wire format, over both implementations."""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import time
from typing import Any, List

import pytest

from tiercache import NamespaceConfig, wire
from tiercache.wire.serialization import Codec


def read_path(impl: Any, cfg: Any = None, calls: Any = None, decide: Any = None) -> Any:
    """A ReadPath over one namespace "ns" (its state returned beside it); misses are recorded in `calls`."""
    calls = [] if calls is None else calls

    def miss(namespace: Any, key: Any, default: Any, checked: bool) -> Any:
        calls.append((namespace, key, default, checked))
        return default

    corrupt: List[Any] = []
    cfg = cfg or NamespaceConfig(l1_ttl=60.0)
    state = impl.module.NamespaceState("ns", impl.HashCache(max_bytes=1 << 20, sizer=impl.module.deep_sizer), cfg,
                                       Codec("msgpack").read, decide is None, "p:ns:")
    path = impl.module.ReadPath({"ns": state}, miss, None, decide,
                                lambda ns, key, exc: corrupt.append((ns, key, str(exc))), time.monotonic)
    return path, state, corrupt


def test_get_answers_l1_hits_and_hands_the_rest_to_miss(impl: Any) -> None:
    calls: List[Any] = []
    path, state, _ = read_path(impl, calls=calls)
    state.l1.set("k", "v")
    state.l1.set(1, "one")
    assert path.get("ns", "k") == "v" and path.get("ns", 1) == "one"
    assert path.get("ns", "absent", "d") == "d"
    assert path.get("other", "k", "d2") == "d2"
    assert path.get("ns", 1.0, "d3") == "d3"  # not a key type: the manager decides (and raises there)
    assert path.get("ns", ["unhashable"]) is None
    # only the first looked in L1 (and counted its miss there): the manager must not count it again
    assert calls == [("ns", "absent", "d", True), ("other", "k", "d2", False), ("ns", 1.0, "d3", False),
                     ("ns", ["unhashable"], None, False)]
    assert state.l1.stats()["hits"] == 2 and state.l1.stats()["misses"] == 1


def test_l1_sampling(impl: Any) -> None:
    from tiercache.observability.metrics import bucket_of

    calls: List[Any] = []
    path, state, _ = read_path(impl, calls=calls)
    state.l1.set("k", "v")
    assert path.l1_samples() == {}
    path.set_sampling(1)
    assert path.get("ns", "k") == "v" and path.get("ns", "absent2", "d") == "d"
    assert calls[-1] == ("ns", "absent2", "d", True)
    samples = path.l1_samples()
    assert list(samples) == ["ns"] and samples["ns"]["count"] == 2 == sum(samples["ns"]["counts"])
    path.set_sampling(2)
    for _ in range(4):
        path.get("ns", "k")
    assert path.l1_samples()["ns"]["count"] == 4
    path.set_sampling(0)
    path.get("ns", "k")
    assert path.l1_samples()["ns"]["count"] == 4
    path.record_l1_sample("other", 2.0 ** -20)  # bucketed as tiercache.observability.metrics does it
    assert path.l1_samples()["other"]["counts"][bucket_of(2.0 ** -20)] == 1
    with pytest.raises(ValueError, match="power of two"):
        path.set_sampling(3)


def test_a_replaced_namespace_is_not_served_from_the_shortcut(impl: Any) -> None:
    path, state, _ = read_path(impl)
    state.l1.set("k", "v")
    assert path.get("ns", "k") == "v" and path.get("ns", "k") == "v"  # the second through the shortcut
    spaces = {"ns": state}
    grace = impl.module.NamespaceState("ns", impl.HashCache(), NamespaceConfig(l1_grace_period=5.0), None, True, "")
    path2 = impl.module.ReadPath(spaces, lambda *a: "missed", None, None, None, time.monotonic)
    assert path2.get("ns", "k") == "v"
    spaces["ns"] = grace  # (a namespace with a grace period is never served by the front step)
    path2.forget()
    assert path2.get("ns", "k") == "missed"


def sealed(seconds_left: float, payload: bytes) -> bytes:
    return wire.seal(payload, seconds_left)


def test_finish_rules(impl: Any) -> None:
    codec = Codec("msgpack")
    path, state, corrupt = read_path(impl)
    found: dict = {}
    datas = [codec.dumps(1), None, sealed(-1, codec.dumps(2)), b"\x00bad", codec.dumps([3]), b"",
             sealed(30, codec.dumps(4)), sealed(1000, codec.dumps(5)), b"X\x00\x01", bytearray(codec.dumps(6)),
             sealed(30, b"\x00bad"), b"X" + struct.pack("<d", float("nan")) + codec.dumps(7)]
    keys = ["a", "b", "c", "d", 5, "f", "g", "h", "i", "j", "k", "l"]
    l2_keys = [f"p:ns:{k}" for k in keys]
    assert path.finish(state, keys, l2_keys, datas, state.version, found) == (4, 2, 0, 0)
    # None and the expired value are misses; unreadable, cut-off, non-finite and non-bytes ones are reported
    assert [k for _, k, _ in corrupt] == [l2_keys[i] for i in (3, 5, 8, 9, 10, 11)]
    assert found == {"a": 1, 5: [3], "g": 4, "h": 5}
    l1 = state.l1
    assert l1.peek("a") == 1 and 0 < l1.ttl(5) <= 60
    assert 25 < l1.ttl("g") <= 30  # no longer than it has left in L2
    assert 55 < l1.ttl("h") <= 60  # nor than the namespace's L1 TTL
    assert l1.stats()["bytes"] == sum(map(impl.module.deep_sizer, (1, [3], 4, 5)))  # what L1 holds, deep
    assert l1.stats()["promoted"] == 4


def test_finish_skips_an_overtaken_read_and_asks_a_gated_strategy(impl: Any) -> None:
    codec = Codec("msgpack")
    path, state, _ = read_path(impl)
    found: dict = {}
    version = state.version
    state.bump()
    assert path.finish(state, ["a"], ["p:ns:a"], [codec.dumps(1)], version, found) == (1, 0, 1, 0)
    assert found == {"a": 1} and "a" not in state.l1
    asked: List[Any] = []
    gated, gstate, _ = read_path(impl, decide=lambda *args: asked.append(args[3]) or args[3] == "yes")
    assert gated.finish(gstate, ["yes", "no"], ["x", "y"], [codec.dumps(1), codec.dumps(2)], 0, found) == (2, 0, 0, 1)
    assert asked == ["yes", "no"] and "yes" in gstate.l1 and "no" not in gstate.l1


def test_plan_many(impl: Any) -> None:
    path, state, _ = read_path(impl)
    state.l1.set("a", 1)
    state.l1.set(2, "two")
    keys = ["a", "b", 2, 3, "b", "#hash", "ключ", -7, b"\x00b", ""]
    found, missing, stale, l2_keys = path.plan_many(state, keys)
    assert found == {"a": 1, 2: "two"} and stale == {}
    assert missing == ["b", 3, "#hash", "ключ", -7, b"\x00b", ""]
    assert l2_keys == ["p:ns:" + wire.encode_key(k) for k in missing]
    assert path.plan_many(state, iter(["a"])) == ({"a": 1}, [], {}, None)
    before = state.l1.stats()
    with pytest.raises(TypeError, match="key must be"):
        path.plan_many(state, ["ok", True])
    with pytest.raises(TypeError, match="key must be"):  # (the same error in both, before any hashing)
        path.plan_many(state, ["ok", ["unhashable"]])
    assert state.l1.stats() == before  # nothing was looked up for the rejected calls


def test_store_caps_the_ttl_and_wraps_for_a_grace_period(impl: Any) -> None:
    path, state, _ = read_path(impl, cfg=NamespaceConfig(l1_ttl=60.0))
    path.store(state, "k", "v", 1, 10.0)
    path.store(state, "long", "v", 1, 1000.0)
    assert 9 < state.l1.ttl("k") <= 10 and 59 < state.l1.ttl("long") <= 60
    grace, gstate, _ = read_path(impl, cfg=NamespaceConfig(l1_ttl=60.0, l1_grace_period=30.0))
    grace.store(gstate, "k", "v", 1, None)
    assert 89 < gstate.l1.ttl("k") <= 90
    assert grace.lookup(gstate, "k") == ("v", impl.module.MISSING)


def test_the_compiled_wire_numbers_are_the_wire_modules(impl: Any) -> None:
    assert impl.module.WIRE_CONSTANTS == wire.WIRE_CONSTANTS


def test_wire_round_trip() -> None:
    for key in ["plain", "#hash", "ключ", 7, -7, b"\x00b", ""]:
        assert wire.decode_key(wire.encode_key(key)) == key
    data = wire.seal(b"M\x00\x01", 30.0, now=100.0)
    assert data[0] == wire.EXPIRY_TAG and len(data) == wire.EXPIRY_HEADER_SIZE + 3
    assert wire.open_sealed(data, 110.0) == (wire.EXPIRY_HEADER_SIZE, 20.0)
    assert wire.open_sealed(b"M\x00\x01", 0.0) == (0, None)
    with pytest.raises(ValueError, match="truncated"):
        wire.open_sealed(data[:5], 0.0)


WRITE_AND_READ = """
import json, sys
from tiercache import CacheManager, IMPLEMENTATION
with CacheManager(sys.argv[1], env="test", invalidation=False) as m:
    if sys.argv[2] == "write":
        m.set("ns", "plain", {"a": [1, 2.5, "x"]}, ttl=600)
        m.set("ns", 7, b"bytes")
        m.set("ns", "#hash", None)
        m.set_many("ns", {"many": [True, {"k": "v"}]})
    else:
        print(json.dumps([IMPLEMENTATION, repr(m.get("ns", "plain")), repr(m.get("ns", 7)),
                          repr(m.get("ns", "#hash", "absent")), repr(m.get_many("ns", ["many"]))]))
"""


@pytest.mark.c_extension
def test_one_implementation_reads_what_the_other_wrote(impl: Any, tmp_path: Any) -> None:
    """Each implementation writes L2 and the other reads it back (processes with and without the extension)."""
    url = f"sqlite:///{tmp_path}/shared.db"
    pure = dict(os.environ, TIERCACHE_NO_EXTENSIONS="1")
    writer, reader = (os.environ, pure) if impl.name == "compiled" else (pure, os.environ)
    subprocess.run([sys.executable, "-c", WRITE_AND_READ, url, "write"], env=writer, check=True)
    out = subprocess.run([sys.executable, "-c", WRITE_AND_READ, url, "read"], env=reader, check=True,
                         capture_output=True, text=True).stdout
    import json

    got = json.loads(out)
    assert got[0] == ("python" if impl.name == "compiled" else "compiled")
    assert got[1:] == [repr({"a": [1, 2.5, "x"]}), repr(b"bytes"), "None", repr({"many": [True, {"k": "v"}]})]


_HEADERS = [b"", b"M\x00", b"M\x01", b"J\x00", b"P\x00", b"X" + struct.pack("<d", 4e9)]


@pytest.mark.parametrize("grace", [0.0, 5.0])
def test_finish_takes_any_bytes_without_raising(impl: Any, grace: float) -> None:
    """Bounded fuzz of the one rule for L2 bytes: whatever L2 answers, finish() decodes it, counts it as
    corrupt or as a miss, and leaves L1 consistent; the two implementations agree value for value."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    other = next(m for m in ("tiercache._core_c", "tiercache._core_py") if m != impl.module.__name__)
    try:
        twin = __import__(other, fromlist=["ReadPath"])
    except ImportError:
        twin = None

    def run(module: Any, datas: List[Any]) -> Any:
        corrupt: List[Any] = []
        cfg = NamespaceConfig(l1_ttl=60.0, l1_grace_period=grace)
        state = module.NamespaceState("ns", module.HashCache(max_bytes=1 << 20), cfg, Codec("msgpack").read,
                                      True, "p:ns:")
        path = module.ReadPath({"ns": state}, None, None, None, lambda ns, key, exc: corrupt.append(key),
                               time.monotonic)
        keys = list(range(len(datas)))
        found: dict = {}
        counts = path.finish(state, keys, [f"p:ns:#i:{k}" for k in keys], list(datas), state.version, found)
        state.l1._check()
        return counts, sorted(corrupt), {k: repr(v) for k, v in found.items()}

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(st.one_of(st.none(), st.binary(max_size=64),
                              st.tuples(st.sampled_from(_HEADERS), st.binary(max_size=48)).map(lambda t: t[0] + t[1])),
                    max_size=8))
    def check(datas: List[Any]) -> None:
        mine = run(impl.module, datas)
        hits, misses, skipped, declined = mine[0]
        assert hits + misses + len(mine[1]) == len(datas) and skipped == declined == 0
        if twin is not None:
            assert run(twin, datas) == mine

    check()

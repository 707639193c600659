"""Hostile L2 values for the fuzz tests of the read path through a manager (SQLite and Redis)."""

from __future__ import annotations

import struct
from typing import Any, List

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tiercache.config import NamespaceConfig
from tiercache.manager import CacheManager
from tiercache.wire.serialization import Codec

_GOOD = [Codec().dumps(v) for v in ({"a": [1, 2.5, "x"]}, [b"b"] * 3, "text", 7, (1, 2), {1: {2, 3}})]
_GOOD += [Codec(compression="zlib", compress_threshold=0).dumps({"z": "y" * 200})]
_EXPIRIES = st.sampled_from([float("nan"), float("inf"), -1.0, 0.0, 1e300, 4e9, 2e9])


@st.composite
def hostile_values(draw: Any) -> bytes:
    """Good values cut, flipped or padded; random bytes; any expiry header; any tag and flags."""
    base = draw(st.sampled_from(_GOOD))
    kind = draw(st.integers(0, 4))
    if kind == 0:
        data = draw(st.binary(max_size=64))
    elif kind == 1:
        data = base[:draw(st.integers(0, len(base)))]
    elif kind == 2:
        flipped = bytearray(base)
        for at, byte in draw(st.lists(st.tuples(st.integers(0, len(base) - 1), st.integers(0, 255)), max_size=4)):
            flipped[at] = byte
        data = bytes(flipped)
    elif kind == 3:
        data = bytes([draw(st.sampled_from(b"MJSPX\x00")), draw(st.integers(0, 3))]) + draw(st.binary(max_size=40))
    else:
        data = base + draw(st.binary(min_size=1, max_size=8))
    if draw(st.booleans()):
        data = b"X" + struct.pack("<d", draw(_EXPIRIES)) + data
    return data


def read_all_ways(m: Any, l2_keys: List[str], keys: List[str], datas: List[bytes]) -> None:
    """Store `datas` under `keys` in the manager's L2 and read them with get and get_many: no read raises,
    whatever comes back is what a clean write of it would give, and the counters add up."""
    for l2_key, data in zip(l2_keys, datas):
        m.l2.set(l2_key, data)
    m.l1("ns").clear()
    before = m.stats()
    singles = {k: m.get("ns", k, None) for k in keys}
    m.l1("ns").clear()
    many = m.get_many("ns", keys)
    assert {k: v for k, v in singles.items() if v is not None} == {k: v for k, v in many.items() if v is not None}
    after = m.stats()
    reads = 2 * len(keys)
    counted = sum(after[c] - before[c] for c in ("l2_hits", "l2_misses", "corrupt_values"))
    assert counted == reads


def fuzz_reads(url: str, max_examples: int) -> None:
    """Bounded fuzz of a manager over `url`: lists of hostile values, each read with get and get_many."""
    cfg = {"ns": NamespaceConfig(compression="zlib", promotion="immediate")}
    with CacheManager(url, env="test", config=cfg, hmac_key="k" * 32, invalidation=False) as m:
        @settings(max_examples=max_examples, deadline=None, suppress_health_check=list(HealthCheck))
        @given(st.lists(hostile_values(), min_size=1, max_size=6))
        def check(datas: List[bytes]) -> None:
            keys = [f"f{i}" for i in range(len(datas))]
            read_all_ways(m, [m._l2_key("ns", k) for k in keys], keys, datas)

        check()

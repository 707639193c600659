"""The keys `cached` gives calls: bound to the signature, canonical in every process, refused when not."""

from __future__ import annotations

import dataclasses
import datetime
import decimal
import enum
import os
import subprocess
import sys
import uuid
from typing import Any, Dict, List, Optional

import pytest

from tiercache.manager import CacheManager
from tiercache.manager.callkey import KEY_VERSION, CallKey, encode_argument


class Color(enum.Enum):
    RED = 1
    BLUE = "b"


@dataclasses.dataclass(frozen=True)
class Point:
    x: int
    y: Optional[List[int]] = None


def report(day: str, rows: int = 10, *, tags: Any = (), **extra: Any) -> Dict[str, Any]:
    return {"day": day}


# The arguments whose keys must not depend on the process: every type the encoding knows, nested.
STABLE = ("2026-12-05", 7, {"b", "a", "c"}, frozenset({3, 1}), {"z": 1, "a": [1, (2, 3)]},
          datetime.datetime(2026, 12, 5, 1, 2, 3, tzinfo=datetime.timezone.utc), datetime.date(2026, 1, 1),
          datetime.time(4, 5), datetime.timedelta(days=1, seconds=2), decimal.Decimal("1.50"),
          uuid.UUID("12345678-1234-5678-1234-567812345678"), Color.BLUE, Point(1, [2]), b"\x00raw", 1.5,
          None, True, float("nan"))

SNIPPET = """
import sys
sys.path.insert(0, sys.argv[1])
from test_callkey import STABLE, report
from tiercache.manager.callkey import CallKey
print(CallKey(report)(("d",), {"tags": STABLE}))
"""


def test_a_call_has_one_key_in_every_process() -> None:
    """Sets of strings print in another order under each hash seed, and objects with the default repr embed
    their address: neither reaches the key."""
    here = os.path.dirname(os.path.abspath(__file__))
    keys = {subprocess.run([sys.executable, "-c", SNIPPET, here], capture_output=True, text=True, check=True,
                           env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip() for seed in ("1", "2", "3")}
    assert len(keys) == 1
    assert keys == {CallKey(report)(("d",), {"tags": STABLE})}
    (key,) = keys
    assert key.startswith(f"{__name__}.report:v{KEY_VERSION}:") and len(key.rsplit(":", 1)[1]) == 32


def test_equal_calls_share_a_key_and_different_ones_do_not() -> None:
    k = CallKey(report)
    same = [k(("d",), {}), k((), {"day": "d"}), k(("d", 10), {}), k(("d",), {"rows": 10})]
    assert len(set(same)) == 1  # positional or keyword, defaults applied
    different = [k(("d",), {}), k(("e",), {}), k(("d", 11), {}), k(("d",), {"x": 1}), k(("d",), {"tags": [1]}),
                 k(("d",), {"tags": [True]}), k(("d",), {"tags": [1.0]}), k(("d",), {"tags": ["1"]}),
                 k(("d",), {"tags": [b"1"]}), k(("d",), {"tags": {1: 2}}), k(("d",), {"tags": {1, 2}}),
                 k(("d",), {"tags": Color.RED}), k(("d",), {"tags": Point(1)}), k(("d",), {"tags": None})]
    assert len(set(different)) == len(different)
    assert k(("d",), {"tags": (1, 2)}) == k(("d",), {"tags": [1, 2]})  # tuples and lists alike
    assert k(("d",), {"tags": {"b": 1, "a": 2}}) == k(("d",), {"tags": {"a": 2, "b": 1}})
    assert k(("d",), {"tags": decimal.Decimal("1.0")}) == k(("d",), {"tags": decimal.Decimal("1.00")})
    assert encode_argument(float("nan")) == encode_argument(float("-nan"))


def test_arguments_without_a_canonical_encoding_are_refused_by_name() -> None:
    k = CallKey(report)
    with pytest.raises(TypeError, match=r"argument 'tags'.*object has no canonical encoding.*key="):
        k(("d",), {"tags": object()})
    with pytest.raises(TypeError, match=r"argument 'extra'.*builtins.type"):  # (a class is not an instance)
        k(("d",), {"x": Point})
    with pytest.raises(TypeError):  # a call the function itself would refuse
        k((), {})
    deep: Any = []
    for _ in range(100):
        deep = [deep]
    with pytest.raises(TypeError, match="nested"):
        k(("d",), {"tags": deep})
    ignoring = CallKey(report, ignore=("tags",))
    assert ignoring(("d",), {"tags": object()}) == ignoring(("d",), {}) != k(("d",), {})
    with pytest.raises(TypeError, match="ignore names no parameter"):
        CallKey(report, ignore=("nope",))


def test_cached_uses_the_canonical_key(manager: CacheManager) -> None:
    calls: List[Any] = []

    class Repo:
        @manager.cached("fn", ignore=("self",))
        def find(self, ids: Any, limit: int = 5) -> List[int]:
            calls.append(ids)
            return sorted(ids)[:limit]

    repo = Repo()
    assert repo.find({3, 1, 2}) == [1, 2, 3] and Repo().find(ids=frozenset({1, 2, 3}), limit=5) == [1, 2, 3]
    assert calls == [{3, 1, 2}]  # (sets and frozensets alike, as tuples and lists; defaults applied)
    assert repo.find({2, 3, 1}, 6) == [1, 2, 3] and len(calls) == 2
    assert Repo.find.__name__ == "find" and Repo.find.__wrapped__ is not None  # type: ignore[attr-defined]

    @manager.cached("fn")
    def bad(x: Any) -> Any:
        return x

    with pytest.raises(TypeError, match=r"argument 'x'"):
        bad(object())
    with pytest.raises(TypeError, match="ignore= applies to the default key"):
        manager.cached("fn", key=lambda x: x, ignore=("x",))(bad)


def test_the_encoding_is_self_delimiting_and_context_free() -> None:
    """NaN takes 8 bytes as any float (so no value's bytes can pass for another's); Decimals are keyed by
    value whatever the decimal context (no rounding); ints of any size encode."""
    import struct

    odd = struct.unpack(">d", b"nan1:bs1")[0]
    k = CallKey(report)
    assert k(("d",), {"tags": [float("nan"), "bs7:xxxxxxx"]}) != k(("d",), {"tags": [odd, "xxxxxxx"]})
    assert encode_argument(decimal.Decimal("1.00000000000000000000000000000001")) != encode_argument(
        decimal.Decimal("1"))
    with decimal.localcontext() as ctx:
        ctx.prec = 5
        assert encode_argument(decimal.Decimal("1.23456")) != encode_argument(decimal.Decimal("1.2346"))
        inside = encode_argument(decimal.Decimal("1.23456"))
    assert inside == encode_argument(decimal.Decimal("1.234560"))
    assert encode_argument(decimal.Decimal("0.00")) == encode_argument(decimal.Decimal("0"))
    assert encode_argument(10 ** 5000) != encode_argument(10 ** 5000 + 1)
    assert encode_argument(-1) != encode_argument(255) and encode_argument(0) != encode_argument(False)

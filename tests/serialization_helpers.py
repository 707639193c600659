"""Helpers of the serialization and L2-reader tests: exact comparison and value strategies."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from tiercache.wire.serialization import Codec


def canon(value: Any) -> Any:
    """A structure that is equal for two values only when they match in type and exact content."""
    t = type(value)
    if t is list or t is tuple:
        return (t.__name__, tuple(canon(v) for v in value))
    if t is set or t is frozenset:
        return (t.__name__, tuple(sorted((canon(v) for v in value), key=repr)))
    if t is dict:
        return ("dict", tuple((canon(k), canon(v)) for k, v in value.items()))
    if t is float:
        return ("float", repr(value))
    if t is decimal.Decimal:
        return ("Decimal", str(value))
    if t is dt.datetime or t is dt.time:
        return (t.__name__, value.isoformat(), value.fold, repr(value.tzinfo))
    return (t.__name__, repr(value))


def msgpack_codec() -> Codec:
    return Codec("msgpack")


# --- strategies -----------------------------------------------------------------------------------------
MAX_OFFSET = dt.timedelta(hours=24) - dt.timedelta(microseconds=1)
offsets = st.timedeltas(min_value=-MAX_OFFSET, max_value=MAX_OFFSET)
fixed_timezones = st.one_of(
    st.just(dt.timezone.utc),
    st.builds(dt.timezone, offsets),
    st.builds(dt.timezone, offsets, st.text(max_size=6)),
)
timezones = st.none() | fixed_timezones

hashable_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**200), max_value=2**200),
    st.floats(),
    st.text(),
    st.binary(),
    st.datetimes(timezones=timezones),
    st.dates(),
    st.times(timezones=timezones),
    st.timedeltas(),
    st.decimals(allow_nan=False),
    st.uuids(),
)
hashables = st.recursive(
    hashable_scalars,
    lambda kids: st.lists(kids, max_size=3).map(tuple) | st.frozensets(kids, max_size=3),
    max_leaves=6,
)
msgpack_values = st.recursive(
    hashables,
    lambda kids: st.one_of(
        st.lists(kids, max_size=4),
        st.lists(kids, max_size=4).map(tuple),
        st.dictionaries(hashables, kids, max_size=4),
        st.sets(hashables, max_size=4),
        st.frozensets(hashables, max_size=4),
    ),
    max_leaves=15,
)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda kids: st.lists(kids, max_size=4) | st.dictionaries(st.text(), kids, max_size=4),
    max_leaves=20,
)
FAST = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

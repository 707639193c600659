"""Fixtures shared by the whole suite.

Every test that takes `impl` (or `HashCache`, `default_sizer`, `make_cache`) runs once per implementation:
"compiled" (`tiercache._core_c`, marked `c_extension`) and "python" (`tiercache._core_py`). When the
extension is not built the compiled runs are skipped, except under CI (`CI=true`), where a missing
extension is an error: CI exists to test the compiled core.

Tests never import an implementation module themselves; they get classes from these fixtures.
"""

from __future__ import annotations

import importlib
import os
import threading
from dataclasses import dataclass
from types import ModuleType
from typing import Any, Callable, Iterator, List

import pytest

pytest_plugins = ["redis_servers"]  # real redis-server / 3-node cluster fixtures

MODULES = {"compiled": "tiercache._core_c", "python": "tiercache._core_py"}
RESP_MODULES = {"compiled": "tiercache.l2._resp_c", "python": "tiercache.l2._resp_py"}  # the RESP packer's twins


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "c_extension: runs against the compiled tiercache._core_c extension")


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@dataclass(frozen=True)
class Implementation:
    """One HashCache implementation: its name ("compiled" or "python") and its imported module."""

    name: str
    module: ModuleType

    @property
    def HashCache(self) -> Any:
        return self.module.HashCache

    @property
    def default_sizer(self) -> Callable[[Any], int]:
        return self.module.default_sizer

    @property
    def resp(self) -> ModuleType:
        """The Redis command packer of this implementation (an extension of its own, beside RedisL2)."""
        return importlib.import_module(RESP_MODULES[self.name])

    def __str__(self) -> str:
        return self.name


def load_implementation(name: str) -> Implementation:
    """Import implementation `name`; skip (or, under CI, fail) when the extension is not built."""
    try:
        module = importlib.import_module(MODULES[name])
    except ImportError as exc:
        if name != "compiled":
            raise
        reason = str(exc)
    else:
        return Implementation(name, module)
    if in_ci():
        pytest.fail(
            f"CI is set but the compiled extension {MODULES[name]} cannot be imported ({reason}); "
            "build it with `pip install .` before running the suite",
            pytrace=False,
        )
    pytest.skip(f"compiled extension not built: {reason}")


@pytest.fixture(
    scope="session",
    params=[pytest.param("compiled", marks=pytest.mark.c_extension), "python"],
    ids=["compiled", "python"],
)
def impl(request: pytest.FixtureRequest) -> Implementation:
    return load_implementation(request.param)


@pytest.fixture(scope="session")
def compiled_impl() -> Implementation:
    """The compiled implementation alone (skipped, or under CI failed, when it is not built)."""
    return load_implementation("compiled")


@pytest.fixture(scope="session")
def both_impls() -> "tuple[Implementation, Implementation]":
    """(compiled, python), for tests that compare the two side by side."""
    return load_implementation("compiled"), load_implementation("python")


@pytest.fixture(scope="session")
def HashCache(impl: Implementation) -> Any:  # noqa: N802 - named after the class it returns
    return impl.HashCache


@pytest.fixture(scope="session")
def default_sizer(impl: Implementation) -> Callable[[Any], int]:
    return impl.default_sizer


class FakeTimer:
    """A settable clock for TTL tests: `timer()` returns the current fake time, `advance()` moves it.

    Starts well away from zero so arithmetic that only works at t=0 shows up. Counts its reads, since
    both implementations promise to read the timer at the same points.
    """

    def __init__(self, start: float = 1000.0) -> None:
        self._lock = threading.Lock()
        self.now = float(start)
        self.calls = 0

    def __call__(self) -> float:
        with self._lock:
            self.calls += 1
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


@pytest.fixture
def fake_timer() -> FakeTimer:
    return FakeTimer()


@pytest.fixture
def clock() -> FakeTimer:
    """A FakeTimer for the managers' tests (timer=clock): metrics windows, TTLs, promotion windows."""
    return FakeTimer()


@pytest.fixture(scope="session")
def make_timer() -> "type[FakeTimer]":
    """The FakeTimer class, for tests that need a fresh clock per example or per cache."""
    return FakeTimer


@pytest.fixture
def make_cache(HashCache: Any, fake_timer: FakeTimer) -> Iterator[Callable[..., Any]]:
    """Build caches on the fake timer (unless `timer=` is given); closes them and checks invariants after."""
    made: List[Any] = []

    def make(*args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timer", fake_timer)
        cache = HashCache(*args, **kwargs)
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()
        cache._check()


@pytest.fixture
def known_bug(request: pytest.FixtureRequest, impl: Implementation) -> Callable[..., None]:
    """`known_bug("python", reason)`: a strict xfail on the named implementation(s) only ("python",
    "compiled", or both as a tuple), so a fix shows as XPASS and fails the run until the marker goes.
    Each use names the reported bug."""

    def mark(affected: "str | tuple[str, ...]", reason: str, strict: bool = True) -> None:
        # strict=False only where whether the bug shows depends on CPython internals (dict probe order).
        if impl.name in ((affected,) if isinstance(affected, str) else affected):
            request.applymarker(pytest.mark.xfail(strict=strict, reason=reason))

    return mark


@pytest.fixture(params=["sqlite", "redis", "cluster"])
def any_l2_url(request: pytest.FixtureRequest, tmp_path: Any) -> str:
    """Each L2 in turn: an SQLite file of the test's own, the session's redis-server, its 3-node cluster."""
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    if request.param == "cluster":
        return str(request.getfixturevalue("redis_cluster_url"))
    return f"sqlite:///{tmp_path}/l2.sqlite3"


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    """The URL of an embedded SQLite L2 store in the test's own directory."""
    return f"sqlite:///{tmp_path}/l2.sqlite3"


@pytest.fixture
def manager(sqlite_url: str, clock: "FakeTimer") -> Iterator[Any]:
    """A CacheManager over `sqlite_url` (env "test", timed by `clock`), closed after the test."""
    from tiercache import CacheManager

    with CacheManager(sqlite_url, env="test", timer=clock) as m:
        yield m

"""Fixtures for the pytest-benchmark suites: the HashCache class of each implementation.

These suites are not part of the test suite. They run only when asked for, with
`pytest bench/ --benchmark-only` (or `--benchmark-disable` for a one-pass smoke run); any other
invocation collects and skips them.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import os
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Measure the working tree when its extension is built there (`setup.py build_ext --inplace`, or an editable
# install); otherwise the installed package (after `pip install .`), whose compiled core the tree lacks.
if any(os.path.exists(os.path.join(ROOT, "tiercache", "_core_c" + suffix))
       for suffix in importlib.machinery.EXTENSION_SUFFIXES):
    sys.path.insert(0, ROOT)

IMPLEMENTATIONS = {"compiled": "tiercache._core_c", "python": "tiercache._core_py"}


def pytest_report_header(config: pytest.Config) -> str:
    """Which implementations these suites can measure: each figure is labelled with the one it measured
    (the [compiled] and [python] ids), and the compiled one is skipped, never stood in for, when not built."""
    found = []
    for name, module in IMPLEMENTATIONS.items():
        try:
            found.append(f"{name} ({importlib.import_module(module).__file__})")
        except ImportError as exc:
            found.append(f"{name}: not importable, skipped ({exc})")
    return "tiercache implementations: " + "; ".join(found)


def pytest_collection_modifyitems(config: pytest.Config, items: list) -> None:
    if not config.pluginmanager.hasplugin("benchmark"):
        reason = "pytest-benchmark is not installed: pip install -r bench/requirements.txt"
    elif config.getoption("benchmark_only") or config.getoption("benchmark_disable"):
        return
    else:
        reason = "benchmarks run only with `pytest bench/ --benchmark-only`"
    skip = pytest.mark.skip(reason=reason)
    for item in items:
        if "benchmark" in getattr(item, "fixturenames", ()):
            item.add_marker(skip)


@pytest.fixture(scope="session", params=[pytest.param("compiled", marks=pytest.mark.c_extension), "python"])
def HashCache(request: pytest.FixtureRequest) -> type:
    """tiercache._core_c.HashCache (skipped when not built) and tiercache._core_py.HashCache."""
    try:
        module = importlib.import_module(IMPLEMENTATIONS[request.param])
    except ImportError as exc:
        pytest.skip(f"{IMPLEMENTATIONS[request.param]} not importable ({exc}); "
                    "build it with `python setup.py build_ext --inplace`")
    return module.HashCache

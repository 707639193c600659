"""Django's own cache backend tests (BaseCacheTests, from the source distribution of the Django installed
here: `python tests/fetch_django_tests.py`) against TierCacheBackend, run by Django's test runner the way
Django runs them for its Redis backend: on a real redis-server and on the embedded SQLite store.

Without the fetched tests this module is skipped, except under CI, where that is a failure."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from fetch_django_tests import suite_dir
from redis_servers import in_ci

HERE = Path(__file__).resolve().parent


@pytest.fixture(params=["redis", "sqlite"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "redis":
        return str(request.getfixturevalue("redis_url"))
    return f"sqlite:///{tmp_path}/l2.sqlite3"


def test_djangos_base_cache_tests_pass(location: str) -> None:
    suite = suite_dir()
    if not (suite / "cache" / "tests.py").is_file():
        message = f"Django's cache tests are not fetched: run `python tests/fetch_django_tests.py` ({suite})"
        if in_ci():
            pytest.fail(message, pytrace=False)
        pytest.skip(message)
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="settings", TIERCACHE_DJANGO_LOCATION=location,
               PYTHONPATH=os.pathsep.join([str(HERE / "django_suite"), str(suite), os.environ.get("PYTHONPATH", "")]))
    run = subprocess.run([sys.executable, "-m", "django", "test", "--verbosity", "2", "--noinput",
                          "tiercache_cache_tests.TierCacheTests"],
                         cwd=HERE / "django_suite", env=env, capture_output=True, text=True, timeout=600)
    report = run.stderr
    assert run.returncode == 0, report[-6000:]
    ran = re.search(r"^Ran (\d+) tests?", report, re.MULTILINE)
    assert ran is not None and int(ran.group(1)) >= 50, report[-3000:]
    skipped = re.findall(r"\.\.\. skipped '([^']*)'", report)
    assert set(skipped) <= {"Culling isn't implemented."}, skipped  # (culling: Django's local backends only)

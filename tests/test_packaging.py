"""What an install gives: the core with only its own dependencies, a clear error naming the extra for each
optional module, and one version everywhere."""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
from typing import Dict, List

import pytest

import tiercache

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

OPTIONAL = ["rich", "prometheus_client", "fastapi", "starlette", "uvicorn", "httpx", "django", "hiredis"]


def run_without(modules: List[str], code: str) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter where importing any of `modules` fails as if not installed."""
    block = "".join(f"sys.modules[{m!r}] = None\n" for m in modules)
    env: Dict[str, str] = dict(os.environ)
    return subprocess.run([sys.executable, "-c", "import sys\n" + block + textwrap.dedent(code)],
                          capture_output=True, text=True, env=env, timeout=120)


def test_the_core_needs_no_extra(tmp_path) -> None:
    done = run_without(OPTIONAL, f"""
        import tiercache
        from tiercache import CacheManager, HashCache
        with CacheManager("sqlite:///{tmp_path}/l2.db", env="test") as cache:
            cache.set("reports", "k", {{"rows": 1}})
            assert cache.get("reports", "k") == {{"rows": 1}}
        assert HashCache(max_entries=4, policy="tinylfu").set("a", b"x")
        loaded = [m for m in {OPTIONAL!r} if sys.modules.get(m) is not None]
        assert not loaded, loaded
        print("ok")
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize("module, blocked, extra", [
    ("tiercache.observability.prometheus", "prometheus_client", "prometheus"),
    ("tiercache.server", "fastapi", "server"),
    ("tiercache.contrib.django", "django", "django"),
])
def test_a_missing_extra_is_named(module: str, blocked: str, extra: str) -> None:
    done = run_without([blocked], f"""
        from tiercache import MissingExtraError
        try:
            import {module}
        except MissingExtraError as exc:
            assert isinstance(exc, ImportError)
            print(exc)
        else:
            raise SystemExit("imported without {blocked}")
    """)
    assert done.returncode == 0, done.stderr
    assert f'needs {blocked}, which is not installed: pip install "pytiercache[{extra}]"' in done.stdout


def test_the_command_names_its_extra() -> None:
    done = run_without(["rich"], """
        from tiercache.cli import main
        raise SystemExit(main(["config", "show"]))
    """)
    assert done.returncode == 2
    assert 'the tiercache command needs rich, which is not installed: pip install "pytiercache[cli]"' in done.stderr


def test_one_version() -> None:
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        pyproject = f.read()
    assert 'dynamic = ["version"]' in pyproject and 'attr = "tiercache.__version__"' in pyproject
    assert importlib.metadata.version("pytiercache") == tiercache.__version__
    done = subprocess.run([sys.executable, "-m", "tiercache", "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0
    assert done.stdout.startswith(f"tiercache {tiercache.__version__} ({tiercache.IMPLEMENTATION})")

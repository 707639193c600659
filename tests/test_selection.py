"""The compiled/pure choice made once in tiercache/_compat.py, checked in fresh interpreters."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Dict, Optional

import pytest

import tiercache
from tiercache._moved import MOVED

ROOT = Path(tiercache.__file__).resolve().parent.parent  # where the tiercache under test lives
TESTS = Path(__file__).resolve().parent

REPORT = """
import json, sys
import tiercache
compiled_loaded = "tiercache._core_c" in sys.modules
from tiercache import _core_py
print(json.dumps({
    "implementation": tiercache.IMPLEMENTATION,
    "is_pure_class": tiercache.HashCache is _core_py.HashCache,
    "is_pure_sizer": tiercache.default_sizer is _core_py.default_sizer,
    "class_module": tiercache.HashCache.__module__,
    "compiled_loaded": compiled_loaded,
}))
"""

# Makes `import tiercache._core_c` fail, as it does when the extension was never built.
BLOCK_EXTENSION = """
import sys
class _NoExtension:
    def find_spec(self, name, path=None, target=None):
        if name == "tiercache._core_c":
            raise ImportError("extension blocked by the test")
        return None
sys.meta_path.insert(0, _NoExtension())
"""


def selection(no_extensions: Optional[str], prelude: str = "") -> Dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if k != "TIERCACHE_NO_EXTENSIONS"}
    if no_extensions is not None:
        env["TIERCACHE_NO_EXTENSIONS"] = no_extensions
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    proc = subprocess.run(
        [sys.executable, "-c", prelude + REPORT], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.parametrize("value", ["1", "true", "yes"])
def test_no_extensions_forces_the_pure_twin(value: str) -> None:
    report = selection(value)
    assert report == {
        "implementation": "python",
        "is_pure_class": True,
        "is_pure_sizer": True,
        "class_module": "tiercache.l1._hashcache_py",  # (re-exported by _core_py)
        "compiled_loaded": False,  # not even imported
    }


@pytest.mark.c_extension
@pytest.mark.parametrize("value", [None, "", "0"], ids=["unset", "empty", "zero"])
def test_compiled_when_built(compiled_impl: Any, value: Optional[str]) -> None:
    report = selection(value)
    assert report["implementation"] == "compiled"
    assert report["is_pure_class"] is False and report["is_pure_sizer"] is False
    assert report["class_module"] == compiled_impl.module.__name__


def test_falls_back_to_the_pure_twin_when_the_extension_is_missing() -> None:
    report = selection(None, prelude=BLOCK_EXTENSION)
    assert report["implementation"] == "python"
    assert report["is_pure_class"] is True and report["is_pure_sizer"] is True


def test_public_names() -> None:
    assert tiercache.IMPLEMENTATION in ("compiled", "python")
    assert {"HashCache", "IMPLEMENTATION", "default_sizer"} <= set(tiercache.__all__)


def test_the_manager_suite_passes_over_the_pure_twin(tmp_path: Path) -> None:
    """CacheManager's tests in a fresh interpreter on the pure-Python core: its get() leaves every L2 read to
    the Python methods (_get_slow, _get_l2) that the compiled core does in C for the common case."""
    env = {k: v for k, v in os.environ.items() if k != "PYTEST_ADDOPTS"}
    env["TIERCACHE_NO_EXTENSIONS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in [str(ROOT), env.get("PYTHONPATH", "")] if p)
    script = (
        "import sys, pytest, tiercache\n"
        "assert tiercache.IMPLEMENTATION == 'python', tiercache.IMPLEMENTATION\n"
        f"sys.exit(pytest.main(['-q', '-x', '-p', 'no:cacheprovider', {str(TESTS / 'test_manager.py')!r}]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, cwd=tmp_path,
                          timeout=600)  # (not the checkout: its tiercache would come first on sys.path)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_moved_modules_keep_their_old_names_with_a_warning(old: str, new: str) -> None:
    code = (
        "import importlib, warnings\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    old = importlib.import_module({old!r})\n"
        f"new = importlib.import_module({new!r})\n"
        "assert any(issubclass(w.category, DeprecationWarning) and " + repr(new) + " in str(w.message) for w in caught)\n"
        "names = getattr(new, '__all__', None) or [n for n in vars(new) if not n.startswith('_')]\n"
        "assert names and all(getattr(old, n) is getattr(new, n) for n in names)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)

"""Chooses, once, between the compiled core and its pure-Python twin.

Pure Python when TIERCACHE_NO_EXTENSIONS is set (to anything but "" or "0"), when the interpreter is not
CPython, or when the extension cannot be imported (not built: a source checkout without a build, or an
install where no compiler worked). `IMPLEMENTATION` says which was chosen. The last case, the pure twin
without being asked for on CPython, warns once (RuntimeWarning, naming the reason): it behaves the same
but is several times slower.
"""

from __future__ import annotations

import importlib
import os
import platform
import warnings
from types import ModuleType

NO_EXTENSIONS = os.environ.get("TIERCACHE_NO_EXTENSIONS", "") not in ("", "0")
IS_CPYTHON = platform.python_implementation() == "CPython"

if NO_EXTENSIONS or not IS_CPYTHON:
    from ._core_py import (FrequencySketch, HashCache, MISSING, NamespaceState, ReadPath, Ready, SampleHistogram, decode_l2, deep_sizer, default_sizer, jittered)

    IMPLEMENTATION = "python"
else:
    try:
        from ._core_c import (FrequencySketch, HashCache, MISSING, NamespaceState, ReadPath, Ready, SampleHistogram, decode_l2, deep_sizer, default_sizer, jittered)  # type: ignore[no-redef]

        IMPLEMENTATION = "compiled"
    except ImportError as exc:  # extension not built: same behaviour, slower
        from ._core_py import (FrequencySketch, HashCache, MISSING, NamespaceState, ReadPath, Ready, SampleHistogram, decode_l2, deep_sizer, default_sizer, jittered)

        IMPLEMENTATION = "python"
        warnings.warn(f"tiercache: the compiled core is not available ({exc}); using the pure-Python twin, which "
                      "behaves the same but is several times slower. Build it with a C compiler (pip install "
                      "--force-reinstall --no-cache-dir --no-binary pytiercache pytiercache; in a checkout, "
                      "python setup.py build_ext --inplace), or set TIERCACHE_NO_EXTENSIONS=1 to choose the "
                      "twin knowingly", RuntimeWarning, stacklevel=2)

__all__ = ["FrequencySketch", "HashCache", "MISSING", "NamespaceState", "ReadPath", "Ready", "SampleHistogram",
           "decode_l2", "deep_sizer", "default_sizer", "jittered", "IMPLEMENTATION", "NO_EXTENSIONS", "twin"]


def twin(compiled: str, pure: str) -> ModuleType:
    """The module `compiled` (an extension beside the core, such as tiercache.l2._resp_c) where the core is
    compiled and it imports, else its pure twin `pure`: the same choice as the core's, made for another unit."""
    if IMPLEMENTATION == "compiled":
        try:
            return importlib.import_module(compiled)
        except ImportError:
            pass
    return importlib.import_module(pure)

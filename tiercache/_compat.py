"""Chooses, once, between the compiled core and its pure-Python twin.

Pure Python when TIERCACHE_NO_EXTENSIONS is set (to anything but "" or "0"), when the interpreter is not
CPython, or when the extension cannot be imported (not built). `IMPLEMENTATION` says which was chosen.
"""

from __future__ import annotations

import importlib
import os
import platform
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
    except ImportError:  # extension not built: same behaviour, slower
        from ._core_py import (FrequencySketch, HashCache, MISSING, NamespaceState, ReadPath, Ready, SampleHistogram, decode_l2, deep_sizer, default_sizer, jittered)

        IMPLEMENTATION = "python"

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

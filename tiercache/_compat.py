"""Chooses, once, between the compiled core and its pure-Python twin.

Pure Python when TIERCACHE_NO_EXTENSIONS is set (to anything but "" or "0"), when the interpreter is not
CPython, or when the extension cannot be imported (not built). `IMPLEMENTATION` says which was chosen.
"""

from __future__ import annotations

import os
import platform

NO_EXTENSIONS = os.environ.get("TIERCACHE_NO_EXTENSIONS", "") not in ("", "0")
IS_CPYTHON = platform.python_implementation() == "CPython"

if NO_EXTENSIONS or not IS_CPYTHON:
    from ._core_py import (FrequencySketch, HashCache, MISSING, NamespaceState, ReadPath, Ready, SampleHistogram, decode_l2, default_sizer, jittered, resp_command)

    IMPLEMENTATION = "python"
else:
    try:
        from ._core_c import (FrequencySketch, HashCache, MISSING, NamespaceState, ReadPath, Ready, SampleHistogram, decode_l2, default_sizer, jittered, resp_command)  # type: ignore[no-redef]

        IMPLEMENTATION = "compiled"
    except ImportError:  # extension not built: same behaviour, slower
        from ._core_py import (FrequencySketch, HashCache, MISSING, NamespaceState, ReadPath, Ready, SampleHistogram, decode_l2, default_sizer, jittered, resp_command)

        IMPLEMENTATION = "python"

__all__ = ["FrequencySketch", "HashCache", "MISSING", "NamespaceState", "ReadPath", "Ready", "SampleHistogram",
           "decode_l2", "default_sizer", "jittered", "resp_command", "IMPLEMENTATION", "NO_EXTENSIONS"]

"""Build the compiled units: the core (ext/tiercache/_core_c.pyx -> tiercache._core_c) and the Redis
command packer (ext/tiercache/l2/_resp_c.pyx -> tiercache.l2._resp_c).

TIERCACHE_NO_EXTENSIONS=1 builds a pure-Python package; TIERCACHE_DEBUG=1 compiles the invariant checks in,
with line tracing and an annotated HTML next to the sources.
"""

import os

from setuptools import Extension, setup

NO_EXTENSIONS = os.environ.get("TIERCACHE_NO_EXTENSIONS", "") not in ("", "0")
DEBUG = os.environ.get("TIERCACHE_DEBUG", "") not in ("", "0")

ext_modules = []
if not NO_EXTENSIONS:
    from Cython.Build import cythonize

    macros = [("TIERCACHE_DEBUG", "1" if DEBUG else "0")]
    if DEBUG:
        macros.append(("CYTHON_TRACE", "1"))
    flags = ["-O3"] if os.name != "nt" else []
    ext_modules = cythonize(
        [
            Extension("tiercache._core_c", ["ext/tiercache/_core_c.pyx"], include_dirs=["ext/tiercache"],
                      define_macros=macros, extra_compile_args=flags),
            Extension("tiercache.l2._resp_c", ["ext/tiercache/l2/_resp_c.pyx"], define_macros=macros,
                      extra_compile_args=flags),
        ],
        include_path=["ext"],
        annotate=DEBUG,
        compiler_directives={"linetrace": DEBUG},
    )

setup(ext_modules=ext_modules)

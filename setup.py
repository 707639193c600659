"""Build the compiled units: the core (ext/tiercache/_core_c.pyx -> tiercache._core_c) and the Redis
command packer (ext/tiercache/l2/_resp_c.pyx -> tiercache.l2._resp_c).

Where they cannot be compiled (no working C compiler), the build warns once and installs the pure-Python
twin, which behaves the same (tiercache.IMPLEMENTATION == "python"; importing it warns too).
TIERCACHE_REQUIRE_EXTENSIONS=1 makes that a failure instead (for CI and wheel builds);
TIERCACHE_NO_EXTENSIONS=1 builds a pure-Python package on purpose; TIERCACHE_DEBUG=1 compiles the invariant
checks in, with line tracing and an annotated HTML next to the sources.
"""

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


def _flag(name):
    return os.environ.get(name, "") not in ("", "0")


NO_EXTENSIONS = _flag("TIERCACHE_NO_EXTENSIONS")
REQUIRE_EXTENSIONS = _flag("TIERCACHE_REQUIRE_EXTENSIONS")
DEBUG = _flag("TIERCACHE_DEBUG")
if NO_EXTENSIONS and REQUIRE_EXTENSIONS:
    sys.exit("TIERCACHE_NO_EXTENSIONS and TIERCACHE_REQUIRE_EXTENSIONS are both set: choose one")


class optional_build_ext(build_ext):
    """build_ext that, unless TIERCACHE_REQUIRE_EXTENSIONS is set, leaves out what it cannot compile."""

    warned = False

    def run(self):
        try:
            super().run()
        except Exception as exc:  # (no compiler at all: distutils' platform and exec errors, and the like)
            self._fallback(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # (the compiler failed on this unit)
            self._fallback(exc, ext.name)

    def _fallback(self, exc, name=None):
        if REQUIRE_EXTENSIONS:
            raise exc
        if not optional_build_ext.warned:
            optional_build_ext.warned = True
            what = f"{name}" if name else "the extensions"
            sys.stderr.write(
                f"WARNING: tiercache: could not compile {what} ({type(exc).__name__}: {exc}); installing the "
                "pure-Python twin, which behaves the same but is several times slower. For the compiled core, "
                "install a C compiler and rebuild without pip's cache (pip install --force-reinstall "
                "--no-cache-dir --no-binary pytiercache pytiercache); TIERCACHE_REQUIRE_EXTENSIONS=1 makes this "
                "an error.\n")


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
        # the compiled core relies on the GIL: on a free-threaded CPython importing it turns the GIL back on
        compiler_directives={"linetrace": DEBUG, "freethreading_compatible": False},
    )

setup(ext_modules=ext_modules, cmdclass={"build_ext": optional_build_ext})

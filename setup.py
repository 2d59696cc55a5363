"""Build microbp: pure Python, plus the C core (microbp._cmicrobp) and the C
that reads Python lists (microbp._pyread) when a C compiler works. Without one the install still succeeds, says why the C core
was skipped, and microbp runs in pure Python. Metadata is in pyproject.toml.

The C core is always compiled afresh (never taken as "up to date" from an old
build/ directory), and a failed compile removes any C core left in the build
output, so a failed build never ships a stale one. cffi builds the module on
CPython's stable ABI (a `.abi3.so`), so the wheel is tagged abi3 to match."""
import os
import sys
import sysconfig
from importlib.machinery import EXTENSION_SUFFIXES

from setuptools import setup
from setuptools.command.build_ext import build_ext

# cffi uses the limited API on CPython, except in debug and free-threaded builds
ABI3 = (sys.implementation.name == "cpython" and not hasattr(sys, "gettotalrefcount")
        and not sysconfig.get_config_var("Py_GIL_DISABLED"))


class OptionalBuildExt(build_ext):
    """build_ext that always recompiles and turns a failed C build into a warning."""

    def run(self):
        self.force = True       # an old build/ must not stand in for this compile
        try:
            super().run()
        except Exception as e:  # no compiler, no headers, a failing cffi step
            self._skip(e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._skip(e)

    def _skip(self, error):
        for ext in self.extensions:                 # no stale C core may ship
            folder = os.path.dirname(self.get_ext_fullpath(ext.name))
            stem = ext.name.rsplit(".", 1)[-1]
            for suffix in EXTENSION_SUFFIXES:
                path = os.path.join(folder, stem + suffix)
                if os.path.exists(path):
                    os.remove(path)
        print(f"\nmicrobp: the C core was not built ({type(error).__name__}: {error}).\n"
              "microbp will run in pure Python; install a C compiler (gcc) and reinstall "
              "to get the C backend (pip install -v . shows the compiler's output).\n",
              file=sys.stderr)


sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "microbp"))
from _cbuild import pyread_extension  # noqa: E402  (the build script, not the package)

setup(
    # _pyread relies on the GIL (no other thread changes a list while it reads)
    ext_modules=[] if sysconfig.get_config_var("Py_GIL_DISABLED") else [pyread_extension(ABI3)],
    cffi_modules=["microbp/_cbuild.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp39"}} if ABI3 else {},
)

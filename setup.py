"""Build microbp: pure Python, plus two C modules when a C compiler works: the
C core (microbp._cmicrobp, through cffi) and microbp._pyread (the C that reads
Python lists of rows). Without a compiler the install still succeeds, says
which module was skipped and why, and microbp runs in pure Python. Metadata
is in pyproject.toml.

The C modules are always compiled afresh (never taken as "up to date" from an
old build/ directory), and a module that fails to compile is removed from the
build output, so a failed build never ships a stale one. Both are built on
CPython's stable ABI (`.abi3.so`), so the wheel is tagged abi3 to match."""
import os
import sys
from importlib.machinery import EXTENSION_SUFFIXES

from setuptools import setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "microbp"))
from _cbuild import ABI3, c_extensions  # noqa: E402  (the build script, not the package)

WHAT_IS_LOST = {
    "microbp._cmicrobp": "the C core was not built ({error}).\nmicrobp will run in pure "
                         "Python; install a C compiler (gcc) and reinstall to get the C "
                         "backend",
    "microbp._pyread": "microbp._pyread was not built ({error}); lists of rows will be "
                       "read in Python",
}


class OptionalBuildExt(build_ext):
    """build_ext that always recompiles and turns a failed C build into a warning."""

    def run(self):
        self.force = True       # an old build/ must not stand in for this compile
        try:
            super().run()
        except Exception as e:  # no compiler, no headers, a failing cffi step
            self._skip(self.extensions, e)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as e:
            self._skip([ext], e)

    def _skip(self, extensions, error):
        for ext in extensions:                      # no stale module may ship
            folder = os.path.dirname(self.get_ext_fullpath(ext.name))
            stem = ext.name.rsplit(".", 1)[-1]
            for suffix in EXTENSION_SUFFIXES:
                path = os.path.join(folder, stem + suffix)
                if os.path.exists(path):
                    os.remove(path)
            lost = WHAT_IS_LOST.get(ext.name, ext.name + " was not built ({error})")
            print("\nmicrobp: " + lost.format(error=f"{type(error).__name__}: {error}")
                  + " (pip install -v . shows the compiler's output).\n", file=sys.stderr)


setup(
    ext_modules=c_extensions(),
    cffi_modules=["microbp/_cbuild.py:ffibuilder"],
    cmdclass={"build_ext": OptionalBuildExt},
    options={"bdist_wheel": {"py_limited_api": "cp39"}} if ABI3 else {},
)

"""Build script of the C core (cffi, out-of-line API mode): microbp._cmicrobp,
and of microbp._pyread (csrc/pyread.c: the C that reads Python lists, on
CPython's stable ABI; setup.py builds it from c_extensions()).

Declared by setup.py (cffi_modules). It compiles csrc/microbp.c, which
includes csrc/ops_generated.h: the op table of microbp/ops.py as C, generated
by `make ops` and checked in (so this script needs nothing from microbp
itself). Extra flags for special builds (sanitizers) come from
MICROBP_CFLAGS / MICROBP_LDFLAGS.
"""
import os
import sys
import sysconfig

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")


def _cdef_from_header(path):
    """The header's declarations, less the include guard and #include lines."""
    keep = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s.startswith(("#ifndef", "#endif", "#include", "#define MICROBP_H")):
            continue
        keep.append(line)
    return "".join(keep)


CFLAGS = ["-std=c99", "-O2", "-fvect-cost-model=dynamic", "-ffp-contract=off", "-fno-fast-math"]
CFLAGS += os.environ.get("MICROBP_CFLAGS", "").split()
LDFLAGS = os.environ.get("MICROBP_LDFLAGS", "").split()

PREAMBLE = """
#include "microbp.h"
const char *mbp_build_flags(void) { return "%s"; }
""" % " ".join(CFLAGS + LDFLAGS).replace("\\", "\\\\").replace('"', '\\"')

ffibuilder = FFI()
ffibuilder.cdef(_cdef_from_header(os.path.join(CSRC, "microbp.h")) + """
const char *mbp_build_flags(void);
""")
ffibuilder.set_source(
    "microbp._cmicrobp",
    PREAMBLE,
    sources=[os.path.relpath(os.path.join(CSRC, "microbp.c"))],
    depends=[os.path.relpath(os.path.join(CSRC, f)) for f in ("microbp.h", "ops_generated.h")],
    include_dirs=[CSRC],
    extra_compile_args=CFLAGS,
    extra_link_args=LDFLAGS + ["-lm"],
)

# cffi uses the limited API on CPython, except in debug and free-threaded builds
FREE_THREADED = bool(sysconfig.get_config_var("Py_GIL_DISABLED"))
ABI3 = (sys.implementation.name == "cpython" and not hasattr(sys, "gettotalrefcount")
        and not FREE_THREADED)


def c_extensions():
    """The setuptools Extensions besides the cffi core: microbp._pyread (same
    flags), on the stable ABI where the core is; none on a free-threaded
    CPython, since it reads lists relying on the GIL."""
    from setuptools import Extension
    if FREE_THREADED:
        return []
    return [Extension("microbp._pyread", [os.path.relpath(os.path.join(CSRC, "pyread.c"))],
                      extra_compile_args=CFLAGS, extra_link_args=LDFLAGS,
                      define_macros=[("Py_LIMITED_API", "0x03090000")] if ABI3 else [],
                      py_limited_api=ABI3)]


if __name__ == "__main__":     # both modules, into ./microbp (the sanitized build)
    ffibuilder.compile(verbose=True)
    from setuptools import setup
    setup(script_name="_cbuild.py", script_args=["build_ext", "--inplace", "--force"],
          ext_modules=c_extensions())

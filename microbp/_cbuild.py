"""cffi build script for the C core (out-of-line API mode): microbp._cmicrobp.

Declared by setup.py (cffi_modules). The op codes and arities are taken from
the op table in microbp/ops.py and handed to the compiler as macros, so the C
switch and the Python executor can never disagree about them. Extra flags for
special builds (sanitizers) come from MICROBP_CFLAGS / MICROBP_LDFLAGS.
"""
import importlib.util
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
CSRC = os.path.join(os.path.dirname(HERE), "csrc")


def _load_ops():
    spec = importlib.util.spec_from_file_location("_microbp_ops", os.path.join(HERE, "ops.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cdef_from_header(path):
    """The header's declarations, less the include guard and #include lines."""
    keep = []
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s.startswith(("#ifndef", "#endif", "#include", "#define MICROBP_H")):
            continue
        keep.append(line)
    return "".join(keep)


ops = _load_ops()
CFLAGS = ["-std=c99", "-O2", "-fvect-cost-model=dynamic", "-ffp-contract=off", "-fno-fast-math"]
CFLAGS += os.environ.get("MICROBP_CFLAGS", "").split()
LDFLAGS = os.environ.get("MICROBP_LDFLAGS", "").split()
MACROS = ops.c_macros() + [("MBP_ARITY", "{" + ",".join(str(k) for k in ops.ARITY) + "}")]

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
    include_dirs=[CSRC],
    define_macros=MACROS,
    extra_compile_args=CFLAGS,
    extra_link_args=LDFLAGS + ["-lm"],
)

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

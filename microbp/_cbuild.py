"""cffi build script for the C core (out-of-line API mode): microbp._cmicrobp.

Declared by setup.py (cffi_modules). It compiles csrc/microbp.c, which
includes csrc/ops_generated.h: the op table of microbp/ops.py as C, generated
by `make ops` and checked in (so this script needs nothing from microbp
itself). Extra flags for special builds (sanitizers) come from
MICROBP_CFLAGS / MICROBP_LDFLAGS.
"""
import os

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

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)

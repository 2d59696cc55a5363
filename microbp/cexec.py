"""The C executor: the same functions as pyexec.py, run by the cffi module
built from csrc/microbp.c. Importing this module fails when it is not built,
or when the build does not match the op table (a stale build).

Arrays go to C as pointers into their own buffers (array.array, bytearray):
no copies (backward_scalar packs its lists once). Every length C is told is
the length of the buffer it gets, buffers C writes must be writable, and C
checks the tape before touching memory; an error comes back as TapeError.
"""
from array import array

from . import ops
from ._cmicrobp import ffi, lib
from .pyexec import TapeError

if lib.mbp_num_ops() != ops.NUM_OPS or any(
        lib.mbp_arity(k) != ops.ARITY[k] for k in range(ops.NUM_OPS)):
    raise ImportError("the C core was built from another op table than microbp/ops.py: "
                      "rebuild it (pip install . or make)")

_ERRORS = {
    lib.MBP_EOP: "unknown op code",
    lib.MBP_EINDEX: "an input index that is not an earlier node",
    lib.MBP_EVARY: "vary flags that are not 0/1 or unlike the node's inputs",
    lib.MBP_ELAYOUT: "offsets that do not tile the value array",
    lib.MBP_ESIZE: "a size that is not positive or arrays too small for the tape",
    lib.MBP_ESLOT: "a node or slot index out of range",
}

_buf = ffi.from_buffer


def _out(cdecl, arr):
    """A pointer into a buffer that C writes to."""
    return ffi.from_buffer(cdecl, arr, require_writable=True)


def _ok(code, what):
    if code != 0:
        raise TapeError(f"C core, {what}: {_ERRORS.get(code, f'error {code}')}")


def _rows(nr):
    if not isinstance(nr, int) or not 1 <= nr < 2 ** 62:
        raise TapeError(f"the number of rows must be an int from 1 to 2**62, got {nr!r}")
    return nr


def _tape(op, a, b, vary, off):
    p = (_buf("int32_t[]", op), _buf("int32_t[]", a), _buf("int32_t[]", b),
         _buf("uint8_t[]", vary), _buf("int64_t[]", off))
    n = len(p[0])
    if any(len(x) != n for x in p):
        raise TapeError("tape arrays must be of one length")
    return p, n


_NO_EXT = array("i")


def forward(val, op, a, b, vary, off, nr, ext=_NO_EXT):
    pv, pe = _out("double[]", val), _buf("int32_t[]", ext)
    (po, pa, pb, py, pf), n = _tape(op, a, b, vary, off)
    _ok(lib.mbp_forward(pv, len(pv), po, pa, pb, py, pf, n, _rows(nr), pe, len(pe)), "forward")


def backward(adj, val, op, a, b, vary, off, nr, ext=_NO_EXT):
    pd, pv, pe = _out("double[]", adj), _buf("double[]", val), _buf("int32_t[]", ext)
    (po, pa, pb, py, pf), n = _tape(op, a, b, vary, off)
    _ok(lib.mbp_backward(pd, pv, min(len(pd), len(pv)), po, pa, pb, py, pf, n, _rows(nr), pe,
                         len(pe)),
        "backward")


def backward_scalar(op, a, b, val):
    """Adjoints of every node of a one-row tape given as lists (eager backward)."""
    n = len(op)
    val = array("d", val)
    adj = array("d", bytes(8 * n))     # set to -0.0 by the sweep
    backward(adj, val, array("i", op), array("i", a), array("i", b), bytearray(n),
             array("q", range(n)), 1)
    return adj


def gather(val, off, nodes, slots, src):
    pv, pf, pn = _out("double[]", val), _buf("int64_t[]", off), _buf("int32_t[]", nodes)
    ps, pr = _buf("int32_t[]", slots), _buf("double[]", src)
    if len(pn) != len(ps):
        raise TapeError("nodes and slots must be of one length")
    _ok(lib.mbp_gather(pv, len(pv), pf, len(pf), pn, ps, len(pn), pr, len(pr)), "gather")


def scatter_add(dst, adj, off, nodes, slots):
    pd, pa, pf = _out("double[]", dst), _buf("double[]", adj), _buf("int64_t[]", off)
    pn, ps = _buf("int32_t[]", nodes), _buf("int32_t[]", slots)
    if len(pn) != len(ps):
        raise TapeError("nodes and slots must be of one length")
    _ok(lib.mbp_scatter_add(pd, len(pd), pa, len(pa), pf, len(pf), pn, ps, len(pn)), "scatter")


def load_rows(val, off, nodes, rows, nr):
    pv, pf, pn, pr = (_out("double[]", val), _buf("int64_t[]", off),
                      _buf("int32_t[]", nodes), _buf("double[]", rows))
    _ok(lib.mbp_load_rows(pv, len(pv), pf, len(pf), pn, len(pn), pr, len(pr), _rows(nr)),
        "load rows")


def sgd(data, grad, slots, lr):
    pd, pg, ps = _out("double[]", data), _buf("double[]", grad), _buf("int32_t[]", slots)
    _ok(lib.mbp_sgd(pd, pg, min(len(pd), len(pg)), ps, len(ps), lr), "sgd")


def momentum(data, vel, grad, slots, lr, mu):
    pd, pv, pg = _out("double[]", data), _out("double[]", vel), _buf("double[]", grad)
    ps = _buf("int32_t[]", slots)
    _ok(lib.mbp_momentum(pd, pv, pg, min(len(pd), len(pg)), len(pv), ps, len(ps), lr, mu),
        "momentum")


def adam(data, m, v, grad, slots, lr, beta1, beta2, eps, bc1, bc2):
    pd, pm, pv, pg = (_out("double[]", data), _out("double[]", m), _out("double[]", v),
                      _buf("double[]", grad))
    ps = _buf("int32_t[]", slots)
    _ok(lib.mbp_adam(pd, pm, pv, pg, min(len(pd), len(pg)), min(len(pm), len(pv)), ps, len(ps),
                     lr, beta1, beta2, eps, bc1, bc2), "adam")


def fill(dst, slots, value):
    pd, ps = _out("double[]", dst), _buf("int32_t[]", slots)
    _ok(lib.mbp_fill(pd, len(pd), ps, len(ps), value), "fill")


def first_nonfinite(arr, start=0, stop=None):
    """The index of the first nan or inf in arr[start:stop], or -1."""
    p = _buf("double[]", arr)
    stop = len(p) if stop is None else stop
    k = lib.mbp_first_nonfinite(p, len(p), start, stop)
    if k < -1:
        raise TapeError(f"range {start}:{stop} is outside an array of {len(p)}")
    return k


def build_flags():
    """The compiler flags the C core was built with."""
    return ffi.string(lib.mbp_build_flags()).decode()

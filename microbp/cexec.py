"""The C executor: the functions of executor.py, run by the cffi module built
from csrc/microbp.c. Importing this module fails when it is not built, or
when the build does not match the op table (a stale build).

What C reads, nothing can change while it runs: index arrays go to C as
immutable bytes (a Tape's own, or a copy made here of anything else), and
C checks them against the lengths of the buffers it gets before it touches
memory. Buffers C writes must be writable and must not overlap any buffer
the same call reads (TapeError otherwise). Double buffers go as pointers into
their own memory (array.array, bytearray, memoryview): no copies.
"""
from array import array

from . import ops
from ._cmicrobp import ffi, lib
from .tapeformat import TapeError, check_rows

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
    lib.MBP_ELAYER: "a layer that is not a run of lin nodes over the same inputs",
    lib.MBP_ENOMEM: "out of memory",
}

_ITEM = {"int32_t[]": "i", "int64_t[]": "q", "uint8_t[]": "B"}


def _index(cdecl, x):
    """A read-only pointer to an index array that nothing can change while C
    runs: x itself when it is immutable (bytes, or a read-only view of bytes),
    else a copy."""
    if not (type(x) is bytes or (type(x) is memoryview and x.readonly
                                  and type(x.obj) is bytes)):
        code = _ITEM[cdecl]
        if not (isinstance(x, array) and x.typecode == code):
            try:
                x = array(code, x)
            except (TypeError, OverflowError) as e:
                raise TapeError(f"an index array holds {e}") from None
        x = x.tobytes()
    return ffi.from_buffer(cdecl, x)


def _doubles(x):
    return ffi.from_buffer("double[]", x)


def _sized(x):
    """A pointer to the doubles of x (read) and their count."""
    p = ffi.from_buffer("double[]", x)
    return p, len(p)


def _out(x, *reads):
    """A pointer into a buffer that C writes to, refused when it overlaps one it reads."""
    p = ffi.from_buffer("double[]", x, True)      # (True: writable; a keyword costs more)
    if reads:
        _disjoint(p, reads)
    return p


def _apart(x, *objs):
    """True when x is an array.array and each of objs another array.array, a
    bytes object or None (not given): each owns its memory, so they cannot
    overlap (no address arithmetic needed)."""
    if type(x) is not array:
        return False
    for o in objs:                     # (a loop: this runs on every call of a step)
        if o is x or not (type(o) is array or type(o) is bytes or o is None):
            return False
    return True


def _disjoint(p, reads):
    """TapeError when the buffer at p (written) overlaps one of `reads`."""
    lo = int(ffi.cast("uintptr_t", p))
    hi = lo + 8 * len(p)
    for q in reads:
        qlo = int(ffi.cast("uintptr_t", q))
        if lo < qlo + ffi.sizeof(q) and qlo < hi and len(p) and ffi.sizeof(q):
            raise TapeError("an output buffer overlaps a buffer the same call reads")


def _ok(code, what):
    if code != 0:
        raise TapeError(f"C core, {what}: {_ERRORS.get(code, f'error {code}')}")


def _tape(op, a, b, vary, off, ext):
    """Pointers to a tape's arrays; off None: one value per node (0, 1, 2, ...)."""
    p = (_index("int32_t[]", op), _index("int32_t[]", a), _index("int32_t[]", b),
         _index("uint8_t[]", vary))
    pf = ffi.NULL if off is None else _index("int64_t[]", off)
    n = len(p[0])
    if any(len(x) != n for x in p) or (off is not None and len(pf) != n):
        raise TapeError("tape arrays must be of one length")
    return p + (pf, n, _index("int32_t[]", ext))


_NO_EXT = bytes()


def _layers(layers):
    p = _index("int32_t[]", layers)
    if len(p) % 2:
        raise TapeError("layers must be pairs (first, count)")
    return p


class Program:
    """A tape sealed in C: its arrays copied into the core's own memory and
    checked there once (mbp_program_new), for value arrays of `nval` doubles,
    with the nodes a batch row fills (`inputs`, one per input slot used) and
    the parameter nodes of one store (`params`: (nodes, slots)). Each run
    then checks only the sizes of the buffers it is given."""

    __slots__ = ("_p", "nval", "nrows", "_kept")

    def __init__(self, op, a, b, vary, off, nr, nval, ext=_NO_EXT, layers=_NO_EXT,
                 inputs=_NO_EXT, params=(_NO_EXT, _NO_EXT)):
        po, pa, pb, py, pf, n, pe = _tape(op, a, b, vary, off, ext)
        pl = _layers(layers)
        pi, pn, ps = (_index("int32_t[]", x) for x in (inputs, *params))
        if len(pn) != len(ps):
            raise TapeError("parameter nodes and slots must be of one length")
        if not isinstance(nval, int) or not 0 <= nval < 2 ** 62:
            raise TapeError(f"nval must be an int from 0 to 2**62, got {nval!r}")
        out = ffi.new("struct mbp_program **")
        _ok(lib.mbp_program_new(out, nval, po, pa, pb, py, pf, n, check_rows(nr), pe, len(pe),
                                pl, len(pl) // 2, pi, len(pi), pn, ps, len(pn)), "tape")
        self._p = ffi.gc(out[0], lib.mbp_program_free)
        self.nval, self.nrows = nval, nr
        self._kept = {}       # id -> (array, pointer): the buffers a tape runs on

    def _pointer(self, x):
        """A pointer into x (written), kept for an array.array, which cannot
        move or shrink while cffi holds it; made at each call for any other
        buffer (a ctypes or numpy array can be resized under a kept pointer).
        The kept array is held too, so its id cannot name another meanwhile:
        only a tape's own arrays come here (a store's must stay free to grow)."""
        if type(x) is not array:
            return _out(x)
        kept = self._kept.get(id(x))
        if kept is None:
            if len(self._kept) >= 4:          # a tape's val, adj and tan, at most
                self._kept.clear()
            kept = self._kept[id(x)] = (x, _out(x))
        return kept[1]

    def _buffers(self, val, adj=None):
        """Pointers to val and adj (both written), refused when they overlap."""
        pv = self._pointer(val)
        if adj is None:
            return pv, None
        pd = self._pointer(adj)
        if not _apart(val, adj):
            _disjoint(pd, [pv])
        return pv, pd

    def forward(self, val, rows=None, src=None):
        """The rows (nrows x len(inputs), row-major) into the input lanes and
        the parameters from src (their store) when given, then val[node] =
        op(val[a], val[b]) for every non-leaf node, up the tape."""
        pv = self._pointer(val)
        pr, nr = (ffi.NULL, 0) if rows is None else _sized(rows)
        psrc, ns = (ffi.NULL, 0) if src is None else _sized(src)
        if not _apart(val, rows, src):
            _disjoint(pv, [p for p in (pr, psrc) if p != ffi.NULL])
        _ok(lib.mbp_forward(pv, len(pv), self._p, pr, nr, psrc, ns), "forward")

    def backward(self, adj, val, dst=None):
        """adj[node] = d(sum over rows of the last node)/d(node), down the tape;
        then the parameters' adjoints added into dst (their store's grads) when given."""
        pv, pd = self._buffers(val, adj)
        pdst = (ffi.NULL if dst is None else _out(dst) if _apart(dst, val, adj)
                else _out(dst, pv, pd))
        _ok(lib.mbp_backward(pd, pv, min(len(pd), len(pv)), self._p, pdst,
                             len(pdst) if dst is not None else 0), "backward")

    def tangent(self, tan, val):
        """tan[node] of every varying node from the tangents of the input slots."""
        pv = _doubles(val)
        pt = _out(tan, pv)
        _ok(lib.mbp_tangent(pt, pv, min(len(pt), len(pv)), self._p), "tangent")


def _nval(*bufs):
    """The doubles that all of bufs hold."""
    return min(len(ffi.from_buffer("double[]", x)) for x in bufs)


def forward(val, op, a, b, vary, off, nr, ext=_NO_EXT, layers=_NO_EXT):
    Program(op, a, b, vary, off, nr, _nval(val), ext, layers).forward(val)


def backward(adj, val, op, a, b, vary, off, nr, ext=_NO_EXT, layers=_NO_EXT):
    Program(op, a, b, vary, off, nr, _nval(adj, val), ext, layers).backward(adj, val)


def tangent(tan, val, op, a, b, vary, off, nr, ext=_NO_EXT):
    Program(op, a, b, vary, off, nr, _nval(tan, val), ext).tangent(tan, val)


_FIT_KINDS = {"sgd": lib.MBP_FIT_SGD, "momentum": lib.MBP_FIT_MOMENTUM, "adam": lib.MBP_FIT_ADAM}


def fit(prog, val, adj, data, grad, oslots, kind, hyper, s1, s2, t0, steps):
    """`steps` training steps of the Program `prog` (its parameters in the
    store data/grad) in one call (see mbp_fit); returns the losses."""
    pos = _index("int32_t[]", oslots)
    ph = _doubles(array("d", hyper))
    losses = array("d", bytes(8 * max(steps, 1)))
    pv = _out(val)
    pd = _out(adj, pv)
    pdata = _out(data, pv, pd)
    pgrad = _out(grad, pv, pd, pdata)
    p1 = _out(s1, pv, pd, pdata, pgrad)
    p2 = _out(s2, pv, pd, pdata, pgrad, p1) if s2 is not s1 else p1
    pl_out = _out(losses, pv, pd, pdata, pgrad, p1, p2)
    _ok(lib.mbp_fit(pv, pd, min(len(pv), len(pd)), prog._p, pdata, pgrad,
                    min(len(pdata), len(pgrad)), pos, len(pos), _FIT_KINDS[kind], ph, len(ph),
                    p1, p2, min(len(p1), len(p2)), t0, steps, pl_out, len(pl_out)), "fit")
    return losses.tolist()[:steps]


def backward_scalar(op, a, b, val):
    """Adjoints of every node of a one-row tape given as lists or arrays
    (eager backward): no node varies, node i's value is val[i]."""
    n = len(op)
    if not (type(val) is array and val.typecode == "d"):
        val = array("d", val)
    adj = array("d", bytes(8 * n))     # set to -0.0 by the sweep
    Program(op, a, b, bytes(n), None, 1, n).backward(adj, val)   # backward checks val
    return adj


def gather(val, off, nodes, slots, src):
    pf, pn, ps = _index("int64_t[]", off), _index("int32_t[]", nodes), _index("int32_t[]", slots)
    pr = _doubles(src)
    pv = _out(val, pr)
    if len(pn) != len(ps):
        raise TapeError("nodes and slots must be of one length")
    _ok(lib.mbp_gather(pv, len(pv), pf, len(pf), pn, ps, len(pn), pr, len(pr)), "gather")


def scatter_add(dst, adj, off, nodes, slots):
    pf, pn, ps = _index("int64_t[]", off), _index("int32_t[]", nodes), _index("int32_t[]", slots)
    pa = _doubles(adj)
    pd = _out(dst, pa)
    if len(pn) != len(ps):
        raise TapeError("nodes and slots must be of one length")
    _ok(lib.mbp_scatter_add(pd, len(pd), pa, len(pa), pf, len(pf), pn, ps, len(pn)), "scatter")


def load_rows(val, off, nodes, rows, nr):
    pf, pn, pr = _index("int64_t[]", off), _index("int32_t[]", nodes), _doubles(rows)
    pv = _out(val, pr)
    _ok(lib.mbp_load_rows(pv, len(pv), pf, len(pf), pn, len(pn), pr, len(pr), check_rows(nr)),
        "load rows")


# -- optimizer kernels (their Python twins are in optim.py, beside each class) --

def sgd(data, grad, slots, lr):
    ps, pg = _index("int32_t[]", slots), _doubles(grad)
    pd = _out(data) if _apart(data, grad) else _out(data, pg)
    _ok(lib.mbp_sgd(pd, pg, min(len(pd), len(pg)), ps, len(ps), lr), "sgd")


def momentum(data, vel, grad, slots, lr, mu):
    ps, pg = _index("int32_t[]", slots), _doubles(grad)
    pv = _out(vel, pg)
    pd = _out(data, pg, pv)
    _ok(lib.mbp_momentum(pd, pv, pg, min(len(pd), len(pg)), len(pv), ps, len(ps), lr, mu),
        "momentum")


def adam(data, m, v, grad, slots, lr, beta1, beta2, eps, bc1, bc2):
    ps, pg = _index("int32_t[]", slots), _doubles(grad)
    pm = _out(m, pg)
    pv = _out(v, pg, pm)
    pd = _out(data, pg, pm, pv)
    _ok(lib.mbp_adam(pd, pm, pv, pg, min(len(pd), len(pg)), min(len(pm), len(pv)), ps, len(ps),
                     lr, beta1, beta2, eps, bc1, bc2), "adam")


def fill(dst, slots, value):
    ps = _index("int32_t[]", slots)
    pd = _out(dst)
    _ok(lib.mbp_fill(pd, len(pd), ps, len(ps), value), "fill")


def first_nonfinite(arr, start=0, stop=None):
    """The index of the first nan or inf in arr[start:stop], or -1."""
    p = _doubles(arr)
    stop = len(p) if stop is None else stop
    k = lib.mbp_first_nonfinite(p, len(p), start, stop)
    if k < -1:
        raise TapeError(f"range {start}:{stop} is outside an array of {len(p)}")
    return k


def build_flags():
    """The compiler flags the C core was built with."""
    return ffi.string(lib.mbp_build_flags()).decode()

"""The pure-Python executor: the sweeps of a tape (tapeformat.py), the
mirror of csrc/microbp.c, with the kernels of the op table (ops.py).

forward() fills val[] up the array, backward() fills adj[] down it and
tangent() fills tan[] up it (forward mode). Adjoints start at -0.0, the exact
additive identity, so a node's gradient is exactly the sum of its
contributions in the order they arrive, as in PyTorch. A node that does not
vary keeps a single value; when it feeds a varying node, its gradient is the
sum over the lanes, added in a fixed order (4 running sums, lane r into sum
r % 4, each started at -0.0), so that C and Python give the same doubles and
one lane gives exactly the eager result. The functions every executor
provides are listed in executor.py.
"""
import math
from array import array
from itertools import repeat

from . import ops
from .ops import CONST, LIN, ADD, MUL
from .tapeformat import (TapeError, check, check_nodes as _check_nodes,  # noqa: F401
                         check_slots as _check_slots, check_rows, lin_terms, layout,
                         check_layers)

_F, _B, _T, _ARITY, _GRAD_B = ops.FORWARD, ops.BACKWARD, ops.TANGENT, ops.ARITY, ops.GRAD_B
_add, _mul = _F[ADD], _F[MUL]
_mul_tangent = ops.TANGENT[MUL]


def _lanes(val, i, vary, off, nr):
    """The nr lane values of node i (a repeated single value if it does not vary)."""
    o = off[i]
    return val[o:o + nr] if vary[i] else repeat(val[o], nr)


class Program:
    """A tape checked once (tapeformat.check) for value arrays of `nval`
    doubles, with the nodes a batch row fills (`inputs`) and the parameter
    nodes of one store (`params`: (nodes, slots)): the twin of
    cexec.Program. It keeps its own copies of the arrays, and each run checks
    only the sizes of the buffers it is given."""

    __slots__ = ("_tape", "nval", "nrows", "_inputs", "_params", "_nslots")

    def __init__(self, op, a, b, vary, off, nr, nval, ext=(), layers=(), inputs=(),
                 params=((), ())):
        try:
            tape = (tuple(op), tuple(a), tuple(b), bytes(vary), tuple(off), nr, tuple(ext))
            layers, inputs = tuple(layers), tuple(inputs)
            pnodes, pslots = tuple(params[0]), tuple(params[1])
        except (TypeError, ValueError) as e:
            raise TapeError(f"a tape array holds {e}") from None
        if not isinstance(nval, int) or not 0 <= nval < 2 ** 62:
            raise TapeError(f"nval must be an int from 0 to 2**62, got {nval!r}")
        if len(pnodes) != len(pslots):
            raise TapeError("parameter nodes and slots must be of one length")
        if len(inputs) > len(tape[0]) or len(pnodes) > len(tape[0]):
            raise TapeError("more input or parameter nodes than the tape has nodes")
        check(*tape[:6], nval, tape[6])
        check_layers(*tape[:4], tape[6], layers)
        _check_nodes(tape[4], inputs, nr, nval)
        _check_nodes(tape[4], pnodes, 1, nval)
        _check_slots(pslots, 2 ** 31 - 1)          # as C: below INT32_MAX
        self._tape, self.nval, self.nrows = tape, nval, nr
        off = tape[4]
        self._inputs = tuple(off[j] for j in inputs)
        self._params = tuple((off[j], s) for j, s in zip(pnodes, pslots))
        self._nslots = max(pslots, default=-1) + 1

    def _fits(self, *bufs):
        if min(map(len, bufs)) < self.nval:
            raise TapeError(f"value arrays hold {min(map(len, bufs))} doubles, "
                            f"the tape needs {self.nval}")

    def _store(self, arr):
        if len(arr) < self._nslots:
            raise TapeError(f"a parameter store of {len(arr)} has no slot {self._nslots - 1}")

    def forward(self, val, rows=None, src=None):
        """The rows (nrows x len(inputs), row-major) into the input lanes and
        the parameters from src (their store) when given, then val[node] =
        op(val[a], val[b]) for every non-leaf node, up the tape."""
        self._fits(val)
        nr, k = self.nrows, len(self._inputs)
        if type(rows) is bytes:                  # the bytes of doubles (whole ones, as C)
            rows = array("d", rows[:len(rows) // 8 * 8])
        if rows is not None and len(rows) < nr * k:
            raise TapeError(f"{nr} rows of {k} do not fit in {len(rows)} values")
        if src is not None:
            self._store(src)
        if rows is not None:
            for j, o in enumerate(self._inputs):
                val[o:o + nr] = rows[j:nr * k:k]
        if src is not None:
            for o, s in self._params:
                val[o] = src[s]
        _forward(val, *self._tape)

    def backward(self, adj, val, dst=None):
        """adj[node] = d(sum over rows of the last node)/d(node), down the tape;
        then the parameters' adjoints added into dst (their store's grads) when given."""
        self._fits(adj, val)
        if dst is not None:
            self._store(dst)
        _backward(adj, val, *self._tape)
        if dst is not None:
            for o, s in self._params:
                dst[s] += adj[o]

    def tangent(self, tan, val):
        """tan[node] of every varying node from the tangents of the input slots."""
        self._fits(tan, val)
        _tangent(tan, val, *self._tape)


def forward(val, op, a, b, vary, off, nr, ext=(), layers=()):
    """val[node i] = op_i(val[a_i], val[b_i]) for every non-leaf node, in order
    (layers are checked, and need nothing else here: the same bits node by node)."""
    Program(op, a, b, vary, off, nr, len(val), ext, layers).forward(val)


def backward(adj, val, op, a, b, vary, off, nr, ext=(), layers=()):
    """adj[node] = d(sum over lanes of the last node)/d(node), for every node."""
    Program(op, a, b, vary, off, nr, min(len(val), len(adj)), ext, layers).backward(adj, val)


def tangent(tan, val, op, a, b, vary, off, nr, ext=()):
    """tan[node] = the tangent of every node that varies, up the array, from
    the tangents of the input slots (set by the caller): forward mode, with
    the tangents of the rows of a batch as lanes. A node that does not vary
    has no tangent (it depends on no input slot), and contributes nothing."""
    Program(op, a, b, vary, off, nr, min(len(val), len(tan)), ext).tangent(tan, val)


def _forward(val, op, a, b, vary, off, nr, ext):
    for i in range(len(op)):
        o = op[i]
        if o <= CONST:
            continue                          # leaves are filled by the caller
        if o == LIN:
            _lin_forward(val, i, a[i], lin_terms(ext, b[i]), vary, off, nr)
            continue
        f = _F[o]
        oi = off[i]
        binary = _ARITY[o] == 2
        if not vary[i]:                       # one value
            val[oi] = f(val[off[a[i]]], val[off[b[i]]] if binary else 0.0)
        else:                                 # one value per lane
            xs = _lanes(val, a[i], vary, off, nr)
            ys = _lanes(val, b[i], vary, off, nr) if binary else repeat(0.0, nr)
            val[oi:oi + nr] = type(val)("d", map(f, xs, ys))


def _lin_forward(val, i, base, terms, vary, off, nr):
    """lin: acc = base, then acc = acc + p*q for each term, lane by lane."""
    w = nr if vary[i] else 1
    acc = list(_lanes(val, base, vary, off, w))
    for p, q in terms:
        acc = list(map(_add, acc, map(_mul, _lanes(val, p, vary, off, w),
                                      _lanes(val, q, vary, off, w))))
    val[off[i]:off[i] + w] = type(val)("d", acc)


def _lane_sum(grads):
    """The sum of the lanes: 4 running sums from -0.0, lane r into sum r % 4."""
    s = [-0.0, -0.0, -0.0, -0.0]
    for r, c in enumerate(grads):
        s[r & 3] += c
    return (s[0] + s[1]) + (s[2] + s[3])


def _accumulate(adj, j, vary, off, grads):
    """adj[node j] += grads: lane by lane, or their sum if node j does not vary."""
    o = off[j]
    if vary[j]:
        for r, c in enumerate(grads):
            adj[o + r] += c
    else:
        adj[o] += _lane_sum(grads)


def _lin_backward(adj, val, i, base, terms, vary, off, nr):
    """The backward of the fused adds and muls, in the order the unfused sweep
    makes its contributions: terms last to first, the base just before term 0."""
    w = nr if vary[i] else 1
    g = adj[off[i]:off[i] + w]
    for j in range(len(terms) - 1, -1, -1):
        if j == 0:
            _accumulate(adj, base, vary, off, g)               # add: passes g on
        p, q = terms[j]
        if vary[p] or vary[q]:                                  # the product varies
            gm, xs, ys = g, _lanes(val, p, vary, off, w), _lanes(val, q, vary, off, w)
        else:                                                   # one product, one gradient
            gm, xs, ys = [_lane_sum(g)], [val[off[p]]], [val[off[q]]]
        xs, ys = list(xs), list(ys)
        _accumulate(adj, p, vary, off, list(map(_mul, gm, ys)))   # mul swaps in
        _accumulate(adj, q, vary, off, list(map(_mul, gm, xs)))   # the other input


def _backward(adj, val, op, a, b, vary, off, nr, ext):
    n = len(op)
    if nr == 1 and not any(vary) and LIN not in op:
        return _sweep_scalar(adj, val, op, a, b)
    root = off[n - 1]
    for k in range(root + (nr if vary[n - 1] else 1)):   # the part the tape uses
        adj[k] = -0.0
    if vary[n - 1]:                           # seed: d(sum over rows of root)/d root
        for r in range(nr):
            adj[root + r] = 1.0
    else:                                     # a root that is the same in every row
        adj[root] = float(nr)
    for i in range(n - 1, -1, -1):
        o = op[i]
        if o <= CONST:
            continue
        if o == LIN:
            _lin_backward(adj, val, i, a[i], lin_terms(ext, b[i]), vary, off, nr)
            continue
        bw = _B[o]
        oi = off[i]
        ai = a[i]
        bi = b[i] if _ARITY[o] == 2 else -1
        if not vary[i]:
            ga, gb = bw(adj[oi], val[off[ai]], val[off[bi]] if bi >= 0 else 0.0, val[oi])
            _accumulate(adj, ai, vary, off, (ga,))
            if _GRAD_B[o]:
                _accumulate(adj, bi, vary, off, (gb,))
        else:
            xs = _lanes(val, ai, vary, off, nr)
            ys = _lanes(val, bi, vary, off, nr) if bi >= 0 else repeat(0.0, nr)
            pairs = list(map(bw, adj[oi:oi + nr], xs, ys, val[oi:oi + nr]))
            _accumulate(adj, ai, vary, off, [p[0] for p in pairs])
            if _GRAD_B[o]:
                _accumulate(adj, bi, vary, off, [p[1] for p in pairs])


def _tangent(tan, val, op, a, b, vary, off, nr, ext):
    for i in range(len(op)):
        o = op[i]
        if o <= CONST or not vary[i]:
            continue
        oi = off[i]
        if o == LIN:
            _lin_tangent(tan, val, i, a[i], lin_terms(ext, b[i]), vary, off, nr)
            continue
        ai, bi = a[i], (b[i] if _ARITY[o] == 2 else a[i])
        none = repeat(None, nr)
        ta = tan[off[ai]:off[ai] + nr] if vary[ai] else none
        tb = tan[off[bi]:off[bi] + nr] if (_GRAD_B[o] and vary[bi]) else none
        tan[oi:oi + nr] = type(tan)("d", map(_T[o], ta, tb, _lanes(val, ai, vary, off, nr),
                                             _lanes(val, bi, vary, off, nr), val[oi:oi + nr]))


def _lin_tangent(tan, val, i, base, terms, vary, off, nr):
    """The tangents of the fused adds and muls in their order: a mul of two
    nodes that do not vary has none, and its add passes the sum's on."""
    acc = tan[off[base]:off[base] + nr].tolist() if vary[base] else None
    for p, q in terms:
        if not (vary[p] or vary[q]):
            continue
        tp = tan[off[p]:off[p] + nr] if vary[p] else repeat(None, nr)
        tq = tan[off[q]:off[q] + nr] if vary[q] else repeat(None, nr)
        m = list(map(_mul_tangent, tp, tq, _lanes(val, p, vary, off, nr),
                     _lanes(val, q, vary, off, nr), repeat(0.0, nr)))
        acc = m if acc is None else list(map(_add, acc, m))
    tan[off[i]:off[i] + nr] = type(tan)("d", acc)


def backward_scalar(op, a, b, val):
    """Adjoints of every node of a one-row tape given as lists (eager backward)."""
    adj = [-0.0] * len(op)
    _sweep_scalar(adj, val, op, a, b)
    return adj


def _sweep_scalar(adj, val, op, a, b):
    """backward() for a tape where no node varies (one row, off[i] = i): the
    same arithmetic without the lanes (a single lane's sum is exactly itself)."""
    n = len(op)
    for k in range(n):
        adj[k] = -0.0
    adj[n - 1] = 1.0
    B, binary, grad_b = _B, [k == 2 for k in _ARITY], _GRAD_B
    for i, o, ai, bi in zip(range(n - 1, -1, -1), reversed(op), reversed(a), reversed(b)):
        if o <= CONST:
            continue
        if binary[o]:
            ga, gb = B[o](adj[i], val[ai], val[bi], val[i])
            adj[ai] += ga
            if grad_b[o]:
                adj[bi] += gb
        else:
            adj[ai] += B[o](adj[i], val[ai], 0.0, val[i])[0]


def first_nonfinite(arr, start=0, stop=None):
    """The index of the first nan or inf in arr[start:stop], or -1."""
    stop = len(arr) if stop is None else stop
    if not 0 <= start <= stop <= len(arr):
        raise TapeError(f"range {start}:{stop} is outside an array of {len(arr)}")
    isfinite = math.isfinite
    for k in range(start, stop):
        if not isfinite(arr[k]):
            return k
    return -1


# -- moving parameters and batches in and out of a tape (mbp_gather & co) ----

def gather(val, off, nodes, slots, src):
    """val[off[nodes[j]]] = src[slots[j]]: parameter values into the tape."""
    if len(nodes) != len(slots):
        raise TapeError("nodes and slots must be of one length")
    _check_nodes(off, nodes, 1, len(val))
    _check_slots(slots, len(src))
    for j, s in zip(nodes, slots):
        val[off[j]] = src[s]


def scatter_add(dst, adj, off, nodes, slots):
    """dst[slots[j]] += adj[off[nodes[j]]]: parameter gradients out of the tape."""
    if len(nodes) != len(slots):
        raise TapeError("nodes and slots must be of one length")
    _check_nodes(off, nodes, 1, len(adj))
    _check_slots(slots, len(dst))
    for j, s in zip(nodes, slots):
        dst[s] += adj[off[j]]


def load_rows(val, off, nodes, rows, nr):
    """val[off[nodes[j]] + r] = rows[r * k + j]: a flat batch into the input lanes."""
    k = len(nodes)
    if not isinstance(nr, int) or not 1 <= nr < 2 ** 62 or nr * k > len(rows):
        raise TapeError(f"{nr!r} rows of {k} do not fit in {len(rows)} values")
    _check_nodes(off, nodes, nr, len(val))
    for j, node in enumerate(nodes):
        o = off[node]
        val[o:o + nr] = rows[j:nr * k:k]

"""The tape format: a recorded graph as a structure of flat arrays, and its rules.

A tape lists its nodes in topological order (every input before its use):

    op[i]    op code (ops.py)          a[i], b[i]  input indices (< i, -1 if none)
    vary[i]  1 if node i depends on an input slot (it then has one value per
             row of the batch, its "lanes"), 0 if it is the same for every row
    off[i]   where node i's values start in val[] and adj[] (layout() below)
    ext[]    the term lists of fused "lin" nodes (ops.py): for node i,
             ext[b[i]] = k, then k pairs (p, q) of earlier node indices
    layers[] pairs (first, count): runs of `count` lin nodes from `first` over
             the same varying inputs q (strictly increasing), with weights p and
             bases that do not vary: a layer of an MLP, which the C core sweeps
             as one (csrc/microbp.c); the Python executor checks and ignores
             them, as the results are the same bits either way

Both executors (pyexec.py, and the C core through cexec.py) check these
rules, the same way, before they touch memory (check() here, check_tape in
csrc/microbp.c), and raise TapeError when a rule is broken. A Tape (tape.py)
keeps its arrays as bytes, which nothing can change once recorded.
"""
from . import ops
from .ops import LIN

_ARITY = ops.ARITY


class TapeError(ValueError):
    """A flat node array that breaks the rules of the tape format."""


def layout(vary, nr):
    """Offsets of each node's values for `nr` rows, and the total length."""
    off, total = [], 0
    for v in vary:
        off.append(total)
        total += nr if v else 1
    return off, total


def lin_terms(ext, start):
    """The (p, q) pairs of a lin node whose term list starts at ext[start]."""
    k = ext[start]
    return [(ext[start + 1 + 2 * j], ext[start + 2 + 2 * j]) for j in range(k)]


def inputs_vary(i, op, a, b, vary, ext):
    """1 if any input of the (non-leaf) node i varies: what vary[i] must be."""
    o = op[i]
    v = vary[a[i]]
    if _ARITY[o] == 2:
        v |= vary[b[i]]
    if o == LIN:
        for p, q in lin_terms(ext, b[i]):
            v |= vary[p] | vary[q]
    return v


def check_rows(nr):
    if not isinstance(nr, int) or not 1 <= nr < 2 ** 62:
        raise TapeError(f"the number of rows must be an int from 1 to 2**62, got {nr!r}")
    return nr


def check(op, a, b, vary, off, nr, nval, ext=()):
    """Raise TapeError unless the arrays describe a valid tape (what C checks too)."""
    n = len(op)
    if not (len(a) == len(b) == len(vary) == len(off) == n) or n == 0:
        raise TapeError("tape arrays must be non-empty and of one length")
    check_rows(nr)
    end = 0
    for i in range(n):
        o = op[i]
        if not 0 <= o < ops.NUM_OPS:
            raise TapeError(f"node {i}: unknown op code {o}")
        k = _ARITY[o]
        if k >= 1 and not 0 <= a[i] < i:
            raise TapeError(f"node {i}: input a={a[i]} is not an earlier node")
        if k == 2 and not 0 <= b[i] < i:
            raise TapeError(f"node {i}: input b={b[i]} is not an earlier node")
        if vary[i] not in (0, 1):
            raise TapeError(f"node {i}: vary must be 0 or 1")
        if o == LIN:
            s = b[i]
            if not (0 <= s < len(ext) and 1 <= ext[s] and s + 1 + 2 * ext[s] <= len(ext)):
                raise TapeError(f"node {i}: lin term list at ext[{s}] is out of range")
            if not all(0 <= p < i and 0 <= q < i for p, q in lin_terms(ext, s)):
                raise TapeError(f"node {i}: a lin term is not of earlier nodes")
        if k >= 1 and vary[i] != inputs_vary(i, op, a, b, vary, ext):
            raise TapeError(f"node {i}: varies unlike its inputs")
        if off[i] != end:
            raise TapeError(f"node {i}: offset {off[i]} breaks the layout")
        end += nr if vary[i] else 1
    if end > nval:
        raise TapeError(f"value arrays hold {nval} doubles, the tape needs {end}")


def check_layers(op, a, b, vary, ext, layers):
    """Raise TapeError unless `layers` are valid runs (what C checks too)."""
    if len(layers) % 2:
        raise TapeError("layers must be pairs (first, count)")
    end = 0
    for L in range(0, len(layers), 2):
        first, count = layers[L], layers[L + 1]
        if first < end or count < 1 or count > len(op) - first or op[first] != LIN:
            raise TapeError(f"layer at node {first}: not a run of lin nodes")
        end = first + count
        t0 = lin_terms(ext, b[first])
        for i in range(first, end):
            t = lin_terms(ext, b[i]) if op[i] == LIN else None
            if (t is None or len(t) != len(t0) or vary[a[i]]
                    or any(vary[p] or not vary[q] or q != q0 for (p, q), (_, q0) in zip(t, t0))
                    or any(t[j][1] <= t[j - 1][1] for j in range(1, len(t)))):
                raise TapeError(f"layer at node {first}: node {i} does not fit the layer")


def check_nodes(off, nodes, width, nval):
    for j in nodes:
        if not 0 <= j < len(off) or not 0 <= off[j] <= nval - width:
            raise TapeError(f"node {j} is out of range of the tape")


def check_slots(slots, nslots):
    for s in slots:
        if not 0 <= s < nslots:
            raise TapeError(f"slot {s} is out of range 0..{nslots - 1}")

"""The C sweeps' shortcuts give the bits of the Python executor.

Two paths of csrc/microbp.c that the usual tapes reach only in one shape:
the sweeps pass over runs of leaves and constants 8 nodes at a time (runs of
every length here, at the start of a tape and between its ops), and a lin
node that does not vary (a penalty over parameters) takes a loop of its own,
with p * p terms added in a register, or one run over the adjoints when its
terms are the squares of nodes one after another (an L2 penalty over a
model's parameters). Compared by IEEE-754 bits, NaNs alike.
"""
import itertools
import math
import struct

import pytest

import microbp
from microbp import Value, Tape
from microbp.tapeformat import lin_terms

if "c" not in microbp.available_backends():
    pytest.skip("the C core is not built", allow_module_level=True)

RUNS = [0, 1, 2, 7, 8, 9, 15, 16, 17, 23, 24, 31]


def same(xs, ys):
    """The same bits, or both NaN, at every place."""
    xs, ys = list(xs), list(ys)
    return len(xs) == len(ys) and all(
        struct.pack("<d", x) == struct.pack("<d", y) or (x != x and y != y)
        for x, y in zip(xs, ys))


def sweep(make, rows, backend):
    """(outputs, parameter gradients) of one forward and backward of a tape
    made afresh (nothing left in it from the other backend's sweep)."""
    tape = make()
    with microbp.use_backend(backend):
        for p in tape.parameters:
            p.grad = 0.0
        outs = tape.forward(rows)
        tape.backward()
        return outs, [p.grad for p in tape.parameters]


def leaf_runs(ops):
    """The lengths of the runs of leaves and constants in a tape's node order."""
    return [len(list(g)) for leaf, g in itertools.groupby(ops, lambda o: o in ("leaf", "const"))
            if leaf]


def runs_tape(sizes, shift):
    """A chain over input x: each link adds a lin over a fresh group of
    parameters (a run of sizes[i] leaves before it, constants among them),
    then tanh."""
    x = Value(0.0)
    acc = x * 0.5
    for i, m in enumerate(sizes):
        group = [Value(0.25 * ((i + j + shift) % 7) - 0.75) for j in range(m)]
        for j, p in enumerate(group):
            acc = acc + (p * 1.5 if j % 5 == 4 else p) * x
        acc = acc.tanh()
    return Tape(acc * 2.0 - 1.0, [x])


@pytest.mark.parametrize("shift", range(4))
def test_runs_of_leaves_of_every_length_give_the_same_bits(shift):
    sizes = RUNS[shift:] + RUNS[:shift]
    ops = runs_tape(sizes, shift).ops
    runs = leaf_runs(ops)
    assert ops[0] == "leaf" and max(runs) > 16
    assert {n % 8 for n in runs} >= {0, 1, 7}       # whole groups of 8 and the rest
    rows = [[v] for v in (-1.5, -0.0, 0.0, 0.3, 2.0, math.inf, math.nan)]
    op, gp = sweep(lambda: runs_tape(sizes, shift), rows, "python")
    oc, gc = sweep(lambda: runs_tape(sizes, shift), rows, "c")
    assert same(op, oc) and same(gp, gc)
    assert any(g != 0.0 for g in gc)


EDGE = [0.5, -0.0, 0.0, -2.0, 1e300, 5e-324, math.inf, -math.inf, math.nan, 3.0]


@pytest.mark.parametrize("rotate", range(len(EDGE)))
@pytest.mark.parametrize("nrows", [1, 3])
def test_a_penalty_over_parameters_gives_the_same_bits(rotate, nrows):
    """p * p terms (both gradients into one adjoint), p * q with p != q, a
    parameter in several terms and as the base: a lin node that does not vary
    next to a model's that does."""
    vals = EDGE[rotate:] + EDGE[:rotate]

    def make():
        p = [Value(v) for v in vals[:6]]
        x = Value(0.0)
        model = (p[0] * x + p[1] * x * x).tanh()
        penalty = (p[2] + p[0] * p[0] + p[1] * p[1] + p[3] * p[4] + p[0] * p[3]
                   + p[4] * p[4] + p[5] * p[2] + p[2] * p[2])
        return Tape(model + penalty * 0.01, [x])

    tape = make()
    lins = [i for i, o in enumerate(tape.ops) if o == "lin"]
    assert any(not tape.varies[i] for i in lins) and any(tape.varies[i] for i in lins)
    rows = [[v] for v in (0.25, -1.0, 2.0)[:nrows]]
    op, gp = sweep(make, rows, "python")
    oc, gc = sweep(make, rows, "c")
    assert same(op, oc) and same(gp, gc)


@pytest.mark.parametrize("rotate", range(0, len(EDGE), 3))
@pytest.mark.parametrize("base", ["sum", "a-square"])
def test_an_l2_penalty_over_parameters_in_order_gives_the_same_bits(rotate, base):
    """sum(p * p) over parameters in node order: squares of nodes one after
    another, which the C core adds as one run of adjoints; with a base that
    is one of them, its gradient lands between those of the terms."""
    vals = [0.3, 1 / 3, 0.7, 1.1, 2.3, 0.1] + EDGE[rotate:] + EDGE[:rotate]

    def make():
        p = [Value(v) for v in vals]
        x = Value(0.0)
        model = sum(q * x for q in p[:4]).tanh()
        if base == "sum":
            penalty = sum(q * q for q in p)
        else:
            penalty = p[5] + p[0] * p[0]
            for q in p[1:]:
                penalty = penalty + q * q
        return Tape(model + penalty * 0.01, [x])

    tape = make()
    tape.forward([[0.5]])
    squares = [i for i, o in enumerate(tape.ops) if o == "lin" and not tape.varies[i]]
    assert len(squares) == 1
    terms = lin_terms(tape._ext, tape._b[squares[0]])
    assert len(terms) >= len(vals) - 1
    assert all(p == q == terms[0][0] + j for j, (p, q) in enumerate(terms))
    rows = [[v] for v in (0.25, -1.0, 2.0)]
    op, gp = sweep(make, rows, "python")
    oc, gc = sweep(make, rows, "c")
    assert same(op, oc) and same(gp, gc)

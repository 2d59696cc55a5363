"""The Python and C backends give the same doubles, bit for bit.

Random expression graphs over every op (with reused subexpressions and edge
values: signed zeros, huge, tiny, inf, nan) run eagerly and as Tapes in both
backends; results are compared by their IEEE-754 bits (two NaNs count as equal
whatever their sign and payload). Tapes are also checked against eager graphs,
and gradients against central finite differences on smooth graphs.
"""
import math
import struct

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

import microbp
import executors
from microbp import Value, Tape, use_backend
from microbp import ops
from microbp.graph import topo, flatten
from microbp.optim import SGD, Momentum, Adam

if "c" not in microbp.available_backends():
    pytest.skip("the C core is not built", allow_module_level=True)

BACKENDS = ("python", "c")
inf, nan = math.inf, math.nan
SETTINGS = settings(max_examples=200, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def bits(x):
    return struct.pack("<d", x)


def same(x, y):
    """Identical bits, or both NaN."""
    return bits(x) == bits(y) or (x != x and y != y)


def all_same(xs, ys):
    xs, ys = list(xs), list(ys)
    return len(xs) == len(ys) and all(same(x, y) for x, y in zip(xs, ys))


# ---------------------------------------------------------------------------
# random programs: leaves, then instructions over earlier nodes

EDGE = [0.0, -0.0, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0, 3.0, -3.0, 1e300, -1e300, 1e-300,
        -1e-300, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308,
        -1.7976931348623157e308, inf, -inf, nan, 710.0, -710.0, 745.5, 1e-8, 37.0, -37.0,
        0.1, 1e16]
FLOATS = st.one_of(st.sampled_from(EDGE), st.floats(-5.0, 5.0),
                   st.floats(allow_nan=True, allow_infinity=True))

UNARY = ("neg", "exp", "log", "tanh", "sigmoid", "relu", "abs")
BINARY = ("add", "sub", "mul", "div", "pow")


@st.composite
def programs(draw, max_leaves=5, max_ins=27):
    """(leaf values, instructions). Instruction k makes node nleaves + k:
    ("un", op, i) | ("bin", op, i, j) | ("const", op, i, c, left) | ("powc", i, c)
    | ("axpy", i, p, q): node i + node p * node q, the chains a Tape fuses into
    lin nodes. const and axpy instructions record two nodes, so a graph has at
    most 5 + 2 * 27 < 60 nodes."""
    leaves = draw(st.lists(FLOATS, min_size=1, max_size=max_leaves))
    n = len(leaves)
    ins = []
    for _ in range(draw(st.one_of(st.integers(0, max_ins), st.integers(max_ins // 2, max_ins)))):
        node = st.integers(0, n - 1)
        # the first operand is mostly the newest node, so that the root (the last
        # node) sits on top of most of the program: deep graphs, with the second
        # operands reusing earlier subexpressions
        i = n - 1 if draw(st.integers(0, 9)) < 7 else draw(node)
        kind = draw(st.sampled_from(["un", "bin", "bin", "const", "powc", "axpy", "axpy"]))
        if kind == "un":
            ins.append(("un", draw(st.sampled_from(UNARY)), i))
        elif kind == "bin":
            ins.append(("bin", draw(st.sampled_from(BINARY)), i, draw(node)))
        elif kind == "const":
            ins.append(("const", draw(st.sampled_from(BINARY)), i, draw(FLOATS),
                        draw(st.booleans())))
        elif kind == "axpy":
            ins.append(("axpy", i, draw(node), draw(node)))
        else:
            c = draw(st.one_of(st.sampled_from([2.0, 3.0, 0.5, -1.0, 0.0, -2.0, 1.5]), FLOATS))
            ins.append(("powc", i, c))
        n += 1
    return leaves, ins


def _bin(op, x, y):
    if op == "add":
        return x + y
    if op == "sub":
        return x - y
    if op == "mul":
        return x * y
    if op == "div":
        return x / y
    return x ** y


def _un(op, x):
    if op == "neg":
        return -x
    if op == "abs":
        return abs(x)
    return getattr(x, op)()


def build(prog, leaf_values=None):
    """Eager graph of a program: (leaf Values, all numbered nodes, root)."""
    leaves, ins = prog
    vals = leaves if leaf_values is None else leaf_values
    lv = [Value(v) for v in vals]
    nodes = list(lv)
    for t in ins:
        if t[0] == "un":
            nodes.append(_un(t[1], nodes[t[2]]))
        elif t[0] == "bin":
            nodes.append(_bin(t[1], nodes[t[2]], nodes[t[3]]))
        elif t[0] == "const":
            _, op, i, c, left = t
            nodes.append(_bin(op, c, nodes[i]) if left else _bin(op, nodes[i], c))
        elif t[0] == "axpy":
            nodes.append(nodes[t[1]] + nodes[t[2]] * nodes[t[3]])
        else:
            nodes.append(nodes[t[1]] ** t[2])
    return lv, nodes, nodes[-1]


def eager_grads(root, backend):
    """Backward in `backend`; the grads of every node below root (then zeroed)."""
    below = topo(root)
    for v in below:
        v.grad = 0.0
    with use_backend(backend):
        root.backward()
    gs = [v.grad for v in below]
    for v in below:
        v.grad = 0.0
    return gs


# ---------------------------------------------------------------------------
# eager backward: Python and C sweeps give the same bits

@SETTINGS
@given(programs())
def test_eager_backward_same_in_both_backends(prog):
    _, nodes, root = build(prog)
    n = len(topo(root))
    assert 1 <= n < 60
    gp = eager_grads(root, "python")
    gc = eager_grads(root, "c")
    assert all_same(gp, gc)
    assert gp[-1] == 1.0                    # the root's own gradient


# ---------------------------------------------------------------------------
# tapes with input slots: forward and backward the same bits in both backends

@st.composite
def tape_cases(draw, progs=programs(), rows=FLOATS, max_rows=9):
    prog = draw(progs)
    nleaves = len(prog[0])
    mask = draw(st.lists(st.booleans(), min_size=nleaves, max_size=nleaves))
    slots = [i for i in range(nleaves) if mask[i]]
    extra = draw(st.booleans())                     # an unused input slot
    order = draw(st.permutations(slots + ([-1] if extra else [])))
    nr = draw(st.integers(1, max_rows))
    batch = [draw(st.lists(rows, min_size=len(order), max_size=len(order))) for _ in range(nr)]
    return prog, order, batch


def make_tape(prog, order):
    lv, _, root = build(prog)
    unused = Value(0.0)
    inputs = [unused if i < 0 else lv[i] for i in order]
    tape = Tape(root, inputs)
    return tape, lv


def run_tape(tape, batch, backend):
    with use_backend(backend):
        for p in tape.parameters:
            p.grad = 0.0
        outs = tape.forward(batch)
        tape.backward()
        return outs, [p.grad for p in tape.parameters]


@SETTINGS
@given(tape_cases())
def test_tape_same_in_both_backends(case):
    prog, order, batch = case
    tape, _ = make_tape(prog, order)
    op_, gp = run_tape(tape, batch, "python")
    oc, gc = run_tape(tape, batch, "c")
    assert len(op_) == len(batch)
    assert all_same(op_, oc)
    assert all_same(gp, gc)
    # and again, in the other order: nothing is left over from the first run
    oc2, gc2 = run_tape(tape, batch, "c")
    op2, gp2 = run_tape(tape, batch, "python")
    assert all_same(oc2, oc) and all_same(gc2, gc)
    assert all_same(op2, op_) and all_same(gp2, gp)


# ---------------------------------------------------------------------------
# tapes against eager graphs

def row_values(prog, order, row):
    """The leaf values of the eager graph for one row of a tape's batch."""
    vals = list(prog[0])
    for j, i in enumerate(order):
        if i >= 0:
            vals[i] = row[j]
    return vals


@SETTINGS
@given(tape_cases(max_rows=1))
def test_single_row_tape_equals_eager_bitwise(case):
    prog, order, batch = case
    slots = {i for i in order if i >= 0}
    lv, _, root = build(prog, row_values(prog, order, batch[0]))
    for be in BACKENDS:
        tape, tlv = make_tape(prog, order)
        outs, _ = run_tape(tape, batch, be)
        assert same(outs[0], root.data)
        ref = eager_grads(root, be)
        below = topo(root)
        for i, (p, q) in enumerate(zip(tlv, lv)):
            if i not in slots and q in below:
                assert same(p.grad, ref[below.index(q)]), (be, i)


def _finite(xs):
    return all(math.isfinite(x) for x in xs)


def _fsum(xs):
    """math.fsum, but inf where the exact sum overflows (fsum raises there)."""
    try:
        return math.fsum(xs)
    except OverflowError:
        return inf


def abs_adjoints(root):
    """For each node below root: the sum over all paths to the root of the
    absolute values of the chain-rule products (an eager backward in which
    every contribution is made positive). The rounding error of any order of
    summing the gradient is a small multiple of eps times this."""
    nodes = topo(root)
    op, a, b, val = flatten(nodes)
    s = [0.0] * len(nodes)
    s[-1] = 1.0
    for i in range(len(nodes) - 1, -1, -1):
        o = op[i]
        if o <= ops.CONST:
            continue
        ga, gb = ops.BACKWARD[o](s[i], val[a[i]], val[b[i]] if ops.ARITY[o] == 2 else 0.0,
                                 val[i])
        s[a[i]] += abs(ga)
        if ops.GRAD_B[o]:
            s[b[i]] += abs(gb)
    return dict(zip(nodes, s))


@SETTINGS
@given(tape_cases())
def test_multi_row_tape_equals_eager_where_finite(case):
    prog, order, batch = case
    slots = {i for i in order if i >= 0}
    tape, tlv = make_tape(prog, order)
    assume(tape.varies[tape.num_nodes - 1])      # see test_tape.py: a fixed root is summed once
    outs, grads = run_tape(tape, microbp.Batch(batch), microbp.get_backend())
    per_row, scales = [], []            # per-row eager grads of each leaf, error scales
    for r, row in enumerate(batch):
        lv, _, root = build(prog, row_values(prog, order, row))
        assert same(outs[r], root.data)            # forward has no sums: exact per row
        below = topo(root)
        g = eager_grads(root, microbp.get_backend())
        per_row.append([g[below.index(q)] if q in below else 0.0 for q in lv])
        s = abs_adjoints(root)
        scales.append([s.get(q, 0.0) for q in lv])
    params = [i for i in range(len(tlv)) if i not in slots]
    for i in params:
        terms = [g[i] for g in per_row]
        scale = _fsum(sc[i] for sc in scales)
        if not _finite(terms) or not math.isfinite(scale) or not math.isfinite(tlv[i].grad):
            continue
        # the tape sums a fixed node's gradient over the rows before passing it
        # on, eager passes each row's on: the same up to rounding, relative to
        # the sizes of the contributions (scale), not to a cancelling result
        assert abs(tlv[i].grad - _fsum(terms)) <= 1e-12 * scale + 1e-300, (i, scale)


# ---------------------------------------------------------------------------
# gradients against central finite differences, on smooth graphs

# each construction keeps values in about [-2.5, 2.5] with bounded derivatives
SMOOTH = {
    "tanh_add": lambda a, b: (a + b).tanh(),
    "tanh_mul": lambda a, b: (a * b).tanh(),
    "sig_sub": lambda a, b: (a - b).sigmoid() * 2.0,
    "gate": lambda a, b: a * b.sigmoid(),
    "exp_tanh": lambda a, b: a.tanh().exp() - 1.5,
    "log1p_sq": lambda a, b: (1.0 + a * a).log(),
    "div_1p": lambda a, b: a / (1.0 + b * b),
    "sqrt_1p": lambda a, b: (a * a + 1.0) ** 0.5 - 1.0,
    "cube_tanh": lambda a, b: a.tanh() ** 3,
    "pow_pos": lambda a, b: ((1.5 + a.tanh()) ** b.tanh()) - 1.0,
    "neg_half": lambda a, b: -(a - b) * 0.5,
    "mix": lambda a, b: 0.5 * a + 0.25 * b - (a * b).tanh() * 0.3,
    # an add/mul chain: a Tape fuses it into one lin node
    "neuron": lambda a, b: (a * 0.5 + b * -0.75 + a * b + b * b * 0.125).tanh(),
}


@st.composite
def smooth_programs(draw):
    leaves = draw(st.lists(st.floats(-2.0, 2.0), min_size=1, max_size=4))
    n = len(leaves)
    ins = []
    for _ in range(draw(st.integers(1, 12))):
        i = draw(st.one_of(st.integers(0, n - 1), st.just(n - 1)))
        ins.append((draw(st.sampled_from(sorted(SMOOTH))), i, draw(st.integers(0, n - 1))))
        n += 1
    return leaves, ins


def build_smooth(prog, vals=None):
    leaves, ins = prog
    lv = [Value(v) for v in (leaves if vals is None else vals)]
    nodes = list(lv)
    for name, i, j in ins:
        nodes.append(SMOOTH[name](nodes[i], nodes[j]))
    return lv, nodes[-1]


@SETTINGS
@given(smooth_programs())
def test_gradients_match_finite_differences(prog):
    leaves = prog[0]
    grads = {}
    for be in BACKENDS:
        lv, root = build_smooth(prog)
        with use_backend(be):
            root.backward()
        grads[be] = [v.grad for v in lv]
    assert all_same(grads["python"], grads["c"])
    h = 1e-5
    for k in range(len(leaves)):
        up, dn = list(leaves), list(leaves)
        up[k] += h
        dn[k] -= h
        fd = (build_smooth(prog, up)[1].data - build_smooth(prog, dn)[1].data) / (2 * h)
        g = grads["c"][k]
        assert abs(fd - g) <= 1e-6 * (1.0 + abs(g)), (k, fd, g)


@SETTINGS
@given(smooth_programs(), st.lists(st.floats(-2.0, 2.0), min_size=1, max_size=6))
def test_smooth_tape_matches_finite_differences(prog, xs):
    # the first leaf becomes an input slot, the rest are parameters
    leaves = prog[0]
    assume(len(leaves) >= 2)
    per_be = {}
    for be in BACKENDS:
        lv, root = build_smooth(prog)
        tape = Tape(root, [lv[0]])
        assume(tape.varies[tape.num_nodes - 1])   # the output depends on the input slot
        run_tape(tape, [[x] for x in xs], be)
        per_be[be] = [lv[k].grad for k in range(1, len(leaves))]
    assert all_same(per_be["python"], per_be["c"])
    h = 1e-5

    def total(vals):
        return math.fsum(build_smooth(prog, [x] + vals[1:])[1].data for x in xs)
    for k in range(1, len(leaves)):
        up, dn = list(leaves), list(leaves)
        up[k] += h
        dn[k] -= h
        fd = (total(up) - total(dn)) / (2 * h)
        g = per_be["c"][k - 1]
        assert abs(fd - g) <= 1e-6 * (len(xs) + abs(g)), (k, fd, g)


def test_finite_differences_by_hand():
    # f(a, b) = tanh(a * b) + a^b with a > 0: checked against hand derivatives
    for be in BACKENDS:
        a, b = Value(1.3), Value(0.7)
        f = (a * b).tanh() + a ** b
        with use_backend(be):
            f.backward()
        t = math.tanh(1.3 * 0.7)
        assert a.grad == pytest.approx(0.7 * (1 - t * t) + 0.7 * 1.3 ** (0.7 - 1), rel=1e-14)
        assert b.grad == pytest.approx(1.3 * (1 - t * t) + 1.3 ** 0.7 * math.log(1.3), rel=1e-14)


# ---------------------------------------------------------------------------
# edge values through every op, both backends, eager and one-row tape

@pytest.mark.parametrize("op", UNARY + BINARY + ("powc",))
def test_every_op_on_edge_values(op):
    edges = [0.0, -0.0, 1.0, -1.0, 2.5, -2.5, 1e300, -1e300, 5e-324, inf, -inf, nan, 800.0]
    pairs = [(x, y) for x in edges for y in (edges if op in BINARY + ("powc",) else [0.0])]
    for x, y in pairs:
        if op in UNARY:
            f = lambda a, b: _un(op, a)
        elif op == "powc":
            f = lambda a, b, y=y: a ** y
        else:
            f = lambda a, b: _bin(op, a, b)
        res = {}
        for be in BACKENDS:
            a, b = Value(x), Value(y)
            out = f(a, b)
            eg = eager_grads(out, be)
            below = topo(out)
            ga = eg[below.index(a)]
            gb = eg[below.index(b)] if b in below else 0.0
            # as a one-row tape with x as an input slot and y a parameter
            a2, b2 = Value(0.0), Value(y)
            tape = Tape(f(a2, b2), [a2])
            outs, grads = run_tape(tape, [[x]], be)
            assert same(outs[0], out.data), (be, x, y)
            if b2 in tape.parameters:
                assert same(b2.grad, gb), (be, x, y)
            res[be] = (out.data, ga, gb)
        assert all_same(res["python"], res["c"]), (op, x, y, res)


# ---------------------------------------------------------------------------
# optimizer kernels: the same bits over several steps

OPT_FLOATS = st.one_of(st.floats(-10.0, 10.0), st.sampled_from(
    [0.0, -0.0, 1e300, -1e300, 5e-324, 1e-300, inf, -inf, nan, 1e154, 3.0]))


@st.composite
def opt_cases(draw):
    k = draw(st.integers(1, 6))
    data = draw(st.lists(OPT_FLOATS, min_size=k, max_size=k))
    steps = draw(st.integers(1, 5))
    grads = [draw(st.lists(OPT_FLOATS, min_size=k, max_size=k)) for _ in range(steps)]
    lr = draw(st.one_of(st.floats(1e-6, 2.0), st.sampled_from([0.1, 1e-3, 1e300])))
    kind = draw(st.sampled_from(["sgd", "momentum", "adam"]))
    hyper = {"sgd": dict(decay=draw(st.sampled_from([0.0, 0.5, 3.0, 1e-3]))),
             "momentum": dict(mu=draw(st.one_of(st.floats(0.0, 0.999), st.just(0.9)))),
             "adam": dict(betas=(draw(st.floats(0.0, 0.99)), draw(st.floats(0.0, 0.9999))),
                          eps=draw(st.sampled_from([1e-8, 1e-3, 1e-300])))}[kind]
    split = draw(st.booleans())         # some parameters bound by a tape first
    return kind, lr, hyper, data, grads, split


def run_optimizer(case, backend):
    kind, lr, hyper, data, grads, split = case
    params = [Value(x) for x in data]
    if split:
        s = Value(0.0)
        Tape(params[0] * s, [s])        # params[0] lives in another store
    cls = {"sgd": SGD, "momentum": Momentum, "adam": Adam}[kind]
    with use_backend(backend):
        opt = cls(params, lr=lr, **hyper)
        trace = []
        for g in grads:
            opt.zero_grad()
            assert all(p.grad == 0.0 for p in params)
            for p, x in zip(params, g):
                p.grad = x
            opt.step()
            trace.append([p.data for p in params])
        state = []
        for attr in ("_vel", "_m", "_v"):
            for arr in getattr(opt, attr, []):
                state.extend(arr)
    return trace, state


@SETTINGS
@given(opt_cases())
def test_optimizer_kernels_same_in_both_backends(case):
    tp, sp = run_optimizer(case, "python")
    tc, sc = run_optimizer(case, "c")
    for a, b in zip(tp, tc):
        assert all_same(a, b)
    assert all_same(sp, sc)


@pytest.mark.parametrize("v0,bc1,bc2", [(-1.0, 0.1, 0.001), (0.0, 0.0, 0.001), (1.0, 0.1, 0.0)],
                         ids=["negative-v", "bc1-zero", "bc2-zero"])
def test_adam_kernel_outside_its_domain(v0, bc1, bc2):
    # regression: outside Adam's own domain (v < 0, a bias correction of 0: only
    # by calling the kernel directly) pyexec.adam raised ValueError /
    # ZeroDivisionError after updating m and v, where mbp_adam gives nan / inf
    from array import array
    res = []
    for be in BACKENDS:
        ex = executors.executor(be)
        data, m, v, g = array("d", [1.0]), array("d", [0.0]), array("d", [v0]), array("d", [0.5])
        ex.adam(data, m, v, g, array("i", [0]), 0.1, 0.9, 0.999, 1e-8, bc1, bc2)
        res.append(list(data) + list(m) + list(v))
    assert all_same(res[0], res[1])


@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_optimizer_kernels_same_on_a_training_run(kind):
    # a real loop: a tape over a tiny model, 20 steps in each backend
    rows = [[x / 7.0, math.sin(x)] for x in range(-10, 11)]
    results = {}
    for be in BACKENDS:
        w1, w2, b, x, y = Value(0.3), Value(-0.2), Value(0.05), Value(0.0), Value(0.0)
        loss = ((w1 * x + b).tanh() * w2 - y) ** 2 + 1e-3 * (w1 * w1 + w2 * w2)
        tape = Tape(loss, [x, y])
        opt = {"sgd": lambda p: SGD(p, lr=0.05, decay=0.1),
               "momentum": lambda p: Momentum(p, lr=0.02, mu=0.9),
               "adam": lambda p: Adam(p, lr=0.01)}[kind]([w1, w2, b])
        with use_backend(be):
            losses = []
            for _ in range(20):
                opt.zero_grad()
                losses.append(sum(tape.forward(rows)))
                tape.backward()
                opt.step()
        results[be] = (losses, [w1.data, w2.data, b.data])
    assert all_same(results["python"][0], results["c"][0])
    assert all_same(results["python"][1], results["c"][1])
    assert results["c"][0][-1] < results["c"][0][0]

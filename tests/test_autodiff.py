"""microbp.autodiff: forward mode (jvp), reverse mode without .grad (grad),
higher derivatives (grad(create_graph=True)), jacobian and hessian.

Random expression graphs over every op (sqrt included), with reused
subexpressions and edge values, as in test_random_graphs.py:
- eager jvp gives the doubles of a one-row Tape.jvp, in both backends;
- grad's gradients, on floats and on Values, are the doubles of .backward();
- jvp equals torch.func.jvp, second derivatives equal torch's double
  backward, and forward-mode Jacobians equal reverse-mode ones, each within
  1e-12 relative or within the allowance that ulp-size nudges of every op
  produce (test_random_graphs.py explains it);
and the edges, bad input, finite differences, and a Hessian-vector product
over a batch recorded on a Tape.
"""
import importlib.util
import math
import os
import random
import re
import subprocess
import sys

import pytest
from hypothesis import given, strategies as st

import microbp
from microbp import Value, Tape, ieee, ops
from microbp.autodiff import grad, hessian, jacobian, jvp, _topo
from test_random_graphs import EDGE, SETTINGS, bits, random_steps, spread, within

UNARY = ["neg", "exp", "log", "tanh", "sigmoid", "relu", "abs", "sqrt"]
BINARY = ["add", "sub", "mul", "div", "pow", "powc"]


@st.composite
def graphs(draw, max_nodes=120, edges=True):
    """(leaf values, steps, number of outputs): a step is ("un", name, i),
    ("bin", name, i, j) or ("powc", i, c) over earlier nodes (leaves first)."""
    value = st.floats(-5, 5, allow_nan=False)
    if edges:
        value = st.one_of(st.sampled_from(EDGE), value)
    else:                                             # ordinary points: 0 or |x| in [1e-3, 5]
        value = st.one_of(st.just(0.0), st.floats(1e-3, 5), st.floats(-5, -1e-3))
    leaves = draw(st.lists(value, min_size=1, max_size=5))
    size = draw(st.integers(0, max_nodes))
    rng = random.Random(draw(st.integers(0, 2 ** 32 - 1)))
    steps = random_steps(rng, len(leaves), size, UNARY, BINARY, window=6)
    return leaves, steps, min(draw(st.integers(1, 3)), len(leaves) + len(steps))


def build(steps, nout, leaves, lib="microbp"):
    """The outputs (the last `nout` nodes) of the graph over `leaves`, built
    with microbp Values or torch tensors."""
    if lib == "torch":
        import torch
        un = {"neg": torch.neg, "exp": torch.exp, "log": torch.log, "tanh": torch.tanh,
              "sigmoid": torch.sigmoid, "relu": torch.relu, "abs": torch.abs,
              "sqrt": torch.sqrt}
        binary = {"add": torch.add, "sub": torch.sub, "mul": torch.mul, "div": torch.div,
                  "pow": torch.pow}
        # a constant exponent as a tensor: IEEE pow, not torch's sqrt path
        powc = lambda x, c: torch.pow(x, torch.tensor(c, dtype=torch.float64))  # noqa: E731
    else:
        un = {n: (lambda x: -x) if n == "neg" else (lambda x, n=n: getattr(x, n)())
              for n in UNARY}
        binary = {"add": lambda x, y: x + y, "sub": lambda x, y: x - y,
                  "mul": lambda x, y: x * y, "div": lambda x, y: x / y,
                  "pow": lambda x, y: x ** y}
        powc = lambda x, c: x ** c  # noqa: E731
    nodes = list(leaves)
    for s in steps:
        if s[0] == "un":
            nodes.append(un[s[1]](nodes[s[2]]))
        elif s[0] == "powc":
            nodes.append(powc(nodes[s[1]], s[2]))
        else:
            nodes.append(binary[s[1]](nodes[s[2]], nodes[s[3]]))
    return nodes[-nout:]


def function(steps, nout):
    return lambda *xs: build(steps, nout, xs)


# -- nudged re-evaluation of any Value graph: the allowance -------------------

def _nudge(rng, ulps=4):
    """x changed by a few ulps: relative ones, and absolute ones of the
    smallest subnormal (where a subnormal result loses its relative precision)."""
    if not ulps:
        return lambda x: x
    return lambda x: (x * (1.0 + rng.uniform(-ulps, ulps) * 2.0 ** -52)
                      + rng.uniform(-ulps, ulps) * 2.0 ** -1074)


def nudged(roots, leaves, rng, tangents=None, torch_div=False, ulps=4):
    """Re-evaluate the graph below `roots` in floats with the op table, each
    op result and each derivative contribution nudged by a few ulps: the
    roots' tangents along `tangents` (forward mode), else d(sum of roots)/d(leaf).
    torch_div: write div's tangent as torch does, (ta - tb * out) / b, not as
    ta / b + tb * -(a / b / b) (the two differ where a / b / b under- or overflows)."""
    nudge = _nudge(rng, ulps)
    nodes = _topo(roots)
    at = {id(v): i for i, v in enumerate(nodes)}
    val = []
    for v in nodes:
        if v._a is None:
            val.append(v.data)
            continue
        b = val[at[id(v._b)]] if v._b is not None else 0.0
        val.append(nudge(ops.OPS[v._op].f(val[at[id(v._a)]], b)))
    if tangents is not None:
        tan = {at[id(x)]: t for x, t in zip(leaves, tangents) if id(x) in at}
        for i, v in enumerate(nodes):
            if v._a is None:
                continue
            ia, ib = at[id(v._a)], at[id(v._b)] if v._b is not None else None
            rule = ops.OPS[v._op].tangent
            args = (val[ia], val[ib] if ib is not None else 0.0, val[i])
            parts = [rule(tan.get(ia), None, *args),
                     rule(None, tan.get(ib) if ib is not None else None, *args)]
            parts = [nudge(p) for p in parts if p is not None]
            if torch_div and v._op == ops.DIV and parts:
                tb_out = nudge(tan[ib] * val[i]) if ib in tan else 0.0
                parts = [nudge(ieee.div(tan.get(ia, 0.0) - tb_out, val[ib]))]
            if parts:
                tan[i] = sum(parts[1:], parts[0])
        return [tan.get(at[id(r)], 0.0) for r in roots]
    adj = [0.0] * len(nodes)
    for r in roots:
        adj[at[id(r)]] += 1.0
    for i in range(len(nodes) - 1, -1, -1):
        v = nodes[i]
        if v._a is None:
            continue
        ia = at[id(v._a)]
        ib = at[id(v._b)] if v._b is not None else None
        op = ops.OPS[v._op]
        ga, gb = op.grads(adj[i], val[ia], val[ib] if ib is not None else 0.0, val[i])
        adj[ia] += nudge(ga)
        if op.grad_b:
            adj[ib] += nudge(gb)
    return [adj[at[id(x)]] if id(x) in at else 0.0 for x in leaves]


def allowance(mine, roots, leaves, seed, tangents=None):
    rng = random.Random(seed)
    runs = [nudged(roots, leaves, rng, tangents, torch_div=k == 3) for k in range(4)]
    return spread(mine, runs if tangents is not None else runs[:3])


def agree_all(mine, ref, allow, what):
    for k, (m, r, a) in enumerate(zip(mine, ref, allow)):
        assert within(m, r, a), f"{what} {k}: microbp {m!r}, torch {r!r}, allowance {a!r}"


# -- forward mode ---------------------------------------------------------------

@SETTINGS
@given(graphs(), st.lists(st.one_of(st.sampled_from([0.0, 1.0, -1.0, 0.5]),
                                    st.floats(-3, 3, allow_nan=False)), min_size=5, max_size=5))
def test_jvp_is_a_one_row_tape_jvp_bit_for_bit(g, ts):
    xs, steps, _ = g
    ts = ts[:len(xs)]
    outs, out_t = jvp(function(steps, 1), xs, ts)
    leaves = [Value(x) for x in xs]
    (out,) = build(steps, 1, leaves)
    tape = Tape(out, leaves)
    for backend in microbp.available_backends():
        with microbp.use_backend(backend):
            values, tangents = tape.jvp([xs], [ts])
        assert bits(values[0]) == bits(outs[0].data), backend
        assert bits(tangents[0]) == bits(out_t[0]), backend


@SETTINGS
@given(graphs(), st.integers(0, 2 ** 32 - 1))
def test_jvp_equals_torch_func_jvp(g, seed):
    torch = pytest.importorskip("torch")
    xs, steps, nout = g
    rng = random.Random(seed)
    ts = [rng.uniform(-2, 2) for _ in xs]
    outs, mine = jvp(function(steps, nout), xs, ts)
    f64 = lambda zs: [torch.tensor(z, dtype=torch.float64) for z in zs]  # noqa: E731
    ref_outs, ref = torch.func.jvp(lambda *v: tuple(build(steps, nout, v, "torch")),
                                   tuple(f64(xs)), tuple(f64(ts)))
    assert len(ref_outs) == len(outs)
    leaves = [Value(x) for x in xs]
    roots = build(steps, nout, leaves)
    allow = allowance(mine, roots, leaves, seed, ts)
    # torch writes div's tangent (ta - tb * out) / b, microbp (as every op's:
    # local derivatives times tangents) ta / b + tb * -(a / b / b): where
    # a / b / b under- or overflows they differ beyond any rounding allowance,
    # so there the same sweep with torch's form of div must give torch's value
    same = nudged(roots, leaves, None, ts, ulps=0)
    torch_form = nudged(roots, leaves, None, ts, torch_div=True, ulps=0)
    assert list(map(bits, same)) == list(map(bits, mine))
    masked = masked_pow(roots)
    for k, (m, r, a, tf) in enumerate(zip(mine, [t.item() for t in ref], allow, torch_form)):
        assert within(m, r, a) or within(tf, r, a) or (masked and math.isnan(r)), \
            f"tangent of output {k}: microbp {m!r}, torch {r!r}, allowance {a!r}"


def masked_pow(roots):
    """Whether a pow below `roots` sits where its exponent's derivative is masked
    (base 0, exponent >= 0). torch multiplies the exponent's tangent, or the
    upstream gradient, by that masked 0: 0 * inf or 0 * nan = nan. To microbp
    (eager and Tape alike) the 0 is structural: it contributes nothing."""
    return any(v._op == ops.POW and v._a.data == 0.0 and v._b.data >= 0.0
               for v in _topo(roots))


def regrouped(roots):
    """Whether a product below `roots` overflowed (finite factors, inf) or
    underflowed (nonzero factors, 0). The op table multiplies an upstream
    gradient u into the first factor of a local derivative: (u * b) * a ** (b - 1)
    for pow, where torch groups u * (b * a ** (b - 1)); when an intermediate
    product over- or underflows in one grouping only, that side can meet
    0 * inf = nan where the other gets a number."""
    for v in _topo(roots):
        if v._op == ops.MUL:
            x, y = v._a.data, v._b.data
            if math.isfinite(x) and math.isfinite(y) and x != 0.0 and y != 0.0 and (
                    math.isinf(v.data) or v.data == 0.0):
                return True
    return False


def test_jvp_shapes_and_no_tangent_for_constants_and_parameters():
    w = Value(3.0)                                        # not a primal: no tangent
    out, t = jvp(lambda x: x * w + 2.0, [1.5], [2.0])
    assert out.data == 6.5 and t == 6.0 and w.grad == 0.0
    outs, ts = jvp(lambda x, y: [x * y, y.exp(), w * 2.0], [2.0, 0.0], [1.0, 0.0])
    assert [o.data for o in outs] == [0.0, 1.0, 6.0]
    assert ts == [0.0, 0.0, 0.0]
    outs, ts = jvp(lambda x, y: [x * y, y.exp()], [2.0, 0.0], [0.5, -1.0])
    assert ts == [2.0 * -1.0 + 0.5 * 0.0, -1.0]
    # relu'(0) = 0 and a structural zero beats an inf: like torch
    assert jvp(lambda x: x.relu(), [0.0], [1.0])[1] == 0.0
    assert jvp(lambda x: x.relu() * 0.0, [-1.0], [math.inf])[1] == 0.0


# -- reverse mode -----------------------------------------------------------------

@SETTINGS
@given(graphs())
def test_grad_is_backward_bit_for_bit_on_floats_and_on_values(g):
    xs, steps, nout = g
    for backend in microbp.available_backends():
        with microbp.use_backend(backend):
            leaves = [Value(x) for x in xs]
            outs = build(steps, nout, leaves)
            for v in leaves:
                v.grad = 7.0                            # grad() leaves .grad alone
            floats = [v.data for v in grad(outs, leaves)]
            values = [v.data for v in grad(outs, leaves, create_graph=True)]
            assert [v.grad for v in leaves] == [7.0] * len(leaves)
            assert list(map(bits, floats)) == list(map(bits, values)), backend
            if nout == 1:
                for v in leaves:
                    v.grad = 0.0
                outs[0].backward()
                # .grad starts at 0.0, so .backward() adds: 0.0 + -0.0 is 0.0
                assert [bits(0.0 + x) for x in floats] == [bits(v.grad) for v in leaves], backend


@SETTINGS
@given(graphs(), st.integers(0, 2 ** 32 - 1))
def test_second_derivatives_equal_torch_double_backward(g, seed):
    torch = pytest.importorskip("torch")
    xs, steps, nout = g
    rng = random.Random(seed)
    ws = [rng.uniform(-2, 2) for _ in xs]
    leaves = [Value(x) for x in xs]
    outs = build(steps, nout, leaves)
    firsts = grad(outs, leaves, create_graph=True)
    s = firsts[0] * ws[0]
    for gi, w in zip(firsts[1:], ws[1:]):
        s = s + gi * w                                  # a Hessian-vector product, H w
    seconds = grad(s, leaves, create_graph=True)      # the doubles of create_graph=False
    mine = [v.data for v in seconds]
    ts = [torch.tensor(x, dtype=torch.float64, requires_grad=True) for x in xs]
    tout = build(steps, nout, ts, "torch")
    kw = dict(allow_unused=True, materialize_grads=True)
    tfirst = torch.autograd.grad(tout, ts, create_graph=True, **kw)
    ts_ = tfirst[0] * ws[0]
    for gi, w in zip(tfirst[1:], ws[1:]):
        ts_ = ts_ + gi * w
    if not ts_.requires_grad:                           # no second derivative at all
        ref = [0.0] * len(xs)
    else:
        ref = [t.item() for t in torch.autograd.grad(ts_, ts, **kw)]
    # torch's nan at a masked pow (see masked_pow), and its inf where microbp
    # gets nan from the op table's other grouping of the same product: pow's
    # (g * b) * a ** (b - 1) against torch's g * (b * a ** (b - 1)), for
    # a = b = 5e-324 (g * b underflows to 0, a ** (b - 1) overflows to inf)
    # and where a product over- or underflowed in microbp's grouping (see
    # regrouped), microbp's nan against torch's number
    masked, regroup = masked_pow(outs), regrouped(firsts)
    tfirst_ = [m.data if (masked and math.isnan(r)) or (math.isinf(r) and math.isnan(m.data))
               or (regroup and math.isnan(m.data)) else r
               for m, r in zip(firsts, [t.item() for t in tfirst])]
    agree_all([v.data for v in firsts], tfirst_,
              allowance([v.data for v in firsts], outs, leaves, seed),
              "first derivative")
    allow = allowance(mine, [s], leaves, seed)
    # Where torch's double backward gives nan, microbp may give a number:
    # torch differentiates the formulas that mask its edges (pow's where(),
    # abs's (g - sgn(x)^2 g) / (2|x|)), which turns an inf upstream or an inf
    # masked branch into nan; microbp differentiates the branch it took, a
    # structural zero (abs'' = relu'' = 0). And where torch gives inf after an
    # overflow or underflow (pow of a tiny base to a huge exponent), microbp's
    # other order of the same products may meet 0 * inf first: nan. Where
    # torch's value is finite, microbp's must agree.
    # test_second_derivatives_at_the_edges checks the edges op by op.
    ref = [m if math.isnan(r) or (math.isinf(r) and not math.isfinite(m))
           or (regrouped(seconds) and math.isnan(m)) else r for m, r in zip(mine, ref)]
    agree_all(mine, ref, allow, "second derivative")


EDGE_POINTS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -3.0, 1e-3, 30.0, -30.0, 800.0, -800.0,
               math.inf, -math.inf, math.nan]


def edge_cases(torch):
    """name -> f on a Value or a tensor: every op, at its kinks and poles."""
    def cpow(c):                        # a constant exponent; a tensor one in torch (IEEE pow)
        return lambda x: x ** c if isinstance(x, Value) else \
            torch.pow(x, torch.tensor(c, dtype=torch.float64))
    return {"relu": lambda x: x.relu(), "abs": lambda x: abs(x), "abs*x": lambda x: abs(x) * x,
            "sqrt": lambda x: x.sqrt(), "x**x": lambda x: x ** x, "2**x": lambda x: 2.0 ** x,
            "log": lambda x: x.log(), "1/x": lambda x: 1.0 / x, "x/x": lambda x: x / x,
            "sigmoid": lambda x: x.sigmoid(), "tanh": lambda x: x.tanh(),
            "exp": lambda x: x.exp(), "-x*x": lambda x: -x * x, "x-x": lambda x: x - x,
            "x**2": cpow(2.0), "x**0": cpow(0.0), "x**3": cpow(3.0), "x**0.5": cpow(0.5),
            "x**-1": cpow(-1.0), "x**1.5": cpow(1.5)}


# Where microbp and torch differ, and why: torch differentiates the where()
# that masks pow's edges (exponent 0; base 0 with exponent >= 0) and gets
# 0 * inf = nan from the masked branch; microbp differentiates the branch it
# took, a structural zero, as torch itself does for relu. x ** 0 is the
# constant 1, so 0 is its second derivative.
BRANCH_TAKEN = {("x**x", 0.0), ("x**x", -0.0), ("x**0", 0.0), ("x**0", -0.0),
                ("x**0", "nan")}


def test_second_derivatives_at_the_edges_match_torch():
    torch = pytest.importorskip("torch")
    for name, f in edge_cases(torch).items():
        for x0 in EDGE_POINTS:
            x = Value(x0)
            (d1,) = grad(f(x), [x], create_graph=True)
            (d2,) = grad(d1, [x])
            t = torch.tensor(x0, dtype=torch.float64, requires_grad=True)
            (t1,) = torch.autograd.grad(f(t), [t], create_graph=True)
            t2 = torch.autograd.grad(t1, [t], allow_unused=True, materialize_grads=True)[0] \
                .item() if t1.requires_grad else 0.0
            assert within(d1.data, t1.item(), 0.0), f"f' of {name} at {x0}: {d1.data}, torch {t1}"
            if (name, "nan" if x0 != x0 else x0) in BRANCH_TAKEN:
                assert d2.data == 0.0, (name, x0, d2.data)
            else:
                assert within(d2.data, t2, 0.0), f"f'' of {name} at {x0}: {d2.data}, torch {t2}"
    # the ones the issue names: relu'' = 0, abs'' = 0 everywhere, also at 0
    for x0 in (0.0, -1.0, 2.0):
        x = Value(x0)
        assert grad(grad(x.relu(), [x], create_graph=True)[0], [x])[0].data == 0.0
        assert grad(grad(abs(x), [x], create_graph=True)[0], [x])[0].data == 0.0


def test_pow_with_a_value_exponent_second_derivatives():
    # f(a, b) = a ** b: every second partial against the closed forms
    a0, b0 = 1.7, 2.3
    a, b = Value(a0), Value(b0)
    ga, gb = grad(a ** b, [a, b], create_graph=True)
    (haa, hab), (hba, hbb) = (([v.data for v in grad(gi, [a, b])]) for gi in (ga, gb))
    la = math.log(a0)
    for got, want in ((haa, b0 * (b0 - 1) * a0 ** (b0 - 2)),
                      (hab, a0 ** (b0 - 1) * (1 + b0 * la)),
                      (hba, a0 ** (b0 - 1) * (1 + b0 * la)),
                      (hbb, a0 ** b0 * la * la)):
        assert abs(got - want) <= 1e-13 * abs(want)
    assert hessian(lambda a, b: a ** b, [a0, b0])[0][1] == hessian(lambda a, b: a ** b,
                                                                    [a0, b0])[1][0]


def test_third_derivative_and_unused_inputs():
    x, y = Value(0.7), Value(-1.2)
    f = (x * 3.0).tanh()
    d = [f]
    for _ in range(3):
        d.append(grad(d[-1], [x], create_graph=True)[0])
    t = math.tanh(2.1)
    s = 1 - t * t                                        # tanh' at 3x, times 3 each
    assert abs(d[1].data - 3 * s) < 1e-15
    assert abs(d[2].data - 9 * (-2 * t * s)) < 1e-14
    assert abs(d[3].data - 27 * (-2 * s * s + 4 * t * t * s)) < 1e-13
    # an output that does not depend on an input: gradient 0.0 (torch's
    # allow_unused=True, materialize_grads=True), on floats and on Values
    assert [v.data for v in grad(f, [x, y])] == [d[1].data, 0.0]
    assert [v.data for v in grad(f, [x, y], create_graph=True)] == [d[1].data, 0.0]
    assert grad(grad(x * 2.0, [x], create_graph=True)[0], [x])[0].data == 0.0


# -- jacobian and hessian -------------------------------------------------------------

@SETTINGS
@given(graphs(edges=False), st.integers(0, 2 ** 32 - 1))
def test_jacobian_forward_equals_reverse(g, seed):
    xs, steps, nout = g
    f = function(steps, nout)
    fwd = jacobian(f, xs, mode="forward")
    rev = jacobian(f, xs, mode="reverse")
    assert len(fwd) == len(rev) == nout and all(len(r) == len(xs) for r in fwd + rev)
    leaves = [Value(x) for x in xs]
    outs = build(steps, nout, leaves)
    # At a singular point (a local derivative inf or nan) the modes may differ:
    # a structural zero (relu' at 0; pow's at exponent 0) meets the inf in
    # one order of the sweep (0 * inf = nan in reverse mode) and not in the other.
    singular = any(not math.isfinite(d) for v in _topo(outs) if v._a is not None
                   for d in ops.OPS[v._op].local(v._a.data, v._b.data if v._b else 0.0, v.data))
    for i, o in enumerate(outs):
        allow = allowance(rev[i], [o], leaves, seed + i)
        for j in range(len(xs)):
            fij, rij = fwd[i][j], rev[i][j]
            if singular and not (math.isfinite(fij) and math.isfinite(rij)):
                continue
            if not (math.isfinite(fij) or math.isfinite(rij)) or (
                    not (math.isfinite(fij) and math.isfinite(rij))
                    and max(abs(x) for x in (fij, rij) if math.isfinite(x)) > 1e150):
                continue       # overflowed (on the verge, for one): inf, or inf - inf = nan
                # (a derivative of 1e150 or more is a product of path factors that
                # can overflow in the other sweep's order: seen at 1.8e220 vs nan)
            if abs(fij) < 1e-200 and abs(rij) < 1e-200:
                continue       # a product of path factors may underflow in one order only
            assert within(fij, rij, allow[j]), (i, j, fij, rij, allow[j])
    auto = fwd if nout > len(xs) else rev
    assert [list(map(bits, r)) for r in jacobian(f, xs)] == [list(map(bits, r)) for r in auto]


def smooth(x, y, z):
    h = (x * y + z.exp()).tanh()
    return [h * x, (y / (1.0 + z * z)).log(), h.sigmoid() + (x ** y) * 0.1, abs(x - y) ** 1.5]


def test_jacobian_matches_finite_differences():
    p = [0.6, 1.3, -0.4]
    for mode in ("forward", "reverse", "auto"):
        jac = jacobian(smooth, p, mode)
        for j in range(3):
            h = 1e-6
            up = [v.data for v in smooth(*[Value(x + (h if k == j else 0.0)) for k, x in enumerate(p)])]
            dn = [v.data for v in smooth(*[Value(x - (h if k == j else 0.0)) for k, x in enumerate(p)])]
            for i in range(4):
                fd = (up[i] - dn[i]) / (2 * h)
                assert abs(jac[i][j] - fd) <= 1e-7 * max(1.0, abs(fd)), (mode, i, j)
    fwd, rev = jacobian(smooth, p, "forward"), jacobian(smooth, p, "reverse")
    assert all(abs(a - b) <= 1e-12 * max(abs(a), abs(b)) for ra, rb in zip(fwd, rev)
               for a, b in zip(ra, rb))


def rosen(*xs):
    s = 0.0
    for a, b in zip(xs, xs[1:]):
        s = s + 100.0 * (b - a * a) ** 2.0 + (1.0 - a) ** 2.0
    return s + (xs[0] * xs[-1]).tanh()


def test_hessian_is_symmetric_and_matches_torch_and_finite_differences():
    p = [0.3, -1.1, 0.8, 1.7]
    hs = hessian(rosen, p)
    n = len(p)
    assert all(hs[i][j] == hs[j][i] for i in range(n) for j in range(n))
    for j in range(n):                              # columns: differences of the gradient
        h = 1e-6
        gp = jacobian(rosen, [x + (h if k == j else 0.0) for k, x in enumerate(p)])[0]
        gm = jacobian(rosen, [x - (h if k == j else 0.0) for k, x in enumerate(p)])[0]
        for i in range(n):
            fd = (gp[i] - gm[i]) / (2 * h)
            assert abs(hs[i][j] - fd) <= 1e-6 * max(1.0, abs(fd))
    torch = pytest.importorskip("torch")
    ref = torch.autograd.functional.hessian(lambda t: rosen(*t),
                                            torch.tensor(p, dtype=torch.float64))
    for i in range(n):
        for j in range(n):
            r = ref[i][j].item()
            assert abs(hs[i][j] - r) <= 1e-12 * max(1.0, abs(r))


def test_a_hessian_vector_product_over_a_batch_runs_on_a_tape():
    # The loss of a small model with parameters w over input rows x: its
    # gradient graph (create_graph=True) dotted with a direction v is an
    # ordinary graph; recorded into a Tape with x as input slots, backward()
    # gives sum over rows of H_row v in C, the same doubles as eager.
    rng = random.Random(5)
    w = [Value(rng.uniform(-1, 1), label=f"w{k}") for k in range(4)]
    v = [rng.uniform(-1, 1) for _ in w]

    def hv_graph(x0, x1, y):
        z = (w[0] * x0 + w[1] * x1 + w[2]).tanh() * w[3]
        loss = (z - y) ** 2.0
        gs = grad(loss, w, create_graph=True)
        s = gs[0] * v[0]
        for gk, vk in zip(gs[1:], v[1:]):
            s = s + gk * vk
        return s

    rows = [[rng.uniform(-2, 2), rng.uniform(-2, 2), rng.uniform(-1, 1)] for _ in range(16)]
    slots = [Value(0.0) for _ in range(3)]
    tape = Tape(hv_graph(*slots), slots)
    assert set(map(id, tape.parameters)) == set(map(id, w))
    results = {}
    for backend in microbp.available_backends():
        with microbp.use_backend(backend):
            for p in w:
                p.grad = 0.0
            tape.forward(rows)
            tape.backward()
            results[backend] = [bits(p.grad) for p in w]
    assert len(set(map(tuple, results.values()))) == 1       # backends: the same doubles
    # eager, row by row: H_row v by grad of the same graph, and by hessian()
    for p in w:
        p.grad = 0.0
    hv = [0.0] * 4
    for row in rows:
        per_row = [g.data for g in grad(hv_graph(*row), w)]
        for k in range(4):
            hv[k] += per_row[k]
        x0, x1, y = row

        def loss(a, b, c, d):
            return (((a * x0 + b * x1 + c).tanh() * d) - y) ** 2.0
        H = hessian(loss, [p.data for p in w])
        for k in range(4):
            hk = sum(H[k][j] * v[j] for j in range(4))
            assert abs(hk - per_row[k]) <= 1e-12 * max(1.0, abs(hk))
    with microbp.use_backend("python"):
        for p in w:
            p.grad = 0.0
        one = Tape(hv_graph(*slots), slots)
        one.forward(rows[:1])
        one.backward()
        assert [bits(p.grad) for p in w] == [bits(g.data) for g in grad(hv_graph(*rows[0]), w)]
    for p in w:
        p.grad = 0.0
    tape.forward(rows)
    tape.backward()                      # the batch is the sum of the rows (lane order aside)
    for k in range(4):
        assert abs(w[k].grad - hv[k]) <= 1e-12 * max(1.0, abs(hv[k]))


# -- bad input --------------------------------------------------------------------------

def test_bad_input():
    x = Value(1.0)
    with pytest.raises(ValueError, match="tangents has 1 entries, primals has 2"):
        jvp(lambda a, b: a * b, [1.0, 2.0], [1.0])
    with pytest.raises(TypeError, match=r"primals\[0\] must be an int or float, not Value"):
        jvp(lambda a: a, [x], [1.0])
    with pytest.raises(TypeError, match=r"tangents\[0\] must be an int or float, not str"):
        jvp(lambda a: a, [1.0], ["1"])
    with pytest.raises(TypeError, match="result of f must be a Value or a list of Values"):
        jvp(lambda a: 3.0, [1.0], [1.0])
    with pytest.raises(TypeError, match="f must be callable"):
        jvp(3, [1.0], [1.0])
    with pytest.raises(TypeError, match=r"inputs\[1\] must be a Value, not float"):
        grad(x * 2.0, [x, 1.0])
    with pytest.raises(TypeError, match="inputs must be a list of Values, not a Value"):
        grad(x * 2.0, x)
    with pytest.raises(TypeError, match="outputs must be a Value or a list of Values, not int"):
        grad(3, [x])
    with pytest.raises(ValueError, match="outputs is empty"):
        grad([], [x])
    with pytest.raises(TypeError, match="create_graph must be True or False"):
        grad(x * 2.0, [x], create_graph=1)
    with pytest.raises(ValueError, match="mode must be one of"):
        jacobian(lambda a: a, [1.0], mode="sideways")
    with pytest.raises(ValueError, match="values is empty"):
        jacobian(lambda: x, [])
    with pytest.raises(TypeError, match="single Value for hessian"):
        hessian(lambda a: [a, a], [1.0])
    assert x.grad == 0.0


# -- the examples ------------------------------------------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name, backend, *args):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MICROBP_BACKEND", None)
    return subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), "--backend",
                           backend, *args], capture_output=True, text=True, timeout=300, env=env)


def test_newton_example_converges_as_newton_with_hand_derivatives(backend):
    done = run_example("newton.py", backend)
    assert done.returncode == 0, done.stdout + done.stderr
    printed = [float(e) for e in re.findall(r"\|x - x\*\| = (\S+)", done.stdout)]
    # the same iteration with f' and f'' written by hand, in plain floats
    x, want, ln2 = 0.0, [], math.log(2.0)
    while not want or want[-1] > 1e-12:
        x -= (math.exp(x) - 2.0 + 4.0 * (x - ln2) ** 3) / (math.exp(x) + 12.0 * (x - ln2) ** 2)
        want.append(abs(x - ln2))
    assert len(printed) == len(want)
    for p, w in zip(printed, want):
        assert abs(p - w) <= 1e-3 * w + 1e-15          # printed with 4 digits
    gnorms = [float(g) for g in re.findall(r"\|g\| before the step = (\S+)", done.stdout)]
    assert gnorms[-1] < 1e-12 < gnorms[0]


def test_forward_vs_reverse_example_counts_the_sweeps(backend):
    # the verdict depends on timing (a benchmark's business), so only the
    # counts and the agreement of the Jacobians are checked here
    done = run_example("forward_vs_reverse.py", backend, "--size", "12", "--repeats", "1")
    assert done.returncode in (0, 1), done.stdout + done.stderr
    out = done.stdout
    nodes = [int(v) for v in re.findall(r"outputs, (\d+) nodes", out)]
    sys.path.insert(0, os.path.join(ROOT, "examples"))
    try:
        spec = importlib.util.spec_from_file_location(
            "forward_vs_reverse", os.path.join(ROOT, "examples", "forward_vs_reverse.py"))
        example = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
    finally:
        sys.path.pop(0)
    assert nodes[0] == len(_topo([example.many_to_one(*[Value(0.1 * i) for i in range(12)])]))
    assert f"forward mode: 12 sweeps (one per input) x {nodes[0]} nodes" in out
    assert f"reverse mode: 1 sweeps (one per output) over the nodes below each output " \
           f"= {nodes[0]} node visits" in out
    assert "forward mode: 1 sweeps (one per input)" in out
    assert "reverse mode: 12 sweeps (one per output)" in out
    assert out.count("Jacobians agree within 1e-12") == 3 and "DIFFER" not in out


def test_grad_inside_detect_anomaly_raises_like_backward():
    x = Value(0.0, label="x")
    y = x.log()                                         # -inf, made outside the block
    with microbp.detect_anomaly():
        with pytest.raises(FloatingPointError, match="the gradient of .*x.* became inf"):
            grad(y, [x])
        with pytest.raises(FloatingPointError, match="the gradient of .*x.* became inf"):
            grad([y, y], [x])                           # several outputs: appended adds
    assert x.grad == 0.0
    assert grad(y, [x])[0].data == math.inf            # outside the block: IEEE

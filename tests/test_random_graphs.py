"""Random expression graphs over every op (hypothesis), 1 to 500 nodes, with
reused subexpressions and edge values (0, -0, negatives, tiny and large
magnitudes, inf, nan):

- eager values and gradients are bit-identical between the two backends, and
  a one-row Tape of the same graph gives the very same doubles;
- where torch is installed, they equal PyTorch float64 within 1e-12 relative
  (nan where PyTorch gives nan, the same inf). PyTorch's exp, tanh and the
  like differ from the C library's by an ulp now and then, and an ill-conditioned
  step (1 - tanh(x)^2 near saturation, a sum that cancels) can magnify that ulp
  far past 1e-12. So each comparison also allows the spread that such ulp-size
  differences produce: the graph is re-evaluated in plain Python floats with
  every op result and every gradient contribution nudged by a few ulps, and the
  largest change seen is the allowance. Where the computation is well
  conditioned the allowance is far below 1e-12 relative.

MICROBP_HYPOTHESIS_EXAMPLES sets the number of examples (CI: 2000).
"""
import math
import os
import random
import struct

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import microbp
from microbp import Value, Tape, ops

EXAMPLES = int(os.environ.get("MICROBP_HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

EDGE = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-300, -1e-300, 5e-324, 1e300, -1e300,
        700.0, -700.0, math.inf, -math.inf, math.nan]
UNARY = ["neg", "exp", "log", "tanh", "sigmoid", "relu", "abs"]
BINARY = ["add", "sub", "mul", "div", "pow", "powc"]
EXPONENTS = [2.0, 3.0, -1.0, 0.5, -0.5, 0.0, 1.5, -2.0]


@st.composite
def graphs(draw, max_nodes=500):
    """A list of steps: ("leaf", x), ("un", name, i), ("bin", name, i, j) or
    ("powc", i, c), each input i, j an earlier step (so subexpressions are
    reused). Hypothesis picks the size, the leaves and a seed for the rest
    (drawing each of 500 steps through hypothesis would be slow)."""
    leaf_values = draw(st.lists(st.one_of(st.sampled_from(EDGE),
                                          st.floats(-50, 50, allow_nan=False)),
                                min_size=1, max_size=6))
    size = draw(st.integers(0, max_nodes - len(leaf_values)))
    rng = random.Random(draw(st.integers(0, 2 ** 32 - 1)))
    return ([("leaf", x) for x in leaf_values]
            + random_steps(rng, len(leaf_values), size, UNARY, BINARY, window=8))


def random_steps(rng, first, size, unary, binary, window):
    """`size` steps ("un", name, i), ("bin", name, i, j) or ("powc", i, c) over
    the nodes before them, numbered from 0 (the `first` nodes are leaves); an
    input is mostly one of the `window` newest nodes, so subexpressions are
    reused and the graph is deep."""
    steps = []
    for _ in range(size):
        k = first + len(steps)

        def pick():                                   # mostly recent nodes
            return rng.randrange(max(0, k - window), k) if rng.random() < 0.7 else rng.randrange(k)
        kind = rng.choice(unary + binary)
        if kind in unary:
            steps.append(("un", kind, pick()))
        elif kind == "powc":
            steps.append(("powc", pick(), rng.choice(EXPONENTS)))
        else:
            steps.append(("bin", kind, pick(), pick()))
    return steps


def build(steps):
    """The graph in microbp: (leaves, all nodes, output = sum of the last 3 nodes)."""
    nodes = []
    for s in steps:
        if s[0] == "leaf":
            nodes.append(Value(s[1]))
        elif s[0] == "un":
            x = nodes[s[2]]
            nodes.append(-x if s[1] == "neg" else getattr(x, s[1])())
        elif s[0] == "powc":
            nodes.append(nodes[s[1]] ** s[2])
        else:
            x, y = nodes[s[2]], nodes[s[3]]
            nodes.append({"add": x.__add__, "sub": x.__sub__, "mul": x.__mul__,
                          "div": x.__truediv__, "pow": x.__pow__}[s[1]](y))
    out = nodes[-1]
    for v in nodes[-3:-1]:
        out = out + v
    leaves = [v for v, s in zip(nodes, steps) if s[0] == "leaf"]
    return leaves, nodes, out


def bits(x):
    # every bit, except that all nans count as one: IEEE 754 leaves the sign and
    # payload of a nan unspecified, and when two nans of different signs meet
    # (a user's float("nan") and a 0/0), which one comes out depends on the
    # operand order the compiler picked, in CPython as in the C core
    return b"nan" if x != x else struct.pack("<d", x)


def eager(steps, backend):
    leaves, nodes, out = build(steps)
    with microbp.use_backend(backend):
        out.backward()
    return [bits(v.data) for v in nodes + [out]], [bits(v.grad) for v in leaves]


@SETTINGS
@given(graphs())
def test_backends_and_tape_give_the_same_doubles(steps):
    backends = microbp.available_backends()
    results = {b: eager(steps, b) for b in backends}
    assert all(r == results["python"] for r in results.values())
    # the same graph as a one-row tape, in every backend: the same doubles
    leaves, nodes, out = build(steps)
    tape = Tape(out, [])
    for b in backends:
        with microbp.use_backend(b):
            for v in leaves:
                v.grad = 0.0
            (value,) = tape.forward([[]])
            tape.backward()
        assert bits(value) == results["python"][0][-1]
        assert [bits(v.grad) for v in leaves] == results["python"][1]


def close(mine, ref, rel=1e-12):
    if math.isnan(ref) or math.isnan(mine):
        return math.isnan(ref) and math.isnan(mine)
    if math.isinf(ref) or math.isinf(mine):
        return mine == ref
    return abs(mine - ref) <= rel * max(abs(ref), abs(mine)) or abs(mine - ref) < 1e-300


def torch_reference(torch, steps):
    nodes = []
    for s in steps:
        if s[0] == "leaf":
            nodes.append(torch.tensor(s[1], dtype=torch.float64, requires_grad=True))
        elif s[0] == "un":
            x = nodes[s[2]]
            nodes.append({"neg": torch.neg, "exp": torch.exp, "log": torch.log,
                          "tanh": torch.tanh, "sigmoid": torch.sigmoid, "relu": torch.relu,
                          "abs": torch.abs}[s[1]](x))
        elif s[0] == "powc":      # a constant exponent as a tensor: IEEE pow, not sqrt
            nodes.append(torch.pow(nodes[s[1]], torch.tensor(s[2], dtype=torch.float64)))
        else:
            x, y = nodes[s[2]], nodes[s[3]]
            nodes.append({"add": torch.add, "sub": torch.sub, "mul": torch.mul,
                          "div": torch.div, "pow": torch.pow}[s[1]](x, y))
    out = nodes[-1]
    for v in nodes[-3:-1]:
        out = out + v
    leaves = [v for v, s in zip(nodes, steps) if s[0] == "leaf"]
    out.backward()
    return ([v.item() for v in nodes + [out]],
            [0.0 if v.grad is None else v.grad.item() for v in leaves])


def nudged(steps, rng, ulps=4):
    """Values of every node and gradients of the leaves, computed with plain
    floats from the op table, each op result and each gradient contribution
    multiplied by (1 + e), |e| <= ulps * 2**-52."""
    def nudge(x):
        return x * (1.0 + rng.uniform(-ulps, ulps) * 2.0 ** -52)
    code = {op.name: op.code for op in ops.OPS}
    prog, vals = [], []
    for s in steps:
        if s[0] == "leaf":
            prog.append((None, -1, -1, None))
            vals.append(s[1])
            continue
        if s[0] == "un":
            o, i, j, c = code[s[1]], s[2], -1, 0.0
        elif s[0] == "powc":
            o, i, j, c = code["powc"], s[1], -1, s[2]
        else:
            o, i, j, c = code[s[1]], s[2], s[3], None
        prog.append((o, i, j, c))
        y = vals[j] if j >= 0 else c
        vals.append(nudge(ops.FORWARD[o](vals[i], y)))
    last = len(vals) - 1
    for k in (last - 2, last - 1):             # out = n[-1] + n[-3] + n[-2]
        if k >= 0:
            prog.append((code["add"], len(vals) - 1, k, None))
            vals.append(nudge(vals[-1] + vals[k]))
    adj = [0.0] * len(vals)
    adj[-1] = 1.0
    for n in range(len(vals) - 1, -1, -1):
        o, i, j, c = prog[n]
        if o is None:
            continue
        y = vals[j] if j >= 0 else c
        ga, gb = ops.BACKWARD[o](adj[n], vals[i], y, vals[n])
        adj[i] += nudge(ga)
        if j >= 0 and ops.GRAD_B[o]:
            adj[j] += nudge(gb)
    leaves = [adj[n] for n, s in enumerate(steps) if s[0] == "leaf"]
    return vals[:len(steps)] + vals[-1:], leaves


def spread(base, runs):
    """The largest change of each entry over the nudged runs (inf where a run
    went non-finite while the base did not)."""
    out = []
    for k, x in enumerate(base):
        d = 0.0
        for run in runs:
            y = run[k]
            if math.isfinite(x) and math.isfinite(y):
                d = max(d, abs(x - y))
            elif not (x == y or (x != x and y != y)):
                d = math.inf
        out.append(d)
    return out


def within(mine, ref, allowance, rel=1e-12):
    if close(mine, ref, rel):
        return True
    return math.isfinite(mine) and math.isfinite(ref) and abs(mine - ref) <= 4 * allowance


@SETTINGS
@given(graphs(), st.integers(0, 2 ** 32 - 1))
def test_equal_to_pytorch_float64(steps, seed):
    torch = pytest.importorskip("torch")
    rng = random.Random(seed)
    leaves, nodes, out = build(steps)
    out.backward()
    mine_vals = [v.data for v in nodes + [out]]
    mine_grads = [v.grad for v in leaves]
    ref_vals, ref_grads = torch_reference(torch, steps)
    runs = [nudged(steps, rng) for _ in range(3)]
    val_spread = spread(mine_vals, [r[0] for r in runs])
    grad_spread = spread(mine_grads, [r[1] for r in runs])
    for k, (v, r, a) in enumerate(zip(mine_vals, ref_vals, val_spread)):
        assert within(v, r, a), f"value of node {k}: microbp {v!r}, torch {r!r}, allowance {a!r}"
    for k, (v, r, a) in enumerate(zip(mine_grads, ref_grads, grad_spread)):
        assert within(v, r, a), f"gradient of leaf {k}: microbp {v!r}, torch {r!r}, allowance {a!r}"

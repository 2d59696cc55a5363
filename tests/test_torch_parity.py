"""Op-level parity with PyTorch float64: values and gradients of every op over
a grid of points (edges included), the conventions microbp shares with
PyTorch at non-differentiable points, and two composite expressions.

Two values agree when they are within 1e-12 relative, or both nan, or both
infinite with the same sign.
"""
import itertools
import math

import pytest

from microbp import Value

torch = pytest.importorskip("torch")

inf, nan = math.inf, math.nan
F64 = torch.float64

GRID = [0.0, -0.0, 1.0, -1.0, 0.5, 2.5, -3.7, 1e-10, -1e-10, 1e10, -1e10,
        1e300, -1e300, 1e-300, 5e-324, 700.0, -800.0, inf, -inf, nan]


def agree(m, t):
    if math.isnan(m) or math.isnan(t):
        return math.isnan(m) and math.isnan(t)
    if math.isinf(m) or math.isinf(t):
        return m == t
    return m == t or abs(m - t) <= 1e-12 * max(abs(m), abs(t))


def leaf(x):
    return torch.tensor(x, dtype=F64, requires_grad=True)


def tgrad(t):
    return 0.0 if t.grad is None else t.grad.item()


def run_microbp(f, xs):
    vs = [Value(x) for x in xs]
    out = f(*vs)
    out.backward()
    return out.data, [v.grad for v in vs]


def run_torch(f, xs):
    ts = [leaf(x) for x in xs]
    out = f(*ts)
    out.backward()
    return out.item(), [tgrad(t) for t in ts]


def mismatches(f, points):
    bad = []
    for xs in points:
        mv, mg = run_microbp(f, xs)
        tv, tg = run_torch(f, xs)
        if not (agree(mv, tv) and all(agree(a, b) for a, b in zip(mg, tg))):
            bad.append(f"at {xs}: microbp {mv!r} {mg!r}, torch {tv!r} {tg!r}")
    return bad


# Lambdas that work on a Value and on a torch tensor alike: both have the
# operators and .exp(), .log(), .tanh(), .sigmoid(), .relu(), .abs().

UNARY = {
    "neg": lambda x: -x,
    "exp": lambda x: x.exp(),
    "log": lambda x: x.log(),
    "tanh": lambda x: x.tanh(),
    "sigmoid": lambda x: x.sigmoid(),
    "relu": lambda x: x.relu(),
    "abs": lambda x: x.abs(),
    "builtin_abs": lambda x: abs(x),
    # reflected forms: the constant on the left
    "radd": lambda x: 1 + x,
    "rsub": lambda x: 2 - x,
    "rmul": lambda x: 3 * x,
    "rdiv": lambda x: 2 / x,
    "rdiv_neg": lambda x: -0.5 / x,
    "rpow": lambda x: 2 ** x,
    "rpow_small_base": lambda x: 0.5 ** x,
    "rpow_zero_base": lambda x: 0 ** x,
    # right constant
    "add_const": lambda x: x + 2.5,
    "sub_const": lambda x: x - 2.5,
    "mul_const": lambda x: x * -4.0,
    "div_const": lambda x: x / 3.0,
    "div_zero": lambda x: x / 0.0,
}


@pytest.mark.parametrize("name", list(UNARY))
def test_unary_parity(name):
    assert mismatches(UNARY[name], [(x,) for x in GRID]) == []


BINARY = {
    "add": lambda a, b: a + b,
    "sub": lambda a, b: a - b,
    "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b,
    "pow": lambda a, b: a ** b,
}


@pytest.mark.parametrize("name", list(BINARY))
def test_binary_parity(name):
    points = list(itertools.product(GRID, GRID))
    assert mismatches(BINARY[name], points) == []


def test_pow_value_exponent_parity_at_usual_points():
    # non-edge points, where gradients are ordinary numbers
    bases = [0.1, 0.5, 1.0, 2.0, 3.7, 10.0, -2.0, -0.5]
    exps = [-2.0, -1.5, -1.0, 0.0, 0.5, 1.0, 2.0, 3.0, 7.25]
    assert mismatches(BINARY["pow"], list(itertools.product(bases, exps))) == []


POW_CONSTANTS = [0, 1, 2, 3, -1, -2, -3, 0.5, -0.5, 1.5, -1.5, 2.5, 0.25, 1e-3, 10.0]


def torch_takes_sqrt_path(x, c):
    """PyTorch evaluates t ** 0.5 and t ** -0.5 (a Python scalar exponent) as
    sqrt and rsqrt, which differ from IEEE pow at -0.0 and -inf (pow gives +0
    / +inf, sqrt gives -0 / nan); the gradient of t ** c uses t ** (c - 1)."""
    return (x == -inf or (x == 0.0 and math.copysign(1.0, x) < 0)) and (
        c in (0.5, -0.5) or c - 1 in (0.5, -0.5))


@pytest.mark.parametrize("c", POW_CONSTANTS)
def test_pow_constant_exponent_parity(c):
    points = [(x,) for x in GRID if not torch_takes_sqrt_path(x, c)]
    assert mismatches(lambda x: x ** c, points) == []


@pytest.mark.parametrize("c", [0.5, -0.5, 1.5])
def test_pow_constant_exponent_follows_ieee_pow_where_torch_takes_sqrt(c):
    # At the points torch_takes_sqrt_path excludes, microbp follows IEEE pow,
    # which is also what torch.pow does with a tensor exponent.
    for x in (-0.0, -inf):
        mv, (mg,) = run_microbp(lambda v: v ** c, [x])
        t = leaf(x)
        out = torch.pow(t, torch.tensor(c, dtype=F64))
        out.backward()
        assert agree(mv, out.item()) and agree(mg, t.grad.item()), (x, mv, mg, out.item(),
                                                                      t.grad.item())
        assert agree(mv, IEEE_POW[x, c])


# C99 Annex F: pow(-0, y) = +0 for y > 0 and +inf for y < 0, pow(-inf, y) =
# +inf for y > 0 and +0 for y < 0, when y is not an odd integer
IEEE_POW = {(-0.0, 0.5): 0.0, (-0.0, -0.5): inf, (-0.0, 1.5): 0.0,
            (-inf, 0.5): inf, (-inf, -0.5): 0.0, (-inf, 1.5): inf}


# ---------------------------------------------------------------------------
# conventions at points where the derivative is not defined

def _both(f, xs):
    return run_microbp(f, xs), run_torch(f, xs)


@pytest.mark.parametrize("x", [0.0, -0.0])
def test_relu_derivative_at_zero_is_zero(x):
    (mv, (mg,)), (tv, (tg,)) = _both(lambda v: v.relu(), [x])
    assert mv == tv == 0.0
    assert mg == tg == 0.0


@pytest.mark.parametrize("x", [0.0, -0.0])
def test_abs_derivative_at_zero_is_zero(x):
    (mv, (mg,)), (tv, (tg,)) = _both(lambda v: v.abs(), [x])
    assert mv == tv == 0.0
    assert mg == tg == 0.0


def test_relu_nan_passes_gradient_through():
    (mv, (mg,)), (tv, (tg,)) = _both(lambda v: v.relu() * 3.0, [nan])
    assert math.isnan(mv) and math.isnan(tv)
    assert mg == tg == 3.0


@pytest.mark.parametrize("x", [0.0, -0.0, 2.0, -3.0, inf, -inf, nan])
def test_power_zero_has_zero_derivative(x):
    for f in (lambda v: v ** 0, lambda v: v ** 0.0, lambda v: v ** Value(0.0)
              if isinstance(v, Value) else v ** torch.tensor(0.0, dtype=F64)):
        (mv, (mg,)), (tv, (tg,)) = _both(f, [x])
        assert mv == tv == 1.0
        assert mg == tg == 0.0


@pytest.mark.parametrize("y", [0.0, 0.5, 1.0, 2.0, 3.0, inf])
def test_zero_base_exponent_gradient_is_zero_for_nonnegative_exponent(y):
    (mv, (ma, my)), (tv, (ta, ty)) = _both(lambda a, b: a ** b, [0.0, y])
    assert agree(mv, tv)
    assert my == ty == 0.0
    assert agree(ma, ta)
    # and with a constant zero base (0 ** y)
    (mv, (my,)), (tv, (ty,)) = _both(lambda b: 0 ** b, [y])
    assert my == ty == 0.0


@pytest.mark.parametrize("y", [-1.0, -0.5, -2.0])
def test_zero_base_exponent_gradient_for_negative_exponent(y):
    # 0 ** y = inf here and d/dy = inf * ln 0 = -inf: not zeroed
    (mv, (ma, my)), (tv, (ta, ty)) = _both(lambda a, b: a ** b, [0.0, y])
    assert mv == tv == inf
    assert my == ty == -inf
    assert agree(ma, ta)


# ---------------------------------------------------------------------------
# composite expressions

def composite(a, b, c):
    t = (a * b + c).tanh() * a.exp()
    u = (b / c).sigmoid() - (a * a + 1).log() * c.relu()
    w = (a - b).abs() ** 1.5 + 2 ** c - 3 / (b * b + 0.5)
    return t + u * w - (-a) ** 2 + a ** b.abs()


@pytest.mark.parametrize("xs", [(0.3, -1.2, 0.8), (1.5, 2.0, -0.4), (-0.7, 0.1, 2.2),
                                (0.0, 0.5, 1.0), (2.0, 2.0, 0.0)])
def test_composite_expression_parity(xs):
    assert mismatches(composite, [xs]) == []


def mlp_loss(*params, inputs=((0.5, -1.0, 2.0), (-0.3, 0.8, 0.1)), targets=(1.0, 0.0)):
    """3 -> 4 (tanh) -> 3 (relu) -> 1 (sigmoid), squared error plus a log term,
    over two samples; params is a flat list of scalars (Values or tensors)."""
    it = iter(params)

    def layer(xs, n_out, act):
        outs = []
        for _ in range(n_out):
            z = next(it)                      # bias
            for x in xs:
                z = z + next(it) * x
            outs.append(act(z))
        return outs

    loss = 0
    for xs, y in zip(inputs, targets):
        it = iter(params)
        h1 = layer(xs, 4, lambda z: z.tanh())
        h2 = layer(h1, 3, lambda z: z.relu())
        (p,) = layer(h2, 1, lambda z: z.sigmoid())
        loss = loss + (p - y) ** 2 - 0.1 * (p + 1e-3).log()
    return loss / len(targets)


N_MLP = 4 * (3 + 1) + 3 * (4 + 1) + 1 * (3 + 1)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_small_mlp_parity(seed):
    g = torch.Generator().manual_seed(seed)
    params = (torch.randn(N_MLP, generator=g, dtype=F64) * 0.8).tolist()
    mv, mg = run_microbp(mlp_loss, params)
    tv, tg = run_torch(mlp_loss, params)
    assert agree(mv, tv), (mv, tv)
    bad = [(k, a, b) for k, (a, b) in enumerate(zip(mg, tg)) if not agree(a, b)]
    assert bad == []
    assert any(x != 0.0 for x in mg)       # the relu layer did not kill everything

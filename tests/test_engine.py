"""The eager engine: every op's gradient, edge semantics, graph shapes, deep
graphs, memory, errors, repr, and the backend choice API.

Expected values are computed independently of microbp: gradients by central
finite differences of the same expression evaluated on plain Python floats
(math module), forward values by math formulas.
"""
import gc
import math
import random
import re
import struct
import sys
import threading

import pytest

import microbp
from microbp import Value

inf, nan = math.inf, math.nan


# ---------------------------------------------------------------------------
# helpers

@pytest.fixture(autouse=True)
def _restore_backend():
    """Every test leaves the process-wide backend as it found it."""
    saved = microbp.get_backend()
    yield
    microbp.set_backend(saved)


# Functions that work on a Value (through microbp) and on a float (through
# the math module, independently of microbp), so that one expression can be
# differentiated by the engine and by finite differences.

def exp(x):
    return x.exp() if isinstance(x, Value) else math.exp(x)


def log(x):
    return x.log() if isinstance(x, Value) else math.log(x)


def tanh(x):
    return x.tanh() if isinstance(x, Value) else math.tanh(x)


def sigmoid(x):
    if isinstance(x, Value):
        return x.sigmoid()
    if x < 0.0:                  # float side: the form without cancellation
        e = math.exp(x)
        return e / (1.0 + e)
    return 1.0 / (1.0 + math.exp(-x))


def relu(x):
    return x.relu() if isinstance(x, Value) else max(x, 0.0)


def fabs(x):
    return x.abs() if isinstance(x, Value) else math.fabs(x)


def central_diff(f, xs, i, rel_step=1e-6, with_error=False):
    """d f / d xs[i] by a central difference, f evaluated on plain floats.
    With with_error, also a bound on the rounding error of the difference."""
    x = float(xs[i])
    h = rel_step * (abs(x) if x != 0.0 else 1.0)
    up = list(map(float, xs))
    dn = list(map(float, xs))
    up[i] += h
    dn[i] -= h
    fu, fd = f(*up), f(*dn)
    d = (fu - fd) / (up[i] - dn[i])
    if not with_error:
        return d
    return d, 8 * sys.float_info.epsilon * max(abs(fu), abs(fd)) / (up[i] - dn[i])


def engine_grads(f, xs):
    """f's value and gradient by microbp's backward."""
    vs = [Value(x) for x in xs]
    out = f(*vs)
    out.backward()
    return out, [v.grad for v in vs]


def assert_grads_match_fd(f, xs, rel=1e-6, abs_=1e-9, which=None):
    out, grads = engine_grads(f, xs)
    assert out.grad == 1.0
    assert out.data == pytest.approx(f(*map(float, xs)), rel=1e-12, abs=1e-300)
    for i in (range(len(xs)) if which is None else which):
        fd, rounding = central_diff(f, xs, i, with_error=True)
        tol = rel * abs(fd) + abs_ + rounding
        assert abs(grads[i] - fd) <= tol, (
            f"d/dx{i} at {xs}: engine {grads[i]!r}, finite difference {fd!r} (tol {tol:.3g})")


def same_double(x, y):
    """Bitwise equality of two doubles, every nan equal to every nan."""
    if math.isnan(x) or math.isnan(y):
        return math.isnan(x) and math.isnan(y)
    return struct.pack("<d", x) == struct.pack("<d", y)


def all_nodes(root):
    """Every Value of the graph below root (root included), each once."""
    seen, stack, out = {id(root)}, [root], [root]
    while stack:
        v = stack.pop()
        for c in v.inputs:
            if id(c) not in seen:
                seen.add(id(c))
                stack.append(c)
                out.append(c)
    return out


# ---------------------------------------------------------------------------
# every op's gradient against central finite differences

BINARY_CASES = [
    ("add", lambda a, b: a + b, [(0.0, 3.0), (-2.5, 4.0), (1e6, -3e-5), (-7.0, -0.25)]),
    ("sub", lambda a, b: a - b, [(0.0, 3.0), (-2.5, 4.0), (1e6, -3e-5), (-7.0, -0.25)]),
    ("mul", lambda a, b: a * b, [(0.0, 3.0), (-2.5, 4.0), (1e6, -3e-5), (-7.0, -0.25), (0.0, 0.0)]),
    ("div", lambda a, b: a / b, [(0.0, 3.0), (1.0, -2.0), (1e6, 1e-3), (-5.0, 7.0), (3.0, -1e4)]),
    # a ** b with a Value exponent: gradients for base and exponent
    ("pow", lambda a, b: a ** b, [(2.0, 3.0), (0.5, -1.5), (10.0, 0.3), (3.0, 0.0),
                                  (1.0, 2.5), (1e3, 0.5), (0.2, 7.0), (4.0, -2.0)]),
]


@pytest.mark.parametrize("name,f,points", BINARY_CASES, ids=[c[0] for c in BINARY_CASES])
def test_binary_op_gradients(name, f, points):
    for xs in points:
        assert_grads_match_fd(f, xs)


UNARY_CASES = [
    ("neg", lambda x: -x, [-3.5, 0.0, 2.0, 1e8]),
    ("exp", exp, [-700.0, -3.0, 0.0, 1.5, 50.0]),
    ("log", log, [1e-3, 0.5, 1.0, 10.0, 1e10]),
    ("tanh", tanh, [-2.0, 0.0, 0.3, 5.0, 20.0]),
    ("sigmoid", sigmoid, [-30.0, -2.0, 0.0, 1.0, 30.0]),
    ("relu", relu, [-3.0, -1e-3, 1e-3, 2.0, 1e6]),
    ("abs", fabs, [-3.0, -1e-3, 1e-3, 2.0, 1e6]),
    ("pow_int_2", lambda x: x ** 2, [-3.0, 0.0, 0.5, 1e3]),
    ("pow_int_3", lambda x: x ** 3, [-2.0, 0.0, 1.5]),
    ("pow_int_neg1", lambda x: x ** -1, [-4.0, 0.25, 1e5]),
    ("pow_int_neg2", lambda x: x ** -2, [-3.0, 2.0]),
    ("pow_int_0", lambda x: x ** 0, [-2.0, 0.0, 5.0]),
    ("pow_int_1", lambda x: x ** 1, [-2.0, 0.0, 5.0]),
    ("pow_float_half", lambda x: x ** 0.5, [1e-4, 4.0, 1e6]),
    ("pow_float_2.5", lambda x: x ** 2.5, [0.5, 3.0, 100.0]),
    ("pow_float_neg1.5", lambda x: x ** -1.5, [0.1, 9.0]),
    ("pow_float_2.0", lambda x: x ** 2.0, [-3.0, 0.0, 7.0]),
    # reflected forms: the constant is on the left
    ("rsub", lambda x: 2 - x, [-2.0, 0.0, 0.5, 10.0]),
    ("rdiv", lambda x: 2 / x, [-2.0, 0.5, 10.0, -1e-3]),
    ("rpow", lambda x: 2 ** x, [-2.0, 0.0, 0.5, 10.0]),
    ("rpow_float_base", lambda x: 0.5 ** x, [-2.0, 0.0, 3.0]),
    ("rmul", lambda x: 3 * x, [-2.0, 0.0, 0.5, 10.0]),
    ("radd", lambda x: 1 + x, [-2.0, 0.0, 0.5, 10.0]),
    ("radd_float", lambda x: -1.5 + x, [-2.0, 0.0, 0.5]),
]


@pytest.mark.parametrize("name,f,points", UNARY_CASES, ids=[c[0] for c in UNARY_CASES])
def test_unary_op_gradients(name, f, points):
    for x in points:
        assert_grads_match_fd(f, [x])


def test_pow_value_exponent_negative_base():
    # (-2) ** b: the base gradient b a^(b-1) exists, the exponent gradient
    # a^b ln a does not (ln of a negative number): nan, as in PyTorch.
    f = lambda a, b: a ** b
    assert_grads_match_fd(f, [-2.0, 3.0], which=[0])
    _, (ga, gb) = engine_grads(f, [-2.0, 3.0])
    assert ga == 3.0 * 4.0
    assert math.isnan(gb)


def test_pow_value_exponent_zero_base():
    # 0 ** b for b >= 0: exponent gradient 0 (PyTorch's convention), base
    # gradient b 0^(b-1)
    a, b = Value(0.0), Value(2.0)
    out = a ** b
    out.backward()
    assert out.data == 0.0
    assert (a.grad, b.grad) == (0.0, 0.0)
    a, b = Value(0.0), Value(0.0)
    out = a ** b
    out.backward()
    assert out.data == 1.0
    assert (a.grad, b.grad) == (0.0, 0.0)


def test_reflected_forms_values():
    x = Value(4.0)
    assert (2 - x).data == -2.0
    assert (2 / x).data == 0.5
    assert (2 ** x).data == 16.0
    assert (3 * x).data == 12.0
    assert (1 + x).data == 5.0
    assert (x - 2).data == 2.0
    assert (x / 2).data == 2.0
    assert (x ** 2).data == 16.0


@pytest.mark.parametrize("name,f,x,expected", [
    ("relu", relu, 0.0, 0.0),          # relu'(0) = 0 (PyTorch)
    ("relu", relu, -0.0, 0.0),
    ("abs", fabs, 0.0, 0.0),           # abs'(0) = 0 (sign(0))
    ("abs", fabs, -0.0, 0.0),
    ("pow_float_2.5", lambda x: x ** 2.5, 0.0, 0.0),   # 2.5 * 0 ** 1.5
    ("pow_0", lambda x: x ** 0, 0.0, 0.0),             # d x^0 / dx = 0, even at 0
    ("rpow", lambda x: 2 ** x, 0.0, math.log(2.0)),
    ("sigmoid", sigmoid, 0.0, 0.25),
    ("tanh", tanh, 0.0, 1.0),
    ("exp", exp, 0.0, 1.0),
])
def test_gradient_at_zero(name, f, x, expected):
    _, (g,) = engine_grads(f, [x])
    assert g == pytest.approx(expected, rel=1e-15, abs=0.0)


def test_relu_and_abs_one_sided_values():
    # away from the kink the derivative is exactly 0 or +-1
    for x, r, a in [(-2.0, 0.0, -1.0), (3.0, 1.0, 1.0), (1e-300, 1.0, 1.0), (-1e-300, 0.0, -1.0)]:
        assert engine_grads(relu, [x])[1] == [r]
        assert engine_grads(fabs, [x])[1] == [a]


# ---------------------------------------------------------------------------
# edge semantics (IEEE 754 / PyTorch float64): no exception, forward or backward

def _run(f, *xs):
    vs = [Value(x) for x in xs]
    out = f(*vs)
    out.backward()           # must not raise
    return out.data, [v.grad for v in vs]


def test_log_of_zero():
    y, (g,) = _run(log, 0.0)
    assert y == -inf
    assert g == inf                     # 1 / 0
    y, (g,) = _run(log, -0.0)
    assert y == -inf and g == -inf      # 1 / -0
    y, (g,) = _run(log, -1.0)
    assert math.isnan(y) and g == -1.0


def test_division_by_zero():
    y, (ga, gb) = _run(lambda a, b: a / b, 1.0, 0.0)
    assert y == inf
    assert ga == inf                    # 1 / 0
    assert gb == -inf                   # -(1/0)/0
    y, (ga, gb) = _run(lambda a, b: a / b, -1.0, 0.0)
    assert y == -inf
    assert ga == inf and gb == inf
    y, (ga, gb) = _run(lambda a, b: a / b, 0.0, 0.0)
    assert math.isnan(y) and ga == inf and math.isnan(gb)
    assert (Value(1) / 0).data == inf
    assert (Value(-1) / 0).data == -inf
    assert math.isnan((Value(0) / 0).data)
    assert (Value(1.0) / -0.0).data == -inf


def test_pow_edge_values():
    y, (g,) = _run(lambda x: x ** 0.5, -8.0)
    assert math.isnan(y) and math.isnan(g)
    assert math.isnan((Value(-8.0) ** 0.5).data)
    y, (g,) = _run(lambda x: x ** -1, 0.0)
    assert y == inf
    assert g == -inf                    # -1 * 0 ** -2
    assert (Value(0.0) ** -1).data == inf
    assert (Value(-0.0) ** -1).data == -inf     # odd integer power keeps the sign
    assert (Value(-0.0) ** -2).data == inf
    assert (Value(10.0) ** 400).data == inf     # overflow, no OverflowError
    assert (Value(-10.0) ** 401).data == -inf
    y, (ga, gb) = _run(lambda a, b: a ** b, 0.0, -1.0)
    assert y == inf and ga == -inf and gb == -inf    # inf * ln 0
    y, (ga, gb) = _run(lambda a, b: a ** b, -8.0, 0.5)
    assert math.isnan(y) and math.isnan(ga) and math.isnan(gb)


def test_exp_overflow_and_underflow():
    y, (g,) = _run(exp, 1000.0)
    assert y == inf and g == inf
    assert (Value(1000).exp()).data == inf
    y, (g,) = _run(exp, -1000.0)
    assert y == 0.0 and g == 0.0
    y, (g,) = _run(sigmoid, -1000.0)
    assert y == 0.0 and g == 0.0
    y, (g,) = _run(sigmoid, 1000.0)
    assert y == 1.0 and g == 0.0


def test_nan_and_inf_data_accepted_and_propagate():
    assert math.isnan(Value(nan).data)
    assert Value(inf).data == inf
    assert Value(-inf).data == -inf
    ops = [lambda x: x + 1, lambda x: x - 1, lambda x: x * 2, lambda x: x / 2, lambda x: -x,
           lambda x: x ** 2, exp, log, tanh, sigmoid, relu, fabs, lambda x: 2 ** x]
    for f in ops:
        y, (g,) = _run(f, nan)
        assert math.isnan(y)
    for f in [lambda x: x + 1, lambda x: x * 2, exp, log, lambda x: x ** 3, relu, fabs]:
        y, _ = _run(f, inf)
        assert y == inf
    y, (g,) = _run(tanh, inf)
    assert y == 1.0 and g == 0.0
    y, (g,) = _run(tanh, -inf)
    assert y == -1.0 and g == 0.0
    y, (g,) = _run(exp, -inf)
    assert y == 0.0 and g == 0.0
    y, (g,) = _run(relu, -inf)
    assert y == 0.0 and g == 0.0
    y, (ga, gb) = _run(lambda a, b: a * b, inf, 0.0)
    assert math.isnan(y) and ga == 0.0 and gb == inf
    y, (ga, gb) = _run(lambda a, b: a - b, inf, inf)
    assert math.isnan(y) and ga == 1.0 and gb == -1.0
    # a nan upstream gradient reaches the leaves
    a = Value(2.0)
    out = (a * Value(nan)).tanh() + a
    out.backward()
    assert math.isnan(a.grad)


def test_relu_nan_passes_gradient():
    # relu(nan) = nan, and the gradient is passed through (nan <= 0 is false)
    y, (g,) = _run(relu, nan)
    assert math.isnan(y) and g == 1.0


# ---------------------------------------------------------------------------
# graph shapes: reused nodes, diamonds

def test_reused_node_sum_then_square():
    for x in [3.0, -1.25, 0.0, 1e5]:
        a = Value(x)
        b = a + a
        c = b * b
        c.backward()
        assert c.data == 4.0 * x * x
        assert a.grad == 8.0 * x
        assert b.grad == 2.0 * b.data
        assert c.grad == 1.0


def test_square_by_self_multiplication():
    for x in [3.0, -0.5, 0.0]:
        a = Value(x)
        y = a * a
        y.backward()
        assert a.grad == 2.0 * x


def test_diamond_graph():
    x = 0.7
    a = Value(x)
    b = a.tanh()
    c = a.exp()
    d = b * c
    d.backward()
    t, e = math.tanh(x), math.exp(x)
    assert d.data == pytest.approx(t * e, rel=1e-15)
    assert b.grad == c.data and c.grad == b.data
    assert a.grad == pytest.approx((1 - t * t) * e + t * e, rel=1e-14)
    assert a.grad == pytest.approx(central_diff(lambda z: math.tanh(z) * math.exp(z), [x], 0),
                                   rel=1e-7)


def test_deep_diamond_lattice():
    # x_{k+1} = x_k * x_k + x_k * 0.5 shares each node twice; compare with
    # finite differences of the same recurrence on floats
    def f(x):
        for _ in range(6):
            x = x * x + x * 0.5 - 0.3
        return x
    for x in [0.1, -0.4, 0.6]:
        assert_grads_match_fd(f, [x])


def test_graph_with_many_paths_to_one_leaf():
    # sum_{k=1..n} k * x  ->  d/dx = n (n + 1) / 2
    n = 200
    x = Value(1.5)
    out = Value(0.0)
    for k in range(1, n + 1):
        out = out + k * x
    out.backward()
    assert x.grad == n * (n + 1) / 2


def test_leaf_backward_on_itself():
    x = Value(3.0)
    x.backward()
    assert x.grad == 1.0


# ---------------------------------------------------------------------------
# accumulation

def test_backward_accumulates():
    a, b = Value(1.5), Value(-2.0)
    c = a * b
    d = c.tanh() + a.exp()
    nodes = all_nodes(d)
    d.backward()
    first = {id(v): v.grad for v in nodes}
    assert d.grad == 1.0
    d.backward()
    assert d.grad == 2.0
    for v in nodes:
        assert v.grad == 2.0 * first[id(v)]
    # independent check of the first pass
    t = math.tanh(1.5 * -2.0)
    assert first[id(a)] == pytest.approx((1 - t * t) * -2.0 + math.exp(1.5), rel=1e-14)
    assert first[id(b)] == pytest.approx((1 - t * t) * 1.5, rel=1e-14)


def test_backward_adds_to_existing_grad():
    a = Value(2.0)
    a.grad = 10.0
    (a * 3).backward()
    assert a.grad == 13.0


# ---------------------------------------------------------------------------
# deep graphs and memory

def test_million_node_chain_no_recursion_error():
    n = 10 ** 6
    x0, y = Value(1.0), Value(1.0000001)
    x = x0
    for _ in range(n):
        x = x * y
    x.backward()
    assert x.grad == 1.0
    # x = x0 * y^n: dx/dx0 = y^n, dx/dy = n x0 y^(n-1)
    assert x.data == pytest.approx(1.0000001 ** n, rel=1e-9)
    assert x0.grad == pytest.approx(1.0000001 ** n, rel=1e-9)
    assert y.grad == pytest.approx(n * 1.0000001 ** (n - 1), rel=1e-9)
    del x                    # freeing a million-deep chain must not crash either


def test_long_addition_chain():
    n = 10 ** 5
    x0 = Value(0.0)
    x = x0
    for _ in range(n):
        x = x + 0.5
    x.backward()
    assert x.data == 0.5 * n
    assert x0.grad == 1.0


class _WeakLeaf(Value):
    """A leaf that can be weakly referenced (Value itself has no __weakref__)."""
    __slots__ = ("__weakref__",)


def _live_values():
    # type(o), not isinstance: some objects (torch's) warn when asked __class__
    return sum(1 for o in gc.get_objects() if issubclass(type(o), Value))


def test_no_reference_cycles():
    import weakref
    was_enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        gc.collect()
        before = _live_values()
        leaf = _WeakLeaf(0.3)
        other = Value(0.2)
        base_refs = sys.getrefcount(other)
        wr = weakref.ref(leaf)
        x = leaf
        for i in range(100_000):
            x = (x * other).tanh() if i % 2 else x + leaf
        x.backward()
        assert math.isfinite(leaf.grad)
        assert sys.getrefcount(other) > base_refs
        del x, leaf
        # freed by reference counting alone, before any collection
        assert wr() is None
        assert sys.getrefcount(other) == base_refs
        # only `other` is left (the collector lists it only where Values are
        # tracked: without microbp._pyread; test_pyread checks the memory)
        assert _live_values() == before + gc.is_tracked(other)
        assert gc.collect() == 0
        assert gc.garbage == []
    finally:
        if was_enabled:
            gc.enable()


# ---------------------------------------------------------------------------
# errors

@pytest.mark.parametrize("make,typename", [
    (lambda: Value("3"), "str"),
    (lambda: Value(None), "NoneType"),
    (lambda: Value(1j), "complex"),
    (lambda: Value([1.0]), "list"),
    (lambda: Value(1) + "x", "str"),
    (lambda: "x" + Value(1), "str"),
    (lambda: "x" * Value(1), "str"),
    (lambda: Value(1) * None, "NoneType"),
    (lambda: Value(1) - "x", "str"),
    (lambda: Value(1) / "x", "str"),
    (lambda: Value(1) ** "2", "str"),
    (lambda: "2" ** Value(1), "str"),
    (lambda: Value(1) + 1j, "complex"),
    (lambda: Value(1, label=3), "int"),
    (lambda: Value(1, label=None), "NoneType"),
])
def test_bad_operand_raises_type_error_naming_type(make, typename):
    with pytest.raises(TypeError) as info:
        make()
    assert typename in str(info.value)


def test_bool_is_refused_by_the_one_rule_for_numbers():
    # bool in a list of numbers is a slip: refused everywhere (checks.as_float)
    for make in (lambda: Value(True), lambda: Value(2.0) + True, lambda: Value(2.0) * False):
        with pytest.raises(TypeError, match="bool"):
            make()


def test_int_data_becomes_float():
    v = Value(3)
    assert type(v.data) is float and v.data == 3.0
    assert type((v + 1).data) is float


# ---------------------------------------------------------------------------
# repr

def test_repr_short_with_data_grad_label():
    x = Value(2.5, label="weight")
    r = repr(x)
    assert "2.5" in r and "grad" in r and "weight" in r
    y = x * 3
    y.backward()
    r = repr(x)
    assert "3.0" in r            # the gradient
    assert len(r) < 80
    assert "label" not in repr(Value(1.0))
    # a node deep in a graph prints just itself
    z = x
    for _ in range(1000):
        z = z + 1
    assert len(repr(z)) < 80
    assert repr(z.data) in repr(z)


# ---------------------------------------------------------------------------
# the two backends give bit-identical gradients

def _random_graph(rng):
    specials = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, -3.5, 1e-300, 1e300, 700.0, -800.0, inf, -inf, nan]
    pool = [Value(rng.choice(specials) if rng.random() < 0.3 else rng.uniform(-3, 3))
            for _ in range(4)]
    leaves = list(pool)
    unary = [lambda v: -v, lambda v: v.exp(), lambda v: v.log(), lambda v: v.tanh(),
             lambda v: v.sigmoid(), lambda v: v.relu(), lambda v: v.abs(),
             lambda v: v ** 2, lambda v: v ** 0.5, lambda v: v ** -1, lambda v: v ** 0,
             lambda v: 2 ** v, lambda v: 1.5 - v, lambda v: 3 / v]
    binary = [lambda a, b: a + b, lambda a, b: a - b, lambda a, b: a * b,
              lambda a, b: a / b, lambda a, b: a ** b]
    for _ in range(rng.randint(5, 40)):
        if rng.random() < 0.5:
            pool.append(rng.choice(unary)(rng.choice(pool)))
        else:
            pool.append(rng.choice(binary)(rng.choice(pool), rng.choice(pool)))
    root = pool[-1]
    for v in pool[-4:-1]:
        root = root + v
    return root, leaves


def _grads_under(backend, root):
    nodes = all_nodes(root)
    for v in nodes:
        v.grad = 0.0
    with microbp.use_backend(backend):
        root.backward()
    return [v.grad for v in nodes]


def test_backends_bit_identical_gradients(both_backends):
    rng = random.Random(20240601)
    checked = 0
    for _ in range(300):
        root, _ = _random_graph(rng)
        gp = _grads_under("python", root)
        gc_ = _grads_under("c", root)
        assert len(gp) == len(gc_)
        for k, (p, c) in enumerate(zip(gp, gc_)):
            assert same_double(p, c), f"node {k}: python {p!r} != c {c!r}"
            checked += 1
    assert checked > 1000


def test_backends_bit_identical_on_reused_nodes(both_backends):
    def build():
        a = Value(0.37)
        b = a + a
        c = b * b * a
        d = (c / a).tanh() * c.sigmoid() + a ** a
        return d, a
    results = []
    for be in both_backends:
        with microbp.use_backend(be):
            d, a = build()
            d.backward()
            d.backward()
            results.append((a.grad, d.grad))
    assert same_double(results[0][0], results[1][0])
    assert results[0][1] == results[1][1] == 2.0


# ---------------------------------------------------------------------------
# backend choice API

def test_available_backends():
    av = microbp.available_backends()
    assert "python" in av
    assert set(av) <= {"c", "python"}
    assert microbp.get_backend() in av


def test_set_and_get_backend():
    microbp.set_backend("python")
    assert microbp.get_backend() == "python"
    assert microbp.backend.executor() is microbp.pyexec
    microbp.set_backend("auto")
    assert microbp.get_backend() == ("c" if "c" in microbp.available_backends() else "python")
    if "c" in microbp.available_backends():
        microbp.set_backend("c")
        assert microbp.get_backend() == "c"
        assert microbp.backend.executor() is microbp.cexec


@pytest.mark.parametrize("bad", ["gpu", "", "pyton", "cuda"])
def test_unknown_backend_name(bad):
    before = microbp.get_backend()
    for call in (microbp.set_backend, lambda n: microbp.use_backend(n).__enter__()):
        with pytest.raises(ValueError) as info:
            call(bad)
        msg = str(info.value)
        for choice in ("auto", "c", "python"):      # every valid choice is listed
            assert re.search(rf"\b{choice}\b", msg.replace(repr(bad), "")), msg
        assert microbp.get_backend() == before


@pytest.mark.parametrize("bad", [None, 1, b"python", ["c"]])
def test_non_str_backend_name(bad):
    before = microbp.get_backend()
    with pytest.raises(TypeError):
        microbp.set_backend(bad)
    with pytest.raises(TypeError):
        with microbp.use_backend(bad):
            pass
    assert microbp.get_backend() == before


def test_use_backend_restores_on_exit_and_exception():
    start = microbp.get_backend()
    for name in microbp.available_backends():
        with microbp.use_backend(name) as resolved:
            assert resolved == name
            assert microbp.get_backend() == name
        assert microbp.get_backend() == start
        with pytest.raises(RuntimeError):
            with microbp.use_backend(name):
                raise RuntimeError("boom")
        assert microbp.get_backend() == start


def test_use_backend_nests(both_backends):
    microbp.set_backend("c")
    with microbp.use_backend("python"):
        with microbp.use_backend("c"):
            assert microbp.get_backend() == "c"
        assert microbp.get_backend() == "python"
    assert microbp.get_backend() == "c"


def test_use_backend_is_thread_local(both_backends):
    microbp.set_backend("c")
    entered, release = threading.Event(), threading.Event()
    seen = {}

    def worker():
        with microbp.use_backend("python"):
            seen["inside"] = microbp.get_backend()
            entered.set()
            release.wait(10)
            seen["after_set"] = microbp.get_backend()
        seen["outside"] = microbp.get_backend()

    t = threading.Thread(target=worker)
    t.start()
    try:
        assert entered.wait(10)
        assert microbp.get_backend() == "c"          # this thread is unaffected
        microbp.set_backend("c")                     # the process-wide default
    finally:
        release.set()
        t.join(10)
    assert seen == {"inside": "python", "after_set": "python", "outside": "c"}
    assert microbp.get_backend() == "c"


def test_other_thread_sees_process_default(both_backends):
    microbp.set_backend("python")
    seen = []
    with microbp.use_backend("c"):
        t = threading.Thread(target=lambda: seen.append(microbp.get_backend()))
        t.start()
        t.join(10)
    assert seen == ["python"]

"""microbp.gradcheck: passes right gradients, catches wrong ones, leaves no trace."""
import math
import re

import pytest

import microbp
from microbp import Value
from microbp import graph, ops, pyexec
from microbp.gradcheck import gradcheck, GradcheckError
from microbp.optim import SGD


def test_passes_on_correct_functions():
    a, b = Value(0.3, label="a"), Value(-1.2, label="b")
    assert gradcheck(lambda x, y: (x * y).tanh(), [a, b]) is True
    assert gradcheck(lambda x, y: (x * x + y.exp()).log() / (y - 3.0), [a, b])
    assert gradcheck(lambda x, y: x ** y.abs() + (-x).sigmoid(), [Value(1.7), b])
    assert gradcheck(lambda x: 1.0 / x, [Value(0.01)], atol=1e-4)    # steep, still fine
    assert gradcheck(lambda x, y: x.relu() * y, [a, b])               # away from the kink


def test_unused_value_has_zero_gradient():
    a, b = Value(2.0), Value(5.0)
    b.grad = 4.0
    assert gradcheck(lambda x, y: x * 3.0, [a, b])
    assert (b.data, b.grad) == (5.0, 4.0)


def test_repeated_and_shared_values():
    a = Value(0.7)
    assert gradcheck(lambda x, y: x * y + x, [a, a])
    assert gradcheck(lambda x: x * x * x, [a])


def test_detects_a_forward_that_disagrees_with_its_graph():
    # y is recorded as x * 2 (backward says dy/dx = 2) but holds x**3:
    # the numeric derivative is 3 x^2 = 12 at x = 2
    x = Value(2.0, label="x")

    def f(v):
        y = v * 2.0
        y.data = v.data ** 3
        return y

    with pytest.raises(GradcheckError) as e:
        gradcheck(f, [x])
    m = re.search(r"values\[0\] \('x'\): analytic (\S+), numeric (\S+), difference (\S+)$",
                  str(e.value))
    assert m, str(e.value)
    ana, num, diff = map(float, m.groups())
    assert ana == 2.0
    assert num == pytest.approx(12.0, rel=1e-8)
    assert diff == abs(num - ana)
    assert isinstance(e.value, AssertionError)


def test_detects_a_kink():
    # relu'(0) = 0 by convention, the central difference sees 1/2
    x = Value(0.0, label="k")
    with pytest.raises(GradcheckError, match=r"values\[0\] \('k'\): analytic 0\.0, numeric 0\.5"):
        gradcheck(lambda v: v.relu(), [x])


def test_names_only_the_values_that_failed():
    a, b, c = Value(1.0, label="a"), Value(0.0, label="b"), Value(-2.0)

    def f(x, y, z):
        return x * z + y.relu()

    with pytest.raises(GradcheckError) as e:
        gradcheck(f, [a, b, c])
    msg = str(e.value)
    assert "1 of 3" in msg and "values[1] ('b')" in msg
    assert "values[0]" not in msg and "values[2]" not in msg


def test_detects_a_wrong_derivative_in_the_engine(monkeypatch):
    # a bug in the op table's tanh derivative, (1 - t) instead of (1 - t^2),
    # as seen by the Python executor and by the Python backend's sweep over Values
    table = list(pyexec._B)
    table[ops.TANH] = lambda g, a, b, out: (g * (1.0 - out), 0.0)
    monkeypatch.setattr(pyexec, "_B", tuple(table))
    rows = [op._replace(d_a="1.0 - out") if op.code == ops.TANH else op for op in ops.ELEMENTARY]
    monkeypatch.setattr(graph, "_sweep", graph._make_sweep(rows))
    x = Value(0.8, label="x")
    f = lambda v: (v * 1.5).tanh()
    with microbp.use_backend("python"):
        with pytest.raises(GradcheckError, match=r"values\[0\] \('x'\)"):
            gradcheck(f, [x])
    monkeypatch.undo()
    with microbp.use_backend("python"):
        assert gradcheck(f, [x])


def test_tolerances():
    # a gradient off by a relative 1e-3 passes a loose check only
    x = Value(1.0)

    def f(v):
        y = v * 1.0
        y.data = v.data * 1.001
        return y

    with pytest.raises(GradcheckError):
        gradcheck(f, [x])
    assert gradcheck(f, [x], rtol=1e-2)
    assert gradcheck(f, [x], atol=1e-2, rtol=0.0)


def test_nan_gradient_fails():
    with pytest.raises(GradcheckError, match="nan"):
        gradcheck(lambda v: v.log(), [Value(-1.0)])


# -- no trace -----------------------------------------------------------------

def _state(values):
    return [(v.data, v.grad) for v in values]


def test_restores_data_and_grads():
    a, b = Value(0.3), Value(-1.2)
    a.grad, b.grad = 5.0, -7.25                 # accumulated from earlier work
    before = _state([a, b])
    gradcheck(lambda x, y: (x * y).tanh(), [a, b])
    assert _state([a, b]) == before


def test_restores_when_raising():
    a, b = Value(0.0), Value(3.0)
    a.grad, b.grad = 1.5, 2.5
    before = _state([a, b])
    with pytest.raises(GradcheckError):
        gradcheck(lambda x, y: x.relu() * y, [a, b])
    assert _state([a, b]) == before

    calls = []

    def boom(x, y):
        calls.append(x.data)
        if len(calls) == 3:                     # during the numeric pass
            raise RuntimeError("boom")
        return x * y

    with pytest.raises(RuntimeError, match="boom"):
        gradcheck(boom, [a, b])
    assert calls[2] != a.data                   # it failed while a was perturbed
    assert _state([a, b]) == before


def test_leaves_grads_of_unchecked_parameters_alone():
    w, x = Value(0.5), Value(2.0)
    w.grad = 0.125
    assert gradcheck(lambda v: (w * v).tanh(), [x])
    assert w.grad == 0.125


def test_works_on_bound_parameters():
    # parameters taken over by an optimizer keep data and grad in a store
    w = [Value(0.4), Value(-0.6)]
    SGD(w, lr=0.1)
    w[0].grad = 3.0
    before = _state(w)
    assert gradcheck(lambda p, q: (p * q).sigmoid(), w)
    assert _state(w) == before


def test_analytic_gradients_are_from_one_clean_backward():
    # pre-existing grads do not leak into the analytic gradient
    x = Value(1.5)
    x.grad = 100.0
    assert gradcheck(lambda v: v * v, [x])


# -- argument checks ------------------------------------------------------------

def test_argument_checks():
    f = lambda v: v * 2.0
    with pytest.raises(TypeError, match="values"):
        gradcheck(f, Value(1.0))
    with pytest.raises(TypeError, match=r"values\[1\]"):
        gradcheck(f, [Value(1.0), 2.0])
    with pytest.raises(ValueError, match="empty"):
        gradcheck(f, [])
    with pytest.raises(ValueError, match="eps"):
        gradcheck(f, [Value(1.0)], eps=0.0)
    with pytest.raises(ValueError, match="eps"):
        gradcheck(f, [Value(1.0)], eps=-1e-6)
    with pytest.raises(TypeError, match="eps"):
        gradcheck(f, [Value(1.0)], eps="small")
    with pytest.raises(ValueError, match="atol"):
        gradcheck(f, [Value(1.0)], atol=-1.0)
    with pytest.raises(ValueError, match="rtol"):
        gradcheck(f, [Value(1.0)], rtol=math.inf)
    with pytest.raises(TypeError, match="callable"):
        gradcheck(3, [Value(1.0)])
    with pytest.raises(TypeError, match="float"):
        gradcheck(lambda v: 2.0, [Value(1.0)])
    with pytest.raises(ValueError, match="eps"):
        gradcheck(f, [Value(1e30)])             # x + eps == x - eps

"""One rule for numbers at every entry point (checks.as_float), settings
checked when assigned, and no silent wrong results from pickles or from
assignments to .data."""
import copy
import decimal
import fractions
import pickle
import subprocess
import sys

import pytest

import microbp
from microbp import Value, Parameter, Tape, Batch, nn, losses, optim

try:
    import numpy as np
except ImportError:          # numpy is optional
    np = None

GOOD = [3, 2.5, fractions.Fraction(1, 4)] + ([np.float64(0.5), np.float32(0.25), np.int64(7)]
                                             if np else [])
BAD_TYPE = [True, False, 1j, decimal.Decimal("1.5"), "1.0", None, [1.0]] + (
    [np.array(2.0), np.array([1.0])] if np else [])
HUGE = 10 ** 400


def _value(x):
    return Value(x).data


def _assign(x):
    v = Value(0.0)
    v.data = x
    return v.data


def _param(x):
    p = nn.MLP(1, [1], seed=0).parameters()[0]
    p.data = x
    return p.data


def _new_param(x):
    return Parameter(x).data


def _model_input(x):
    return nn.MLP(1, [1], seed=0)([x]).data


def _loss_target(x):
    return losses.mse([Value(0.0)], [x]).data


def _batch(x):
    return Batch([[x, 1.0]]).rows[0]


def _operand(x):
    return (Value(1.0) * x).data


ENTRIES = [_value, _assign, _param, _new_param, _model_input, _loss_target, _batch, _operand]


@pytest.mark.parametrize("entry", ENTRIES, ids=lambda f: f.__name__)
def test_one_rule_for_numbers(entry):
    for x in GOOD:
        out = entry(x)
        assert type(out) is float
    for x in BAD_TYPE:
        with pytest.raises(TypeError):
            entry(x)
    with pytest.raises((ValueError, OverflowError)) as info:
        entry(HUGE)
    assert info.type is ValueError, "an int too large for a float is a ValueError"


def test_data_is_always_a_python_float():
    v = Value(1.0)
    if np is not None:
        v.data = np.float32(0.1)
        assert type(v.data) is float and v.data == float(np.float32(0.1))
        w = (v + v)
        assert type(w.data) is float
    with pytest.raises(TypeError):
        v.data = "ab"
    assert type(v.data) is float


def test_optimizer_settings_are_checked_when_assigned():
    p = [Value(1.0)]
    for opt in (optim.SGD(p, lr=0.1), optim.Momentum(p), optim.Adam(p)):
        for bad in (float("inf"), -1.0, 0.0, "0.1", True):
            with pytest.raises((TypeError, ValueError)):
                opt.lr = bad
        assert opt.lr > 0
    adam = optim.Adam(p)
    with pytest.raises(ValueError):
        adam.betas = (0.9, 1.0)
    with pytest.raises(ValueError):
        adam.eps = float("nan")
    with pytest.raises(ValueError):
        optim.Momentum(p).mu = -0.5


def test_a_failed_tape_changes_nothing():
    w = Value(0.5)
    x = Value(0.0)
    before = (type(w), w.data, w.grad)
    with pytest.raises(TypeError):
        Tape(w * x, [x, "not a value"])
    assert (type(w), w.data, w.grad) == before


UNPICKLE = r"""
import pickle, sys
model = pickle.loads(sys.stdin.buffer.read())
from microbp import losses
loss = losses.mse([model([0.5, -1.0])], [1.0])
model.zero_grad()
loss.backward()
print(sum(abs(p.grad) for p in model.parameters()))
"""


def test_a_model_unpickled_in_a_fresh_process_trains():
    model = nn.MLP(2, [4, 1], seed=0)
    for _ in range(3):                              # create (and drop) many nodes first
        losses.mse([model([0.5, -1.0])], [1.0]).backward()
    blob = pickle.dumps(model)
    loss = losses.mse([model([0.5, -1.0])], [1.0])
    model.zero_grad()
    loss.backward()
    want = sum(abs(p.grad) for p in model.parameters())
    for backend_name in microbp.available_backends():
        env = {**__import__("os").environ, "MICROBP_BACKEND": backend_name}
        r = subprocess.run([sys.executable, "-c", UNPICKLE], input=blob, capture_output=True,
                           env=env, timeout=60)
        assert r.returncode == 0, r.stderr.decode()
        assert float(r.stdout) == want != 0.0


def test_copies_of_models_and_graphs_work():
    model = nn.MLP(2, [3, 1], seed=1)
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        out = clone([0.5, 0.25])
        assert out.data == model([0.5, 0.25]).data
        out.backward()
        assert any(p.grad != 0.0 for p in clone.parameters())
        assert all(p.grad == 0.0 for p in model.parameters())    # a copy, not a view
    p = model.parameters()[0]
    q = copy.copy(p)
    q.data = 42.0
    assert p.data != 42.0
    x = Value(2.0)
    y = (x * x).tanh()
    y2 = pickle.loads(pickle.dumps(y))
    y2.backward()
    assert y2.data == y.data and y2.inputs[0].inputs[0].grad != 0.0

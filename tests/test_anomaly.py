"""detect_anomaly: forward and backward, eager and tape, in the backend under test."""
import math

import pytest

from microbp import Value, Tape, detect_anomaly


def test_off_by_default_nan_and_inf_propagate():
    x = Value(0.0)
    y = x.log() * 2          # no error outside the block
    y.backward()
    assert y.data == -math.inf and math.isnan(x.grad) is False and x.grad == math.inf


def test_eager_forward_names_the_op():
    x = Value(0.0, label="x")
    with detect_anomaly():
        ok = (x + 1).log()                   # finite: fine
        with pytest.raises(FloatingPointError, match=r"log\(0\.0\).*-inf"):
            x.log()
        with pytest.raises(FloatingPointError, match=r"div.*inf"):
            Value(1.0) / x
    assert ok.data == 0.0


def test_blocks_nest_and_the_engine_hook_is_off_after_them():
    from microbp import engine, anomaly
    plain = engine._node
    with detect_anomaly():
        with detect_anomaly():
            assert anomaly.enabled() and anomaly.switch.active == 2
        assert anomaly.enabled() and anomaly.switch.active == 1
    assert not anomaly.enabled() and anomaly.switch.active == 0
    with pytest.raises(ZeroDivisionError):
        with detect_anomaly():
            raise ZeroDivisionError
    assert anomaly.switch.active == 0
    assert engine._node is plain          # no module's global is ever swapped
    assert (Value(1.0) / 0.0).data == float("inf")     # off again: no error


def test_eager_backward_names_the_first_bad_gradient_and_changes_no_grad():
    x = Value(0.0, label="x")
    w = Value(3.0, label="w")
    y = (x * w) ** 0.5                       # d/dx sqrt at 0 is inf
    w.grad = 7.0
    with detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"gradient of node \d+ \(mul\) became inf"):
            y.backward()
    assert w.grad == 7.0 and x.grad == 0.0   # nothing was accumulated


def test_constants_gradients_are_not_anomalies():
    x = Value(2.0)
    y = x.log() * 0.0 + x                     # the constant 0.0 gets gradient log(2): fine
    with detect_anomaly():
        y.backward()
    assert x.grad == 1.0 + 0.0 * 0.5


def _tape():
    x = Value(0.0, label="x")
    w = Value(2.0, label="w")
    return Tape((x * w).log() * w, [x]), w


def test_tape_forward_names_op_label_and_row():
    t, _ = _tape()
    assert t.forward([[1.0], [0.5]])          # fine outside and inside
    with detect_anomaly():
        t.forward([[1.0], [0.5]])
        with pytest.raises(FloatingPointError, match=r"value of node \d+ \(log, row 2\) became -inf"):
            t.forward([[1.0], [0.5], [0.0]])


def test_tape_backward_checks_gradients_before_changing_grad():
    x = Value(0.0, label="x")
    w = Value(2.0, label="w")
    t = Tape((x * w) ** 0.5, [x])
    t.forward([[1.0], [0.0]])                 # sqrt(0) = 0: a finite value
    with detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"gradient of node \d+ \(mul, row 1\) became inf"):
            t.backward()
    assert w.grad == 0.0


def test_labels_are_named():
    a = Value(-1.0, label="a")
    b = a.log()
    b.label = "logged"
    t = Tape(b * 2 + a, [])
    with detect_anomaly():
        with pytest.raises(FloatingPointError, match=r"\(log labelled 'logged'\) became nan"):
            t.forward([[]])

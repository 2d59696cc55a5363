"""no_grad, detach, a Value as a number, tapes with several outputs, and
Tape.jvp (forward mode over the input slots, both backends bitwise)."""
import gc
import math
import struct
import sys
import threading

import pytest

import microbp
from microbp import Value, Tape, no_grad, nn

HAVE_C = "c" in microbp.available_backends()
BACKENDS = ["python", "c"] if HAVE_C else ["python"]


def bits(xs):
    return [struct.pack("<d", x) for x in xs]


# -- no_grad and detach ------------------------------------------------------------

def test_no_grad_records_no_inputs():
    w, x = Value(0.5), Value(2.0)
    with no_grad():
        y = (w * x + 1.0).tanh()
        assert y.inputs == () and y.op == "const"
    assert y.data == math.tanh(0.5 * 2.0 + 1.0)
    z = w * x                                   # after the block: a graph again
    assert z.inputs == (w, x)
    y.backward()                                # a leaf-like constant: nothing below it
    assert w.grad == 0.0


def test_no_grad_nests_and_is_per_thread():
    seen = []
    w = Value(2.0)

    def other():
        seen.append((w * w).inputs)             # another thread builds graphs meanwhile

    with no_grad():
        with no_grad():
            assert (w * w).inputs == ()
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert (w * w).inputs == ()
    assert seen == [(w, w)]
    assert (w * w).inputs == (w, w)


def test_no_grad_values_are_leaves_in_size_and_free_no_cycles():
    w = Value(0.5)
    gc.collect()
    gc.disable()
    try:
        with no_grad():
            y = w
            for _ in range(1000):
                y = y * 1.0001
        assert y.inputs == ()
        assert sys.getsizeof(y) == sys.getsizeof(Value(1.0))
        assert gc.collect() == 0                 # nothing cyclic to collect
    finally:
        gc.enable()


def test_no_grad_accuracy_of_a_model_matches_the_graph():
    model = nn.MLP(2, [4, 1], seed=0)
    x = [0.3, -0.8]
    with no_grad():
        fast = model(x)
    assert fast.data == model(x).data and fast.inputs == ()


def test_detach_is_a_leaf_with_the_same_data():
    x = Value(3.0, label="x")
    y = x * x
    d = y.detach()
    assert d.op == "leaf" and d.data == 9.0 and d.inputs == () and d is not y
    z = d * x                                   # gradient stops at d
    z.backward()
    assert x.grad == 9.0 and d.grad == 3.0


# -- a Value as a number -------------------------------------------------------------

def test_value_as_a_number():
    a, b = Value(1.5), Value(-2.0)
    assert float(a) == 1.5 and a.item() == 1.5 and type(a.item()) is float
    assert format(a, ".3f") == "1.500" and f"{b:+.1e}" == "-2.0e+00"
    assert (a > b) is True and (a <= 1.5) is True and (b >= 0) is False and (b < a) is True
    assert max([a, b]) is a and sorted([a, b]) == [b, a] and min(a, b) is b
    loss = Value(0.001)
    assert loss < 0.01                           # `if loss < 0.01:` works
    assert (a == Value(1.5)) is False and a == a   # == is identity: Values are nodes
    assert {a: 1, b: 2}[a] == 1
    with pytest.raises(TypeError):
        a < "1"


# -- tapes with several outputs ----------------------------------------------------------

def three_logits():
    model = nn.MLP(2, [3, 3], seed=1)
    x0, x1 = Value(0.0), Value(0.0)
    return model, [x0, x1], model([x0, x1])


ROWS = [[0.5, -1.0], [1.0, 0.25], [-0.3, 0.8]]


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_multi_output_forward_gives_a_list_per_row(backend_name):
    model, slots, logits = three_logits()
    with microbp.use_backend(backend_name):
        tape = Tape(logits, slots)
        out = tape.forward(ROWS)
    assert len(out) == 3 and all(len(r) == 3 for r in out)
    for row, got in zip(ROWS, out):
        want = [v.data for v in model(row)]
        assert got == want


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("weights", [None, [1.0, -2.0, 0.5]])
def test_multi_output_backward_weights(backend_name, weights):
    model, slots, logits = three_logits()
    w = weights or [1.0, 1.0, 1.0]
    params = model.parameters()
    with microbp.use_backend(backend_name):
        tape = Tape(logits, slots)
        tape.forward(ROWS)
        model.zero_grad()
        tape.backward(weights)
        got = [p.grad for p in params]
        model.zero_grad()
        for row in ROWS:                          # eager: the weighted sum of the outputs
            out = model(row)
            (out[0] * w[0] + out[1] * w[1] + out[2] * w[2]).backward()
        want = [p.grad for p in params]
    assert all(math.isclose(g, e, rel_tol=1e-12, abs_tol=1e-15) for g, e in zip(got, want))


def test_multi_output_bad_weights_and_outputs():
    model, slots, logits = three_logits()
    tape = Tape(logits, slots)
    tape.forward(ROWS)
    with pytest.raises(ValueError, match="3 numbers"):
        tape.backward([1.0, 2.0])
    with pytest.raises(TypeError):
        tape.backward([1.0, "2", 3.0])
    with pytest.raises(TypeError):
        Tape([logits[0], 3.0], slots)
    with pytest.raises(TypeError):
        Tape([], slots)
    one = Tape(logits[0], slots)
    one.forward(ROWS)
    with pytest.raises(TypeError, match="several outputs"):
        one.backward([1.0])


def test_one_output_tape_is_unchanged_and_a_list_of_one_gives_lists():
    model, slots, logits = three_logits()
    single = Tape(logits[0], slots).forward(ROWS)
    listed = Tape([logits[0]], slots).forward(ROWS)
    assert listed == [[x] for x in single]


# -- Tape.jvp -----------------------------------------------------------------------------

def test_tape_jvp_matches_finite_differences_and_is_bitwise_across_backends():
    w1, w2 = Value(0.7), Value(-0.4)
    x, y = Value(0.0), Value(0.0)
    f = ((w1 * x + w2 * y).tanh() * x + (x * y).exp()).sigmoid() + (y ** 3) / (x * x + 1.0)
    tape = Tape(f, [x, y])
    rows = [[0.3, -0.2], [1.1, 0.5], [-0.7, 2.0]]
    tans = [[1.0, 0.0], [0.0, 1.0], [0.5, -2.0]]
    res = {}
    for be in BACKENDS:
        with microbp.use_backend(be):
            res[be] = tape.jvp(rows, tans)
    for be in BACKENDS:
        assert bits(res[be][0]) == bits(res["python"][0])
        assert bits(res[be][1]) == bits(res["python"][1])
    h = 1e-6
    outs, ts = res["python"]
    for (x0, y0), (tx, ty), t in zip(rows, tans, ts):
        up = tape.forward([[x0 + h * tx, y0 + h * ty]])[0]
        down = tape.forward([[x0 - h * tx, y0 - h * ty]])[0]
        assert math.isclose(t, (up - down) / (2 * h), rel_tol=1e-6)


def test_tape_jvp_of_an_output_that_does_not_depend_on_the_slots_is_zero():
    w, x = Value(2.0), Value(0.0)
    tape = Tape([w * w, w * x], [x])
    outs, ts = tape.jvp([[1.0], [3.0]], [[1.0], [1.0]])
    assert outs == [[4.0, 2.0], [4.0, 6.0]] and ts == [[0.0, 2.0], [0.0, 2.0]]


def test_tape_jvp_bad_input():
    x = Value(0.0)
    tape = Tape(x * x, [x])
    with pytest.raises(ValueError, match="rows"):
        tape.jvp([[1.0], [2.0]], [[1.0]])
    with pytest.raises(ValueError):
        tape.jvp([[1.0]], [[1.0, 2.0]])
    with pytest.raises(TypeError):
        tape.jvp([[1.0]], [["a"]])

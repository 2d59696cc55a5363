"""microbp.datasets: the moons and sine data (their shape, their checks) and
batches(), which deals rows out as shuffled mini-batches."""
import math
import random

import pytest

from microbp import Batch, Tape, Value
from microbp.datasets import batches, make_moons, make_sine, MOONS_L2


def test_moons_shape_labels_and_determinism():
    X, y = make_moons(101, noise=0.0, seed=3)
    assert len(X) == len(y) == 101 and all(len(p) == 2 for p in X)
    assert sorted(set(y)) == [-1.0, 1.0] and y.count(-1.0) == 50
    # without noise every point lies on its half circle
    for (a, b), t in zip(X, y):
        cx, cy = (0.0, 0.0) if t < 0 else (1.0, 0.5)
        assert math.hypot(a - cx, b - cy) == pytest.approx(1.0, abs=1e-12)
    assert make_moons(50, seed=7) == make_moons(50, seed=7)
    assert make_moons(50, seed=7) != make_moons(50, seed=8)
    assert 0 < MOONS_L2 < 1e-2


@pytest.mark.parametrize("kwargs,error,words", [
    ({"noise": 1j}, TypeError, "noise must be an int or float, not complex"),
    ({"noise": "0.1"}, TypeError, "noise"),
    ({"noise": -0.1}, ValueError, "noise must be at least 0"),
    ({"noise": math.nan}, ValueError, "noise must be finite"),
    ({"n": 2 ** 1024}, ValueError, "n must be at most 10,000,000"),
    ({"n": 10 ** 8}, ValueError, "n must be at most 10,000,000"),
    ({"n": 1}, ValueError, "n must be at least 2"),
    ({"n": 10.0}, TypeError, "n must be an int"),
    ({"n": True}, TypeError, "n must be an int"),
    ({"seed": "s"}, TypeError, "seed must be None, an int or a random.Random"),
])
def test_moons_refuses_bad_arguments(kwargs, error, words):
    with pytest.raises(error, match=words):
        make_moons(**kwargs)


def test_sine_and_its_checks():
    xs, ys = make_sine(5, 0.0, math.pi)
    assert xs[0] == 0.0 and xs[-1] == math.pi and len(xs) == 5
    assert ys[2] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="lo must be below hi"):
        make_sine(5, 1.0, 1.0)
    with pytest.raises(TypeError, match="hi"):
        make_sine(5, 0.0, 1j)
    with pytest.raises(ValueError, match="at most"):
        make_sine(2 ** 100)


ROWS = [[float(i), float(-i), float(i % 3)] for i in range(23)]


def test_batches_cover_every_row_once_in_batches_of_size():
    out = list(batches(ROWS, 5, seed=1))
    assert all(isinstance(b, Batch) and b.width == 3 for b in out)
    assert [b.nrows for b in out] == [5, 5, 5, 5, 3]
    dealt = [row for b in out for row in b.to_list()]
    assert sorted(dealt) == sorted(ROWS)
    assert dealt != ROWS                              # shuffled


def test_batches_shuffle_follows_the_seed():
    order = [[r for b in batches(ROWS, 4, seed=s) for r in b.to_list()] for s in (2, 2, 3)]
    assert order[0] == order[1] != order[2]
    rng = random.Random(0)                            # one Random: a new order every epoch
    assert ([r for b in batches(ROWS, 4, seed=rng) for r in b.to_list()]
            != [r for b in batches(ROWS, 4, seed=rng) for r in b.to_list()])


def test_batches_without_shuffle_keep_the_order_and_one_big_batch():
    assert [r for b in batches(ROWS, 10, shuffle=False) for r in b.to_list()] == ROWS
    (whole,) = list(batches(ROWS, 100, shuffle=False))
    assert whole.to_list() == ROWS


def test_batches_of_a_batch_and_of_tuples():
    assert [b.nrows for b in batches(Batch(ROWS), 12, shuffle=False)] == [12, 11]
    assert list(batches([(1, 2), (3, 4)], 1, shuffle=False))[1].to_list() == [[3.0, 4.0]]


@pytest.mark.parametrize("args,error,words", [
    (([[1.0], [1.0, 2.0]], 1), ValueError, "row 1 has 2 entries"),
    (([[1.0], ["x"]], 1), TypeError, "row 1 entry 0"),
    (([], 1), ValueError, "empty"),
    (("abc", 1), TypeError, "rows must be a list"),
    ((ROWS, 0), ValueError, "size must be a positive int"),
    ((ROWS, 2.0), TypeError, "size must be an int"),
    ((ROWS, 2, "yes"), TypeError, "shuffle must be a bool"),
    ((ROWS, 2, True, 1.5), TypeError, "seed must be"),
])
def test_batches_check_everything_at_the_call(args, error, words):
    with pytest.raises(error, match=words):
        batches(*args)                                # not only when iterated


def test_mini_batch_gradients_add_up_to_the_full_batch_gradient():
    """Run a tape over the mini-batches of one epoch: the gradients they add up
    equal one full-batch backward's (up to rounding: another order of sums)."""
    w, c = Value(0.7), Value(-0.2)
    x, t = Value(0.0), Value(0.0)
    tape = Tape(((w * x + c).tanh() - t) ** 2, [x, t])
    data = [[0.1 * i, (-1.0) ** i] for i in range(17)]
    tape.forward(data)
    tape.backward()
    full = (w.grad, c.grad)
    w.grad = c.grad = 0.0
    for b in batches(data, 4, seed=0):
        tape.forward(b)
        tape.backward()
    assert w.grad == pytest.approx(full[0], rel=1e-13)
    assert c.grad == pytest.approx(full[1], rel=1e-13)


def test_numpy_arrays():
    np = pytest.importorskip("numpy")
    data = np.arange(12.0).reshape(6, 2)
    out = list(batches(data, 4, shuffle=False))
    assert [b.to_list() for b in out] == [data[:4].tolist(), data[4:].tolist()]
    assert [b.nrows for b in batches(list(data), 5)] == [5, 1]       # a list of 1-D rows
    with pytest.raises(ValueError, match="2-D"):
        batches(np.zeros(3), 1)
    X, y = make_moons(np.int64(10), noise=np.float64(0.1), seed=np.int64(1))
    assert (X, y) == make_moons(10, noise=0.1, seed=1)

"""microbp.losses: values against math, gradients, stability, argument checks."""
import math
import random

import pytest

from microbp import Value
from microbp import losses
from microbp.gradcheck import gradcheck


def vals(xs):
    return [Value(x) for x in xs]


def sigmoid(z):
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def softplus(z):
    return max(z, 0.0) + math.log1p(math.exp(-abs(z)))


# -- values -------------------------------------------------------------------

def test_mse_value():
    p, t = [0.5, -1.0, 2.0], [1.0, 0.0, 2.5]
    loss = losses.mse(vals(p), t)
    assert isinstance(loss, Value)
    assert loss.data == pytest.approx(sum((a - b) ** 2 for a, b in zip(p, t)) / 3, rel=1e-15)


def test_half_sse_value_and_gradient():
    p, t = [0.5, -1.0, 2.0], [1.0, 0.0, 2.5]
    pv = vals(p)
    loss = losses.half_sse(pv, t)
    assert loss.data == pytest.approx(0.5 * (0.25 + 1.0 + 0.25), rel=1e-15)
    loss.backward()
    assert [v.grad for v in pv] == [a - b for a, b in zip(p, t)]       # d/dp = p - t


def test_hinge_value():
    s, y = [2.0, 0.5, -0.3, -3.0], [1, 1, 1, -1]
    loss = losses.hinge(vals(s), y)
    # margins y*s = 2, 0.5, -0.3, 3 -> relu(1 - m) = 0, 0.5, 1.3, 0
    assert loss.data == pytest.approx((0.0 + 0.5 + 1.3 + 0.0) / 4, rel=1e-15)


def test_bce_with_logits_value():
    z, t = [0.0, 2.0, -3.0, 0.7, -0.1], [0.5, 1.0, 0.0, 0.2, 1.0]
    want = sum(softplus(zi) - zi * ti for zi, ti in zip(z, t)) / len(z)
    assert losses.bce_with_logits(vals(z), t).data == pytest.approx(want, rel=1e-14)
    # and as the textbook -[t log p + (1-t) log(1-p)] where that is well-conditioned
    ref = -sum(ti * math.log(sigmoid(zi)) + (1 - ti) * math.log(1 - sigmoid(zi))
               for zi, ti in zip(z, t)) / len(z)
    assert losses.bce_with_logits(vals(z), t).data == pytest.approx(ref, rel=1e-12)


def test_softmax_and_log_softmax_values():
    z = [1.0, -0.5, 2.5, 0.0]
    e = [math.exp(x) for x in z]
    sm = losses.softmax(vals(z))
    assert [v.data for v in sm] == pytest.approx([x / sum(e) for x in e], rel=1e-15)
    assert math.fsum(v.data for v in sm) == pytest.approx(1.0, abs=1e-15)
    lsm = losses.log_softmax(vals(z))
    assert [v.data for v in lsm] == pytest.approx([x - math.log(sum(e)) for x in z], rel=1e-15)


def test_softmax_sums_to_one_on_random_logits():
    rng = random.Random(0)
    for _ in range(20):
        z = [rng.uniform(-30, 30) for _ in range(rng.randint(1, 8))]
        assert math.fsum(v.data for v in losses.softmax(z)) == pytest.approx(1.0, abs=1e-14)


def test_cross_entropy_value():
    z = [0.2, -1.0, 3.0]
    lse = math.log(sum(math.exp(x) for x in z))
    for k in range(3):
        assert losses.cross_entropy(vals(z), k).data == pytest.approx(lse - z[k], rel=1e-15)


def test_numbers_only_still_give_values():
    for loss in (losses.mse([1.0, 2], [0, 0]), losses.half_sse([1], [3]),
                 losses.hinge([0.5], [-1]), losses.bce_with_logits([0], [1]),
                 losses.cross_entropy([0.0, 1.0], 1)):
        assert isinstance(loss, Value)
    assert losses.mse([1.0, 2], [0, 0]).data == 2.5
    assert all(isinstance(v, Value) for v in losses.softmax([1, 2]) + losses.log_softmax([3]))


def test_number_targets_are_constants_not_leaves():
    # a Tape must not mistake a target for a parameter
    loss = losses.mse([Value(1.0)], [2.0])
    stack, ops = [loss], []
    while stack:
        v = stack.pop()
        ops.append(v.op)
        stack.extend(v.inputs)
    assert ops.count("leaf") == 1 and "const" in ops


# -- gradients ----------------------------------------------------------------

POINTS = [[0.3, -1.2, 2.0], [-0.7, 0.05, 1.5], [4.0, -3.0, 0.9]]


@pytest.mark.parametrize("x", POINTS)
def test_gradcheck_regression_losses(x):
    t = [0.5, -1.0, 1.25]
    assert gradcheck(lambda *p: losses.mse(list(p), t), vals(x))
    assert gradcheck(lambda *p: losses.half_sse(list(p), t), vals(x))
    # gradients with respect to Value targets too
    assert gradcheck(lambda *q: losses.mse(q[:3], q[3:]), vals(x + t))


@pytest.mark.parametrize("x", POINTS)
def test_gradcheck_hinge(x):
    y = [1, -1, -1]
    assert gradcheck(lambda *s: losses.hinge(list(s), y), vals(x))


@pytest.mark.parametrize("x", POINTS + [[0.0, 1e-3, -25.0], [40.0, -40.0, 0.0]])
def test_gradcheck_bce_with_logits(x):
    t = [1.0, 0.0, 0.3]
    assert gradcheck(lambda *z: losses.bce_with_logits(list(z), t), vals(x))


@pytest.mark.parametrize("x", POINTS + [[0.0, 0.0, 0.0], [50.0, -20.0, 49.5]])
def test_gradcheck_softmax_family(x):
    for k in range(3):
        assert gradcheck(lambda *z: losses.cross_entropy(list(z), k), vals(x))
        assert gradcheck(lambda *z: losses.log_softmax(list(z))[k], vals(x))
        assert gradcheck(lambda *z: losses.softmax(list(z))[k], vals(x))


@pytest.mark.parametrize("z", [0.0, 1e-9, -1e-9, 0.8, -2.5, 15.0, -15.0])
@pytest.mark.parametrize("t", [0.0, 0.25, 1.0])
def test_bce_gradient_is_sigmoid_minus_target(z, t):
    zv = Value(z)
    losses.bce_with_logits([zv], [t]).backward()
    assert zv.grad == pytest.approx(sigmoid(z) - t, rel=1e-14, abs=1e-16)


@pytest.mark.parametrize("z", [1000.0, -1000.0])
@pytest.mark.parametrize("t", [0.0, 0.3, 1.0])
def test_bce_stable_for_huge_logits(z, t):
    zv = Value(z)
    loss = losses.bce_with_logits([zv], [t])
    assert math.isfinite(loss.data)
    assert loss.data == pytest.approx(softplus(z) - z * t, rel=1e-15, abs=1e-300)
    loss.backward()
    assert zv.grad == sigmoid(z) - t                 # exactly 1 - t or -t


def test_bce_mean_gradient():
    z = vals([1000.0, -1000.0, 0.0])
    losses.bce_with_logits(z, [0.0, 1.0, 0.5]).backward()
    assert [v.grad for v in z] == [1.0 / 3, -1.0 / 3, 0.0]


@pytest.mark.parametrize("z", [[0.2, -1.0, 3.0], [1000.0, 0.0, -1000.0], [5.0],
                               [-7.5, -7.5, 2.0, 11.0]])
def test_cross_entropy_gradient_is_softmax_minus_onehot(z):
    for k in range(len(z)):
        zv = vals(z)
        losses.cross_entropy(zv, k).backward()
        sm = [v.data for v in losses.softmax(z)]
        want = [s - (1.0 if j == k else 0.0) for j, s in enumerate(sm)]
        assert max(abs(v.grad - w) for v, w in zip(zv, want)) <= 1e-12


def test_hinge_gradient():
    s = vals([2.0, 0.5, -0.3, -3.0])
    losses.hinge(s, [1, 1, -1, -1]).backward()
    # active terms (margin < 1) get -y/n; the others 0
    assert [v.grad for v in s] == [0.0, -0.25, 0.25, 0.0]


# -- stability ----------------------------------------------------------------

def test_log_softmax_stable_for_huge_logits():
    out = losses.log_softmax(vals([1000.0, 0.0, -1000.0]))
    assert [v.data for v in out] == [0.0, -1000.0, -2000.0]
    sm = losses.softmax(vals([1000.0, 0.0, -1000.0]))
    assert [v.data for v in sm] == [1.0, 0.0, 0.0]
    ce = losses.cross_entropy(vals([1000.0, 0.0, -1000.0]), 2)
    assert ce.data == 2000.0


def test_softmax_is_shift_invariant():
    z = [0.3, -1.7, 2.2]
    a = [v.data for v in losses.softmax(z)]
    b = [v.data for v in losses.softmax([x + 500.0 for x in z])]
    assert b == pytest.approx(a, rel=1e-12)


# -- errors -------------------------------------------------------------------

@pytest.mark.parametrize("fn", [losses.mse, losses.half_sse, losses.hinge,
                                losses.bce_with_logits])
def test_pair_losses_check_lengths_and_types(fn):
    with pytest.raises(ValueError) as e:
        fn([Value(1.0), Value(1.0)], [1.0, 1.0, 1.0])
    assert "2" in str(e.value) and "3" in str(e.value)
    with pytest.raises(ValueError) as e:
        fn([], [])
    assert "0" in str(e.value)
    with pytest.raises(TypeError, match="Value"):
        fn(Value(1.0), [1.0])
    with pytest.raises(TypeError, match="float"):
        fn([1.0], 1.0)
    with pytest.raises(TypeError, match="str"):
        fn(["a"], [1.0])
    with pytest.raises(TypeError, match="bool"):
        fn([1.0], [True])


def test_hinge_labels_must_be_plus_or_minus_one():
    with pytest.raises(ValueError, match=r"labels\[2\] is 0\.0"):
        losses.hinge([1.0, 1.0, 1.0], [1, -1, 0])
    with pytest.raises(ValueError, match=r"labels\[0\] is 0\.5"):
        losses.hinge([1.0], [0.5])
    assert losses.hinge([1.0], [Value(-1.0)]).data == 2.0


def test_bce_targets_must_be_probabilities():
    with pytest.raises(ValueError, match=r"targets\[1\]"):
        losses.bce_with_logits([0.0, 0.0], [0.5, 1.5])
    with pytest.raises(ValueError, match=r"targets\[0\]"):
        losses.bce_with_logits([0.0], [-0.1])
    with pytest.raises(ValueError, match=r"targets\[0\]"):
        losses.bce_with_logits([0.0], [math.nan])


def test_softmax_family_checks():
    for fn in (losses.softmax, losses.log_softmax):
        with pytest.raises(ValueError, match="empty"):
            fn([])
        with pytest.raises(TypeError, match="Value"):
            fn(Value(1.0))
    with pytest.raises(ValueError, match="empty"):
        losses.cross_entropy([], 0)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        losses.cross_entropy([1.0, 2.0, 3.0], 3)
    with pytest.raises(ValueError, match=r"0\.\.2"):
        losses.cross_entropy([1.0, 2.0, 3.0], -1)
    with pytest.raises(TypeError, match="bool"):
        losses.cross_entropy([1.0, 2.0], True)
    with pytest.raises(TypeError, match="float"):
        losses.cross_entropy([1.0, 2.0], 1.0)

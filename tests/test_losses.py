"""microbp.losses: values against math, gradients, stability, argument checks."""
import math
import random
from decimal import Decimal, localcontext
from fractions import Fraction

import pytest

from microbp import Tape, Value, use_backend
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


# -- bce_with_logits: exact at every z, one graph for both signs ---------------

def _d_log1p(x):
    """log(1 + x) in the current decimal context (a series for small x)."""
    if x < Decimal("1e-5"):
        s, power, k = Decimal(0), x, 1
        while True:
            nxt = s + power / k if k % 2 else s - power / k
            if nxt == s:
                return s
            s, power, k = nxt, power * x, k + 1
    return (1 + x).ln()


def bce_truth(z, t):
    """(loss, d loss / dz) of one logit, exactly (60 digits), rounded to doubles."""
    with localcontext() as ctx:
        ctx.prec = 60
        Z, T = Decimal(z), Decimal(t)
        u = (-abs(Z)).exp()
        s = u / (1 + u)                              # sigmoid(-|z|)
        loss = max(Z, 0) * (1 - T) - min(Z, 0) * T + _d_log1p(u)
        grad = (1 - T) - s if Z >= 0 else s - T
        return float(loss), float(grad)


def bce_log1p(z, t):
    """The same loss in doubles with math.log1p."""
    return max(z, 0.0) * (1.0 - t) - min(z, 0.0) * t + math.log1p(math.exp(-abs(z)))


BCE_Z = [0.0, 1e-300, -1e-300, 1e-9, -1e-9, 0.5, -0.5, 1.0, -1.0, 15.0, -15.0, 30.0, -30.0,
         36.7, 37.0, -37.0, 40.0, -40.0, 100.0, -100.0, 700.0, -700.0, 745.0, -745.0,
         800.0, -800.0]
BCE_Z += [random.Random(12).uniform(-800.0, 800.0) for _ in range(60)]
BCE_Z += [random.Random(13).uniform(-50.0, 50.0) for _ in range(60)]
BCE_T = [0.0, 1.0, 0.25, 0.3, 0.7]


def rel_err(x, ref):
    return abs(x - ref) / abs(ref) if ref else abs(x)


@pytest.mark.parametrize("t", BCE_T)
def test_bce_with_logits_is_exact_at_every_z(t):
    # z = 30, t = 1 was 1e-3 off and z >= 37 gave 0 with log(1 + exp(-z))
    for z in BCE_Z:
        zv = Value(z)
        loss = losses.bce_with_logits([zv], [t])
        loss.backward()
        want, want_grad = bce_truth(z, t)
        assert rel_err(loss.data, want) <= 1e-15, (z, t, loss.data, want)
        assert rel_err(loss.data, bce_log1p(z, t)) <= 1e-15, (z, t)
        if t in (0.0, 1.0):
            assert rel_err(zv.grad, want_grad) <= 1e-15, (z, t, zv.grad, want_grad)
        else:       # sigmoid(z) - t cancels: a few ulps of 1 is what the inputs allow
            assert abs(zv.grad - want_grad) <= 1e-15, (z, t, zv.grad, want_grad)
    assert losses.bce_with_logits([40.0], [1.0]).data == pytest.approx(4.248354255291589e-18,
                                                                       rel=1e-15)


def test_bce_with_logits_gradient_wrt_a_value_target():
    for z in (-30.0, -0.5, 0.0, 2.0, 700.0):
        t = Value(0.25)
        losses.bce_with_logits([z], [t]).backward()
        assert t.grad == -z                          # d/dt (softplus(z) - z t) = -z, exactly


def _bce_runs(zs, t):
    """Per z: (loss bits, d loss/dw bits) eager, and the same from one Tape recorded
    at z = 2 and replayed over every z; z = w * x with the parameter w = 1."""
    eager = []
    for z in zs:
        w = Value(1.0)
        loss = losses.bce_with_logits([w * z], [t])
        loss.backward()
        eager.append((loss.data.hex(), w.grad.hex()))
    w, x = Value(1.0), Value(2.0)
    tape = Tape(losses.bce_with_logits([w * x], [t]), [x])
    replayed = []
    for z in zs:
        w.grad = 0.0
        out = tape.forward([[z]])
        tape.backward()
        replayed.append((out[0].hex(), w.grad.hex()))
    return eager, replayed


def test_bce_tape_recorded_at_one_sign_is_exact_at_the_other(backend):
    zs = [-800.0, -40.0, -30.0, -1.0, -1e-9, 0.0, 1e-9, 1.0, 30.0, 40.0, 800.0]
    for t in (0.0, 1.0, 0.3):
        eager, replayed = _bce_runs(zs, t)
        assert replayed == eager                     # bit for bit, in this backend
        for z, (loss, _) in zip(zs, eager):
            assert rel_err(float.fromhex(loss), bce_truth(z, t)[0]) <= 1e-15


def test_bce_backends_bitwise_equal(both_backends):
    zs = BCE_Z[:26]
    runs = {}
    for name in both_backends:
        with use_backend(name):
            runs[name] = [_bce_runs(zs, t) for t in BCE_T]
    assert runs["python"] == runs["c"]


def test_bce_with_logits_against_torch():
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    for t in BCE_T:
        for z in BCE_Z:
            zt = torch.tensor([z], dtype=torch.float64, requires_grad=True)
            ref = F.binary_cross_entropy_with_logits(zt, torch.tensor([t], dtype=torch.float64))
            ref.backward()
            ref_loss, ref_grad = ref.item(), zt.grad.item()
            zv = Value(z)
            loss = losses.bce_with_logits([zv], [t])
            loss.backward()
            want, want_grad = bce_truth(z, t)
            # as close to PyTorch as 1e-15, or closer than PyTorch to the exact value
            # (float64 PyTorch cancels in (1 - t)*z - log_sigmoid(z) for z < 0, and
            # in sigmoid(z) - 1 for large z)
            assert (rel_err(loss.data, ref_loss) <= 1e-15
                    or abs(loss.data - want) < abs(ref_loss - want)), (z, t, loss.data, ref_loss)
            assert (rel_err(zv.grad, ref_grad) <= 1e-15 or abs(zv.grad - ref_grad) <= 1e-15
                    or abs(zv.grad - want_grad) < abs(ref_grad - want_grad)), (z, t)


# -- one rule for numbers at every entry point --------------------------------
# Accepted: Value, int, float and other numbers.Real (Fraction); refused with a
# TypeError naming the function, the argument and the entry: bool (a slip in a
# list of targets), Decimal and complex (not numbers.Real), str, None, lists.
# An int too large for a float is a ValueError saying so.

REFUSED = [True, Decimal("0.5"), 0.5j, "0.5", None, [0.5]]
PAIR_LOSSES = [(losses.mse, "preds", "targets"), (losses.half_sse, "preds", "targets"),
               (losses.hinge, "scores", "labels"), (losses.bce_with_logits, "logits", "targets")]


@pytest.mark.parametrize("fn, first, second", PAIR_LOSSES, ids=lambda x: getattr(x, "__name__", x))
@pytest.mark.parametrize("bad", REFUSED, ids=lambda b: type(b).__name__)
def test_loss_entries_follow_one_rule(fn, first, second, bad):
    for side, name in ((0, first), (1, second)):
        args = [[1.0, 1.0], [1.0, 1.0]]
        args[side][1] = bad
        with pytest.raises(TypeError, match=rf"^{fn.__name__}: {name}\[1\] must be a Value, "
                                            rf"int or float, not {type(bad).__name__}$"):
            fn(*args)
    with pytest.raises(ValueError, match=rf"^{fn.__name__}: {second}\[0\]: an int of 1329 "
                                         r"bits is too large for a float$"):
        fn([1.0], [10 ** 400])
    assert fn([Fraction(1, 2)], [Fraction(1, 1)]).data == fn([0.5], [1.0]).data


@pytest.mark.parametrize("bad", REFUSED + [1.0, Fraction(1)], ids=lambda b: type(b).__name__)
def test_cross_entropy_target_is_an_int(bad):
    with pytest.raises(TypeError, match=r"^cross_entropy: target must be an int class index, "
                                        rf"not {type(bad).__name__}$"):
        losses.cross_entropy([0.0, 1.0], bad)


def test_state_dict_values_follow_the_same_rule():
    from microbp.nn import MLP
    m = MLP(1, [1], seed=0)
    name = "layers.0.neurons.0.w.0"
    for bad in [b for b in REFUSED if not isinstance(b, str)]:    # there a str is a float
        with pytest.raises(TypeError, match=rf"state_dict\['{name}'\] must be a float, an "
                                            rf"int or .*, not {type(bad).__name__}$"):
            m.load_state_dict({name: bad, "layers.0.neurons.0.b": 0.0})
    with pytest.raises(ValueError, match=rf"^state_dict\['{name}'\]: an int of 1329 bits is "
                                         "too large for a float$"):
        m.load_state_dict({name: 10 ** 400, "layers.0.neurons.0.b": 0.0})
    m.load_state_dict({name: Fraction(1, 4), "layers.0.neurons.0.b": 3})
    assert [p.data for p in m.parameters()] == [0.25, 3.0]

"""Optimizers (microbp/optim.py): SGD (with decay), Momentum and Adam.

Every expected value is computed by hand in Python floats from the update
formulas, with the gradient of the loss also computed by hand, so nothing here
trusts the engine to check the engine. Runs in the backend in force
(MICROBP_BACKEND), like the rest of the suite.
"""
import math

import pytest

from microbp import Value, Tape
from microbp.optim import SGD, Momentum, Adam


# ---------------------------------------------------------------------------
# helpers

def quad_loss(w, u):
    """(w - 3)^2 + (u + 1)^2; by hand: dL/dw = 2 (w - 3), dL/du = 2 (u + 1)."""
    return (w - 3) ** 2 + (u + 1) ** 2


def hand_grads(w, u):
    return 2.0 * (w - 3.0), 2.0 * (u + 1.0)


def eager_grads(w, u):
    """Backward through microbp, and check it against the hand gradient."""
    quad_loss(w, u).backward()
    gw, gu = hand_grads(w.data, u.data)
    assert w.grad == gw and u.grad == gu
    return gw, gu


# ---------------------------------------------------------------------------
# the update rules, two steps each, against hand computation

@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_sgd_two_steps_match_hand(decay):
    w, u = Value(0.25), Value(2.0)
    opt = SGD([w, u], lr=0.1, decay=decay)
    hw, hu = 0.25, 2.0
    for t in range(2):
        opt.zero_grad()
        gw, gu = eager_grads(w, u)
        assert (gw, gu) == hand_grads(hw, hu)
        lr_t = 0.1 / (1.0 + decay * t)
        hw, hu = hw - lr_t * gw, hu - lr_t * gu
        opt.step()
        assert w.data == hw and u.data == hu
        # the gradient is left alone by step()
        assert (w.grad, u.grad) == (gw, gu)
    assert opt.steps == 2


def test_sgd_decay_schedule_values():
    w = Value(1.0)
    opt = SGD([w], lr=1.0, decay=1.0)
    expect = 1.0
    for t in range(4):
        w.grad = 1.0
        opt.step()
        expect -= 1.0 / (1.0 + t)      # lr_t = lr / (1 + decay t): 1, 1/2, 1/3, 1/4
        assert w.data == expect
    assert w.data == pytest.approx(1.0 - (1 + 1 / 2 + 1 / 3 + 1 / 4), rel=1e-15)


def test_momentum_two_steps_match_hand():
    w, u = Value(0.25), Value(2.0)
    lr, mu = 0.1, 0.9
    opt = Momentum([w, u], lr=lr, mu=mu)
    hw, hu, vw, vu = 0.25, 2.0, 0.0, 0.0
    for _ in range(2):
        opt.zero_grad()
        gw, gu = eager_grads(w, u)
        vw = mu * vw - lr * gw
        vu = mu * vu - lr * gu
        hw, hu = hw + vw, hu + vu
        opt.step()
        assert w.data == hw and u.data == hu
    # the second step really used the velocity of the first
    assert vw != -lr * gw


def test_momentum_mu_zero_is_plain_sgd():
    a, b = Value(0.7), Value(0.7)
    m, s = Momentum([a], lr=0.05, mu=0.0), SGD([b], lr=0.05)
    for _ in range(3):
        m.zero_grad(); s.zero_grad()
        ((a - 3) ** 2).backward()
        ((b - 3) ** 2).backward()
        m.step(); s.step()
        assert a.data == b.data


@pytest.mark.parametrize("betas,eps", [((0.9, 0.999), 1e-8), ((0.5, 0.75), 1e-3), ((0.0, 0.0), 1e-8)])
def test_adam_two_steps_match_hand(betas, eps):
    w, u = Value(0.25), Value(2.0)
    lr = 0.01
    b1, b2 = betas
    opt = Adam([w, u], lr=lr, betas=betas, eps=eps)
    hw, hu = 0.25, 2.0
    mw = mu_ = vw = vu = 0.0
    for t in (1, 2):
        opt.zero_grad()
        gw, gu = eager_grads(w, u)
        mw = b1 * mw + (1.0 - b1) * gw
        mu_ = b1 * mu_ + (1.0 - b1) * gu
        vw = b2 * vw + (1.0 - b2) * (gw * gw)
        vu = b2 * vu + (1.0 - b2) * (gu * gu)
        hw = hw - lr * (mw / (1.0 - b1 ** t)) / (math.sqrt(vw / (1.0 - b2 ** t)) + eps)
        hu = hu - lr * (mu_ / (1.0 - b1 ** t)) / (math.sqrt(vu / (1.0 - b2 ** t)) + eps)
        opt.step()
        assert w.data == hw and u.data == hu
    assert opt.steps == 2


def test_adam_first_step_is_about_lr():
    # bias correction makes the first step -lr * sign(g) (up to eps)
    w = Value(0.0)
    opt = Adam([w], lr=0.125)
    ((w - 3) ** 2).backward()                 # g = -6
    opt.step()
    assert w.data == pytest.approx(0.125, rel=1e-8)
    assert w.data < 0.125                      # eps makes it slightly smaller


def test_adam_defaults():
    opt = Adam([Value(1.0)])
    assert (opt.lr, opt.beta1, opt.beta2, opt.eps) == (0.001, 0.9, 0.999, 1e-8)


def test_optimizers_drive_loss_down():
    for make in (lambda p: SGD(p, lr=0.1), lambda p: Momentum(p, lr=0.05, mu=0.5),
                 lambda p: Adam(p, lr=0.2)):
        w, u = Value(0.0), Value(0.0)
        opt = make([w, u])
        for _ in range(200):
            opt.zero_grad()
            quad_loss(w, u).backward()
            opt.step()
        assert abs(w.data - 3.0) < 1e-2 and abs(u.data + 1.0) < 1e-2


# ---------------------------------------------------------------------------
# zero_grad, and sharing parameters with a Tape

def test_zero_grad():
    w, u = Value(1.0), Value(2.0)
    w.grad, u.grad = 5.0, -7.0
    opt = SGD([w, u], lr=0.1)
    assert (w.grad, u.grad) == (5.0, -7.0)     # binding keeps the gradient
    opt.zero_grad()
    assert (w.grad, u.grad) == (0.0, 0.0)
    assert (w.data, u.data) == (1.0, 2.0)
    u.grad = 3.0
    opt.step()
    assert w.data == 1.0 and u.data == 2.0 - 0.1 * 3.0


def test_zero_grad_only_touches_own_params():
    w, u = Value(1.0), Value(2.0)
    opt_w = SGD([w], lr=0.1)
    SGD([u], lr=0.1)
    w.grad, u.grad = 1.0, 2.0
    opt_w.zero_grad()
    assert (w.grad, u.grad) == (0.0, 2.0)


@pytest.mark.parametrize("pick", [[0, 1, 2], [0, 1], [1, 2], [2, 0], [0, 2]])
def test_zero_grad_of_some_slots_of_a_store(pick):
    """A store's slots 0..k-1 in order are zeroed by one copy, any other set
    slot by slot: either way exactly the optimizer's slots become 0.0, also
    after the store has grown, and a store's grads cut short are refused."""
    from microbp import ParamStore
    from microbp.tapeformat import TapeError
    store = ParamStore()
    ps = [store.new(float(k)) for k in range(3)]
    opt = SGD([ps[k] for k in pick], lr=0.1)
    extra = store.new(9.0)                      # the store grows after
    for k, p in enumerate(ps + [extra]):
        p.grad = -1.0 - k
    opt.zero_grad()
    assert [p.grad for p in ps] == [0.0 if k in pick else -1.0 - k for k in range(3)]
    assert extra.grad == -4.0 and all(math.copysign(1, ps[k].grad) == 1 for k in pick)
    store._grad = store._grad[:1]               # shorter than the slots: refused
    with pytest.raises(TapeError):
        opt.zero_grad()
    assert list(store._grad) == [0.0 if 0 in pick else -1.0]


def test_zero_grad_with_an_unusable_backend_changes_nothing(monkeypatch):
    """One store zeroed by a slice copy, another slot by slot: when the backend
    cannot be used (get_backend raises), the error comes before any write."""
    from microbp import ParamStore, backend
    a, b = ParamStore(), ParamStore()
    ps = [a.new(1.0) for _ in range(2)] + [b.new(1.0) for _ in range(3)]
    opt = SGD(ps[:2] + ps[3:], lr=0.1)         # a: slots 0, 1; b: slots 1, 2
    for p in ps:
        p.grad = 5.0
    monkeypatch.setattr(backend, "_local", backend._Chosen())
    monkeypatch.setattr(backend, "_default", None)
    monkeypatch.setattr(backend, "_default_error", backend.BackendError("no backend"))
    with pytest.raises(backend.BackendError, match="no backend"):
        opt.zero_grad()
    assert [p.grad for p in ps] == [5.0] * 5


def test_zero_grad_with_a_later_store_cut_short_changes_nothing():
    """The second store's grads are shorter than its slots: refused before the
    first store (zeroed by one copy) is written."""
    from microbp import ParamStore
    from microbp.tapeformat import TapeError
    a, b = ParamStore(), ParamStore()
    ps = [a.new(1.0) for _ in range(2)] + [b.new(1.0) for _ in range(3)]
    opt = SGD(ps, lr=0.1)
    for p in ps:
        p.grad = 5.0
    b._grad = b._grad[:2]
    with pytest.raises(TapeError):
        opt.zero_grad()
    assert list(a._grad) == [5.0, 5.0] and list(b._grad) == [5.0, 5.0]


def _tape_model(w, b, x, y):
    """per row: (w x + b - y)^2; by hand d/dw = 2 (w x + b - y) x, d/db = 2 (w x + b - y)."""
    return (w * x + b - y) ** 2


ROWS = [[1.0, 2.0], [-0.5, 0.25], [2.0, -1.0]]


def _hand_tape_grads(w, b):
    gw = gb = 0.0
    for x, y in ROWS:
        r = w * x + b - y
        gw += 2.0 * r * x
        gb += 2.0 * r
    return gw, gb


@pytest.mark.parametrize("tape_first", [True, False])
@pytest.mark.parametrize("kind", ["sgd", "momentum", "adam"])
def test_params_shared_with_tape(tape_first, kind):
    w, b, x, y = Value(0.5), Value(-0.25), Value(0.0), Value(0.0)
    loss = _tape_model(w, b, x, y)
    make = {"sgd": lambda p: SGD(p, lr=0.05),
            "momentum": lambda p: Momentum(p, lr=0.05, mu=0.5),
            "adam": lambda p: Adam(p, lr=0.05)}[kind]
    if tape_first:
        tape = Tape(loss, [x, y])
        opt = make([w, b])
    else:
        opt = make([b, w])
        tape = Tape(loss, [x, y])
    hw, hb = 0.5, -0.25
    vw = vb = mw = mb = sw = sb = 0.0
    for t in (1, 2, 3):
        opt.zero_grad()
        assert (w.grad, b.grad) == (0.0, 0.0)
        outs = tape.forward(ROWS)
        assert outs == pytest.approx([(hw * xx + hb - yy) ** 2 for xx, yy in ROWS], rel=1e-14)
        tape.backward()
        gw, gb = _hand_tape_grads(hw, hb)
        assert w.grad == pytest.approx(gw, rel=1e-13) and b.grad == pytest.approx(gb, rel=1e-13)
        gw, gb = w.grad, b.grad                # continue from the engine's gradients
        opt.step()
        if kind == "sgd":
            hw, hb = hw - 0.05 * gw, hb - 0.05 * gb
        elif kind == "momentum":
            vw, vb = 0.5 * vw - 0.05 * gw, 0.5 * vb - 0.05 * gb
            hw, hb = hw + vw, hb + vb
        else:
            mw, mb = 0.9 * mw + (1.0 - 0.9) * gw, 0.9 * mb + (1.0 - 0.9) * gb
            sw = 0.999 * sw + (1.0 - 0.999) * (gw * gw)
            sb = 0.999 * sb + (1.0 - 0.999) * (gb * gb)
            c1, c2 = 1.0 - 0.9 ** t, 1.0 - 0.999 ** t
            hw = hw - 0.05 * (mw / c1) / (math.sqrt(sw / c2) + 1e-8)
            hb = hb - 0.05 * (mb / c1) / (math.sqrt(sb / c2) + 1e-8)
        assert w.data == hw and b.data == hb


def test_params_from_two_stores():
    # w is bound by a tape, u is fresh: the optimizer spans two stores
    w, u, x = Value(1.0), Value(2.0), Value(0.0)
    Tape(w * x, [x])
    opt = Momentum([u, w], lr=0.1, mu=0.5)
    hw, hu, vw, vu = 1.0, 2.0, 0.0, 0.0
    for g in ((1.0, -2.0), (0.5, 4.0)):
        w.grad, u.grad = g
        opt.step()
        vw, vu = 0.5 * vw - 0.1 * g[0], 0.5 * vu - 0.1 * g[1]
        hw, hu = hw + vw, hu + vu
        assert (w.data, u.data) == (hw, hu)
    opt.zero_grad()
    assert (w.grad, u.grad) == (0.0, 0.0)


def test_param_set_data_directly_is_used():
    w = Value(1.0)
    opt = SGD([w], lr=0.5)
    w.data = 10.0
    w.grad = 2.0
    opt.step()
    assert w.data == 9.0


# ---------------------------------------------------------------------------
# argument errors, and a failed constructor changes nothing

def _fresh():
    w, u = Value(1.5), Value(-2.5)
    w.grad, u.grad = 0.25, -0.75
    return w, u


def _unchanged(w, u):
    return (w.data, w.grad, u.data, u.grad) == (1.5, 0.25, -2.5, -0.75)


BAD_PARAMS = [
    (lambda w, u: [w, 3.0], TypeError, r"params\[1\]"),
    (lambda w, u: [w, None], TypeError, r"params\[1\]"),
    (lambda w, u: w, TypeError, "params"),
    (lambda w, u: 5, TypeError, "params"),
    (lambda w, u: [w, u, w], ValueError, "params"),
    (lambda w, u: [], ValueError, "params"),
    (lambda w, u: [w, w + u], ValueError, r"params\[1\].*leaf"),
    (lambda w, u: [u, w.tanh()], ValueError, r"params\[1\]"),
]


@pytest.mark.parametrize("cls", [SGD, Momentum, Adam])
@pytest.mark.parametrize("make,exc,match", BAD_PARAMS)
def test_bad_params(cls, make, exc, match):
    w, u = _fresh()
    with pytest.raises(exc, match=match):
        cls(make(w, u), lr=0.1)
    assert _unchanged(w, u)
    assert type(w) is Value and type(u) is Value      # nothing was bound


BAD_ARGS = [
    (SGD, dict(lr=0.0), ValueError, "lr"),
    (SGD, dict(lr=-0.1), ValueError, "lr"),
    (SGD, dict(lr=math.nan), ValueError, "lr"),
    (SGD, dict(lr=math.inf), ValueError, "lr"),
    (SGD, dict(lr=-math.inf), ValueError, "lr"),
    (SGD, dict(lr="0.1"), TypeError, "lr"),
    (SGD, dict(lr=None), TypeError, "lr"),
    (SGD, dict(lr=True), TypeError, "lr"),
    (SGD, dict(lr=0.1, decay=-1.0), ValueError, "decay"),
    (SGD, dict(lr=0.1, decay=math.nan), ValueError, "decay"),
    (SGD, dict(lr=0.1, decay=math.inf), ValueError, "decay"),
    (SGD, dict(lr=0.1, decay="x"), TypeError, "decay"),
    (Momentum, dict(lr=0.0), ValueError, "lr"),
    (Momentum, dict(lr=math.nan), ValueError, "lr"),
    (Momentum, dict(lr=0.1, mu=-0.5), ValueError, "mu"),
    (Momentum, dict(lr=0.1, mu=math.nan), ValueError, "mu"),
    (Momentum, dict(lr=0.1, mu=math.inf), ValueError, "mu"),
    (Momentum, dict(lr=0.1, mu="0.9"), TypeError, "mu"),
    (Momentum, dict(lr=0.1, mu=None), TypeError, "mu"),
    (Adam, dict(lr=-1e-3), ValueError, "lr"),
    (Adam, dict(lr=math.inf), ValueError, "lr"),
    (Adam, dict(lr=0.1, betas=(1.0, 0.999)), ValueError, "betas"),
    (Adam, dict(lr=0.1, betas=(0.9, 1.0)), ValueError, "betas"),
    (Adam, dict(lr=0.1, betas=(0.9, 1.5)), ValueError, "betas"),
    (Adam, dict(lr=0.1, betas=(-0.1, 0.999)), ValueError, r"betas\[0\]"),
    (Adam, dict(lr=0.1, betas=(0.9, math.nan)), ValueError, r"betas\[1\]"),
    (Adam, dict(lr=0.1, betas=(math.inf, 0.9)), ValueError, r"betas\[0\]"),
    (Adam, dict(lr=0.1, betas=("a", 0.9)), TypeError, r"betas\[0\]"),
    (Adam, dict(lr=0.1, betas=0.9), TypeError, "betas"),
    (Adam, dict(lr=0.1, betas=(0.9,)), (TypeError, ValueError), "betas"),
    (Adam, dict(lr=0.1, betas=(0.9, 0.99, 0.999)), (TypeError, ValueError), "betas"),
    (Adam, dict(lr=0.1, eps=0.0), ValueError, "eps"),
    (Adam, dict(lr=0.1, eps=-1e-8), ValueError, "eps"),
    (Adam, dict(lr=0.1, eps=math.nan), ValueError, "eps"),
    (Adam, dict(lr=0.1, eps=math.inf), ValueError, "eps"),
    (Adam, dict(lr=0.1, eps="tiny"), TypeError, "eps"),
]


@pytest.mark.parametrize("cls,kwargs,exc,match", BAD_ARGS,
                         ids=[f"{c.__name__}-{k}" for c, k, _, _ in BAD_ARGS])
def test_bad_arguments(cls, kwargs, exc, match):
    w, u = _fresh()
    with pytest.raises(exc, match=match):
        cls([w, u], **kwargs)
    assert _unchanged(w, u)
    # the Values still work, with a later optimizer and in graphs
    opt = SGD([w, u], lr=0.5)
    opt.step()
    assert (w.data, u.data) == (1.5 - 0.5 * 0.25, -2.5 - 0.5 * -0.75)
    assert (w * u).data == w.data * u.data


def test_bad_arguments_leave_tape_bound_params_unchanged():
    w, x = Value(2.0), Value(0.0)
    tape = Tape(w * x, [x])
    tape.forward([[3.0]])
    tape.backward()
    assert w.grad == 3.0
    with pytest.raises(ValueError, match="lr"):
        SGD([w], lr=-1)
    with pytest.raises(ValueError, match="eps"):
        Adam([w], eps=0.0)
    assert (w.data, w.grad) == (2.0, 3.0)
    assert tape.forward([[1.5]]) == [3.0]


def test_valid_edge_arguments_accepted():
    w = Value(1.0)
    SGD([w], lr=1, decay=0)                     # ints are fine
    Momentum([w], lr=0.1, mu=0)
    Adam([w], lr=0.1, betas=[0.0, 0.0], eps=1e-300)
    opt = SGD((v for v in [Value(1.0)]), lr=0.1)   # any iterable
    assert len(opt.params) == 1


def test_bound_parameters_copy_and_pickle_as_plain_values():
    import copy
    import pickle
    from microbp import nn
    model = nn.MLP(2, [3, 1], seed=0)
    opt = SGD(model.parameters(), lr=0.1)
    model.parameters()[0].grad = 0.25
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        mine, theirs = model.parameters(), twin.parameters()
        assert [p.data for p in theirs] == [p.data for p in mine]
        assert theirs[0].grad == 0.25
        theirs[0].data = 123.0                 # a copy, not a view of the same store
        assert mine[0].data != 123.0
    opt.step()


def test_a_trained_model_is_freed_without_the_cycle_collector():
    import gc
    import weakref
    from microbp import nn
    gc.collect()
    gc.disable()
    try:
        model = nn.MLP(2, [3, 1], seed=0)
        opt = SGD(model.parameters(), lr=0.1)
        store = weakref.ref(opt._groups[0][0])
        del model, opt
        assert store() is None
    finally:
        gc.enable()


@pytest.mark.parametrize("cls", [SGD, Momentum, Adam])
def test_a_subclass_lr_property_is_what_a_step_uses(cls):
    """The update reads the settings through their properties, so a subclass
    may compute them (a warm-up schedule here): lr is a tenth of its setting
    at step 0, and each rule then moves w by what that lr gives by hand."""
    class Warmup(cls):
        @property
        def lr(self):
            return self._lr * min(1.0, (self.steps + 1) / 10)

        @lr.setter
        def lr(self, x):
            cls.lr.fset(self, x)

    w = Value(1.0)
    opt = Warmup([w], lr=0.5)
    w.grad = 1.0
    opt.step()
    if cls is Adam:    # m_hat = g, v_hat = g^2: the step is lr * g / (|g| + eps)
        assert w.data == 1.0 - 0.05 * (1.0 / (math.sqrt(1.0) + opt.eps))
    else:              # SGD (no decay) and Momentum (v = -lr g from 0) alike
        assert w.data == 1.0 - 0.05 * 1.0


# ---------------------------------------------------------------------------
# the C kernels against their Python twins, bit for bit: slots 0..k-1 in order
# (the C core's straight loop) and any other slots (its loop over slots[j])

def _bits(xs):
    import struct
    return struct.pack(f"{len(xs)}d", *xs)


@pytest.mark.parametrize("seed", range(40))
def test_c_update_kernels_are_their_python_twins_in_any_slot_order(seed):
    import random
    from array import array
    from microbp import available_backends, optim
    if "c" not in available_backends():
        pytest.skip("the C core is not built")
    from microbp import cexec
    rng = random.Random(seed)
    n = rng.choice([1, 3, 8, 17, 64])
    edge = [0.0, -0.0, 1e308, -1e-310, math.inf, -math.inf, math.nan]
    draw = lambda: rng.choice(edge) if rng.random() < 0.2 else rng.uniform(-3.0, 3.0)  # noqa: E731
    kind = seed % 4
    slots = (list(range(n)) if kind == 0 else                       # the usual case
             rng.sample(range(n), n) if kind == 1 else                # permuted
             [rng.randrange(n) for _ in range(n)] if kind == 2 else   # repeats
             list(range(n))[1:] or [0])                               # 1..n-1
    data, grad = [draw() for _ in range(n)], [draw() for _ in range(n)]
    vel = [draw() for _ in range(len(slots))]
    lr, mu = rng.choice([0.1, 1e-3, 2.5]), rng.choice([0.0, 0.9])
    results = []
    for sgd, momentum in ((cexec.sgd, cexec.momentum),
                          (optim._python_sgd, optim._python_momentum)):
        d, g, v = array("d", data), array("d", grad), array("d", vel)
        sgd(d, g, array("i", slots).tobytes(), lr)
        d2 = array("d", data)
        momentum(d2, v, g, array("i", slots).tobytes(), lr, mu)
        results.append((_bits(d), _bits(d2), _bits(v), _bits(g)))
    assert results[0] == results[1]

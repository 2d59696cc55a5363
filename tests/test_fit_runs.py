"""Tape.fit's two ways of moving parameters in C (mbp_fit): the usual shape (the
optimizer's slots are 0..k-1 in order and the tape's parameters are those k
slots, each once) runs the gather, zero_grad, scatter and update in one pass
per run of consecutive slots and lanes; anything else takes one pass each. Both
leave the very bits of the zero_grad / forward / backward / step loop in the
store, the optimizer's state and the tape's values and adjoints."""
import struct
from array import array

import pytest

import microbp
from microbp import ParamStore, Tape, Value, nn, optim

HAVE_C = "c" in microbp.available_backends()
BACKENDS = ["python", "c"] if HAVE_C else ["python"]

OPTIMIZERS = {"sgd": lambda p: optim.SGD(p, lr=0.05, decay=0.1),
              "momentum": lambda p: optim.Momentum(p, lr=0.02, mu=0.9),
              "adam": lambda p: optim.Adam(p, lr=0.03)}


def bits(xs):
    return [struct.pack("<d", x) for x in xs]


def state(opt):
    """The optimizer's own arrays (velocities, moments), as bits."""
    out = []
    for name in ("_vel", "_m", "_v"):
        for a in getattr(opt, name, ()):
            out += bits(a)
    return out


def interleaved():
    """Parameters of one store created between the input slots: their lanes
    are not one run (three runs: w0 | w1 w2 | w3)."""
    s = ParamStore()
    w0 = s.new(0.3)
    x = Value(0.0)
    w1, w2 = s.new(-0.2), s.new(0.5)
    z = Value(0.0)
    w3 = s.new(0.1)
    loss = ((w0 * x + w1).tanh() * z + w2 * x * w3 - 0.25) ** 2
    return Tape(loss, [x, z]), [w0, w1, w2, w3]


def mlp():
    model = nn.MLP(2, [4, 3, 1], seed=3)
    x0, x1, y = Value(0.0), Value(0.0), Value(0.0)
    loss = ((model([x0, x1]) - y) ** 2
            + 1e-3 * sum(p * p for p in model.parameters()))
    return Tape(loss, [x0, x1, y]), model.parameters()


def with_unused():
    """A store whose last parameter the tape does not use."""
    tape, params = interleaved()
    spare = params[0]._store.new(0.75)
    return tape, params + [spare]


ROWS = {interleaved: [[1.0, 2.0], [2.0, -1.0], [0.5, 0.5], [-1.5, 0.25]],
        mlp: [[0.5, -1.0, 1.0], [1.5, 0.25, -1.0], [-0.75, 2.0, 1.0]],
        with_unused: [[1.0, 2.0], [2.0, -1.0], [0.5, 0.5], [-1.5, 0.25]]}

# which of a model's parameters the optimizer gets, and whether that is the usual shape
CHOICES = {"all": (lambda ps: ps, True),
           "all but the last": (lambda ps: ps[:-1], False),
           "all but the first": (lambda ps: ps[1:], False),
           "reversed": (lambda ps: ps[::-1], False),
           "every other": (lambda ps: ps[::2], False)}


def train(make, choose, kind, be, use_fit, steps):
    tape, params = make()
    opt = OPTIMIZERS[kind](choose(params))
    rows = ROWS[make]
    with microbp.use_backend(be):
        if use_fit:
            losses = []
            for k in steps:                   # several calls: opt.steps carries on
                losses += tape.fit(rows, opt, k)
        else:
            losses = []
            for _ in range(sum(steps)):
                opt.zero_grad()
                losses.append(sum(tape.forward(rows)))
                tape.backward()
                opt.step()
    return (bits(losses), bits(p.data for p in params), bits(p.grad for p in params),
            state(opt), opt.steps, bits(tape._val), bits(tape._adj)), tape, opt


def store_shape(tape, opt):
    """Whether tape and optimizer are in the usual shape (what mbp_fit checks)."""
    (_, _, slots), = tape._groups
    (_, oslots), = opt._groups
    oslots = memoryview(oslots).cast("i")
    return (list(oslots) == list(range(len(oslots)))
            and sorted(slots) == list(range(len(oslots))))


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
@pytest.mark.parametrize("make", [interleaved, mlp, with_unused], ids=lambda f: f.__name__)
@pytest.mark.parametrize("choice", sorted(CHOICES))
def test_fit_gives_the_bits_of_the_loop_in_each_shape(kind, make, choice):
    choose, usual = CHOICES[choice]
    if make is with_unused:          # the optimizer over the spare parameter or not
        usual = choice == "all but the last"
    steps = (1, 4, 2)
    ref, tape, opt = train(make, choose, kind, "python", False, steps)
    assert store_shape(tape, opt) == usual
    for be in BACKENDS:
        for use_fit in (False, True):
            got = train(make, choose, kind, be, use_fit, steps)[0]
            assert got == ref, (be, use_fit)
    assert ref[0][-1] != ref[0][0]                   # the steps moved something


def test_the_interleaved_tape_has_several_runs():
    tape, params = interleaved()
    tape.forward(ROWS[interleaved])
    (_, nodes, slots), = tape._groups
    lanes = [tape._off[i] for i in nodes]
    assert list(slots) == [0, 1, 2, 3]
    assert lanes[1] == lanes[2] - 1 and lanes[0] + 1 < lanes[1] and lanes[2] + 1 < lanes[3]


@pytest.mark.parametrize("be", BACKENDS)
def test_a_gradient_of_minus_zero_is_stored_as_zero(be):
    # the adjoint of p is -0.0 (rows of x = 0): zero_grad then += gives +0.0,
    # in the loop and in fit alike
    s = ParamStore()
    p, q = s.new(0.5), s.new(0.25)
    x = Value(0.0)
    tape = Tape(-(p * x) + q * q, [x])
    with microbp.use_backend(be):
        opt = optim.Momentum([p, q], lr=0.1, mu=0.5)
        tape.fit([[0.0], [0.0]], opt, 3)
        (_, nodes, _), = tape._groups
        assert bits([tape._adj[tape._off[nodes[0]]]]) == bits([-0.0])
        assert bits([p.grad]) == bits([0.0])
        assert q.grad != 0.0


def test_fit_with_no_steps_changes_nothing():
    for be in BACKENDS:
        tape, params = mlp()
        opt = OPTIMIZERS["adam"](params)
        before = bits(p.data for p in params) + bits(p.grad for p in params)
        with microbp.use_backend(be):
            assert tape.fit(ROWS[mlp], opt, 0) == []
        assert bits(p.data for p in params) + bits(p.grad for p in params) == before
        assert opt.steps == 0


# mbp_fit itself: one tape as two Programs, its parameters in the usual shape and
# not (slots 1.. of a store with a spare slot 0; and permuted slots)

@pytest.mark.skipif(not HAVE_C, reason="needs the C core")
@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
@pytest.mark.parametrize("how", ["shifted", "permuted"])
def test_mbp_fit_in_runs_and_one_by_one_agree(kind, how):
    from microbp import cexec
    tape, params = mlp()
    rows = ROWS[mlp]
    with microbp.use_backend("c"):
        tape.forward(rows)                            # lays out and loads the rows
    (_, nodes, slots), = tape._groups
    k = len(slots)
    assert list(slots) == list(range(k))
    opt = OPTIMIZERS[kind](params)
    hyper = {"sgd": lambda: (opt.lr, opt.decay), "momentum": lambda: (opt.lr, opt.mu),
             "adam": lambda: (opt.lr, opt.beta1, opt.beta2, opt.eps)}[kind]()
    data0 = [p.data for p in params]
    if how == "shifted":             # slot 1 + j: not 0..k-1, one pass each
        where = [1 + j for j in range(k)]
        oslots, nslots = where, k + 1
    else:                            # slots a permutation of 0..k-1: runs, in another order
        where = [(7 * j + 3) % k for j in range(k)]
        assert sorted(where) == list(range(k)) and where != list(range(k))
        oslots, nslots = list(range(k)), k
    results = []
    for mine in (False, True):
        w = list(range(k)) if not mine else where
        prog = cexec.Program(tape._op, tape._a, tape._b, tape._vary, tape._off, tape._nr,
                             len(tape._val), tape._ext, tape._layers, tape._in_nodes,
                             (array("i", nodes), array("i", w)))
        data, grad = array("d", [0.0] * nslots), array("d", [0.5] * nslots)
        for j in range(k):
            data[w[j]] = data0[j]
        # the optimizer's state follows its slot list: entry i is slot oslots[i]
        os_ = list(range(k)) if not mine else oslots
        s1 = array("d", [0.0] * k)
        s2 = array("d", [0.0] * k)
        val, adj = array("d", tape._val), array("d", tape._adj)
        losses = []
        for t0, n in ((0, 1), (1, 5)):
            losses += cexec.fit(prog, val, adj, data, grad, os_, kind, hyper, s1,
                                s2 if kind == "adam" else s1, t0, n)
        slot_of = {s: i for i, s in enumerate(os_)}
        results.append((bits(losses), bits(data[w[j]] for j in range(k)),
                        bits(grad[w[j]] for j in range(k)),
                        bits(s1[slot_of[w[j]]] for j in range(k)),
                        bits(s2[slot_of[w[j]]] for j in range(k)), bits(val), bits(adj)))
        spare = [i for i in range(nslots) if i not in w]
        assert [data[i] for i in spare] == [0.0] * len(spare)     # untouched
        assert [grad[i] for i in spare] == [0.5] * len(spare)
    assert results[0] == results[1]
    assert results[0][0][0] != results[0][0][-1]

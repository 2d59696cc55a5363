"""microbp.Tape: a graph recorded once and replayed over batches of rows.

Expected values come from eager microbp graphs built afresh for every row
(unbound leaves, so nothing is shared with the tape) and from hand formulas.
The tape runs in the backend in force (MICROBP_BACKEND); the malformed-tape
tests call the Python and C executors directly.
"""
import math
import struct
from array import array

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import microbp
import executors
from microbp import Value, Tape, Batch, TapeError
from microbp import pyexec
from microbp.ops import LEAF, CONST, ADD, MUL, NEG, TANH, LIN, NUM_OPS
from microbp.optim import SGD, Adam

try:
    from microbp import cexec
except ImportError:           # the C core is not built
    cexec = None

HAVE_C = "c" in microbp.available_backends()
needs_c = pytest.mark.skipif(not HAVE_C, reason="the C core is not built")


def bits(x):
    return struct.pack("<d", x)


def same_bits(xs, ys):
    xs, ys = list(xs), list(ys)
    return len(xs) == len(ys) and all(bits(x) == bits(y) for x, y in zip(xs, ys))


# ---------------------------------------------------------------------------
# a small model: 3 input slots (x1, x2, y), 3 parameters, and a
# parameter-only weight-decay term that does not depend on the inputs

P0 = (0.3, -0.7, 0.1)
ROWS = [[0.5, -1.25, 1.0], [2.0, 0.25, -1.0], [-0.75, 1.5, 0.5],
        [0.0, 0.0, 0.0], [1.125, -2.0, 2.0]]


def model(w1, w2, b, x1, x2, y):
    h = (w1 * x1 + w2 * x2 + b).tanh()
    return (h - y) ** 2 + 0.01 * w1 * w1


def make_tape(p=P0):
    params = [Value(v) for v in p]
    ins = [Value(0.0, label=s) for s in ("x1", "x2", "y")]
    loss = model(*params, *ins)
    return Tape(loss, ins), params


def eager_row(p, row):
    """The loss of one row as a fresh eager graph, and its param gradients."""
    params = [Value(v) for v in p]
    loss = model(*params, *[Value(v) for v in row])
    loss.backward()
    return loss.data, [q.grad for q in params]


def eager_sum(p, rows):
    """Gradient of the sum of the per-row losses, by one eager backward."""
    params = [Value(v) for v in p]
    total = None
    for row in rows:
        loss = model(*params, *[Value(v) for v in row])
        total = loss if total is None else total + loss
    total.backward()
    return [q.grad for q in params]


# ---------------------------------------------------------------------------
# forward and backward against eager graphs

def test_forward_per_row_matches_eager():
    tape, params = make_tape()
    outs = tape.forward(ROWS)
    assert isinstance(outs, list) and len(outs) == len(ROWS)
    for out, row in zip(outs, ROWS):
        ref, _ = eager_row(P0, row)
        assert out == pytest.approx(ref, rel=1e-12, abs=0)
        assert bits(out) == bits(ref)        # no sums in forward: lanes are exact
    # parameters and their grads are untouched by forward
    assert [p.data for p in params] == list(P0)
    assert [p.grad for p in params] == [0.0, 0.0, 0.0]


def test_backward_sums_over_rows():
    tape, params = make_tape()
    tape.forward(ROWS)
    tape.backward()
    ref = eager_sum(P0, ROWS)
    for p, g in zip(params, ref):
        assert p.grad == pytest.approx(g, rel=1e-12)
    # and the sum of the per-row gradients, row by row
    per_row = [eager_row(P0, row)[1] for row in ROWS]
    for k, p in enumerate(params):
        assert p.grad == pytest.approx(math.fsum(g[k] for g in per_row), rel=1e-12)


def test_backward_accumulates():
    tape, params = make_tape()
    tape.forward(ROWS)
    tape.backward()
    once = [p.grad for p in params]
    tape.backward()
    assert [p.grad for p in params] == [2.0 * g for g in once]
    for p in params:
        p.grad = 0.0
    tape.backward()
    assert [p.grad for p in params] == once


def test_parameter_only_term_computed_once_and_summed():
    # per row: L = w x + 0.01 w^2 -> dL/dw = x + 0.02 w; summed over rows
    w, x = Value(1.5), Value(0.0)
    tape = Tape(w * x + 0.01 * w * w, [x])
    xs = [0.5, -2.0, 3.25, 1.0, 0.125, -0.5, 7.0]
    outs = tape.forward([[v] for v in xs])
    assert outs == [1.5 * v + (0.01 * 1.5) * 1.5 for v in xs]
    tape.backward()
    expect = sum(xs) + len(xs) * (0.01 * 1.5 * 2)
    assert w.grad == pytest.approx(expect, rel=1e-12)
    # the decay term lives in nodes that do not vary: one value, not one per row
    assert 0 < sum(tape.varies) < tape.num_nodes
    assert len(tape._val) == sum(tape.varies) * len(xs) + (tape.num_nodes - sum(tape.varies))


def test_single_row_equals_eager_bitwise():
    for row in ROWS:
        tape, params = make_tape()
        out = tape.forward([row])
        tape.backward()
        ref, ref_grads = eager_row(P0, row)
        assert same_bits(out, [ref])
        assert same_bits([p.grad for p in params], ref_grads)


def test_single_row_with_reused_subexpressions_bitwise():
    def f(w, v, x):
        s = (w * x).sigmoid()
        t = s * s + s / (v + 2.0)
        return (t.exp() - x * w).abs() + (t * v).relu() + t.log()
    wv, vv = 0.75, -0.3
    for xval in (0.5, -1.0, 0.0, 2.5):
        w, v, x = Value(wv), Value(vv), Value(0.0)
        tape = Tape(f(w, v, x), [x])
        out = tape.forward([[xval]])
        tape.backward()
        ew, ev = Value(wv), Value(vv)
        ref = f(ew, ev, Value(xval))
        ref.backward()
        assert same_bits(out, [ref.data])
        assert same_bits([w.grad, v.grad], [ew.grad, ev.grad])


def test_layout_change_between_batches():
    tape, params = make_tape()
    for rows in (ROWS, ROWS[:1], ROWS[1:4], ROWS, ROWS * 3):
        for p in params:
            p.grad = 0.0
        outs = tape.forward(rows)
        assert outs == [eager_row(P0, r)[0] for r in rows]
        tape.backward()
        for p, g in zip(params, eager_sum(P0, rows)):
            assert p.grad == pytest.approx(g, rel=1e-12)


# ---------------------------------------------------------------------------
# parameters: the tape reads the current .data, .data and .grad stay truthful

def test_optimizer_updates_are_used_by_next_forward():
    tape, params = make_tape()
    opt = SGD(params, lr=0.1)
    cur = list(P0)
    for _ in range(3):
        opt.zero_grad()
        assert [p.grad for p in params] == [0.0, 0.0, 0.0]
        outs = tape.forward(ROWS)
        assert outs == [eager_row(cur, r)[0] for r in ROWS]
        tape.backward()
        grads = [p.grad for p in params]
        for g, ref in zip(grads, eager_sum(cur, ROWS)):
            assert g == pytest.approx(ref, rel=1e-12)
        opt.step()
        cur = [c - 0.1 * g for c, g in zip(cur, grads)]
        assert [p.data for p in params] == cur        # .data is truthful
        assert [p.grad for p in params] == grads      # step() leaves .grad


def test_adam_then_tape_forward():
    tape, params = make_tape()
    opt = Adam(params, lr=0.05)
    tape.forward(ROWS)
    tape.backward()
    opt.step()
    cur = [p.data for p in params]
    assert cur != list(P0)
    assert tape.forward(ROWS[:2]) == [eager_row(cur, r)[0] for r in ROWS[:2]]


def test_setting_data_directly_is_used():
    tape, params = make_tape()
    params[0].data = 2.0
    params[2].data = -1
    cur = [2.0, P0[1], -1.0]
    assert [p.data for p in params] == cur
    assert tape.forward(ROWS) == [eager_row(cur, r)[0] for r in ROWS]


def test_bound_values_keep_working_eagerly():
    tape, (w1, w2, b) = make_tape()
    tape.forward(ROWS[:1])
    tape.backward()
    g = w1.grad
    y = w1 * w2 + b
    assert y.data == P0[0] * P0[1] + P0[2]
    y.backward()
    assert w1.grad == g + P0[1]
    assert repr(w1).startswith("Value(data=0.3")


def test_two_tapes_share_parameters():
    w, x, z = Value(2.0), Value(0.0), Value(0.0)
    t1 = Tape(w * x, [x])
    t2 = Tape(w * w * z, [z])
    t1.forward([[3.0], [4.0]])
    t1.backward()
    assert w.grad == 7.0
    t2.forward([[1.0]])
    t2.backward()
    assert w.grad == 7.0 + 2 * 2.0
    w.data = 5.0
    assert t1.forward([[1.0]]) == [5.0] and t2.forward([[2.0]]) == [50.0]


# ---------------------------------------------------------------------------
# constants, unused input slots, input order, degenerate graphs

def f_consts(w, x, y, z):
    return (x * 2.0 - y / 4.0) * w + z ** 2 + 3.0 - (1.5 - x).relu() + 2 ** y


@pytest.mark.parametrize("order", [(0, 1, 2, 3), (3, 2, 1, 0), (2, 0, 3, 1), (1, 3, 0, 2)])
def test_constants_unused_slots_any_order(order):
    w = Value(0.5)
    x, y, z, unused = Value(0.0), Value(0.0), Value(0.0), Value(123.0)
    named = [x, y, z, unused]
    inputs = [named[k] for k in order]
    tape = Tape(f_consts(w, x, y, z), inputs)
    assert tape.num_inputs == 4
    data = [(1.0, 2.0, -3.0), (0.5, -1.0, 0.0), (-2.0, 0.25, 4.0)]
    rows = []
    for xv, yv, zv in data:
        vals = {0: xv, 1: yv, 2: zv, 3: 99.0}
        rows.append([vals[k] for k in order])
    outs = tape.forward(rows)
    tape.backward()
    gsum = 0.0
    for out, (xv, yv, zv) in zip(outs, data):
        ew = Value(0.5)
        ref = f_consts(ew, Value(xv), Value(yv), Value(zv))
        assert bits(out) == bits(ref.data)
        ref.backward()
        gsum += ew.grad
    assert w.grad == pytest.approx(gsum, rel=1e-12)
    assert w.grad == pytest.approx(sum(2.0 * xv - yv / 4.0 for xv, yv, _ in data), rel=1e-12)
    assert unused.data == 123.0           # an unused slot is not touched


def test_constants_are_baked_at_recording():
    x = Value(0.0)
    tape = Tape(x * 2.0 + 1.0, [x])
    assert tape.parameters == ()
    assert tape.forward([[1.0], [2.5], [-4.0]]) == [3.0, 6.0, -7.0]
    tape.backward()                       # no parameters: nothing to receive gradients


def test_output_is_input_slot():
    x = Value(0.0)
    tape = Tape(x, [x])
    assert tape.forward([[1.5], [-2.0]]) == [1.5, -2.0]
    tape.backward()


def test_output_is_parameter():
    w = Value(4.0)
    tape = Tape(w, [])
    assert tape.forward([[]]) == [4.0]
    tape.backward()
    assert w.grad == 1.0


def test_no_inputs_tape():
    w = Value(3.0)
    tape = Tape((w * w).tanh(), [])
    out = tape.forward([[]])
    tape.backward()
    ew = Value(3.0)
    ref = (ew * ew).tanh()
    ref.backward()
    assert same_bits(out, [ref.data]) and same_bits([w.grad], [ew.grad])


def test_output_not_depending_on_inputs_sums_over_rows():
    w, x = Value(3.0), Value(0.0)
    tape = Tape(0.5 * w * w, [x])         # x is an unused input slot
    outs = tape.forward([[1.0], [2.0], [3.0]])
    assert outs == [4.5, 4.5, 4.5]
    tape.backward()
    # d/dw of sum over the 3 rows of 0.5 w^2 = 3 * w
    assert w.grad == 9.0


def test_inputs_may_be_any_iterable():
    x, w = Value(0.0), Value(2.0)
    tape = Tape(x * w, (v for v in [x]))
    assert tape.forward(((1.0,), (2.0,))) == [2.0, 4.0]


def test_repr():
    tape, _ = make_tape()
    assert "3 inputs" in repr(tape) and "3 parameters" in repr(tape)


# ---------------------------------------------------------------------------
# add/mul chains, fused by the recorder into lin nodes: the same bits as eager

def neuron(ws, b, xs):
    acc = b
    for w, x in zip(ws, xs):
        acc = acc + w * x
    return acc.tanh()


def test_chain_is_fused_and_exact():
    W, B = [0.5, -1.25, 0.75, 2.0], 0.1
    rows = [[0.3, -0.2, 1.5, 0.0], [-1.0, 2.0, 0.25, -0.5], [0.0, 0.0, 0.0, 0.0]]
    ws, b = [Value(w) for w in W], Value(B)
    xs = [Value(0.0) for _ in W]
    tape = Tape(neuron(ws, b, xs), xs)
    assert tape.ops.count("lin") == 1
    assert tape.num_nodes == 4 + 1 + 4 + 1 + 1          # leaves, lin, tanh: the adds and muls are gone
    outs = tape.forward(rows)
    tape.backward()
    gsum = [0.0] * (len(W) + 1)
    for out, row in zip(outs, rows):
        ews, eb = [Value(w) for w in W], Value(B)
        ref = neuron(ews, eb, [Value(x) for x in row])
        assert bits(out) == bits(ref.data)
        ref.backward()
        gsum = [g + q.grad for g, q in zip(gsum, ews + [eb])]
        # by hand: d/dw_j = x_j (1 - tanh^2), d/db = 1 - tanh^2
        t = math.tanh(B + sum(w * x for w, x in zip(W, row)))
        assert ref.data == pytest.approx(t, rel=1e-15)
    for p, g in zip(ws + [b], gsum):
        assert p.grad == pytest.approx(g, rel=1e-12)


def test_chain_single_row_bitwise():
    W, B = [0.5, -1.25, 0.75], -0.3
    for row in ([0.3, -0.2, 1.5], [2.0, 0.0, -0.0], [1e-300, -7.0, 3.0]):
        ws, b, xs = [Value(w) for w in W], Value(B), [Value(0.0) for _ in W]
        tape = Tape(neuron(ws, b, xs), xs)
        out = tape.forward([row])
        tape.backward()
        ews, eb = [Value(w) for w in W], Value(B)
        ref = neuron(ews, eb, [Value(x) for x in row])
        ref.backward()
        assert same_bits(out, [ref.data])
        assert same_bits([p.grad for p in ws + [b]], [q.grad for q in ews + [eb]])


def test_chain_with_fixed_terms_and_shared_nodes():
    # terms that do not vary (w * w), a term reusing an input twice (x * x),
    # and a reused partial sum that must not be fused away
    def f(w, v, x):
        acc = v + w * x
        acc = acc + w * w
        acc = acc + x * x
        part = acc
        acc = acc + v * x
        return (acc + part * 0.5).sigmoid()
    for rows in ([[0.7]], [[0.7], [-1.5], [0.0], [2.0], [0.25]]):
        w, v, x = Value(0.4), Value(-0.9), Value(0.0)
        tape = Tape(f(w, v, x), [x])
        assert "lin" in tape.ops
        outs = tape.forward(rows)
        tape.backward()
        gw = gv = 0.0
        for out, (xv,) in zip(outs, rows):
            ew, ev = Value(0.4), Value(-0.9)
            ref = f(ew, ev, Value(xv))
            ref.backward()
            assert bits(out) == bits(ref.data)
            gw += ew.grad
            gv += ev.grad
        if len(rows) == 1:
            assert same_bits([w.grad, v.grad], [gw, gv])
        else:
            assert w.grad == pytest.approx(gw, rel=1e-12)
            assert v.grad == pytest.approx(gv, rel=1e-12)


@needs_c
def test_chain_same_bits_in_both_backends():
    W = [0.5, -1.25, 0.75, 2.0, -0.125]
    rows = [[math.sin(r + j) for j in range(len(W))] for r in range(11)]
    ws, b, xs = [Value(w) for w in W], Value(0.2), [Value(0.0) for _ in W]
    tape = Tape(neuron(ws, b, xs) + 1e-3 * ws[0] * ws[0], xs)
    res = []
    for be in ("python", "c"):
        with microbp.use_backend(be):
            for p in ws + [b]:
                p.grad = 0.0
            outs = tape.forward(rows)
            tape.backward()
            res.append(outs + [p.grad for p in ws + [b]])
    assert same_bits(res[0], res[1])


# ---------------------------------------------------------------------------
# errors

def test_output_must_be_value():
    with pytest.raises(TypeError, match="output"):
        Tape(1.0, [])
    with pytest.raises(TypeError):
        Tape((Value(1.0), "loss"), [])


def test_inputs_errors():
    x, w = Value(0.0), Value(1.0)
    y = x * w
    with pytest.raises(TypeError):
        Tape(y, x)                         # a single Value, not a list
    with pytest.raises(TypeError):
        Tape(y, None)
    with pytest.raises(TypeError, match=r"inputs\[1\]"):
        Tape(y, [x, 2.0])
    with pytest.raises(ValueError, match=r"inputs\[0\].*leaf"):
        Tape(y, [x * 2.0])
    with pytest.raises(ValueError, match="repeat"):
        Tape(y, [x, x])
    # failed constructors bind nothing
    assert type(w) is Value and type(x) is Value
    assert (w.data, w.grad) == (1.0, 0.0)


@pytest.fixture
def tape3():
    tape, _ = make_tape()
    return tape


def test_forward_wrong_row_length(tape3):
    with pytest.raises(ValueError, match=r"2 entries.*expected 3"):
        tape3.forward([[1.0, 2.0]])
    with pytest.raises(ValueError, match=r"row 1 has 4 entries.*expected 3"):
        tape3.forward([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0, 4.0]])
    with pytest.raises(ValueError, match=r"2.*3"):
        tape3.forward(Batch([[1.0, 2.0]]))


def test_forward_non_numeric_entries(tape3):
    for bad in ("1.0", None, 1j, [1.0], Value(1.0)):
        with pytest.raises(TypeError, match=r"row 1 entry 2"):
            tape3.forward([[1.0, 2.0, 3.0], [1.0, 2.0, bad]])


def test_forward_empty_and_non_list_batches(tape3):
    with pytest.raises(ValueError, match="empty"):
        tape3.forward([])
    for bad in (None, 5, "abc", {1: 2}, iter([[1.0, 2.0, 3.0]]), (x for x in [])):
        with pytest.raises(TypeError):
            tape3.forward(bad)
    with pytest.raises(TypeError, match="row 0"):
        tape3.forward([1.0, 2.0, 3.0])        # a flat row instead of a list of rows


def test_forward_huge_int_entry(tape3):
    with pytest.raises((TypeError, ValueError), match=r"row 0 entry 1"):
        tape3.forward([[1.0, 10 ** 400, 0.0]])


def test_bad_batch_leaves_tape_usable(tape3):
    good = tape3.forward(ROWS[:2])
    with pytest.raises(TypeError):
        tape3.forward([[1.0, "x", 2.0]])
    assert tape3.forward(ROWS[:2]) == good


def test_backward_before_forward():
    tape, params = make_tape()
    with pytest.raises(RuntimeError, match="forward"):
        tape.backward()
    assert [p.grad for p in params] == [0.0, 0.0, 0.0]


def test_batch_reuse():
    tape, params = make_tape()
    batch = Batch(ROWS)
    assert (batch.nrows, batch.width) == (len(ROWS), 3)
    assert batch.to_list() == ROWS
    first = tape.forward(batch)
    assert first == tape.forward(ROWS)
    tape.backward()
    g1 = [p.grad for p in params]
    for p in params:
        p.grad = 0.0
    assert tape.forward(batch) == first          # the batch is unchanged by use
    tape.backward()
    assert [p.grad for p in params] == g1
    assert batch.to_list() == ROWS
    # another tape of the same width takes the same batch
    tape2, _ = make_tape((1.0, 1.0, 1.0))
    assert tape2.forward(batch) == [eager_row((1.0, 1.0, 1.0), r)[0] for r in ROWS]
    # a copy, and tuples
    assert Batch(batch).to_list() == ROWS
    assert Batch(tuple(tuple(r) for r in ROWS)).to_list() == ROWS
    # wrong width for this tape
    with pytest.raises(ValueError, match=r"2.*3"):
        tape.forward(Batch([[1.0, 2.0]]))


def test_batch_errors():
    with pytest.raises(ValueError, match="empty"):
        Batch([])
    with pytest.raises(TypeError):
        Batch("abc")
    with pytest.raises(TypeError):
        Batch(None)
    with pytest.raises(ValueError, match=r"row 1 has 1 entries, expected 2"):
        Batch([[1.0, 2.0], [1.0]])
    with pytest.raises(TypeError, match="row 0 entry 1"):
        Batch([[1.0, "a"]])
    with pytest.raises(TypeError, match="row 1"):
        Batch([[1.0], 2.0])


# ---------------------------------------------------------------------------
# malformed tapes: the executors reject them with TapeError and write nothing

EXECUTORS = [pytest.param("python", id="python"),
             pytest.param("c", id="c", marks=needs_c)]


def executor(name):
    return executors.executor(name)


def base_tape(nr=3):
    """x (input), w (param), -w, x * -w, tanh, const 0.5, add: 7 nodes."""
    op = [LEAF, LEAF, NEG, MUL, TANH, CONST, ADD]
    a = [-1, -1, 1, 0, 3, -1, 4]
    b = [-1, -1, -1, 2, -1, -1, 5]
    vary = [1, 0, 0, 1, 1, 0, 1]
    return dict(op=op, a=a, b=b, vary=vary, nr=nr, ext=[])


def base_lin_tape(nr=3):
    """x (input), w1, w2, c (params), lin = c + w1*x + w2*w2, tanh: 6 nodes,
    ext = [2, (1, 0), (2, 2)]; x lanes 0.25 0.5 0.75, w1 1.0, w2 1.25, c 1.5."""
    op = [LEAF, LEAF, LEAF, LEAF, LIN, TANH]
    a = [-1, -1, -1, -1, 3, 4]
    b = [-1, -1, -1, -1, 0, -1]
    vary = [1, 0, 0, 0, 1, 1]
    return dict(op=op, a=a, b=b, vary=vary, nr=nr, ext=[2, 1, 0, 2, 2])


def pack(t):
    """array form of tape dict t (offsets from the layout unless t has 'off')."""
    off = t.get("off")
    if off is None:
        off, total = pyexec.layout([min(v, 1) for v in t["vary"]], max(t["nr"], 1))
    else:
        total = sum(max(t["nr"], 1) if v else 1 for v in t["vary"])
    nval = t.get("nval", total)
    val = array("d", [0.25 * (k + 1) for k in range(nval)])
    adj = array("d", [-7.0 - k for k in range(t.get("nadj", nval))])
    return dict(op=array("i", t["op"]), a=array("i", t["a"]), b=array("i", t["b"]),
                vary=bytearray(t["vary"]), off=array("q", off), nr=t["nr"], val=val, adj=adj,
                ext=array("i", t.get("ext", [])))


def run_forward(ex, p):
    ex.forward(p["val"], p["op"], p["a"], p["b"], p["vary"], p["off"], p["nr"],
               p.get("ext", array("i")))


def run_backward(ex, p):
    ex.backward(p["adj"], p["val"], p["op"], p["a"], p["b"], p["vary"], p["off"], p["nr"],
                p.get("ext", array("i")))


def _set(key, i, v):
    def f(t):
        t[key][i] = v
    return f


def _relayout(key, i, v):
    def f(t):
        t[key][i] = v
        t["off"], _ = pyexec.layout([min(x, 1) for x in t["vary"]], t["nr"])
    return f


def _off(fn):
    def f(t):
        off, _ = pyexec.layout(t["vary"], t["nr"])
        t["off"] = fn(off)
    return f


def _attr(key, v):
    def f(t):
        t[key] = v
    return f


def _trunc(key, k=1):
    def f(t):
        t[key] = t[key][:-k]
    return f


MALFORMED = {
    "op-too-big": _set("op", 2, NUM_OPS),
    "op-negative": _set("op", 4, -1),
    "op-huge": _set("op", 6, 2 ** 31 - 1),
    "op-int-min": _set("op", 0, -2 ** 31),
    "a-self": _set("a", 3, 3),
    "a-later": _set("a", 4, 5),
    "a-missing": _set("a", 4, -1),
    "a-int-min": _set("a", 3, -2 ** 31),
    "a-int-max": _set("a", 2, 2 ** 31 - 1),
    "b-missing": _set("b", 3, -1),
    "b-later": _set("b", 6, 6),
    "b-far": _set("b", 6, 1000),
    "vary-2": _set("vary", 1, 2),
    "vary-255": _set("vary", 6, 255),
    "vary-fixed-from-varying": _relayout("vary", 4, 0),
    "vary-varying-from-fixed": _relayout("vary", 2, 1),
    "vary-root-fixed": _relayout("vary", 6, 0),
    "off-shifted": _off(lambda o: [x + 1 for x in o]),
    "off-zero": _off(lambda o: [0] * len(o)),
    "off-overlap": _off(lambda o: o[:4] + [o[3]] + o[5:]),
    "off-negative": _off(lambda o: [-1] + o[1:]),
    "off-gap": _off(lambda o: o[:6] + [o[6] + 1]),
    "val-too-short": _attr("nval", 14),           # the tape needs 15
    "val-empty": _attr("nval", 0),
    "len-a-short": _trunc("a"),
    "len-b-short": _trunc("b"),
    "len-op-short": _trunc("op"),
    "len-vary-long": lambda t: t.__setitem__("vary", t["vary"] + [0]),
    "len-off-short": _off(lambda o: o[:-1]),
    "nr-zero": _attr("nr", 0),
    "nr-negative": _attr("nr", -3),
    "nr-too-big": lambda t: (t.__setitem__("off", pyexec.layout(t["vary"], 3)[0]),
                             t.__setitem__("nval", 19), t.__setitem__("nr", 4)),
    "empty": lambda t: t.update(op=[], a=[], b=[], vary=[], off=[], nval=0),
}


MALFORMED_LIN = {
    "lin-ext-empty": _attr("ext", []),
    "lin-ext-start-past-end": _set("b", 4, 5),
    "lin-ext-start-negative": _set("b", 4, -1),
    "lin-k-zero": _set("ext", 0, 0),
    "lin-k-negative": _set("ext", 0, -1),
    "lin-k-too-big": _set("ext", 0, 3),
    "lin-k-huge": _set("ext", 0, 2 ** 31 - 1),
    "lin-ext-truncated": _trunc("ext"),
    "lin-term-self": _set("ext", 1, 4),
    "lin-term-later": _set("ext", 4, 5),
    "lin-term-negative": _set("ext", 2, -1),
    "lin-term-int-min": _set("ext", 3, -2 ** 31),
    "lin-base-self": _set("a", 4, 4),
    "lin-base-missing": _set("a", 4, -1),
    "lin-fixed-from-varying-term": _relayout("vary", 4, 0),
    "lin-varying-from-fixed": lambda t: (t["ext"].__setitem__(2, 3), _relayout("vary", 4, 1)(t),
                                         _relayout("vary", 5, 1)(t), _relayout("vary", 0, 0)(t)),
}
MALFORMED.update(MALFORMED_LIN)


def malformed(name):
    t = base_lin_tape() if name.startswith("lin-") else base_tape()
    MALFORMED[name](t)
    return pack(t)


def test_base_tape_is_valid():
    for name in ["python"] + (["c"] if HAVE_C else []):
        ex = executor(name)
        p = pack(base_tape())
        run_forward(ex, p)
        run_backward(ex, p)
        # x lanes 0.25, 0.5, 0.75 and w = 1.0 (val[k] = 0.25 (k + 1)), the
        # constant is val[11] = 3.0: out = tanh(x * -w) + 3.0 per lane
        assert len(p["val"]) == 15 and p["off"].tolist() == [0, 3, 4, 5, 8, 11, 12]
        assert p["val"][12:15].tolist() == [math.tanh(x * -1.0) + 3.0 for x in (0.25, 0.5, 0.75)]
        # d/dw sum_r (tanh(-w x_r) + c) = sum_r -x_r (1 - tanh^2)
        gw = p["adj"][p["off"][1]]
        assert gw == pytest.approx(sum(-x * (1 - math.tanh(-x) ** 2) for x in (0.25, 0.5, 0.75)),
                                   rel=1e-12)


def test_base_lin_tape_is_valid():
    # lin = c + w1 * x + w2 * w2, out = tanh(lin), per lane x = 0.25, 0.5, 0.75
    x, w1, w2, c = (0.25, 0.5, 0.75), 1.0, 1.25, 1.5
    for name in ["python"] + (["c"] if HAVE_C else []):
        ex = executor(name)
        p = pack(base_lin_tape())
        assert p["val"][:6].tolist() == [0.25, 0.5, 0.75, w1, w2, c]
        run_forward(ex, p)
        lin = [c + w1 * xr + w2 * w2 for xr in x]
        assert p["val"][6:9].tolist() == lin
        assert p["val"][9:12].tolist() == [math.tanh(v) for v in lin]
        run_backward(ex, p)
        g = [1.0 - math.tanh(v) ** 2 for v in lin]
        assert p["adj"][3] == pytest.approx(sum(gr * xr for gr, xr in zip(g, x)), rel=1e-14)
        assert p["adj"][4] == pytest.approx(2 * w2 * sum(g), rel=1e-14)
        assert p["adj"][5] == pytest.approx(sum(g), rel=1e-14)
        assert p["adj"][0:3].tolist() == pytest.approx([gr * w1 for gr in g], rel=1e-14)


@pytest.mark.parametrize("name", sorted(MALFORMED))
@pytest.mark.parametrize("be", EXECUTORS)
def test_malformed_forward_rejected(be, name):
    ex = executor(be)
    p = malformed(name)
    before = p["val"].tobytes()
    with pytest.raises(TapeError):
        run_forward(ex, p)
    assert p["val"].tobytes() == before


@pytest.mark.parametrize("name", sorted(MALFORMED) + ["adj-too-short", "adj-empty",
                                                     "adj-too-short-lin"])
@pytest.mark.parametrize("be", EXECUTORS)
def test_malformed_backward_rejected(be, name):
    ex = executor(be)
    if name.startswith("adj-"):
        t = base_lin_tape() if name.endswith("lin") else base_tape()
        t["nadj"] = {"adj-too-short": 14, "adj-empty": 0, "adj-too-short-lin": 11}[name]
        p = pack(t)
    else:
        p = malformed(name)
    before_adj, before_val = p["adj"].tobytes(), p["val"].tobytes()
    with pytest.raises(TapeError):
        run_backward(ex, p)
    assert p["adj"].tobytes() == before_adj
    assert p["val"].tobytes() == before_val


def test_tape_error_is_value_error():
    assert issubclass(TapeError, ValueError)
    assert microbp.TapeError is pyexec.TapeError
    if HAVE_C:
        assert cexec.TapeError is TapeError


# -- data movement and optimizer kernels with bad nodes / slots / sizes ------

def _k_gather(nodes, slots, off=(0, 1, 2), nval=3, nsrc=2):
    def run(ex):
        val = array("d", [1.0, 2.0, 3.0] + [4.0] * (nval - 3))[:nval]
        src = array("d", [10.0, 20.0, 30.0][:nsrc])
        ex.gather(val, array("q", off), array("i", nodes), array("i", slots), src)
        return val, src
    return run


def _k_scatter(nodes, slots, off=(0, 1, 2), nadj=3, ndst=2):
    def run(ex):
        dst = array("d", [1.0, 2.0, 3.0][:ndst])
        adj = array("d", [0.5, 0.25, 0.125, 1.0][:nadj])
        ex.scatter_add(dst, adj, array("q", off), array("i", nodes), array("i", slots))
        return dst, adj
    return run


def _k_load(nodes, nrows, nr, off=(0, 2, 4), nval=6):
    def run(ex):
        val = array("d", [float(k) for k in range(nval)])
        rows = array("d", [100.0 + k for k in range(nrows)])
        ex.load_rows(val, array("q", off), array("i", nodes), rows, nr)
        return val, rows
    return run


def _k_sgd(slots, ndata=3, ngrad=3):
    def run(ex):
        data = array("d", [1.0, 2.0, 3.0][:ndata])
        grad = array("d", [0.5, 0.5, 0.5][:ngrad])
        ex.sgd(data, grad, array("i", slots), 0.1)
        return data, grad
    return run


def _k_momentum(slots, nvel=None, ndata=3):
    def run(ex):
        data = array("d", [1.0, 2.0, 3.0][:ndata])
        grad = array("d", [0.5, 0.5, 0.5])
        vel = array("d", [0.0] * (len(slots) if nvel is None else nvel))
        ex.momentum(data, vel, grad, array("i", slots), 0.1, 0.9)
        return data, vel, grad
    return run


def _k_adam(slots, nm=None, nv=None):
    def run(ex):
        data = array("d", [1.0, 2.0, 3.0])
        grad = array("d", [0.5, 0.5, 0.5])
        m = array("d", [0.0] * (len(slots) if nm is None else nm))
        v = array("d", [0.0] * (len(slots) if nv is None else nv))
        ex.adam(data, m, v, grad, array("i", slots), 0.1, 0.9, 0.999, 1e-8, 0.1, 0.001)
        return data, m, v, grad
    return run


def _k_fill(slots, ndst=3):
    def run(ex):
        dst = array("d", [1.0, 2.0, 3.0][:ndst])
        ex.fill(dst, array("i", slots), 0.0)
        return (dst,)
    return run


KERNEL_BAD = {
    "gather-node-oob": _k_gather([3], [0]),
    "gather-node-negative": _k_gather([-1], [0]),
    "gather-slot-oob": _k_gather([0], [2]),
    "gather-slot-negative": _k_gather([0], [-1]),
    "gather-off-outside-val": _k_gather([2], [0], off=(0, 1, 3)),
    "gather-off-negative": _k_gather([1], [0], off=(0, -1, 2)),
    "gather-len-mismatch": _k_gather([0, 1], [0]),
    "scatter-node-oob": _k_scatter([5], [0]),
    "scatter-node-negative": _k_scatter([-2], [0]),
    "scatter-slot-oob": _k_scatter([0], [2]),
    "scatter-slot-negative": _k_scatter([0], [-1]),
    "scatter-off-outside-adj": _k_scatter([2], [1], off=(0, 1, 9)),
    "scatter-len-mismatch": _k_scatter([0], [0, 1]),
    "load-nr-zero": _k_load([0], 2, 0),
    "load-nr-negative": _k_load([0], 2, -1),
    "load-rows-too-short": _k_load([0, 1], 3, 2),
    "load-node-oob": _k_load([3], 2, 2),
    "load-node-negative": _k_load([-1], 2, 2),
    "load-lanes-past-end": _k_load([2], 3, 3),
    "load-off-negative": _k_load([0], 2, 2, off=(-1, 2, 4)),
    "sgd-slot-oob": _k_sgd([0, 3]),
    "sgd-slot-negative": _k_sgd([-1]),
    "sgd-grad-short": _k_sgd([2], ngrad=2),
    "momentum-slot-oob": _k_momentum([1, 7]),
    "momentum-slot-negative": _k_momentum([-3]),
    "momentum-vel-short": _k_momentum([0, 1], nvel=1),
    "adam-slot-oob": _k_adam([3]),
    "adam-slot-negative": _k_adam([0, -1]),
    "adam-m-short": _k_adam([0, 1], nm=1),
    "adam-v-short": _k_adam([0, 1], nv=0),
    "fill-slot-oob": _k_fill([3]),
    "fill-slot-negative": _k_fill([-1]),
    "fill-slot-int-min": _k_fill([-2 ** 31]),
}

@pytest.mark.parametrize("name", sorted(KERNEL_BAD))
@pytest.mark.parametrize("be", EXECUTORS)
def test_kernel_bad_arguments_rejected(be, name):
    ex = executor(be)
    seen = {}

    class Spy:
        """The executor, remembering the bytes of the arrays it was called with."""
        def __getattr__(self, attr):
            fn = getattr(ex, attr)

            def wrapped(*args):
                seen["args"] = args
                seen["before"] = [bytes(x) if isinstance(x, (array, bytearray)) else x
                                  for x in args]
                return fn(*args)
            return wrapped

    with pytest.raises(TapeError):
        KERNEL_BAD[name](Spy())
    # a rejected call writes nothing (and does not resize anything)
    after = [bytes(x) if isinstance(x, (array, bytearray)) else x for x in seen["args"]]
    assert after == seen["before"]


def test_kernels_valid_calls_agree_with_formulas():
    for name in ["python"] + (["c"] if HAVE_C else []):
        ex = executor(name)
        val = array("d", [0.0] * 6)
        off = array("q", [0, 2, 4])
        ex.gather(val, off, array("i", [2, 0]), array("i", [1, 0]), array("d", [5.0, 6.0]))
        assert val.tolist() == [5.0, 0.0, 0.0, 0.0, 6.0, 0.0]
        ex.load_rows(val, off, array("i", [1, 0]), array("d", [1.0, 2.0, 3.0, 4.0]), 2)
        assert val.tolist() == [2.0, 4.0, 1.0, 3.0, 6.0, 0.0]
        dst = array("d", [1.0, 1.0])
        ex.scatter_add(dst, val, off, array("i", [0, 1, 2]), array("i", [1, 0, 1]))
        assert dst.tolist() == [2.0, 9.0]
        data, grad = array("d", [1.0, 2.0]), array("d", [0.5, -1.0])
        ex.sgd(data, grad, array("i", [1]), 0.5)
        assert data.tolist() == [1.0, 2.5]
        vel = array("d", [0.25])
        ex.momentum(data, vel, grad, array("i", [0]), 0.1, 0.5)
        assert vel.tolist() == [0.5 * 0.25 - 0.1 * 0.5] and data[0] == 1.0 + vel[0]
        ex.fill(grad, array("i", [0, 1]), 0.0)
        assert grad.tolist() == [0.0, 0.0]


@pytest.mark.parametrize("be", EXECUTORS)
def test_load_rows_zero_columns_is_noop(be):
    # regression: C's size check `nr > nrows / (k ? k : 1)` rejected k = 0, nrows = 0
    ex = executor(be)
    val = array("d", [1.0, 2.0, 3.0])
    ex.load_rows(val, array("q", [0, 1, 2]), array("i", []), array("d", []), 2)
    assert val.tolist() == [1.0, 2.0, 3.0]


@pytest.mark.parametrize("be", EXECUTORS)
def test_load_rows_longer_rows_uses_the_first_rows(be):
    # rows may hold more than nr rows (C: nrows >= nr * k): the first nr are loaded
    ex = executor(be)
    val = array("d", [0.0, 0.0, 0.0])
    ex.load_rows(val, array("q", [0, 2, 3]), array("i", [0]), array("d", [7.0, 8.0, 9.0]), 2)
    assert val.tolist() == [7.0, 8.0, 0.0]


_IDX = st.one_of(st.integers(-3, 7), st.sampled_from([-2 ** 31, 2 ** 31 - 1]))
_SIZE = st.integers(0, 5)


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.sampled_from(["gather", "scatter_add", "load_rows", "sgd", "momentum", "adam", "fill"]),
       st.data())
def test_c_kernels_never_crash_and_python_agrees(kernel, data):
    d = data.draw
    dbl = lambda n: array("d", d(st.lists(st.floats(-4, 4), min_size=n, max_size=n)))
    idx = lambda n: array("i", d(st.lists(_IDX, min_size=n, max_size=n)))
    k = d(_SIZE)
    if kernel in ("gather", "scatter_add", "load_rows"):
        off = array("q", d(st.lists(st.one_of(st.integers(-2, 8), st.sampled_from(
            [-2 ** 63, 2 ** 63 - 1])), min_size=d(_SIZE), max_size=5)))
    if kernel == "gather":
        args = [dbl(d(_SIZE)), off, idx(k), idx(d(st.sampled_from([k, k, k + 1]))), dbl(d(_SIZE))]
        outs = [0]
    elif kernel == "scatter_add":
        args = [dbl(d(_SIZE)), dbl(d(_SIZE)), off, idx(k), idx(d(st.sampled_from([k, k, k - 1])) if k else 0)]
        outs = [0]
    elif kernel == "load_rows":
        nr = d(st.one_of(st.integers(-2, 4), st.sampled_from([2 ** 62, -2 ** 62])))
        nrows = d(st.one_of(st.just(max(nr, 0) * k) if abs(nr) < 100 else st.just(0), _SIZE))
        args = [dbl(d(st.integers(0, 9))), off, idx(k), dbl(nrows), nr]
        outs = [0]
    elif kernel == "sgd":
        args = [dbl(d(_SIZE)), dbl(d(_SIZE)), idx(k), 0.5]
        outs = [0]
    elif kernel == "momentum":
        args = [dbl(d(_SIZE)), dbl(d(_SIZE)), dbl(d(_SIZE)), idx(k), 0.5, 0.9]
        outs = [0, 1]
    elif kernel == "adam":
        # any state, also v < 0 (outside Adam's domain), and bias corrections of 0
        bc1, bc2 = d(st.sampled_from([0.1, 0.0, 1.0])), d(st.sampled_from([0.001, 0.0]))
        args = [dbl(d(_SIZE)), dbl(d(_SIZE)), dbl(d(_SIZE)), dbl(d(_SIZE)), idx(k),
                0.1, 0.9, 0.999, 1e-8, bc1, bc2]
        outs = [0, 1, 2]
    else:
        args = [dbl(d(_SIZE)), idx(k), 0.0]
        outs = [0]
    copy = lambda xs: [array(x.typecode, x) if isinstance(x, array) else x for x in xs]
    c_args, py_args = copy(args), copy(args)
    try:
        getattr(cexec, kernel)(*c_args)
        ok = True
    except TapeError:
        ok = False
    try:
        getattr(executors.PY, kernel)(*py_args)
        py_ok = True
    except TapeError:
        py_ok = False
    assert ok == py_ok                     # the same calls are rejected
    if not ok:
        for j in outs:
            assert c_args[j].tobytes() == args[j].tobytes() == py_args[j].tobytes()
        return
    for j in outs:                         # the same doubles (NaN: any sign, payload)
        assert len(c_args[j]) == len(py_args[j])
        assert all(bits(x) == bits(y) or (x != x and y != y)
                   for x, y in zip(c_args[j], py_args[j]))


# -- C and Python reject the same malformed tapes ---------------------------

@st.composite
def random_tapes(draw):
    """Arrays near a valid tape: a random valid tape, then 0..3 random edits."""
    n = draw(st.integers(1, 7))
    op, a, b, vary, ext = [], [], [], [], []
    for i in range(n):
        o = draw(st.integers(0, NUM_OPS - 1)) if i else draw(st.sampled_from([LEAF, CONST]))
        k = microbp.ops.ARITY[o]
        ai = draw(st.integers(0, i - 1)) if k >= 1 else -1
        bi = draw(st.integers(0, i - 1)) if k == 2 else -1
        v = draw(st.integers(0, 1)) if k == 0 else vary[ai] | (vary[bi] if k == 2 else 0)
        if o == LIN:                          # a term list in ext
            terms = draw(st.lists(st.integers(0, i - 1), min_size=2, max_size=6).filter(
                lambda xs: len(xs) % 2 == 0))
            bi = len(ext)
            ext += [len(terms) // 2] + terms
            v = v | max(vary[p] for p in terms)
        op.append(o)
        a.append(ai)
        b.append(bi)
        vary.append(v)
    nr = draw(st.integers(1, 5))
    off, total = pyexec.layout(vary, nr)
    t = dict(op=op, a=a, b=b, vary=vary, off=list(off), nr=nr, nval=total, nadj=total, ext=ext)
    for _ in range(draw(st.integers(0, 3))):
        key = draw(st.sampled_from(["op", "a", "b", "vary", "off", "nr", "nval", "nadj", "len",
                                    "ext"]))
        if key in ("nr", "nval", "nadj"):
            t[key] = draw(st.integers(-2, 40))
        elif key == "len":
            which = draw(st.sampled_from(["op", "a", "b", "vary", "off"]))
            t[which] = t[which][:-1] if draw(st.booleans()) else t[which] + [0]
        elif t[key]:
            i = draw(st.integers(0, len(t[key]) - 1))
            lo, hi = {"op": (-2, NUM_OPS + 1), "a": (-3, 9), "b": (-3, 9),
                      "vary": (0, 3), "off": (-2, 40), "ext": (-3, 9)}[key]
            t[key][i] = draw(st.integers(lo, hi))
    vals = draw(st.lists(st.floats(-3, 3), min_size=max(t["nval"], 0),
                         max_size=max(t["nval"], 0)))
    return t, vals


def _pack_random(t, vals):
    return dict(op=array("i", t["op"]), a=array("i", t["a"]), b=array("i", t["b"]),
                vary=bytearray(t["vary"]), off=array("q", t["off"]), nr=t["nr"],
                val=array("d", vals), adj=array("d", [9.0] * max(t["nadj"], 0)),
                ext=array("i", t["ext"]))


def _outcome(fn):
    try:
        fn()
        return "ok"
    except TapeError:
        return "TapeError"


def _same_or_both_nan(xs, ys):
    return len(xs) == len(ys) and all(
        bits(x) == bits(y) or (x != x and y != y) for x, y in zip(xs, ys))


@needs_c
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(random_tapes())
def test_c_and_python_reject_the_same_tapes(tv):
    t, vals = tv
    py, c = _pack_random(t, vals), _pack_random(t, vals)
    before_val, before_adj = py["val"].tobytes(), py["adj"].tobytes()
    rp = _outcome(lambda: run_forward(pyexec, py))
    rc = _outcome(lambda: run_forward(cexec, c))
    assert rp == rc
    if rp == "ok":
        assert _same_or_both_nan(py["val"], c["val"])
    else:
        assert py["val"].tobytes() == c["val"].tobytes() == before_val
    rp = _outcome(lambda: run_backward(pyexec, py))
    rc = _outcome(lambda: run_backward(cexec, c))
    assert rp == rc
    if rp == "ok":
        # C clears only the adjoints the tape uses; compare those
        used = t["off"][-1] + (t["nr"] if t["vary"][-1] else 1)
        assert _same_or_both_nan(py["adj"][:used], c["adj"][:used])
    else:
        assert py["adj"].tobytes() == c["adj"].tobytes() == before_adj


@needs_c
@settings(max_examples=200, deadline=None)
@given(st.integers(0, 6), st.data())
def test_random_garbage_arrays_never_crash(n, data):
    ints = st.integers(-2 ** 31, 2 ** 31 - 1)
    small = st.integers(-2, 8)
    arr = lambda s: data.draw(st.lists(st.one_of(small, ints), min_size=n, max_size=n))
    op, a, b = arr("op"), arr("a"), arr("b")
    vary = data.draw(st.lists(st.integers(0, 255), min_size=n, max_size=n))
    off = data.draw(st.lists(st.one_of(st.integers(-2, 20), st.integers(-2 ** 63, 2 ** 63 - 1)),
                             min_size=n, max_size=n))
    # (nr near 2^63 goes straight to C in test_c_layout_overflow_is_rejected)
    nr = data.draw(st.one_of(st.integers(-3, 6), st.integers(-2 ** 63, 2 ** 63 - 1)))
    nval = data.draw(st.integers(0, 20))
    ext = data.draw(st.lists(st.one_of(small, ints), max_size=9))
    outs = []
    for ex in (pyexec, cexec):
        p = dict(op=array("i", op), a=array("i", a), b=array("i", b), vary=bytearray(vary),
                 off=array("q", off), nr=nr, val=array("d", [1.5] * nval),
                 adj=array("d", [2.5] * nval), ext=array("i", ext))
        outs.append((_outcome(lambda: run_forward(ex, p)), _outcome(lambda: run_backward(ex, p))))
    assert outs[0] == outs[1]


_OVERFLOW_SCRIPT = r"""
import sys
from array import array
from microbp._cmicrobp import ffi, lib
from microbp.ops import NEG
which = sys.argv[1]
nr = 2 ** 63 - 1           # straight to C: cexec itself now refuses nr >= 2^62
if which == "forward":
    # x (fixed leaf), y (varying leaf), -y: the layout sum 1 + nr wraps to -2^63
    op, a, b, vary, off = [0, 0, NEG], [-1, -1, 1], [-1, -1, -1], [0, 1, 1], [0, 1, -2 ** 63]
else:
    op, a, b, vary, off = [0, 0], [-1, -1], [-1, -1], [0, 1], [0, 1]
val, adj, ext = array("d", [1.0, 2.0, 3.0]), array("d", [0.0, 0.0, 0.0]), array("i")
buf = ffi.from_buffer
prog = ffi.new("struct mbp_program **")
code = lib.mbp_program_new(prog, 3, buf("int32_t[]", array("i", op)), buf("int32_t[]", array("i", a)),
                           buf("int32_t[]", array("i", b)), buf("uint8_t[]", bytearray(vary)),
                           buf("int64_t[]", array("q", off)), len(op), nr, buf("int32_t[]", ext), 0,
                           ffi.NULL, 0, ffi.NULL, 0, ffi.NULL, ffi.NULL, 0)
if code == 0:               # sealed (it must not be): run it
    if which == "forward":
        code = lib.mbp_forward(buf("double[]", val), 3, prog[0], ffi.NULL, 0, ffi.NULL, 0)
    else:
        code = lib.mbp_backward(buf("double[]", adj), buf("double[]", val), 3, prog[0], ffi.NULL, 0)
elif prog[0] != ffi.NULL:
    code = 0                # a failed seal must leave no program
print("rejected" if code < 0 else "accepted", val.tolist(), adj.tolist())
"""


@needs_c
@pytest.mark.parametrize("which", ["forward", "backward"])
def test_c_layout_overflow_is_rejected(which):
    # regression: check_tape's `end += nr` used to overflow int64 for nr near 2^63,
    # pass the size check, and mbp_forward / mbp_backward then died with SIGSEGV;
    # run in a subprocess so that a crash fails this test, not the whole run
    import os
    import subprocess
    import sys
    # the same tape in Python: rejected
    if which == "forward":
        p = dict(op=array("i", [0, 0, NEG]), a=array("i", [-1, -1, 1]), b=array("i", [-1] * 3),
                 vary=bytearray([0, 1, 1]), off=array("q", [0, 1, -2 ** 63]), nr=2 ** 63 - 1,
                 val=array("d", [1.0, 2.0, 3.0]), adj=array("d", [0.0] * 3))
        with pytest.raises(TapeError):
            run_forward(pyexec, p)
    root = os.path.dirname(os.path.dirname(os.path.abspath(microbp.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _OVERFLOW_SCRIPT, which], env=env, cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"C core crashed: return code {r.returncode} {r.stderr}"
    assert r.stdout.split()[0] == "rejected", r.stdout
    assert "[1.0, 2.0, 3.0] [0.0, 0.0, 0.0]" in r.stdout      # nothing written


@needs_c
@pytest.mark.parametrize("nr", [2 ** 63, -2 ** 63 - 1, 2 ** 62, 2 ** 63 - 1, 0, 1.0, "2"])
def test_row_count_out_of_range_or_not_int(nr):
    # regression: C used to raise cffi's OverflowError for a count outside int64
    args = (array("d", [1.0]), array("i", [LEAF]), array("i", [-1]), array("i", [-1]),
            bytearray(1), array("q", [0]), nr)
    with pytest.raises(TapeError):
        pyexec.forward(*args)
    with pytest.raises(TapeError):
        cexec.forward(*args)


# ---------------------------------------------------------------------------
# a long chain: no recursion anywhere, and the memory of a million nodes

def test_million_node_chain():
    n = 1_000_000
    x, w = Value(0.0), Value(0.5)
    y = x
    for _ in range(n - 2):
        y = y + w
    tape = Tape(y, [x])
    assert tape.num_nodes == n
    del y
    assert tape.forward([[1.0], [-2.0]]) == [1.0 + 0.5 * (n - 2), -2.0 + 0.5 * (n - 2)]
    tape.backward()
    assert w.grad == 2.0 * (n - 2)        # d/dw (x + (n-2) w), summed over 2 rows

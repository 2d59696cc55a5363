"""Sealed programs (executor.Program): a tape checked once per layout, then run
on buffers whose sizes alone are checked. Adversarial cases: hostile sizes
and pointers straight into the C core, buffers that move after a run, the
"failed call changes nothing" rule, the two backends accepting the same
programs, rows and parameters moved in and out bit for bit as the
per-call kernels (gather, load_rows, scatter_add) move them, and one tape
shared by threads in different backends. `make sanitize` runs this file
under AddressSanitizer too (a subprocess case inherits the sanitizer)."""
import math
import os
import struct
import subprocess
import sys
import threading
import time
from array import array
from decimal import Decimal

import pytest

import microbp
from microbp import Batch, Tape, TapeError, Value, nn
from microbp.ops import ADD, LEAF, MUL, TANH

import executors

HAVE_C = "c" in microbp.available_backends()
BACKENDS = ["python", "c"] if HAVE_C else ["python"]
needs_c = pytest.mark.skipif(not HAVE_C, reason="the C core is not built")

# x (an input: one lane per row), w (a parameter: one value), x * w, tanh(x * w) + w
OP = [LEAF, LEAF, MUL, TANH, ADD]
A = [-1, -1, 0, 2, 3]
B = [-1, -1, 1, -1, 1]
VARY = bytes([1, 0, 1, 1, 1])


def layout(nr):
    """The offsets of the tape above for nr rows, and the doubles they need."""
    off, end = [], 0
    for v in VARY:
        off.append(end)
        end += nr if v else 1
    return array("q", off), end


def program(ex, nr, inputs=(0,), params=((1,), (2,))):
    """The tape above sealed for nr rows: rows fill node 0, the parameter node 1
    is slot 2 of its store."""
    off, nval = layout(nr)
    return ex.Program(array("i", OP), array("i", A), array("i", B), VARY, off, nr, nval,
                      inputs=array("i", inputs),
                      params=(array("i", params[0]), array("i", params[1]))), nval


def bits(xs):
    return [struct.pack("<d", x).hex() for x in xs]


# -- what a run moves in and out: the same bits as the per-call kernels -------

@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("nr", [1, 3, 8])
def test_rows_and_parameters_move_as_the_kernels_move_them(backend_name, nr):
    ex = executors.executor(backend_name)
    prog, nval = program(ex, nr)
    off, _ = layout(nr)
    rows = array("d", [(-1.0) ** r * (0.3 + r) for r in range(nr)])
    rows[0] = -0.0
    src = array("d", [9.0, 8.0, 0.75])
    # the sealed program: rows and parameters moved by forward, grads by backward
    val = array("d", [5.0] * nval)
    prog.forward(val, rows, src)
    adj, dst = array("d", [0.0] * nval), array("d", [0.25, 0.5, 1.0])
    prog.backward(adj, val, dst)
    # the per-call kernels, then the program with nothing to move
    val2 = array("d", [5.0] * nval)
    ex.load_rows(val2, off, array("i", [0]), rows, nr)
    ex.gather(val2, off, array("i", [1]), array("i", [2]), src)
    prog.forward(val2)
    adj2, dst2 = array("d", [0.0] * nval), array("d", [0.25, 0.5, 1.0])
    prog.backward(adj2, val2)
    ex.scatter_add(dst2, adj2, off, array("i", [1]), array("i", [2]))
    assert bits(val) == bits(val2)
    assert bits(adj) == bits(adj2)
    assert bits(dst) == bits(dst2)
    assert dst[:2].tolist() == [0.25, 0.5]          # only the parameter's slot moves
    # and what it computed: tanh(x w) + w per row, d/dw summed over the rows
    want = [math.tanh(x * 0.75) + 0.75 for x in rows]
    assert val[off[4]:off[4] + nr].tolist() == pytest.approx(want, rel=1e-15)
    dw = sum((1.0 - math.tanh(x * 0.75) ** 2) * x + 1.0 for x in rows)
    assert dst[2] == pytest.approx(1.0 + dw, rel=1e-14)


@needs_c
def test_both_backends_run_a_program_to_the_same_bits():
    outs = []
    for name in ("python", "c"):
        ex = executors.executor(name)
        prog, nval = program(ex, 5)
        rows = array("d", [0.5, -0.0, 3.0, -7.25, 1e-300])
        val, adj, dst = array("d", [0.0] * nval), array("d", [0.0] * nval), array("d", [0.0] * 3)
        prog.forward(val, rows, array("d", [0.0, 0.0, -1.5]))
        prog.backward(adj, val, dst)
        outs.append((bits(val), bits(adj), bits(dst)))
    assert outs[0] == outs[1]


# -- a failed call changes nothing ---------------------------------------------

_BAD_CALLS = {
    "val too short": lambda p, b: p.forward(b["short_val"], b["rows"], b["src"]),
    "rows too short": lambda p, b: p.forward(b["val"], b["short_rows"], b["src"]),
    "adj too short": lambda p, b: p.backward(b["short_adj"], b["val"], b["dst"]),
    "val too short for backward": lambda p, b: p.backward(b["adj"], b["short_val"], b["dst"]),
    "dst too short": lambda p, b: p.backward(b["adj"], b["val"], b["short_dst"]),
    "tan too short": lambda p, b: p.tangent(b["short_adj"], b["val"]),
}


@pytest.mark.parametrize("backend_name", BACKENDS)
@pytest.mark.parametrize("case", sorted(_BAD_CALLS))
def test_a_refused_run_changes_no_buffer(backend_name, case):
    ex = executors.executor(backend_name)
    prog, nval = program(ex, 3)
    bufs = dict(val=array("d", [k + 0.5 for k in range(nval)]),
                short_val=array("d", [k + 0.5 for k in range(nval - 1)]),
                adj=array("d", [-1.0] * nval), short_adj=array("d", [-2.0] * (nval - 1)),
                dst=array("d", [7.0] * 3), short_dst=array("d", [6.0] * 2),
                rows=array("d", [1.0, 2.0, 3.0]), short_rows=array("d", [1.0, 2.0]),
                src=array("d", [0.0, 0.0, 0.5]))
    before = {k: v.tolist() for k, v in bufs.items()}
    with pytest.raises(TapeError):
        _BAD_CALLS[case](prog, bufs)
    assert {k: v.tolist() for k, v in bufs.items()} == before


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_forward_with_a_short_store_loads_no_rows(backend_name):
    # regression (review): pyexec.Program.forward copied the rows into the input
    # lanes before it checked the store (src), so a refused forward had changed
    # val; both backends now check every size first and change nothing
    ex = executors.executor(backend_name)
    prog, nval = program(ex, 3)               # the parameter is slot 2: a store of 3
    val = array("d", [9.0] * nval)
    with pytest.raises(TapeError):
        prog.forward(val, array("d", [1.0, 2.0, 3.0]), array("d", [0.0, 0.0]))
    assert val.tolist() == [9.0] * nval


# -- the two backends accept and refuse the same programs ------------------------

@needs_c
@pytest.mark.parametrize("what, kw", [
    # regression (review): pyexec allowed slots < 2**31, C slots < INT32_MAX
    ("the largest int32 slot", dict(params=((1,), (2 ** 31 - 1,)))),
    # regression (review): C refuses more input or parameter nodes than tape
    # nodes (nin > nnodes, np > nnodes); pyexec sealed them
    ("more input nodes than nodes", dict(inputs=(0,) * 6)),
    ("more parameter nodes than nodes", dict(params=((1,) * 6, (0,) * 6))),
    ("a slot below 0", dict(params=((1,), (-1,)))),
    ("an input node that is no node", dict(inputs=(5,))),
    ("a parameter node that is no node", dict(params=((-1,), (0,)))),
])
def test_both_backends_seal_the_same_programs(what, kw):
    outcomes = []
    for name in ("python", "c"):
        try:
            program(executors.executor(name), 3, **kw)
            outcomes.append("sealed")
        except TapeError:
            outcomes.append("refused")
    assert outcomes[0] == outcomes[1], f"{what}: python {outcomes[0]}, c {outcomes[1]}"


# -- buffers that move after a run ------------------------------------------------

_MOVED_SCRIPT = r"""
import ctypes
import sys
from array import array
from microbp import cexec
from microbp.ops import LEAF, MUL
print(cexec.build_flags(), file=sys.stderr)
prog = cexec.Program(array("i", [LEAF, LEAF, MUL]), array("i", [-1, -1, 0]),
                     array("i", [-1, -1, 1]), bytes(3), array("q", [0, 1, 2]), 1, 3)
val = (ctypes.c_double * 3)(3.0, 4.0, 0.0)
prog.forward(val)
assert list(val) == [3.0, 4.0, 12.0], list(val)
ctypes.resize(val, 1 << 16)       # ctypes moves its memory (and frees the old block)
val[0] = 5.0
prog.forward(val)                 # must run on the buffer as it is now
print(list(val))
"""


@needs_c
def test_c_program_runs_on_a_buffer_where_it_is_now():
    # regression (review): cexec.Program kept the pointer it made for `val` and
    # reused it while the same object came back. An array.array cannot move
    # while cffi holds it, but a ctypes array can (ctypes.resize reallocates
    # it; numpy's ndarray.resize(refcheck=False) too): the next forward then
    # read and wrote the freed block (AddressSanitizer: heap-use-after-free in
    # forward_sweep). Pointers are now kept for array.array buffers only. Run in a subprocess so that a crash fails this test
    # only; PYTHONMALLOC=malloc hands the freed block back to malloc, where the
    # sanitizer sees it. It runs in the folder of the microbp imported here
    # (`python -c` puts its working folder first on sys.path: elsewhere, under
    # `make sanitize`, it would import the unsanitized build of the checkout).
    root = os.path.dirname(os.path.dirname(os.path.abspath(microbp.__file__)))
    env = dict(os.environ, PYTHONMALLOC="malloc",
               PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, "-c", _MOVED_SCRIPT], env=env, cwd=root,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, f"crashed: return code {r.returncode}\n{r.stderr[-3000:]}"
    assert r.stdout.split() == ["[5.0,", "4.0,", "20.0]"], r.stdout


@needs_c
def test_c_program_refuses_overlaps_whatever_the_buffer_types():
    # the _apart shortcut skips the address check for two distinct array.array
    # objects only; every other pairing is checked by address
    np = pytest.importorskip("numpy")
    ex = executors.executor("c")
    prog, nval = program(ex, 3)
    val = array("d", [0.0] * nval)
    adj = array("d", [0.0] * nval)
    prog.forward(val, array("d", [1.0, 2.0, 3.0]), array("d", [0.0, 0.0, 0.5]))
    aliases = [val, memoryview(val), memoryview(val)[1:], np.frombuffer(val),
               memoryview(val).cast("B")[8:]]
    for rows in aliases:
        with pytest.raises(TapeError):
            prog.forward(val, rows)
        with pytest.raises(TapeError):
            prog.forward(val, None, rows)
    for dst in aliases + [adj, memoryview(adj)]:
        with pytest.raises(TapeError):
            prog.backward(adj, val, dst)
    with pytest.raises(TapeError):
        prog.backward(val, val)
    with pytest.raises(TapeError):
        prog.backward(memoryview(val), val)

    class Doubles(array):
        pass
    sub = Doubles("d", [0.0] * nval)     # a subclass: checked by address, and apart
    prog.forward(sub, array("d", [1.0, 2.0, 3.0]), array("d", [0.0, 0.0, 0.5]))
    assert sub.tolist() == val.tolist()


# -- straight into the C core: hostile sizes and pointers -------------------------

def _c_tape():
    """The tape above for 2 rows as C arguments (ffi pointers to fresh bytes)."""
    from microbp._cmicrobp import ffi
    off, nval = layout(2)
    keep = [array("i", OP).tobytes(), array("i", A).tobytes(), array("i", B).tobytes(),
            VARY, off.tobytes()]
    ptrs = [ffi.from_buffer(t, k) for t, k in zip(
        ["int32_t[]", "int32_t[]", "int32_t[]", "uint8_t[]", "int64_t[]"], keep)]
    return ptrs, nval


@needs_c
@pytest.mark.parametrize("what, nval, nnodes, nrows, nterms, nlayers, nin, np_", [
    ("no nodes", 9, 0, 2, 0, 0, 0, 0),
    ("negative nodes", 9, -5, 2, 0, 0, 0, 0),
    ("nodes past INT32_MAX", 9, 2 ** 31, 2, 0, 0, 0, 0),
    ("no rows", 9, 5, 0, 0, 0, 0, 0),
    ("negative rows", 9, 5, -1, 0, 0, 0, 0),
    ("negative nval", -1, 5, 2, 0, 0, 0, 0),
    ("nval below the layout", 8, 5, 2, 0, 0, 0, 0),
    ("negative terms", 9, 5, 2, -1, 0, 0, 0),
    ("negative layers", 9, 5, 2, 0, -1, 0, 0),
    ("more layers than nodes", 9, 5, 2, 0, 6, 0, 0),
    ("negative inputs", 9, 5, 2, 0, 0, -1, 0),
    ("negative parameters", 9, 5, 2, 0, 0, 0, -1),
])
def test_c_refuses_hostile_sizes_and_leaves_no_program(what, nval, nnodes, nrows, nterms,
                                                       nlayers, nin, np_):
    from microbp._cmicrobp import ffi, lib
    (po, pa, pb, py, pf), _ = _c_tape()
    idx = ffi.new("int32_t[]", [0] * 8)
    out = ffi.new("struct mbp_program **")
    out[0] = ffi.cast("struct mbp_program *", 1)        # must be reset to NULL
    code = lib.mbp_program_new(out, nval, po, pa, pb, py, pf, nnodes, nrows, idx, nterms,
                               idx, nlayers, idx, nin, idx, idx, np_)
    assert code < 0, what
    assert out[0] == ffi.NULL, what


@needs_c
def test_c_runs_refuse_a_null_program_and_short_buffers():
    from microbp._cmicrobp import ffi, lib
    (po, pa, pb, py, pf), nval = _c_tape()
    ins, pn, ps = ffi.new("int32_t[]", [0]), ffi.new("int32_t[]", [1]), ffi.new("int32_t[]", [2])
    out = ffi.new("struct mbp_program **")
    assert lib.mbp_program_new(out, nval, po, pa, pb, py, pf, 5, 2, ffi.NULL, 0, ffi.NULL, 0,
                               ins, 1, pn, ps, 1) == 0
    prog = ffi.gc(out[0], lib.mbp_program_free)
    val = ffi.new("double[]", nval)
    adj = ffi.new("double[]", nval)
    rows, src = ffi.new("double[]", [1.0, 2.0]), ffi.new("double[]", [0.0, 0.0, 0.5])
    NULL = ffi.NULL
    assert lib.mbp_forward(val, nval, NULL, rows, 2, src, 3) == lib.MBP_ESIZE
    assert lib.mbp_backward(adj, val, nval, NULL, NULL, 0) == lib.MBP_ESIZE
    assert lib.mbp_tangent(adj, val, nval, NULL) == lib.MBP_ESIZE
    assert lib.mbp_forward(val, nval - 1, prog, rows, 2, src, 3) == lib.MBP_ESIZE
    assert lib.mbp_forward(val, nval, prog, rows, 1, src, 3) == lib.MBP_ESIZE
    assert lib.mbp_forward(val, nval, prog, rows, -2, src, 3) == lib.MBP_ESIZE
    assert lib.mbp_forward(val, nval, prog, rows, 2, src, 2) == lib.MBP_ESIZE
    assert lib.mbp_forward(val, nval, prog, rows, 2, src, -3) == lib.MBP_ESIZE
    assert lib.mbp_backward(adj, val, nval, prog, src, 2) == lib.MBP_ESIZE
    assert lib.mbp_backward(adj, val, -1, prog, NULL, 0) == lib.MBP_ESIZE
    assert list(val) == [0.0] * nval and list(adj) == [0.0] * nval     # nothing written
    assert lib.mbp_forward(val, nval, prog, rows, 2, src, 3) == 0
    assert list(val)[0:3] == [1.0, 2.0, 0.5]


@needs_c
def test_c_row_check_cannot_overflow():
    # nrows * nin would pass INT64_MAX (2^61 lanes, the input node listed 4
    # times): mbp_forward's check divides instead, and refuses 8 row values
    # before it touches val (given here as larger than it is: it must not matter)
    from microbp._cmicrobp import ffi, lib
    nr = 2 ** 61
    op, a, b = [LEAF, LEAF, LEAF, LEAF], [-1] * 4, [-1] * 4
    off = array("q", [0, nr, nr + 1, nr + 2]).tobytes()
    keep = [array("i", op).tobytes(), array("i", a).tobytes(), array("i", b).tobytes(),
            bytes([1, 0, 0, 0]), off]
    po, pa, pb, py, pf = (ffi.from_buffer(t, k) for t, k in zip(
        ["int32_t[]", "int32_t[]", "int32_t[]", "uint8_t[]", "int64_t[]"], keep))
    ins = ffi.new("int32_t[]", [0, 0, 0, 0])
    out = ffi.new("struct mbp_program **")
    assert lib.mbp_program_new(out, nr + 3, po, pa, pb, py, pf, 4, nr, ffi.NULL, 0, ffi.NULL, 0,
                               ins, 4, ffi.NULL, ffi.NULL, 0) == 0
    prog = ffi.gc(out[0], lib.mbp_program_free)
    val = ffi.new("double[]", 8)
    rows = ffi.new("double[]", 8)
    assert lib.mbp_forward(val, nr + 3, prog, rows, 8, ffi.NULL, 0) == lib.MBP_ESIZE
    assert list(val) == [0.0] * 8


@needs_c
def test_c_checks_its_copy_while_the_callers_arrays_change():
    # another thread scribbles on the arrays mbp_program_new reads (cffi lets go
    # of the GIL during the call): the program is refused, or it is the copy C
    # checked and runs without touching memory it was not given
    from microbp._cmicrobp import ffi, lib
    nr = 4
    off, nval = layout(nr)
    arrays = [array("i", OP), array("i", A), array("i", B), bytearray(VARY), array("q", off)]
    ptrs = [ffi.from_buffer(t, x, require_writable=True) for t, x in zip(
        ["int32_t[]", "int32_t[]", "int32_t[]", "uint8_t[]", "int64_t[]"], arrays)]
    good = [list(x) for x in arrays]
    bad = [[99] * 5, [4, 4, 4, 9, 9], [-7] * 5, [2, 3, 5, 9, 1], [2 ** 62, -1, 7, 3, 2 ** 40]]
    stop = threading.Event()

    def scribble():              # one entry made bad, then good again, entry after entry
        k = 0
        while not stop.is_set():
            k += 1
            m = (k - 1) // 2              # k = 2m + 1 breaks an entry, k = 2m + 2 mends it
            i, j = m % 5, (m // 5) % 5
            arrays[i][j] = bad[i][j] if k % 2 else good[i][j]

    t = threading.Thread(target=scribble)
    t.start()
    sealed = refused = 0
    try:
        for _ in range(300):
            out = ffi.new("struct mbp_program **")
            code = lib.mbp_program_new(out, nval, *ptrs, 5, nr, ffi.NULL, 0, ffi.NULL, 0,
                                       ffi.NULL, 0, ffi.NULL, ffi.NULL, 0)
            if code:
                assert out[0] == ffi.NULL
                refused += 1
                continue
            prog = ffi.gc(out[0], lib.mbp_program_free)
            val, adj = ffi.new("double[]", nval), ffi.new("double[]", nval)
            assert lib.mbp_forward(val, nval, prog, ffi.NULL, 0, ffi.NULL, 0) == 0
            assert lib.mbp_backward(adj, val, nval, prog, ffi.NULL, 0) == 0
            sealed += 1
            time.sleep(0)                 # let the scribbler run
    finally:
        stop.set()
        t.join()
    assert sealed + refused == 300


# -- tapes: backends switched between calls, threads -----------------------------

def _mlp_tape(seed=0):
    model = nn.MLP(3, [6, 6, 1], act="tanh", seed=seed)
    xs = [Value(0.0) for _ in range(4)]
    return Tape((model(xs[:3]) - xs[3]) ** 2, xs), model


ROWS = [[0.1 * r - 0.4, math.sin(r), -0.0 if r == 2 else 0.25 * r, 1.0 - 0.1 * r]
        for r in range(9)]


def _run(forward_backend, backward_backend, rows=ROWS):
    tape, model = _mlp_tape()
    with microbp.use_backend(forward_backend):
        out = tape.forward(rows)
    with microbp.use_backend(backward_backend):
        tape.backward()
    return bits(out), bits([p.grad for p in model.parameters()])


@needs_c
def test_backends_switched_between_forward_and_backward_give_the_same_bits():
    want = _run("c", "c")
    assert _run("python", "python") == want
    assert _run("c", "python") == want
    assert _run("python", "c") == want


@needs_c
def test_one_tape_two_threads_two_backends():
    # each thread runs forward+backward on one tape in its own backend; a
    # backward after the other thread's forward is refused (RuntimeError), any
    # other result must be exactly the single-thread one
    tape, model = _mlp_tape(seed=5)
    refs, grads = {}, {}
    for name, rows in (("python", ROWS[:4]), ("c", ROWS)):
        with microbp.use_backend(name):
            refs[name] = bits(tape.forward(rows))
            for p in model.parameters():
                p.grad = 0.0
            tape.backward()
            grads[name] = [p.grad for p in model.parameters()]
    for p in model.parameters():
        p.grad = 0.0
    errors, done = [], {"python": 0, "c": 0}

    def worker(name, rows):
        try:
            with microbp.use_backend(name):
                for _ in range(40):
                    out = tape.forward(rows)
                    if bits(out) != refs[name]:
                        errors.append((name, "forward"))
                    try:
                        tape.backward()
                        done[name] += 1
                    except RuntimeError:
                        pass
        except Exception as e:              # pragma: no cover - reported below
            errors.append((name, repr(e)))

    ts = [threading.Thread(target=worker, args=("python", ROWS[:4])),
          threading.Thread(target=worker, args=("c", ROWS))]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert not errors
    assert sum(done.values()) > 0
    # every backward that ran added one thread's gradient: the sum of them
    want = [done["python"] * gp + done["c"] * gc for gp, gc in zip(grads["python"], grads["c"])]
    assert [p.grad for p in model.parameters()] == pytest.approx(want, rel=1e-9, abs=1e-12)


# -- Batch: the struct fast path and the one number rule ----------------------------

def test_batch_fast_path_keeps_every_bit():
    payload = struct.unpack("<d", bytes.fromhex("0100000000f8ff7f"))[0]
    entries = [-0.0, 0.0, float("nan"), payload, float("inf"), -float("inf"), 5e-324,
               2 ** 53 + 1, -(2 ** 60 + 3), 10 ** 300, 3, 1.7976931348623157e308]
    rows = [entries[k:k + 3] for k in range(0, len(entries), 3)]
    b = Batch(rows)
    assert b.nrows == 4 and b.width == 3
    want = b"".join(struct.pack("<d", float(x)) for x in entries)
    assert b.rows.tobytes() == array("d", [float(x) for x in entries]).tobytes() == want


@pytest.mark.parametrize("bad, exc, where", [
    (True, TypeError, "row 1 entry 2"),
    (Decimal("1.5"), TypeError, "row 1 entry 2"),
    (1j, TypeError, "row 1 entry 2"),
    ("1.0", TypeError, "row 1 entry 2"),
    (None, TypeError, "row 1 entry 2"),
    (2 ** 1024, ValueError, "row 1 entry 2"),
    (-(10 ** 400), ValueError, "row 1 entry 2"),
])
def test_batch_entries_follow_the_one_number_rule(bad, exc, where):
    rows = [[1.0, 2, 3.5], [4.0, 5.0, bad], [7.0, 8.0, 9.0]]
    with pytest.raises(exc, match=where):
        Batch(rows)


def test_batch_numpy_scalars_follow_the_one_number_rule():
    np = pytest.importorskip("numpy")
    assert Batch([[np.float64(0.1), np.int64(3)]]).rows.tolist() == [0.1, 3.0]
    with pytest.raises(TypeError, match="row 0 entry 1"):
        Batch([[1.0, np.bool_(True)]])


@pytest.mark.parametrize("rows, exc, where", [
    ([[1.0, 2.0], "ab"], TypeError, "row 1"),
    (["ab", "cd"], TypeError, "row 0"),
    ([[1.0, 2.0], [1.0]], ValueError, "row 1"),
    ([[1.0, 2.0], [1.0, 2.0, 3.0]], ValueError, "row 1"),
    ([[1.0, 2.0], {1.0, 2.0}], TypeError, "row 1"),
])
def test_batch_rows_of_the_wrong_kind_or_width(rows, exc, where):
    with pytest.raises(exc, match=where):
        Batch(rows)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_refused_batch_leaves_the_last_forward_usable(backend_name):
    tape, model = _mlp_tape(seed=2)
    with microbp.use_backend(backend_name):
        out = tape.forward(ROWS)
        with pytest.raises(TypeError):
            tape.forward([r[:3] + [True] for r in ROWS])
        with pytest.raises(ValueError):
            tape.forward([r[:3] + [2 ** 1024] for r in ROWS])
        tape.backward()
        grads = bits([p.grad for p in model.parameters()])
    other, model2 = _mlp_tape(seed=2)
    with microbp.use_backend(backend_name):
        assert bits(other.forward(ROWS)) == bits(out)
        other.backward()
    assert grads == bits([p.grad for p in model2.parameters()])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_tape_with_no_input_slots_takes_rows_of_width_zero(backend_name):
    w = Value(1.5)
    tape = Tape(w * w, [])
    with microbp.use_backend(backend_name):
        assert tape.forward([[], [], []]) == [2.25, 2.25, 2.25]
        tape.backward()
    assert w.grad == 3 * 3.0


@pytest.mark.parametrize("backend_name", ["python", "c"])
def test_stores_and_batches_stay_free_to_grow_after_runs(backend_name):
    """A run keeps no hold on the arrays it was handed: a store still takes new
    Parameters, a Batch's rows can still grow (an array with a live pointer
    into it refuses to resize)."""
    if backend_name not in microbp.available_backends():
        pytest.skip("the C core is not built")
    with microbp.use_backend(backend_name):
        store = microbp.ParamStore()
        w, x = store.new(0.5), Value(0.0)
        tape = Tape(w * x + w, [x])
        batch = Batch([[1.0], [2.0]])
        tape.forward(batch)
        tape.backward()
        tape.fit(batch, microbp.optim.SGD([w], lr=0.1), 2)
        store.new(2.0)
        batch.rows.append(3.0)
        assert len(store) == 2 and len(batch.rows) == 3

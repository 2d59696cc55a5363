"""A recorded tape is a sealed program: its structure cannot change, buffers C
writes cannot overlap what it reads, and another thread scribbling on every
array it can reach ends in correct results or a clean error, never a crash
(`make sanitize` runs this under AddressSanitizer)."""
import random
import threading
import time
from array import array

import pytest

import microbp
from microbp import Value, Tape, TapeError, nn, optim

import executors

HAVE_C = "c" in microbp.available_backends()
BACKENDS = ["python", "c"] if HAVE_C else ["python"]
CLEAN = (TapeError, RuntimeError, BufferError, ValueError, TypeError, IndexError)


def small_tape(seed=0):
    model = nn.MLP(2, [4, 1], seed=seed)
    x0, x1, y = Value(0.0), Value(0.0), Value(0.0)
    loss = (model([x0, x1]) - y) ** 2
    return Tape(loss, [x0, x1, y]), model


ROWS = [[0.1 * r, -0.2 * r, 0.5] for r in range(7)]


def test_structure_is_read_only():
    tape, _ = small_tape()
    for arr in (tape._op, tape._a, tape._b, tape._ext, tape._in_nodes):
        assert isinstance(arr, memoryview) and arr.readonly and type(arr.obj) is bytes
        if len(arr):
            with pytest.raises(TypeError):
                arr[0] = 0
    assert type(tape.varies) is bytes
    assert isinstance(tape.ops, tuple) and isinstance(tape.parameters, tuple)
    with pytest.raises(AttributeError):
        tape.num_nodes = 3
    tape.forward(ROWS)
    assert tape._off.readonly and type(tape._off.obj) is bytes


@pytest.mark.skipif(not HAVE_C, reason="the C core is not built")
def test_output_buffers_that_overlap_an_input_are_refused():
    from microbp import cexec
    op, a, b = array("i", [0, 0, 3]), array("i", [-1, -1, 0]), array("i", [-1, -1, 1])
    vary, off = bytes(3), array("q", [0, 1, 2])
    mem = bytearray(8 * 4)
    whole = memoryview(mem).cast("d")
    val, adj = whole[0:3], whole[1:4]          # adj overlaps val
    with pytest.raises(TapeError, match="overlaps"):
        cexec.backward(adj, val, op, a, b, vary, off, 1)
    with pytest.raises(TapeError, match="overlaps"):
        cexec.gather(whole[0:3], off, array("i", [0]), array("i", [0]), whole[2:4])
    with pytest.raises(TapeError, match="overlaps"):
        cexec.sgd(whole[0:2], whole[1:3], array("i", [0]), 0.1)
    separate = array("d", [0.0] * 3)
    cexec.backward(separate, val, op, a, b, vary, off, 1)     # no overlap: fine
    assert separate[2] == 1.0


@pytest.mark.skipif(not HAVE_C, reason="the C core is not built")
def test_index_arrays_are_copied_before_c_reads_them():
    from microbp import cexec
    op = array("i", [0, 0, 3])
    p = cexec._index("int32_t[]", op)
    op[2] = 999                       # changing the caller's array after the copy
    assert p[2] == 3                  # ...does not change what C reads
    frozen = bytes(op)
    assert cexec.ffi.from_buffer("int32_t[]", frozen)[2] == 999


def _scribble(stop, targets, rng):
    """Flip entries of (and try to resize) every reachable array until stop."""
    while not stop.is_set():
        for arr in targets():
            try:
                if len(arr):
                    k = rng.randrange(len(arr))
                    arr[k] = rng.choice([0.0, -1.0, 1e308, float("nan"), 2.5])
                if rng.random() < 0.05:
                    arr.append(0.0)
                if rng.random() < 0.05 and len(arr) > 1:
                    del arr[-1]
            except CLEAN:
                pass
        time.sleep(0)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_scribbling_thread_never_crashes_forward_backward_step(backend_name):
    tape, model = small_tape()
    opt = optim.Adam(model.parameters(), lr=0.01)
    batch = microbp.Batch(ROWS)
    store = model.parameters()[0]._store
    targets = lambda: [t for t in (batch.rows, store._data, store._grad, tape._val,  # noqa: E731
                                   tape._adj, *opt._m, *opt._v) if t is not None]
    stop = threading.Event()
    th = threading.Thread(target=_scribble, args=(stop, targets, random.Random(1)))
    th.start()
    done = errors = 0
    deadline = time.monotonic() + 2.0
    try:
        with microbp.use_backend(backend_name):
            while time.monotonic() < deadline:
                try:
                    opt.zero_grad()
                    tape.forward(batch)
                    tape.backward()
                    opt.step()
                    done += 1
                except CLEAN:
                    errors += 1
    finally:
        stop.set()
        th.join()
    assert done + errors > 0


def _expected(batch):
    tape, _ = small_tape()
    return tape.forward(batch)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_one_tape_two_threads_each_gets_its_own_results(backend_name):
    tape, model = small_tape()
    batches = [ROWS[:3], ROWS[2:]]
    want = [_expected(b) for b in batches]
    bad, refused = [], []

    def work(k):
        with microbp.use_backend(backend_name):
            for _ in range(200):
                out = tape.forward(batches[k])
                if out != want[k]:
                    bad.append((k, out))
                try:
                    tape.backward()
                except RuntimeError as e:
                    assert "another thread" in str(e)
                    refused.append(k)

    threads = [threading.Thread(target=work, args=(k,)) for k in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not bad                    # never one thread's outputs handed to another


def test_backward_after_another_threads_forward_is_refused():
    tape, _ = small_tape()
    tape.forward(ROWS)
    th = threading.Thread(target=tape.forward, args=(ROWS[:2],))
    th.start()
    th.join()
    with pytest.raises(RuntimeError, match="another thread"):
        tape.backward()
    tape.forward(ROWS)
    tape.backward()                   # this thread's forward again: fine


def test_python_executor_refuses_what_c_refuses():
    for name in BACKENDS:
        ex = executors.executor(name)
        with pytest.raises(TapeError):
            ex.forward(array("d", [0.0]), array("i", [99]), array("i", [-1]),
                       array("i", [-1]), bytes(1), array("q", [0]), 1)


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_a_program_is_its_own_copy_checked_once(backend_name):
    # x (a leaf), y (a leaf), x * y: sealed from arrays the caller keeps changing
    from microbp.ops import LEAF, MUL
    ex = executors.executor(backend_name)
    op, a, b = array("i", [LEAF, LEAF, MUL]), array("i", [-1, -1, 0]), array("i", [-1, -1, 1])
    vary, off = bytearray(3), array("q", [0, 1, 2])
    prog = ex.Program(op, a, b, vary, off, 1, 3)
    assert (prog.nval, prog.nrows) == (3, 1)
    op[2], a[2], off[2] = 99, 7, 10 ** 9      # the caller's arrays go bad afterwards...
    val = array("d", [3.0, 4.0, 0.0])
    prog.forward(val)                        # ...and the program runs what it sealed
    assert val[2] == 12.0
    adj = array("d", [0.0] * 3)
    prog.backward(adj, val)
    assert adj.tolist() == [4.0, 3.0, 1.0]
    with pytest.raises(TapeError):           # a buffer shorter than the layout
        prog.forward(array("d", [0.0] * 2))
    with pytest.raises(TapeError):
        prog.backward(array("d", [0.0] * 3), array("d", [0.0] * 2))
    with pytest.raises(TapeError):           # what is sealed is checked: here, op 99
        ex.Program(op, a, b, vary, off, 1, 3)
    with pytest.raises(TapeError):           # a layout larger than the value arrays
        ex.Program(array("i", [LEAF, LEAF]), array("i", [-1, -1]), array("i", [-1, -1]),
                   bytes(2), array("q", [0, 1]), 1, 1)


def test_a_tape_seals_one_program_per_layout_and_executor():
    tape, _ = small_tape()
    for name in BACKENDS:
        with microbp.use_backend(name):
            tape.forward(ROWS)
            tape.backward()
            first = dict(tape._programs)
            tape.forward(ROWS)
            assert tape._programs == first           # the same program, not resealed
    assert len(tape._programs) == len(BACKENDS)
    tape.forward(ROWS[:3])                            # another layout: sealed anew
    assert all(p.nrows == 3 for p in tape._programs.values())


@pytest.mark.skipif(not HAVE_C, reason="the C core is not built")
def test_a_program_without_offsets_has_one_value_per_node():
    # the eager backward seals one-row tapes with no offset array: the core
    # lays the nodes out itself (0, 1, 2, ...), checked as any other layout
    from microbp import cexec
    from microbp.ops import LEAF, MUL, TANH
    op, a = array("i", [LEAF, LEAF, MUL, TANH]), array("i", [-1, -1, 0, 2])
    b = array("i", [-1, -1, 1, -1])
    val = array("d", [0.5, -3.0, -1.5, 0.0])
    cexec.Program(op, a, b, bytes(4), None, 1, 4).forward(val)
    given = array("d", val)
    cexec.Program(op, a, b, bytes(4), array("q", range(4)), 1, 4).forward(given)
    assert val.tobytes() == given.tobytes()
    adj = cexec.backward_scalar(op, a, b, val)
    assert adj.tobytes() == array("d", executors.executor("python").backward_scalar(
        op, a, b, val)).tobytes()
    with pytest.raises(TapeError):            # the layout needs 4 values
        cexec.Program(op, a, b, bytes(4), None, 1, 3)
    with pytest.raises(TapeError):            # offsets of another length
        cexec.Program(op, a, b, bytes(4), array("q", range(3)), 1, 4)

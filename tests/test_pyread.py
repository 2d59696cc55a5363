"""microbp._pyread (csrc/pyread.c): the C that reads a list of rows into
doubles. It is a fast path: for plain rows (exact lists or tuples of exact
floats and ints) it must give the very bytes the Python code gives, and for
anything else it must hand the rows back (None) so that the Python code
raises its error. Batch with and without it must be indistinguishable."""
import math
import os
import struct

import pytest
from hypothesis import given, settings, strategies as st

import microbp.tape
from microbp import Batch, Tape, Value

pytestmark = pytest.mark.skipif(microbp.tape.rows_to_doubles is None,
                                reason="microbp._pyread is not built")
EXAMPLES = int(os.environ.get("MICROBP_HYPOTHESIS_EXAMPLES", "300"))
SETTINGS = settings(max_examples=min(EXAMPLES, 1000), deadline=None)


class Num(float):
    pass


def without_c(monkeypatch, f, *args):
    monkeypatch.setattr(microbp.tape, "rows_to_doubles", None)
    try:
        return f(*args)
    finally:
        monkeypatch.undo()


def outcome(f, *args):
    try:
        b = f(*args)
    except (TypeError, ValueError) as e:
        return type(e), str(e)
    return b.rows.tobytes(), b.nrows, b.width


floats = st.floats(allow_nan=True, allow_infinity=True)
plain = st.one_of(floats, st.integers(-2 ** 60, 2 ** 60), st.just(-0.0),
                  st.sampled_from([2 ** 53 + 1, -(2 ** 63) - 1, 10 ** 300]))
odd = st.one_of(st.booleans(), st.text(max_size=2), st.none(), st.just(10 ** 400),
                st.builds(Num, floats), st.lists(floats, max_size=1))
entry = st.one_of(plain, plain, plain, odd)


@st.composite
def row_lists(draw):
    width = draw(st.integers(0, 4))
    rows = []
    for _ in range(draw(st.integers(0, 6))):
        w = width if draw(st.integers(0, 9)) else draw(st.integers(0, 5))
        row = [draw(entry if draw(st.integers(0, 4)) == 0 else plain) for _ in range(w)]
        kind = draw(st.sampled_from([list, list, tuple, "range", "str"]))
        rows.append(range(w) if kind == "range" else "ab"[:w] if kind == "str" else kind(row))
    return draw(st.sampled_from([list, tuple]))(rows)


@SETTINGS
@given(row_lists(), st.one_of(st.none(), st.integers(-1, 5), st.just(2.0), st.just(True)))
def test_batch_same_with_and_without_c(rows, width):
    mp = pytest.MonkeyPatch()
    assert outcome(Batch, rows, width) == without_c(mp, outcome, Batch, rows, width)


@SETTINGS
@given(st.lists(st.lists(plain, min_size=3, max_size=3), min_size=1, max_size=20))
def test_plain_rows_are_read_in_c(rows):
    got = microbp.tape.rows_to_doubles(rows, 3)
    assert got == struct.pack(f"{3 * len(rows)}d", *(float(x) for r in rows for x in r))
    assert microbp.tape.rows_to_doubles(tuple(map(tuple, rows)), 3) == got


@pytest.mark.parametrize("rows, width", [
    ([[1.0, True]], 2),                 # bool is not a number here
    ([[1.0, Num(2.0)]], 2),             # nor a float subclass (its own __float__)
    ([[1.0, 10 ** 400]], 2),            # an int too large for a double
    ([[1.0, 2.0], [1.0]], 2),           # a short row
    ([[1.0, 2.0]], 3),
    ([range(2)], 2), ([[1.0, 2.0]], 2.0), ([[1.0, 2.0]], -2), ([[1.0]], 10 ** 30),
    ([[1.0]], 10 ** 15),                # too wide: handed back before 8 PB are asked for
    ("ab", 1), ([b"ab"], 2), ([[1.0, "2"]], 2),
])
def test_anything_else_is_handed_back(rows, width):
    assert microbp.tape.rows_to_doubles(rows, width) is None


def test_nonfinite_and_signed_zero_kept():
    got = struct.unpack("4d", microbp.tape.rows_to_doubles([[-0.0, math.inf], [-math.inf, 0]], 2))
    assert math.copysign(1, got[0]) == -1 and got[1:3] == (math.inf, -math.inf)
    assert math.isnan(struct.unpack("d", microbp.tape.rows_to_doubles([[math.nan]], 1))[0])


def test_forward_with_a_list_same_with_and_without_c(backend, monkeypatch):
    x, y = Value(0.0), Value(0.0)
    tape = Tape((x * y + x).tanh(), [x, y])
    rows = [[0.5, -1], (2, 3.25), [1e300, -0.0]]
    fast = tape.forward(rows)
    monkeypatch.setattr(microbp.tape, "rows_to_doubles", None)
    assert tape.forward(rows) == fast
    with pytest.raises(TypeError, match="batch row 1 entry 0"):
        tape.forward([[1.0, 2.0], [True, 2.0]])


def test_forward_with_a_list_reads_the_used_slots_in_their_order(backend, monkeypatch):
    """A list of rows goes to the executor as the bytes of its doubles, with no
    Batch made: a tape whose slots are used in another order, or not at all,
    picks its columns out of those bytes as it does out of a Batch's rows."""
    x, y, unused = Value(0.0), Value(0.0), Value(0.0)
    w = Value(0.75)
    tape = Tape((w * y - x).exp() + x * 3.0, [y, unused, x])
    rows = [[0.5, 7.0, -1.0], [2, -0.0, 3.25], [1e-300, 1.0, 0.125]]
    fast = tape.forward(rows)
    tape.backward()
    fast_grad, w.grad = w.grad, 0.0
    expected = [math.exp(0.75 * r[0] - r[2]) + r[2] * 3.0 for r in rows]
    assert fast == expected
    assert tape.forward(Batch(rows)) == fast
    monkeypatch.setattr(microbp.tape, "rows_to_doubles", None)
    assert tape.forward(rows) == fast
    tape.backward()
    assert w.grad == fast_grad


@pytest.mark.parametrize("rows, width, message", [
    ([[1.0]], 10 ** 15, "batch row 0 has 1 entries, expected 1000000000000000"),
    ([[0.0] * 10 ** 4] + [[1.0]] * 10 ** 6, None, "batch row 1 has 1 entries, expected 10000"),
])
def test_a_bad_width_is_a_value_error_not_a_memory_error(rows, width, message, monkeypatch):
    """The rows' lengths are checked before the doubles are allocated: a width
    that no row has gets the ValueError of the Python code, with or without C."""
    with pytest.raises(ValueError, match=message):
        Batch(rows, width)
    monkeypatch.setattr(microbp.tape, "rows_to_doubles", None)
    with pytest.raises(ValueError, match=message):
        Batch(rows, width)


# -- untrack / new_untracked: Values off the cycle collector's lists ----------

def test_values_made_by_microbp_are_not_tracked_by_the_cycle_collector():
    """Values make no cycles, so the collector need not walk them (what made
    building big graphs cost more per node); a subclass keeps the default."""
    import gc
    from microbp import nn
    x = Value(0.5)
    y = (x * 2.0 + 1.0).tanh()
    out = nn.MLP(2, [3, 1], seed=0)([x, y])
    for v in (x, y, out, y._a, y._a._a):
        assert not gc.is_tracked(v), v

    class Mine(Value):
        pass
    assert gc.is_tracked(Mine(1.0))


def test_a_graph_is_freed_by_reference_counts_alone():
    import gc
    import tracemalloc
    gc.disable()
    try:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        x = Value(1.0)
        y = x
        for _ in range(20000):
            y = y * 1.0001 + 0.5
        y.backward()
        built = tracemalloc.get_traced_memory()[0]
        del x, y
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
    finally:
        gc.enable()
    assert built - before > 20000 * 100          # the graph was there...
    assert after - before < 20000 * 5            # ...and went with its last reference


def test_new_untracked_refuses_what_is_not_a_concrete_heap_class():
    from microbp._pyread import new_untracked
    import abc
    for bad in (1, int, "Value"):
        with pytest.raises(TypeError, match="concrete class"):
            new_untracked(bad)

    class Abstract(abc.ABC):
        @abc.abstractmethod
        def f(self): ...
    with pytest.raises(TypeError, match="concrete class"):
        new_untracked(Abstract)

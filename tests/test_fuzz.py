"""Fuzz the flat-array executors with malformed tapes: every call ends in
success or a TapeError, never a crash, and the C core and the pure-Python
executor accept and reject the very same inputs. (`make sanitize` runs this
under AddressSanitizer and UBSan, which turns any stray access into a failure.)"""
import math
import struct
from array import array

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

import microbp
import executors
from microbp import ops, pyexec, TapeError

pytestmark = pytest.mark.skipif("c" not in microbp.available_backends(),
                                reason="the C core is not built")
if "c" in microbp.available_backends():
    from microbp import cexec

SETTINGS = settings(max_examples=300, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])
BIG = 2 ** 31 - 1
ints = st.one_of(st.integers(-3, 12), st.sampled_from([-BIG - 1, BIG, 2 ** 20]))


def _bits(arr):
    return [struct.pack("<d", x) if x == x else b"nan" for x in arr]


@st.composite
def tapes(draw):
    """Arrays that are mostly a valid tape, with random damage."""
    n = draw(st.integers(1, 12))
    op = [draw(st.integers(0, ops.NUM_OPS - 1)) for _ in range(n)]
    a = [draw(st.integers(0, max(i - 1, 0))) if i else -1 for i in range(n)]
    b = [draw(st.integers(0, max(i - 1, 0))) if i else -1 for i in range(n)]
    for i in range(n):
        if i == 0 or (ops.ARITY[op[i]] == 0):
            op[i] = draw(st.sampled_from([ops.LEAF, ops.CONST]))
            a[i] = b[i] = -1
    ext = []
    for i in range(n):
        if op[i] == ops.LIN:
            b[i] = len(ext)
            k = draw(st.integers(1, 3))
            ext.append(k)
            ext.extend(draw(st.integers(0, i - 1)) for _ in range(2 * k))
    vary = [0] * n
    for i in range(n):
        k = ops.ARITY[op[i]]
        if k == 0:
            vary[i] = draw(st.integers(0, 1))
        else:
            vary[i] = vary[a[i]] | (vary[b[i]] if k == 2 else 0)
            if op[i] == ops.LIN:
                vary[i] |= max(vary[t] for t in ext[b[i] + 1:b[i] + 1 + 2 * ext[b[i]]])
    nr = draw(st.integers(1, 5))
    off, total = pyexec.layout(vary, nr)
    arrays = dict(op=op, a=a, b=b, vary=vary, off=off, ext=ext)
    # damage: change some entries to arbitrary values, or cut an array short
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(arrays)))
        arr = arrays[name]
        if arr and draw(st.booleans()):
            arr[draw(st.integers(0, len(arr) - 1))] = draw(
                st.integers(0, 3) if name == "vary" else ints)
        elif arr:
            del arr[draw(st.integers(0, len(arr) - 1)):]
    nval = max(0, total + draw(st.integers(-2, 2)))
    nr = draw(st.sampled_from([nr, nr, nr, 0, -1, 2 ** 40]))
    vals = [draw(st.sampled_from([0.5, -2.0, 0.0, 1e300, math.inf, math.nan])) for _ in range(nval)]
    return arrays, nr, vals


def _typed(arrays):
    return (array("i", arrays["op"]), array("i", arrays["a"]), array("i", arrays["b"]),
            bytearray(arrays["vary"]), array("q", arrays["off"]), array("i", arrays["ext"]))


def _run(mod, fn, arrays, nr, vals):
    op, a, b, vary, off, ext = _typed(arrays)
    val = array("d", vals)
    try:
        if fn == "forward":
            mod.forward(val, op, a, b, vary, off, nr, ext)
            return "ok", _bits(val)
        adj = array("d", vals)
        mod.backward(adj, val, op, a, b, vary, off, nr, ext)
        return "ok", _bits(adj)
    except TapeError:
        return "rejected", None


@SETTINGS
@given(tapes(), st.sampled_from(["forward", "backward"]))
def test_malformed_tapes_end_in_an_error_never_a_crash(case, fn):
    arrays, nr, vals = case
    py = _run(pyexec, fn, arrays, nr, vals)
    c = _run(cexec, fn, arrays, nr, vals)
    assert py[0] == c[0], (py[0], c[0])
    if py[0] == "ok":
        assert py[1] == c[1]


@SETTINGS
@given(st.lists(ints, max_size=6), st.lists(ints, max_size=6), st.integers(0, 6),
       st.integers(0, 6), ints)
def test_gather_scatter_load_rows_check_every_index(nodes, slots, nval, nsrc, nr):
    off = array("q", range(nval))
    for name in ("gather", "scatter_add", "load_rows"):
        outcomes = []
        for mod in (executors.PY, cexec):
            val = array("d", [1.0] * nval)
            src = array("d", [2.0] * nsrc)
            before = val.tolist(), src.tolist()
            try:
                if name == "gather":
                    mod.gather(val, off, array("i", nodes), array("i", slots[:len(nodes)]), src)
                elif name == "scatter_add":
                    mod.scatter_add(src, val, off, array("i", nodes), array("i", slots[:len(nodes)]))
                else:
                    mod.load_rows(val, off, array("i", nodes), src, nr)
                outcomes.append(("ok", val.tolist(), src.tolist()))
            except (TapeError, OverflowError):
                assert (val.tolist(), src.tolist()) == before     # nothing written
                outcomes.append(("rejected",))
        assert outcomes[0] == outcomes[1], name


@SETTINGS
@given(st.lists(ints, max_size=6), st.integers(0, 5), st.integers(0, 6))
def test_optimizer_kernels_check_every_slot(slots, ndata, nstate):
    outcomes = []
    for mod in (executors.PY, cexec):
        data, grad = array("d", [1.0] * ndata), array("d", [0.5] * ndata)
        m, v = array("d", [0.0] * nstate), array("d", [0.0] * nstate)
        s = array("i", slots)
        result = []
        for call in (lambda: mod.sgd(data, grad, s, 0.1),
                     lambda: mod.momentum(data, m, grad, s, 0.1, 0.9),
                     lambda: mod.adam(data, m, v, grad, s, 0.1, 0.9, 0.999, 1e-8, 0.1, 0.001),
                     lambda: mod.fill(grad, s, 0.0)):
            before = data.tolist(), grad.tolist(), m.tolist(), v.tolist()
            try:
                call()
                result.append("ok")
            except TapeError:
                assert (data.tolist(), grad.tolist(), m.tolist(), v.tolist()) == before
                result.append("rejected")
        outcomes.append((result, data.tolist(), grad.tolist()))
    assert outcomes[0] == outcomes[1]


def test_huge_and_negative_sizes_are_refused():
    op, a, b = array("i", [0]), array("i", [-1]), array("i", [-1])
    vary, off, val = bytearray([1]), array("q", [0]), array("d", [0.0])
    for mod in (executors.PY, cexec):
        for nr in (0, -5, 2 ** 62, 2 ** 70):
            with pytest.raises(TapeError):
                mod.forward(val, op, a, b, vary, off, nr)
        with pytest.raises(TapeError):
            mod.first_nonfinite(val, 0, 5)

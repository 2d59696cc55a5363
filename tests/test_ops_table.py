"""The op table (microbp/ops.py) drives everything, and every row is tested
from the table alone: a new row needs no new test code.

For each op with formulas: the generated C is current, the local
derivatives agree with central finite differences, eager values and
gradients agree with PyTorch float64, and eager (both backends), a Tape in
each backend and the tangent sweep give the same bits on edge values.
"""
import math
import operator
import os
import shutil
import struct
import subprocess

import pytest

import microbp
from microbp import Value, Tape, codegen, ops, opsgen

HAVE_C = "c" in microbp.available_backends()
BACKENDS = ["python", "c"] if HAVE_C else ["python"]
ELEMENTARY = [pytest.param(op, id=op.name) for op in ops.ELEMENTARY]
EDGE = [0.0, -0.0, 1.0, -1.0, 0.5, -2.5, 3.0, 1e-300, -1e-300, 5e-324, 1e300, -1e300,
        710.0, -745.5, math.inf, -math.inf, math.nan]
SMOOTH = [-2.3, -0.7, 0.3, 0.9, 1.7, 2.6]


def bits(x):
    return struct.pack("<d", x)


def same(x, y):
    return bits(x) == bits(y) or (x != x and y != y)


def apply(op, a, b):
    """The op on Values a (and b), through its Value method or operator."""
    if op.arity == 1:
        return -a if op.name == "neg" else getattr(a, op.name)()
    if op.name == "powc":
        return a ** b.data
    return getattr(operator, {"div": "truediv"}.get(op.name, op.name))(a, b)


def pairs(values):
    return [(x, y) for x in values for y in values]


# -- the generated C ------------------------------------------------------------

def test_generated_c_is_current():
    """Like a lock file: `make ops` regenerates csrc/ops_generated.h."""
    with open(opsgen.PATH, encoding="utf-8") as f:
        assert f.read() == opsgen.render(), "csrc/ops_generated.h is stale: run `make ops`"


def test_every_op_code_is_in_the_header():
    text = opsgen.render()
    for op in ops.OPS:
        assert f"OP_{op.name.upper()} = {op.code}," in text


@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
def test_microbp_c_compiles_on_its_own(tmp_path):
    src = os.path.join(os.path.dirname(opsgen.PATH), "microbp.c")
    subprocess.run(["cc", "-std=c99", "-Wall", "-Werror", "-c", src, "-o",
                    str(tmp_path / "m.o")], check=True)


def test_formulas_outside_the_subset_are_refused():
    for bad in ("a ** 2", "math.exp(a)", "x + 1.0", "a < b < out", "1", "f(a)", "exp"):
        with pytest.raises(ValueError):
            codegen.parse(bad)


def test_times_is_a_structural_zero_and_goes_into_branches():
    g = codegen.name("g")
    assert codegen.times(g, codegen.parse("0.0")) is None
    assert codegen.python(codegen.times(g, codegen.parse("(1.0 - out) * out"))) == \
        "g * (1.0 - out) * out"
    assert codegen.c(codegen.times(g, codegen.parse("0.0 if a <= 0.0 else 1.0"))) == \
        "(a <= 0.0 ? 0.0 : g)"


# -- each row ------------------------------------------------------------------

@pytest.mark.parametrize("op", ELEMENTARY)
def test_local_derivatives_match_finite_differences(op):
    h = 1e-6
    ys = SMOOTH if op.arity == 2 else [0.0]
    for x in SMOOTH:
        for y in ys:
            if op.name in ("log", "sqrt") or (op.name in ("pow", "powc") and x < 0):
                x = abs(x)
            out = op.f(x, y)
            da, db = op.local(x, y, out)
            fd_a = (op.f(x + h, y) - op.f(x - h, y)) / (2 * h)
            assert math.isclose(da, fd_a, rel_tol=1e-6, abs_tol=1e-8), (op.name, x, y)
            if op.grad_b:
                fd_b = (op.f(x, y + h) - op.f(x, y - h)) / (2 * h)
                assert math.isclose(db, fd_b, rel_tol=1e-6, abs_tol=1e-8), (op.name, x, y)


@pytest.mark.parametrize("op", ELEMENTARY)
def test_grads_and_tangents_are_local_derivative_products(op):
    for x, y in pairs(SMOOTH[2:]):
        out = op.f(x, y)
        da, db = op.local(x, y, out)
        ga, gb = op.grads(1.0, x, y, out)
        assert ga == da and (gb == db or not op.grad_b)
        assert op.tangent(1.0, None, x, y, out) == da
        assert op.tangent(None, None, x, y, out) is None


def _eager(op, x, y, backend):
    with microbp.use_backend(backend):
        a, b = Value(x), Value(y)
        out = apply(op, a, b)
        out.backward()
        return [out.data, a.grad] + ([b.grad] if op.grad_b else [])


def _tape(op, x, y, backend):
    """A, b as parameters of a one-row tape (no input slots)."""
    with microbp.use_backend(backend):
        a, b = Value(x), Value(y)
        t = Tape(apply(op, a, b), [])
        (out,) = t.forward([[]])
        t.backward()
        return [out, a.grad] + ([b.grad] if op.grad_b else [])


def _jvp(op, x, y, backend):
    """a, b as input slots: the tangent along (1, 0) and (0, 1)."""
    with microbp.use_backend(backend):
        a, b = Value(0.0), Value(0.0)
        t = Tape(apply(op, a, b) if op.name != "powc" else a ** y, [a, b])
        (out,), (ta,) = t.jvp([[x, y]], [[1.0, 0.0]])
        res = [out, ta]
        if op.grad_b:
            res.append(t.jvp([[x, y]], [[0.0, 1.0]])[1][0])
        return res


@pytest.mark.parametrize("op", ELEMENTARY)
def test_eager_tape_and_backends_give_the_same_bits_on_edge_values(op):
    ys = EDGE if op.arity == 2 else [0.0]
    for x in EDGE:
        for y in ys:
            want = _eager(op, x, y, "python")
            for be in BACKENDS:
                for got in (_eager(op, x, y, be), _tape(op, x, y, be)):
                    assert all(map(same, got, want)), (op.name, x, y, be, got, want)


@pytest.mark.parametrize("op", ELEMENTARY)
def test_tangent_sweep_is_bitwise_the_same_in_both_backends(op):
    ys = EDGE if op.arity == 2 else [0.0]
    for x in EDGE:
        for y in ys:
            res = [_jvp(op, x, y, be) for be in BACKENDS]
            assert all(all(map(same, r, res[0])) for r in res), (op.name, x, y, res)
            assert same(res[0][0], op.f(x, y))
            want = op.tangent(1.0, 0.0 if op.grad_b else None, x, y, res[0][0])
            assert same(res[0][1], want), (op.name, x, y)


@pytest.mark.parametrize("op", ELEMENTARY)
def test_pytorch_float64_parity(op):
    torch = pytest.importorskip("torch")
    ys = [-1.5, 0.5, 2.0, 3.0] if op.arity == 2 else [0.0]
    xs = [-2.0, -0.5, 0.25, 1.0, 2.5] + ([0.0, -0.0] if op.name in ("relu", "abs") else [])
    for x in xs:
        for y in ys:
            if op.name in ("log", "sqrt", "pow") and x <= 0:
                continue
            got = _eager(op, x, y, "python")
            a = torch.tensor(x, dtype=torch.float64, requires_grad=True)
            b = torch.tensor(y, dtype=torch.float64, requires_grad=True)
            name = {"powc": "pow"}.get(op.name, op.name)
            fn = getattr(torch, name)
            out = fn(a) if op.arity == 1 else (fn(a, y) if op.name == "powc" else fn(a, b))
            out.backward()
            want = [out.item(), a.grad.item()] + ([b.grad.item()] if op.grad_b else [])
            for g, w in zip(got, want):
                assert g == w or math.isclose(g, w, rel_tol=1e-12, abs_tol=1e-300) \
                    or (g != g and w != w), (op.name, x, y, got, want)

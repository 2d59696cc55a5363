"""The op table: the one place where every op of microbp is defined.

Each row states an op's forward value and its local derivatives side by side,
as formulas over the inputs `a`, `b` and the result `out`:

    name       arity  forward             d out / d a             d out / d b

Everything else is made from these rows (codegen.py): the eager `Value` ops,
the pure-Python executor's kernels, the C core's kernels (generated into
csrc/ops_generated.h; `make ops` rewrites it, a test checks it is current),
and every sweep the engine has:

    reverse mode    grad_a += g × d out/d a                 (backward)
    forward mode    t_out   = t_a × d out/d a + t_b × d out/d b   (jvp)
    higher order    the same products evaluated on Values   (grad(create_graph=True))

The math follows IEEE 754 and PyTorch float64: no Python exception escapes
from inside an op. log(0) = -inf, 1/0 = inf, (-8) ** 0.5 = nan, exp(1000) = inf.
A local derivative written as the number 0.0 (also inside `x if t else 0.0`)
is a structural zero: it contributes nothing, even against an inf upstream,
as PyTorch's relu and pow do; `where(t, 0.0, x)` is a number like any other
and multiplies (0 × inf = nan), as PyTorch's gradient of pow's exponent does.
The upstream multiplies into the first factor of a product (g × (1 - out) ×
out, as PyTorch's sigmoid); factor(...) keeps a product whole (g × (b ×
a^(b-1)), as PyTorch's pow).

Adding an op: one row here, one `Value` method (engine.py), and `make ops`.
"""
from collections import namedtuple

from . import codegen, ieee

# The table. A None derivative: that input gets no gradient (powc's exponent
# is a constant). leaf, const and lin have no formulas: a leaf is a parameter
# or an input slot, a const keeps its number, and lin is made only by the tape
# recorder (tape.py), which fuses a chain acc + p*q + p*q ... of add and mul
# nodes into one node with the very same roundings: input a is its base and b
# is where its terms start in the tape's ext[] array (ext[b] = k, then k
# pairs of node indices p, q).
ROWS = (
    # name       arity  forward                     d out / d a                                 d out / d b
    ("leaf",     0,     None,                       None,                                       None),
    ("const",    0,     None,                       None,                                       None),
    ("lin",      1,     None,                       None,                                       None),
    ("add",      2,     "a + b",                    "1.0",                                      "1.0"),
    ("sub",      2,     "a - b",                    "1.0",                                      "-1.0"),
    ("mul",      2,     "a * b",                    "b",                                        "a"),
    ("div",      2,     "a / b",                    "1.0 / b",                                  "-(a / b / b)"),
    ("pow",      2,     "pow(a, b)",                "0.0 if b == 0.0 else factor(b * pow(a, b - 1.0))", "where(a == 0.0 and b >= 0.0, 0.0, out * log(a))"),
    ("powc",     2,     "pow(a, b)",                "0.0 if b == 0.0 else factor(b * pow(a, b - 1.0))", None),
    ("neg",      1,     "-a",                       "-1.0",                                     None),
    ("exp",      1,     "exp(a)",                   "out",                                      None),
    ("log",      1,     "log(a)",                   "1.0 / a",                                  None),
    ("tanh",     1,     "tanh(a)",                  "1.0 - out * out",                          None),
    ("sigmoid",  1,     "1.0 / (1.0 + exp(-a))",    "(1.0 - out) * out",                        None),
    ("relu",     1,     "0.0 if a < 0.0 else a",    "0.0 if a <= 0.0 else 1.0",                 None),
    ("abs",      1,     "fabs(a)",                  "sign(a)",                                  None),
    ("sqrt",     1,     "sqrt(a)",                  "0.5 / out",                                None),
)

Op = namedtuple("Op", "code name arity grad_b forward d_a d_b "
                      "f grads tangent grads_values local")
Op.__doc__ = """One row of the table, with its formulas (text) and the Python
functions made from them:
    f(a, b) -> out                       the forward value
    grads(g, a, b, out) -> (ga, gb)      upstream × local derivative (gb 0.0 if none)
    tangent(ta, tb, a, b, out) -> t      local derivative × tangents; a tangent
                                         None is a structural zero (no tangent),
                                         and so is the result when both are
    grads_values(g, a, b, out)           grads on Values (None: no contribution)
    local(a, b, out) -> (da, db)         the local derivatives themselves"""

_ENV = {"_div": ieee.div, "_exp": ieee.exp, "_log": ieee.log, "_pow": ieee.pow,
        "_sqrt": ieee.sqrt, "_tanh": ieee.tanh, "_fabs": ieee.fabs, "_sign": ieee.sign}


def _compile(src, fname):
    code = {}
    exec(compile(src, f"<microbp op {fname}>", "exec"), dict(_ENV), code)
    return code[fname]


def _make(code, name, arity, fwd, da, db):
    if fwd is None:
        return Op(code, name, arity, False, None, None, None, None, None, None, None, None)
    g, ta, tb = codegen.name("g"), codegen.name("ta"), codegen.name("tb")
    fe, dae = codegen.parse(fwd), codegen.parse(da)
    dbe = codegen.parse(db) if db is not None else None
    ga, gb = codegen.times(g, dae), codegen.times(g, dbe) if dbe is not None else None
    py = codegen.python
    consts = ("b",) if (arity == 2 and dbe is None) else ()
    pv = lambda e: "None" if e is None else codegen.python_values(e, consts)  # noqa: E731
    ta_term, tb_term = codegen.times(ta, dae), codegen.times(tb, dbe) if dbe is not None else None
    tangent_src = ("def tangent(ta, tb, a, b, out):\n"
                   "    t = None\n"
                   + (f"    if ta is not None:\n        t = {py(ta_term)}\n" if ta_term else "")
                   + (f"    if tb is not None:\n        c = {py(tb_term)}\n"
                      f"        t = c if t is None else t + c\n" if tb_term else "")
                   + "    return t\n")
    return Op(
        code, name, arity, dbe is not None, fwd, da, db,
        _compile(f"def f(a, b):\n    return {py(fe)}\n", "f"),
        _compile(f"def grads(g, a, b, out):\n    return {py(ga) if ga else '0.0'}, "
                 f"{py(gb) if gb else '0.0'}\n", "grads"),
        _compile(tangent_src, "tangent"),
        _compile(f"def grads_values(g, a, b, out):\n    return {pv(ga)}, {pv(gb)}\n",
                 "grads_values"),
        _compile(f"def local(a, b, out):\n    return {py(dae)}, "
                 f"{py(dbe) if dbe is not None else '0.0'}\n", "local"),
    )


OPS = tuple(_make(k, *row) for k, row in enumerate(ROWS))
NUM_OPS = len(OPS)
NAMES = tuple(op.name for op in OPS)
CODE = {op.name: op.code for op in OPS}
ARITY = tuple(op.arity for op in OPS)
GRAD_B = tuple(op.grad_b for op in OPS)
FORWARD = tuple(op.f for op in OPS)
BACKWARD = tuple(op.grads for op in OPS)
TANGENT = tuple(op.tangent for op in OPS)
# the ops with formulas: what a Value method makes and what tests iterate over
ELEMENTARY = tuple(op for op in OPS if op.f is not None)

LEAF, CONST, LIN = CODE["leaf"], CODE["const"], CODE["lin"]
(ADD, SUB, MUL, DIV, POW, POWC, NEG, EXP, LOG, TANH, SIGMOID, RELU, ABS) = (
    CODE[n] for n in ("add", "sub", "mul", "div", "pow", "powc", "neg", "exp", "log", "tanh",
                      "sigmoid", "relu", "abs"))

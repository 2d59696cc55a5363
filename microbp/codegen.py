"""From the op table's formulas to code.

An op of the table (ops.py) states its forward value and its local
derivatives as small expressions over the inputs `a`, `b` and the result
`out`, written in a subset of Python that is also C:

    numbers, a, b, out, + - * / and unary -, calls of exp log tanh pow fabs
    sqrt sign, comparisons, `and`/`or`, `x if test else y` (a selection: each
    branch is a local derivative of its own, see times) and `where(test, x, y)`
    (a number like any other factor: u × where(...) multiplies even a zero),
    and `factor(x)`, which makes a product one factor: u × factor(b * c) is
    u * (b * c), where u × (b * c) is (u * b) * c.

This module parses them once and renders each into the three places that use
them, so that the engine, the Python executor and the C core can never
disagree:

    python(expr)            Python over floats (with the IEEE functions of ieee.py)
    python_values(expr)     Python over Values (to build gradient graphs)
    c(expr)                 C over doubles (csrc/ops_generated.h)

The one rule that turns a local derivative into a sweep is `times(u, d)`:
the product u × d of an upstream gradient (reverse mode) or of a tangent
(forward mode) with the local derivative d. It is written as C and Python
parse `u * d` without parentheses (u multiplies the first factor of a product
chain: u × (1 - out) × out), goes into both branches of a conditional, and
a literal 0 is a structural zero: it contributes nothing, even when u is inf
or nan (relu'(x) for x <= 0 gives exactly 0, as in PyTorch).
"""
import ast

FUNCS = ("exp", "log", "tanh", "pow", "fabs", "sqrt", "sign", "where", "factor")
_BINOPS = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/"}
_PREC = {ast.Add: 1, ast.Sub: 1, ast.Mult: 2, ast.Div: 2}
_CMPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "==", ast.NotEq: "!="}


def parse(text, names=("a", "b", "out")):
    """The expression `text` as a checked tree (ast): only the subset above."""
    tree = ast.parse(text, mode="eval").body
    called = {id(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    for node in ast.walk(tree):
        ok = isinstance(node, (ast.BinOp, ast.UnaryOp, ast.Call, ast.IfExp, ast.Compare,
                               ast.BoolOp, ast.Constant, ast.Name, ast.Load, ast.USub,
                               ast.And, ast.Or, *_BINOPS, *_CMPS))
        if isinstance(node, ast.Constant):
            ok = type(node.value) is float
        elif isinstance(node, ast.Name):
            ok = node.id in names or (id(node) in called and node.id in FUNCS)
        elif isinstance(node, ast.Call):
            ok = isinstance(node.func, ast.Name) and node.func.id in FUNCS and not node.keywords
        elif isinstance(node, ast.Compare):
            ok = len(node.ops) == 1
        if not ok:
            raise ValueError(f"op formula {text!r}: {ast.dump(node)[:60]} is not allowed "
                             "(floats like 1.0, a, b, out, + - * /, calls of "
                             f"{', '.join(FUNCS)}, comparisons, and/or, x if t else y)")
    return tree


def is_zero(e):
    return isinstance(e, ast.Constant) and e.value == 0.0


def _is_one(e):
    return isinstance(e, ast.Constant) and e.value == 1.0


ZERO = ast.Constant(0.0)


def times(u, d):
    """The tree of u × d (see the module docstring), or None for a structural zero."""
    if is_zero(d):
        return None
    if _is_one(d):
        return u                                  # u * 1.0 is u, bit for bit
    if isinstance(d, ast.IfExp):
        return ast.IfExp(d.test, times(u, d.body) or ZERO, times(u, d.orelse) or ZERO)
    if isinstance(d, ast.BinOp) and isinstance(d.op, (ast.Mult, ast.Div)):
        return ast.BinOp(times(u, d.left) or ZERO, d.op, d.right)
    return ast.BinOp(u, ast.Mult(), d)


def name(n):
    return ast.Name(n, ast.Load())


# ---------------------------------------------------------------------------
# rendering: one walk, three dialects

class _Render:
    """Text of a tree, with the parentheses its structure needs (C and Python
    share the precedence and left-to-right grouping of + - * / and unary -)."""

    def text(self, e, prec=0):
        kind = type(e).__name__
        return getattr(self, kind)(e, prec)

    def Constant(self, e, prec):
        return repr(e.value)

    def Name(self, e, prec):
        return e.id

    def BinOp(self, e, prec):
        p = _PREC[type(e.op)]
        s = f"{self.text(e.left, p)} {_BINOPS[type(e.op)]} {self.text(e.right, p + 1)}"
        return f"({s})" if p < prec else s

    def UnaryOp(self, e, prec):
        return f"-{self.text(e.operand, 3)}"

    def Call(self, e, prec):
        return f"{e.func.id}({', '.join(self.text(x) for x in e.args)})"

    def Compare(self, e, prec):
        s = f"{self.text(e.left, 1)} {_CMPS[type(e.ops[0])]} {self.text(e.comparators[0], 1)}"
        return f"({s})" if prec > 0 else s

    def BoolOp(self, e, prec):
        op = " and " if isinstance(e.op, ast.And) else " or "
        return "(" + op.join(self.text(x, 1) for x in e.values) + ")"

    def IfExp(self, e, prec):
        return f"({self.text(e.body)} if {self.text(e.test)} else {self.text(e.orelse)})"


def _factor(render, e, prec):
    """factor(x): x as one parenthesized factor, in every dialect."""
    return f"({render.text(e.args[0])})"


class _Python(_Render):
    """Python over floats: division and libm calls through ieee.py."""

    def BinOp(self, e, prec):
        if isinstance(e.op, ast.Div):
            return f"_div({self.text(e.left)}, {self.text(e.right)})"
        return super().BinOp(e, prec)

    def Call(self, e, prec):
        if e.func.id == "where":
            return self.IfExp(ast.IfExp(e.args[0], e.args[1], e.args[2]), prec)
        if e.func.id == "factor":
            return _factor(self, e, prec)
        return f"_{e.func.id}({', '.join(self.text(x) for x in e.args)})"


class _Values(_Render):
    """Python over Values: arithmetic builds graph nodes; tests and sign() read
    .data (their result is a constant: relu'' = abs'' = 0); names in `consts`
    stand for constant inputs and are read as floats (powc's exponent)."""

    METHODS = {"exp": "exp", "log": "log", "tanh": "tanh", "sqrt": "sqrt", "fabs": "abs"}

    def __init__(self, consts=()):
        self.consts = consts
        self.in_test = 0

    def Name(self, e, prec):
        return f"{e.id}.data" if (self.in_test or e.id in self.consts) else e.id

    def Call(self, e, prec):
        f, args = e.func.id, e.args
        if f == "factor":
            return _factor(self, e, prec)
        if f == "where":                  # a number: a zero branch is a constant 0
            self.in_test += 1
            test = self.text(args[0])
            self.in_test -= 1
            return f"({self.text(args[1])} if {test} else {self.text(args[2])})"
        if f == "sign":
            self.in_test += 1
            s = f"_sign({self.text(args[0])})"
            self.in_test -= 1
            return s
        if f == "pow":
            return f"({self.text(args[0], 4)} ** {self.text(args[1], 4)})"
        return f"{self.text(args[0], 4)}.{self.METHODS[f]}()"

    def Compare(self, e, prec):
        self.in_test += 1
        s = super().Compare(e, prec)
        self.in_test -= 1
        return s

    def IfExp(self, e, prec):
        self.in_test += 1
        test = self.text(e.test)
        self.in_test -= 1
        body = "None" if is_zero(e.body) else self.text(e.body)
        orelse = "None" if is_zero(e.orelse) else self.text(e.orelse)
        return f"({body} if {test} else {orelse})"


class _C(_Render):
    """C over doubles (libm), sign() as mbp_sign()."""

    def Constant(self, e, prec):
        s = repr(e.value)
        return s if ("." in s or "e" in s or "n" in s) else s + ".0"

    def Call(self, e, prec):
        if e.func.id == "where":
            return self.IfExp(ast.IfExp(e.args[0], e.args[1], e.args[2]), prec)
        if e.func.id == "factor":
            return _factor(self, e, prec)
        f = "mbp_sign" if e.func.id == "sign" else e.func.id
        return f"{f}({', '.join(self.text(x) for x in e.args)})"

    def BoolOp(self, e, prec):
        op = " && " if isinstance(e.op, ast.And) else " || "
        return "(" + op.join(self.text(x, 1) for x in e.values) + ")"

    def IfExp(self, e, prec):
        return f"({self.text(e.test)} ? {self.text(e.body)} : {self.text(e.orelse)})"


def python(e):
    return _Python().text(e)


def python_values(e, consts=()):
    return _Values(consts).text(e)


def c(e):
    return _C().text(e)

"""microbp.Value: a scalar node of a computational graph.

Each op computes its forward value now and records what backward() needs
later: its op code and its inputs. The forward formula and the local
derivatives of every op live side by side in the op table (ops.py); the
methods below only pick the row. A node holds no closure and no reference to
its outputs, so a graph is an acyclic web of plain references from the output
down to the leaves: dropping the output frees it by reference counting alone.
So Python's cycle collector has nothing to find in a graph, and when
microbp._pyread is built the Values made here are not tracked by it (as
CPython does for tuples of numbers): it would otherwise walk every live
node at each full collection, which made a node cost several times more to
build in a graph of millions. A cycle made by hand through a Value (setting
an attribute to an object that refers back to it) is then never collected.

Every new interior value is made by _node(). Two switches act there, each
free while no block of it is open in any thread: inside `with no_grad():`
(this thread) a new value records no inputs (it is a constant leaf), and
while a detect_anomaly() block is open in some thread (anomaly.switch) each
new value is passed to anomaly.check_value. Those are the engine's only hooks.
One test of the two switches' counts keeps them out of the common path.
weighted_sum(), the forward of nn's neurons, makes the nodes of b + w0*x0 +
w1*x1 + ... itself, without the operator dispatch, and leaves them to the
operators (and so to _node) while any block is open. The lines that make a
node are written once (_MAKE) and compiled, at import, into both _made(),
which _node calls, and the body of weighted_sum's loop (no call per node).

A Value is a graph node: `==` and hash are identity (Values are dict keys),
while float(v), format(v, ".3f"), v.item() and < <= > >= read .data, as for
a 0-d PyTorch tensor, so max(values), sorted(values) and `if loss < 0.01:`
work.
"""
from __future__ import annotations

import contextlib
import itertools
import numbers
from typing import Any, Iterator, Optional, Union

from . import anomaly, draw, graph, ops
from .checks import as_float
from .switch import ThreadSwitch
from .ops import (ADD, SUB, MUL, DIV, POW, POWC, NEG, EXP, LOG, TANH, SIGMOID,
                  RELU, ABS, LEAF, CONST)

_next_id = itertools.count().__next__     # creation order is a topological order

try:    # Values make no reference cycles: the cycle collector need not track them
    from ._pyread import untrack as _untrack, new_untracked as _new_node
except ImportError:                       # (it does, when the C is not built)
    _untrack, _new_node = None, object.__new__
_no_grad = ThreadSwitch()                 # on inside no_grad() blocks, per thread
_anomaly = anomaly.switch                 # on inside detect_anomaly() blocks

# the forward formulas of the op table (ops.py), as plain names for speed
(_f_div, _f_pow, _f_powc, _f_neg, _f_exp, _f_log, _f_tanh, _f_sigmoid, _f_relu,
 _f_abs) = (ops.FORWARD[k] for k in (DIV, POW, POWC, NEG, EXP, LOG, TANH, SIGMOID, RELU, ABS))
# add, sub and mul, the ops of nearly every node, write their formulas out
# (a call less per node); the table must say just that
_INLINE = {ADD: "a + b", SUB: "a - b", MUL: "a * b"}
if any(ops.OPS[k].forward != f for k, f in _INLINE.items()):
    raise ImportError("engine.py computes add, sub and mul as a + b, a - b and a * b, "
                      "and the op table (ops.py) now says otherwise: change them together")


class Value:
    """A scalar node of a graph: a float `data`, a float `grad`, and the op and
    inputs that made it. `Value(2.0, label="x")` makes a leaf.

    Args:
        data: the number, any real number but bool (int, float, numpy's
            float64, Fraction, ...); it is stored as a Python float.
        label: a name for pictures, explanations and error messages.

    Raises:
        TypeError: `data` is not a real number (or is a bool), or `label` is
            not a str.
        ValueError: `data` is an int too large for a float.

    Arithmetic: `a + b`, `a - b`, `a * b`, `a / b`, `a ** b`, `-a` and
    `abs(a)` each return a new Value recording the op, with the other operand
    a Value or a real number (a number, on either side, becomes a constant
    leaf: `2 * x`, `1 - x`, `x ** 3`). An operand of any other type (bool
    included) raises TypeError naming the op, and an int too large for a
    float raises ValueError. `a ** c` with a number c is
    the op "powc" (no gradient for c); with a Value on both sides it is "pow".
    The math follows IEEE 754 and never raises: 1 / Value(0.0) is inf,
    Value(-1.0).log() is nan (see microbp.ops).

    As a number: `==` and hash are identity (Values are graph nodes and
    dict keys), while `<`, `<=`, `>`, `>=` compare .data with a Value or a
    real number (TypeError for anything else), and float(v), v.item() and
    format(v, ".3f") read .data, as for a 0-d PyTorch tensor.
    """

    __slots__ = ("_data", "grad", "label", "_op", "_a", "_b", "_id")

    _data: float
    grad: float                 # d(output)/d(this value), filled by backward()
    label: str
    _op: int
    _a: Optional[Value]
    _b: Optional[Value]
    _id: int

    def __init__(self, data: float, label: str = "") -> None:
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {type(label).__name__}")
        self._data = as_float(data, "Value data")
        self.grad = 0.0
        self.label = label
        self._op = LEAF
        self._a = self._b = None
        self._id = _next_id()
        if _untrack is not None and type(self) is Value:
            _untrack(self)

    def __reduce__(self):
        # No creation number crosses a pickle: unpickled nodes get new ones in
        # topological order. The graph below an interior node goes as one flat
        # list (no recursion: a 10^5-deep graph pickles), its leaves as
        # themselves (a model's parameters stay shared); interior nodes shared
        # by two separately pickled outputs come back as two copies.
        if self._a is None:
            return _rebuild, (self._op, self._data, self.grad, self.label, None, None)
        nodes = graph.topo(self)
        at = {v: k for k, v in enumerate(nodes)}
        rows = [v if v._a is None else
                (v._op, v._data, v.grad, v.label, at[v._a], -1 if v._b is None else at[v._b])
                for v in nodes]
        return _rebuild_graph, (rows,)

    @property
    def data(self) -> float:
        """The value: always a Python float (an assignment is converted, or
        TypeError/ValueError by the rules of Value(...))."""
        return self._data

    @data.setter
    def data(self, x: float) -> None:
        self._data = x if type(x) is float else as_float(x, "data")

    def __repr__(self) -> str:
        lab = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self._data!r}, grad={self.grad!r}{lab})"

    @property
    def op(self) -> str:
        """The name of the op that made this value ('leaf' for a leaf)."""
        return ops.NAMES[self._op]

    @property
    def inputs(self) -> tuple[Value, ...]:
        """The input Values of the op that made this value (empty for a leaf)."""
        return tuple(v for v in (self._a, self._b) if v is not None)

    # -- binary ops ---------------------------------------------------------
    def __add__(self, other: Operand) -> Value:
        if not isinstance(other, Value):
            other = _const(other, "+")
        return _node(ADD, self._data + other._data, self, other)

    def __sub__(self, other: Operand) -> Value:
        if not isinstance(other, Value):
            other = _const(other, "-")
        return _node(SUB, self._data - other._data, self, other)

    def __mul__(self, other: Operand) -> Value:
        if not isinstance(other, Value):
            other = _const(other, "*")
        return _node(MUL, self._data * other._data, self, other)

    def __truediv__(self, other: Operand) -> Value:
        if not isinstance(other, Value):
            other = _const(other, "/")
        return _node(DIV, _f_div(self._data, other._data), self, other)

    def __pow__(self, other: Operand) -> Value:
        if isinstance(other, Value):       # a ** b: gradient for both
            return _node(POW, _f_pow(self._data, other._data), self, other)
        c = _const(other, "**")            # a ** c: c is a constant
        return _node(POWC, _f_powc(self._data, c._data), self, c)

    def __radd__(self, other: Operand) -> Value:
        other = _const(other, "+")
        return _node(ADD, other._data + self._data, other, self)

    def __rsub__(self, other: Operand) -> Value:
        other = _const(other, "-")
        return _node(SUB, other._data - self._data, other, self)

    def __rmul__(self, other: Operand) -> Value:
        other = _const(other, "*")
        return _node(MUL, other._data * self._data, other, self)

    def __rtruediv__(self, other: Operand) -> Value:
        other = _const(other, "/")
        return _node(DIV, _f_div(other._data, self._data), other, self)

    def __rpow__(self, other: Operand) -> Value:
        other = _const(other, "**")
        return _node(POW, _f_pow(other._data, self._data), other, self)

    # -- unary ops ----------------------------------------------------------
    def __neg__(self) -> Value:
        return _node(NEG, _f_neg(self._data, 0.0), self, None)

    def exp(self) -> Value:
        """e ** self, a new Value (inf when it overflows)."""
        return _node(EXP, _f_exp(self._data, 0.0), self, None)

    def log(self) -> Value:
        """The natural logarithm of self, a new Value: log(0) is -inf, the log of
        a negative number is nan."""
        return _node(LOG, _f_log(self._data, 0.0), self, None)

    def tanh(self) -> Value:
        """The hyperbolic tangent of self, a new Value (in [-1, 1])."""
        return _node(TANH, _f_tanh(self._data, 0.0), self, None)

    def sigmoid(self) -> Value:
        """1 / (1 + exp(-self)), a new Value (in [0, 1])."""
        return _node(SIGMOID, _f_sigmoid(self._data, 0.0), self, None)

    def relu(self) -> Value:
        """max(self, 0), a new Value: 0 for data < 0 (and its gradient 0 for
        data <= 0, as in PyTorch)."""
        return _node(RELU, _f_relu(self._data, 0.0), self, None)

    def abs(self) -> Value:
        """|self|, a new Value (also `abs(v)`); its gradient is sign(data), 0 at 0."""
        return _node(ABS, _f_abs(self._data, 0.0), self, None)

    __abs__ = abs

    def sqrt(self) -> Value:
        """The square root of self, a new Value: nan for a negative number,
        sqrt(-0.0) is -0.0."""
        return _node(ops.CODE["sqrt"], ops.OPS[ops.CODE["sqrt"]].f(self._data, 0.0), self, None)

    # -- a Value as a number (identity == and hash stay: Values are graph nodes)
    def __float__(self) -> float:
        return float(self._data)

    def item(self) -> float:
        """The value as a Python float (as PyTorch's Tensor.item())."""
        return float(self._data)

    def __format__(self, spec: str) -> str:
        return format(self._data, spec) if spec else repr(self)

    def __lt__(self, other: Operand) -> bool:
        return self._data < _number(other)

    def __le__(self, other: Operand) -> bool:
        return self._data <= _number(other)

    def __gt__(self, other: Operand) -> bool:
        return self._data > _number(other)

    def __ge__(self, other: Operand) -> bool:
        return self._data >= _number(other)

    __hash__ = object.__hash__

    def detach(self) -> Value:
        """A new leaf Value with this value's data and label: gradients stop
        there (nothing below it is reached by backward()). On a Tape it is a
        parameter that holds the number it was detached with."""
        return Value(self._data, self.label)

    def to_dot(self, max_nodes: int = 200) -> str:
        """Graphviz DOT text of the graph below this value, at most `max_nodes`
        values (those nearest this one; a note counts the rest). See
        microbp.draw.to_dot. TypeError if max_nodes is not an int,
        ValueError if it is below 1."""
        return draw.to_dot(self, max_nodes=max_nodes)

    def _repr_svg_(self) -> str:
        """A picture of the graph below this value, for Jupyter (microbp.draw)."""
        return draw.repr_svg(self)

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, str]:
        return draw.repr_mimebundle(self, include, exclude)

    # -- backpropagation ----------------------------------------------------
    def backward(self) -> None:
        """Backpropagate from this value: add d(self)/d(node) into node.grad for
        every node of the graph below it, this one included (its own grad gets 1).

        Gradients accumulate, as in micrograd and PyTorch: a second call adds the
        same gradients again, so zero them between training steps. The sweep is
        iterative (no recursion limit) and runs in the selected backend
        (see microbp.set_backend). Returns None. Raises
        microbp.BackendError when the backend chosen by MICROBP_BACKEND cannot
        be used (an unknown name, or "c" where the C core is not built).
        """
        graph.backward(self)


# what an op takes besides a Value: any real number but bool (int, float,
# numpy's float64, Fraction, ...); it becomes a constant leaf
Operand = Union[Value, float]


def _node(op: int, data: float, a: Optional[Value], b: Optional[Value]) -> Value:
    """A new interior node; `data` was computed by the op table's forward."""
    if _no_grad.active or _anomaly.active:    # some block open in some thread
        if _no_grad.active and _no_grad.on():
            op, a, b = CONST, None, None      # no_grad(): a constant, no inputs
        v = _made(op, data, a, b)
        if _anomaly.active:
            anomaly.check_value(v)
        return v
    return _made(op, data, a, b)


# -- where nodes are made ----------------------------------------------------
# The lines of _MAKE make a node; they are written nowhere else. _made() is
# them as a function, and the loop of weighted_sum (_add_terms) has them in its
# body twice, a product and a sum per term, where a call of _made per node
# cost about 4% of the eager training step. Both functions are compiled from
# this text once, at import, as graph._sweep is from the op table.
_MAKE = """\
{v} = new(Value)
{v}._data = {data}
{v}.grad = 0.0
{v}.label = ""
{v}._op = {op}
{v}._a = {a}
{v}._b = {b}
{v}._id = next_id()"""

_MAKERS = """\
def _made(op, data, a, b):
    \"""The Value of a node, made with no hook.\"""
    new, next_id = _new_node, _next_id
{made}
    return v


def _add_terms(s, sd, w, x, wd, xd, start):
    \"""s + w[start]*x[start] + w[start+1]*x[start+1] + ..., added left to
    right, a product then a sum per term, with no hook; sd is s's data.\"""
    new, next_id = _new_node, _next_id
    for k in range(start, len(w)):
        md = wd[k] * xd[k]
{mul}
        sd = sd + md
{add}
        s = t
    return s
"""


def _makers():
    """_made and _add_terms, compiled from _MAKERS with _MAKE in their bodies."""
    def make(indent, **fields):
        return "\n".join(indent + line for line in _MAKE.format(**fields).splitlines())
    source = _MAKERS.format(made=make("    ", v="v", data="data", op="op", a="a", b="b"),
                            mul=make(" " * 8, v="m", data="md", op="MUL", a="w[k]", b="x[k]"),
                            add=make(" " * 8, v="t", data="sd", op="ADD", a="s", b="m"))
    env = {"Value": Value, "_new_node": _new_node, "_next_id": _next_id, "MUL": MUL, "ADD": ADD,
           "__name__": __name__}
    exec(compile(source, "<microbp node makers>", "exec"), env)
    return env["_made"], env["_add_terms"]


_made, _add_terms = _makers()


def weighted_sum(base: Optional[Value], w: list[Value], x: list[Value], wd: list[float],
                 xd: list[float]) -> Value:
    """base + w[0]*x[0] + w[1]*x[1] + ..., added left to right (from w[0]*x[0]
    when base is None): the very Values those ops make one at a time (the same
    nodes, values and creation order, a mul then an add per term), made
    without their dispatch. The forward of nn's neurons. wd and xd are the
    data of w and x; nothing is checked: w, x, wd and xd have one length >= 1."""
    if _no_grad.active or _anomaly.active:   # the ops themselves pass by the hooks
        s, start = (w[0] * x[0], 1) if base is None else (base, 0)
        for i in range(start, len(w)):
            s = s + w[i] * x[i]
        return s
    if base is None:                         # the sum starts from w[0]*x[0]
        s = _made(MUL, wd[0] * xd[0], w[0], x[0])
        return _add_terms(s, s._data, w, x, wd, xd, 1)
    return _add_terms(base, base._data, w, x, wd, xd, 0)


def _number(x: Operand) -> float:
    if isinstance(x, Value):
        return x._data
    if isinstance(x, numbers.Real):
        return x
    raise TypeError(f"a Value compares with a Value or a number, not {type(x).__name__}")


@contextlib.contextmanager
def no_grad() -> Iterator[None]:
    """`with no_grad():` ops compute values and record no inputs (each result is
    a constant leaf: no graph, nothing to backpropagate), in this thread only,
    until the block ends. For cheap evaluation, e.g. of accuracy. Blocks nest;
    takes no arguments and raises nothing of its own."""
    with _no_grad:
        yield


def leaf_init(v: Value, label: str) -> None:
    """Set the Value slots of a new leaf `v` other than data and grad, with
    `label` (for Value subclasses that keep those elsewhere, as
    params.Parameter does). No checks: the caller checked label."""
    v.label = label
    v._op = LEAF
    v._a = v._b = None
    v._id = _next_id()


def _rebuild_graph(rows):
    nodes = []
    for row in rows:
        if isinstance(row, Value):
            nodes.append(row)
            continue
        op, data, grad, label, a, b = row
        v = _node(op, data, nodes[a], nodes[b] if b >= 0 else None)
        v.grad, v.label = grad, label
        nodes.append(v)
    return nodes[-1]


def _rebuild(op, data, grad, label, a, b):
    v = _node(op, data, a, b) if op != LEAF else Value(data, label)
    v.grad = grad
    v.label = label
    return v


def as_value(x: Operand, what: str) -> Value:
    """x as a Value: a Value itself, or a number as a constant leaf. bool is
    refused here (a list of model inputs or targets holding True is a slip);
    TypeError names `what` and the type."""
    if isinstance(x, Value):
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        return _node(CONST, as_float(x, what), None, None)
    raise TypeError(f"{what} must be a Value, int or float, not {type(x).__name__}")


def _const(x: Operand, opname: str) -> Value:
    """A number operand of an op, as a constant leaf."""
    if isinstance(x, numbers.Real):
        return _node(CONST, as_float(x, f"operand of {opname}"), None, None)
    raise TypeError(f"unsupported operand for {opname}: expected a Value, int or float, "
                    f"not {type(x).__name__}")

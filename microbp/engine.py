"""microbp.Value: a scalar node of a computational graph.

Each op computes its forward value now and records what backward() needs later:
its op code and its inputs. The chain rule for every op lives in the op table
(ops.py), beside the forward formula. A node holds no closure and no reference
to its outputs, so a graph is a tree of plain references from the output down
to the leaves: dropping the output frees the graph by reference counting alone.
"""
import itertools
import math
import numbers

from . import ops
from .ops import (ADD, SUB, MUL, DIV, POW, POWC, NEG, EXP, LOG, TANH, SIGMOID,
                  RELU, ABS, LEAF, CONST)

_next_id = itertools.count().__next__     # creation order is a topological order
_F = ops.FORWARD


def as_float(x, what="data"):
    """x as a Python float, or TypeError naming what was expected."""
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real):
        try:
            return float(x)
        except OverflowError:
            raise ValueError(f"{what}: {x!r} is too large for a float") from None
    raise TypeError(f"{what} must be an int or float, not {type(x).__name__}")


class Value:
    """A scalar with a gradient. `Value(2.0, label="x")`."""

    __slots__ = ("data", "grad", "label", "_op", "_a", "_b", "_id", "_bind")

    def __init__(self, data, label=""):
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {type(label).__name__}")
        self.data = as_float(data, "Value data")
        self.grad = 0.0
        self.label = label
        self._op = LEAF
        self._a = self._b = self._bind = None
        self._id = _next_id()

    def __repr__(self):
        lab = f", label={self.label!r}" if self.label else ""
        return f"Value(data={self.data!r}, grad={self.grad!r}{lab})"

    @property
    def op(self):
        """The name of the op that made this value ('leaf' for a leaf)."""
        return ops.NAMES[self._op]

    @property
    def inputs(self):
        """The input Values of the op that made this value (empty for a leaf)."""
        return tuple(v for v in (self._a, self._b) if v is not None)

    # -- binary ops ---------------------------------------------------------
    def __add__(self, other):
        o = _operand(other, "+")
        return _node(ADD, _F[ADD](self.data, o.data), self, o)

    def __sub__(self, other):
        o = _operand(other, "-")
        return _node(SUB, _F[SUB](self.data, o.data), self, o)

    def __mul__(self, other):
        o = _operand(other, "*")
        return _node(MUL, _F[MUL](self.data, o.data), self, o)

    def __truediv__(self, other):
        o = _operand(other, "/")
        return _node(DIV, _F[DIV](self.data, o.data), self, o)

    def __pow__(self, other):
        if isinstance(other, Value):       # a ** b: gradient for both
            return _node(POW, _F[POW](self.data, other.data), self, other)
        c = _const(other, "**")            # a ** c: c is a constant
        return _node(POWC, _F[POWC](self.data, c.data), self, c)

    def __radd__(self, other):
        o = _operand(other, "+")
        return _node(ADD, _F[ADD](o.data, self.data), o, self)

    def __rsub__(self, other):
        o = _operand(other, "-")
        return _node(SUB, _F[SUB](o.data, self.data), o, self)

    def __rmul__(self, other):
        o = _operand(other, "*")
        return _node(MUL, _F[MUL](o.data, self.data), o, self)

    def __rtruediv__(self, other):
        o = _operand(other, "/")
        return _node(DIV, _F[DIV](o.data, self.data), o, self)

    def __rpow__(self, other):
        o = _operand(other, "**")
        return _node(POW, _F[POW](o.data, self.data), o, self)

    # -- unary ops ----------------------------------------------------------
    def __neg__(self):
        return _node(NEG, _F[NEG](self.data, 0.0), self, None)

    def exp(self):
        return _node(EXP, _F[EXP](self.data, 0.0), self, None)

    def log(self):
        return _node(LOG, _F[LOG](self.data, 0.0), self, None)

    def tanh(self):
        return _node(TANH, _F[TANH](self.data, 0.0), self, None)

    def sigmoid(self):
        return _node(SIGMOID, _F[SIGMOID](self.data, 0.0), self, None)

    def relu(self):
        return _node(RELU, _F[RELU](self.data, 0.0), self, None)

    def abs(self):
        return _node(ABS, _F[ABS](self.data, 0.0), self, None)

    __abs__ = abs

    # -- backpropagation ----------------------------------------------------
    def backward(self):
        """Backpropagate from this value: add d(self)/d(node) into node.grad for
        every node of the graph below it, this one included (its own grad gets 1).

        Gradients accumulate, as in micrograd and PyTorch: a second call adds the
        same gradients again, so zero them between training steps. The sweep is
        iterative (no recursion limit) and runs in the selected backend
        (see microbp.set_backend).
        """
        from .graph import backward
        backward(self)


def _node(op, data, a, b):
    """A new interior node; `data` was computed by the op table's forward."""
    v = _new(Value)
    v.data = data
    v.grad = 0.0
    v.label = ""
    v._op = op
    v._a = a
    v._b = b
    v._bind = None
    v._id = _next_id()
    return v


_new = object.__new__


def _const(x, opname):
    if isinstance(x, numbers.Real) and not isinstance(x, Value):
        v = _node(CONST, as_float(x, f"right operand of {opname}"), None, None)
        return v
    raise TypeError(f"unsupported operand for {opname}: expected a Value, int or float, "
                    f"not {type(x).__name__}")


def _operand(x, opname):
    if isinstance(x, Value):
        return x
    return _const(x, opname)

"""detect_anomaly(): stop at the first op whose value or gradient is nan or inf.

    with microbp.detect_anomaly():
        loss = model(x)        # eager ops check each new value
        loss.backward()        # the gradients are checked before .grad changes
        tape.forward(batch)    # tapes check their values and gradients too

The error is a FloatingPointError naming the op, the label of its value if it
has one, and its position (node index in topological order, and the row of
the batch for a tape; for a new eager value, its creation number). Blocks nest
and apply to the thread that enters them. Off by default and nearly free when
off: the engine passes each new value to check_value() only while `switch.active`
(blocks open in all threads) is non-zero (see engine._node).
"""
import contextlib
import math

from . import ops
from .switch import ThreadSwitch

switch = ThreadSwitch()          # its .active is read by engine._node


def enabled():
    """True inside a detect_anomaly() block of this thread."""
    return switch.on()


def _what(x):
    return "nan" if x != x else ("inf" if x > 0 else "-inf")


def describe(i, op, label="", row=None):
    """Text naming node i: its op, its label if any, the row of a batch."""
    name = ops.NAMES[op] if isinstance(op, int) else op
    lab = f" labelled {label!r}" if label else ""
    where = f", row {row}" if row is not None else ""
    return f"node {i} ({name}{lab}{where})"


def check_value(v):
    """Called by the engine for each new value while some block is open."""
    data = v.data
    if v._op > ops.CONST and not math.isfinite(data) and enabled():
        inputs = ", ".join(repr(x.data) for x in (v._a, v._b) if x is not None)
        raise FloatingPointError(
            f"detect_anomaly: the value of {ops.NAMES[v._op]}({inputs}) (new value number "
            f"{v._id}) became {_what(data)}")


def check_gradients(adj, ops_, labels, first_nonfinite):
    """Raise if a gradient in adj (one per node, topological order) is nan/inf:
    the first in the backward sweep, i.e. the last in topological order.
    Constants are passed over: their gradients go nowhere."""
    n = len(adj)
    rev = adj[::-1]
    k = first_nonfinite(rev, 0)
    while k >= 0 and ops_[n - 1 - k] == ops.CONST:
        k = first_nonfinite(rev, k + 1)
    if k >= 0:
        i = n - 1 - k
        raise FloatingPointError(f"detect_anomaly: the gradient of "
                                 f"{describe(i, ops_[i], labels(i))} became {_what(adj[i])}")


def check_lanes(arr, off, vary, nr, op, name, first_nonfinite, what, reverse=False):
    """Raise at the first non-leaf node of a tape (the last, for gradients) whose
    value or gradient in arr is nan/inf in some row. name(i, row, what) gives
    the (op name, label) to report for node i."""
    n = len(op)
    order = range(n - 1, -1, -1) if reverse else range(n)
    for i in order:
        if op[i] == ops.CONST or (op[i] == ops.LEAF and what == "value"):
            continue                      # constants, and the data fed in
        w = nr if vary[i] else 1
        k = first_nonfinite(arr, off[i], off[i] + w)
        if k >= 0:
            row = (k - off[i]) if vary[i] else None
            opname, label = name(i, row, what)
            raise FloatingPointError(f"detect_anomaly: the {what} of "
                                     f"{describe(i, opname, label, row)} became {_what(arr[k])}")


@contextlib.contextmanager
def detect_anomaly():
    """Raise FloatingPointError at the first op whose value or gradient is nan/inf."""
    with switch:
        yield

"""detect_anomaly(): stop at the first op whose value or gradient is nan or inf.

    with microbp.detect_anomaly():
        loss = model(x)        # eager ops check each new value
        loss.backward()        # the gradients are checked before .grad changes
        tape.forward(batch)    # tapes check their values and gradients too

The error is a FloatingPointError naming the op, the label of its value if it
has one, and its position (node index in topological order, and the row of
the batch for a tape). Off by default and free when off: entering the block
swaps in a checking node constructor, leaving it swaps the plain one back.
The switch is process-wide (like set_backend), and blocks nest.
"""
import contextlib
import math
import threading

from . import engine, ops

_lock = threading.Lock()
_depth = 0
_plain_node = engine._node


def enabled():
    """True inside a detect_anomaly() block."""
    return _depth > 0


def _what(x):
    return "nan" if x != x else ("inf" if x > 0 else "-inf")


def describe(i, op, label="", row=None):
    """Text naming node i: its op, its label if any, the row of a batch."""
    name = ops.NAMES[op] if isinstance(op, int) else op
    lab = f" labelled {label!r}" if label else ""
    where = f", row {row}" if row is not None else ""
    return f"node {i} ({name}{lab}{where})"


def _checked_node(op, data, a, b):
    v = _plain_node(op, data, a, b)
    if op > ops.CONST and not math.isfinite(data):
        inputs = ", ".join(repr(x.data) for x in (a, b) if x is not None)
        raise FloatingPointError(
            f"detect_anomaly: the value of {ops.NAMES[op]}({inputs}) (new node #{v._id}) "
            f"became {_what(data)}")
    return v


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


def check_lanes(arr, off, vary, nr, op, labels, first_nonfinite, what, reverse=False):
    """Raise at the first non-leaf node of a tape (the last, for gradients) whose
    value or gradient in arr is nan/inf in some row."""
    n = len(op)
    order = range(n - 1, -1, -1) if reverse else range(n)
    for i in order:
        if op[i] == ops.CONST or (op[i] == ops.LEAF and what == "value"):
            continue                      # constants, and the data fed in
        w = nr if vary[i] else 1
        k = first_nonfinite(arr, off[i], off[i] + w)
        if k >= 0:
            row = (k - off[i]) if vary[i] else None
            raise FloatingPointError(f"detect_anomaly: the {what} of "
                                     f"{describe(i, op[i], labels(i), row)} became {_what(arr[k])}")


@contextlib.contextmanager
def detect_anomaly():
    """Raise FloatingPointError at the first op whose value or gradient is nan/inf."""
    global _depth
    with _lock:
        _depth += 1
        engine._node = _checked_node
    try:
        yield
    finally:
        with _lock:
            _depth -= 1
            if _depth == 0:
                engine._node = _plain_node

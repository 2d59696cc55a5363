"""From a Value graph to a flat node array, and the eager backward pass.

Values are created in topological order (every op's inputs exist before its
output), so the nodes below a root, sorted by creation, are a topological order.
"""
from operator import attrgetter

from . import anomaly
from .backend import executor

_creation = attrgetter("_id")
_op, _a, _b, _data = attrgetter("_op"), attrgetter("_a"), attrgetter("_b"), attrgetter("_data")


def topo(root):
    """The nodes of the graph below `root`, inputs before outputs, root last."""
    seen = {root}
    stack = [root]
    nodes = [root]
    add, push, keep, pop = seen.add, stack.append, nodes.append, stack.pop
    while stack:                 # depth first: `nodes` comes out nearly reversed,
        v = pop()                # which the sort below handles in linear time
        c = v._a
        if c is None:            # a leaf
            continue
        if c not in seen:
            add(c)
            push(c)
            keep(c)
        c = v._b
        if c is not None and c not in seen:
            add(c)
            push(c)
            keep(c)
    nodes.sort(key=_creation)
    return nodes


def flatten(nodes):
    """Op codes, input indices (-1 for none) and values of `nodes`, as lists."""
    pos = dict(zip(nodes, range(len(nodes))))
    pos[None] = -1
    index = pos.__getitem__
    op = list(map(_op, nodes))
    a = list(map(index, map(_a, nodes)))
    b = list(map(index, map(_b, nodes)))
    val = list(map(_data, nodes))
    return op, a, b, val


def backward(root):
    """Add d root / d node into node.grad for every node below root."""
    nodes = topo(root)
    op, a, b, val = flatten(nodes)
    ex = executor()
    adj = ex.backward_scalar(op, a, b, val)
    if anomaly.enabled():                   # before any .grad changes
        anomaly.check_gradients(adj, op, lambda i: nodes[i].label, ex.first_nonfinite)
    for v, g in zip(nodes, adj):
        v.grad += g

"""From a Value graph to a flat node array, and the eager backward pass.

Values are created in topological order (every op's inputs exist before its
output), so the nodes below a root, sorted by creation, are a topological order.
"""
from operator import attrgetter

from .ops import CONST

_creation = attrgetter("_id")


def topo(root):
    """The nodes of the graph below `root`, inputs before outputs, root last."""
    seen = {root}
    stack = [root]
    nodes = [root]
    push, add = stack.append, seen.add
    while stack:
        v = stack.pop()
        for c in (v._a, v._b):
            if c is not None and c not in seen:
                add(c)
                push(c)
                nodes.append(c)
    nodes.sort(key=_creation)
    return nodes


def flatten(nodes):
    """Op codes, input indices (-1 for none) and values of `nodes`, as lists."""
    pos = {v: i for i, v in enumerate(nodes)}
    pos[None] = -1
    op = [v._op for v in nodes]
    a = [pos[v._a] for v in nodes]
    b = [pos[v._b] for v in nodes]
    val = [v.data for v in nodes]
    return op, a, b, val


def backward(root):
    """Add d root / d node into node.grad for every node below root."""
    from .backend import executor
    nodes = topo(root)
    op, a, b, val = flatten(nodes)
    adj = executor().backward_scalar(op, a, b, val)
    for v, g in zip(nodes, adj):
        v.grad += g

"""Walks over a graph of values, for pictures and explanations.

Everything here is duck-typed on a value's public attributes: `.inputs` (a
tuple of values), `.op` (the op's name: "leaf", "const", "add", ...),
`.data`, `.grad` and `.label`. Nothing here imports the engine, so the
pictures keep working whatever the engine keeps inside a node.
"""
import heapq
from collections import deque

PUBLIC = ("data", "grad", "label", "op", "inputs")


def check_value(value, who):
    """TypeError unless `value` looks like a microbp Value (has the public
    attributes the pictures read)."""
    if not all(hasattr(value, name) for name in PUBLIC):
        raise TypeError(f"{who} needs a Value (something with .data, .grad, .label, .op "
                        f"and .inputs), not {type(value).__name__}")
    return value


def topo(root):
    """The values below `root`, inputs before outputs, `root` last: the order
    of a depth-first walk that visits a value's inputs in order (iterative, so
    a graph of any depth is fine)."""
    order = []
    done = set()
    stack = [(root, iter(root.inputs))]
    on_stack = {root}
    while stack:
        v, rest = stack[-1]
        for c in rest:
            if c not in done and c not in on_stack:
                on_stack.add(c)
                stack.append((c, iter(c.inputs)))
                break
        else:
            stack.pop()
            done.add(v)
            order.append(v)
    return order


def nearest(root, max_nodes):
    """The values nearest `root` to draw when at most `max_nodes` fit.

    Returns (kept, order): `kept` the chosen values in topological order
    (inputs first), `order` the whole graph's topological order. A value is
    kept only once every value that uses it is kept, so a kept value's
    gradient is the sum of products that are all in the picture; among the
    values that qualify, the nearest the output (fewest ops away, breadth
    first) go first."""
    order = topo(root)
    if len(order) <= max_nodes:
        return order, order
    # distance from the output, breadth first
    depth = {root: 0}
    queue = deque([root])
    while queue:
        v = queue.popleft()
        for c in v.inputs:
            if c not in depth:
                depth[c] = depth[v] + 1
                queue.append(c)
    users = {}                                  # how many times a value is used
    for v in order:
        for c in v.inputs:
            users[c] = users.get(c, 0) + 1
    rank = {v: k for k, v in enumerate(order)}
    heap = [(0, -rank[root], root)]
    chosen = set()
    while heap and len(chosen) < max_nodes:
        _, _, v = heapq.heappop(heap)
        chosen.add(v)
        for c in v.inputs:
            users[c] -= 1
            if users[c] == 0:                   # every use of c is kept now
                heapq.heappush(heap, (depth[c], -rank[c], c))
    return [v for v in order if v in chosen], order


def is_const(v):
    return v.op == "const"


def names(nodes):
    """A display name for each value: its label; a constant's number; else
    the op and a number counting the values in `nodes` (topological order),
    like "mul#3"."""
    out = {}
    for k, v in enumerate(nodes):
        if v.label:
            out[v] = v.label
        elif is_const(v):
            out[v] = format(v.data, ".6g")
        elif not v.inputs:
            out[v] = f"leaf#{k}"
        else:
            out[v] = f"{v.op}#{k}"
    return out


def number(x):
    """A float for a picture or a table: six significant digits."""
    return format(x, ".6g")

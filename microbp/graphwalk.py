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
    return walk(root)[0]


def walk(root):
    """(topo(root), {value: its inputs}): each value's .inputs read once."""
    ins = {root: root.inputs}                   # also: the values seen so far
    order = []
    stack = [(root, iter(ins[root]))]
    while stack:
        v, rest = stack[-1]
        for c in rest:
            if c not in ins:        # seen before: already in order (no value on the
                ins[c] = c.inputs   # stack is an input of one above it: no cycles)
                stack.append((c, iter(ins[c])))
                break
        else:
            stack.pop()
            order.append(v)
    return order, ins


def ranked(root, limit):
    """The values nearest `root`, nearest first, at most `limit` of them, and
    the whole graph's topological order: (ranking, order).

    A value is ranked only after every value that uses it, so any first n of
    the ranking hold, for each value they hold, all of its users (its
    gradient is the sum of products that are all among them); among the
    values that qualify, the nearest the output (fewest ops away, breadth
    first) go first. Any prefix of the ranking is the same as the ranking
    for a smaller limit, so one call serves every budget up to `limit`."""
    order, ins = walk(root)
    if len(order) <= limit:
        return list(reversed(order)), order
    depth = {root: 0}                           # distance from the output
    queue = deque([root])
    while queue:
        v = queue.popleft()
        d = depth[v] + 1
        for c in ins[v]:
            if c not in depth:
                depth[c] = d
                queue.append(c)
    users = {}                                  # how many times a value is used
    for v in order:
        for c in ins[v]:
            users[c] = users.get(c, 0) + 1
    rank = {v: k for k, v in enumerate(order)}
    heap = [(0, -rank[root], root)]
    out = []
    while heap and len(out) < limit:
        _, _, v = heapq.heappop(heap)
        out.append(v)
        for c in ins[v]:
            users[c] -= 1
            if users[c] == 0:                   # every use of c is ranked now
                heapq.heappush(heap, (depth[c], -rank[c], c))
    return out, order


def nearest(root, max_nodes, ranking=None):
    """The values nearest `root` to draw when at most `max_nodes` fit:
    (kept, order), `kept` the chosen values in topological order (inputs
    first), `order` the whole graph's topological order (see ranked();
    `ranking` is a ranked() result to reuse, with a limit >= max_nodes)."""
    ranks, order = ranking if ranking is not None else ranked(root, max_nodes)
    if len(ranks) == len(order) and len(order) <= max_nodes:
        return order, order
    chosen = set(ranks[:max_nodes])
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

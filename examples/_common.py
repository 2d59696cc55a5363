"""What the examples share: the --backend option, a walk over a graph, and a
printout of the backward pass as local gradient x upstream gradient, node by
node. Only microbp's public API: a Value's .data, .grad, .label, .op (the
op's name) and .inputs."""
import argparse
import sys

import microbp
from microbp import Value
from microbp.demo import positive_int


def parser(description, steps=None):
    """An argument parser with --backend (and --steps when `steps` is a default)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--backend", default="auto", choices=("auto", "c", "python"),
                    help="where the sweeps run: auto (C when built), c or python "
                         "(default auto)")
    if steps is not None:
        ap.add_argument("--steps", type=positive_int, default=steps,
                        help=f"training steps (default {steps})")
    return ap


def require(args):
    """End the program, saying why, when --backend c asks for a C core that is
    not built."""
    if args.backend == "c" and "c" not in microbp.available_backends():
        print(f"error: the C backend is not built ({microbp.backend.c_import_error()}); "
              "run with --backend python", file=sys.stderr)
        sys.exit(2)


def backend(args):
    """`with backend(args) as name:` runs the block in the chosen backend."""
    require(args)
    return microbp.use_backend(args.backend)


def nodes_below(root):
    """Every Value below root (root included), each after all of its inputs:
    a topological order, found without recursion."""
    order, seen, stack = [], {id(root)}, [(root, False)]
    while stack:
        v, expanded = stack.pop()
        if expanded:
            order.append(v)
            continue
        stack.append((v, True))
        for c in reversed(v.inputs):         # the first input's subgraph comes first
            if id(c) not in seen:
                seen.add(id(c))
                stack.append((c, False))
    return order


# op name -> the same op on fresh Values (a constant exponent stays a number)
_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "powc": lambda a, b: a ** b.data,
    "neg": lambda a: -a, "exp": Value.exp, "log": Value.log, "tanh": Value.tanh,
    "sigmoid": Value.sigmoid, "relu": Value.relu, "abs": Value.abs,
}


def local_gradients(v):
    """d(v)/d(input) for each input of v, at the inputs' values: v's op applied
    again to fresh leaves holding the same numbers, and backpropagated."""
    if v.op not in _OPS:
        raise ValueError(f"local_gradients does not know the op {v.op!r}")
    leaves = [Value(c.data) for c in v.inputs]
    out = _OPS[v.op](*leaves)
    out.backward()
    return [c.grad for c in leaves]


def name_of(v, number=None):
    """How a node is called in printouts: its label, or its value if a constant,
    else its op and its position in `number` (a dict node -> int)."""
    if v.label:
        return v.label
    if v.op == "const":
        return f"{v.data:g}"
    return f"({v.op} #{(number or {}).get(v, '?')})"


def explain_backward(root, show_constants=False, out=print):
    """Print, for every op below `root` from the output down, each input's
    local gradient d(node)/d(input), the upstream gradient d(root)/d(node) it
    is multiplied by, and their product. Call it after root.backward(), which
    filled every node's .grad (with gradients from a single backward pass).

    Returns {input node: sum of its products}: the chain rule by hand, which
    the caller can hold against the .grad that backward() computed."""
    order = nodes_below(root)
    number = {v: k for k, v in enumerate(order)}
    total = {}
    rows = []
    for v in reversed(order):
        if not v.inputs:
            continue
        local = local_gradients(v)
        for k, c in enumerate(v.inputs):
            if c.op == "const" and not show_constants:
                continue
            product = v.grad * local[k]
            total[c] = total.get(c, 0.0) + product
            rows.append((name_of(v, number), v.op, name_of(c, number), local[k], v.grad,
                         product))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    upstream = f"x upstream d({name_of(root, number)})/d(node)"
    u = max(len(upstream), 14)
    out(f"  {'node':<{w[0]}}  {'op':<{w[1]}}  {'input':<{w[2]}}  "
        f"{'local d(node)/d(input)':>22}  {upstream:>{u}}  {'= product':>12}")
    for node, op, inp, loc, up, prod in rows:
        out(f"  {node:<{w[0]}}  {op:<{w[1]}}  {inp:<{w[2]}}  {loc:>22.6g}  "
            f"{up:>{u}.6g}  {prod:>12.6g}")
    return total

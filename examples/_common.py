"""What the examples share: the --backend option, and a printout of the
backward pass as local gradient x upstream gradient, node by node."""
import argparse
import sys

import microbp
from microbp import ops
from microbp.graph import topo


def parser(description, steps=None):
    """An argument parser with --backend (and --steps when `steps` is a default)."""
    ap = argparse.ArgumentParser(description=description)
    ap.add_argument("--backend", default="auto", choices=("auto", "c", "python"),
                    help="where the sweeps run: auto (C when built), c or python "
                         "(default auto)")
    if steps is not None:
        ap.add_argument("--steps", type=_positive, default=steps,
                        help=f"training steps (default {steps})")
    return ap


def _positive(text):
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text}")
    return n


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


def name_of(v):
    """How a node is called in printouts: its label, or its value if a constant."""
    if v.label:
        return v.label
    if v._op == ops.CONST:
        return f"{v.data:g}"
    return f"({v.op} #{v._id})"


def explain_backward(root, show_constants=False, out=print):
    """Print, for every op below `root` from the output down, each input's
    local gradient d(node)/d(input), the upstream gradient d(root)/d(node) it
    is multiplied by, and their product. Call it after root.backward(), which
    filled every node's .grad (with gradients from a single backward pass).

    Returns {input node: sum of its products}: the chain rule by hand, which
    the caller can hold against the .grad that backward() computed."""
    total = {}
    rows = []
    for v in reversed(topo(root)):
        if not v.inputs:
            continue
        a = v._a.data
        b = v._b.data if v._b is not None else 0.0
        local = ops.BACKWARD[v._op](1.0, a, b, v.data)       # with upstream 1
        for k, c in enumerate(v.inputs):
            if c._op == ops.CONST and not show_constants:
                continue
            product = v.grad * local[k]
            total[c] = total.get(c, 0.0) + product
            rows.append((name_of(v), v.op, name_of(c), local[k], v.grad, product))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    upstream = f"x upstream d({name_of(root)})/d(node)"
    u = max(len(upstream), 14)
    out(f"  {'node':<{w[0]}}  {'op':<{w[1]}}  {'input':<{w[2]}}  "
        f"{'local d(node)/d(input)':>22}  {upstream:>{u}}  {'= product':>12}")
    for node, op, inp, loc, up, prod in rows:
        out(f"  {node:<{w[0]}}  {op:<{w[1]}}  {inp:<{w[2]}}  {loc:>22.6g}  "
            f"{up:>{u}.6g}  {prod:>12.6g}")
    return total

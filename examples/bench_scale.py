"""Eager graphs at scale: the cost per node of building a graph and of
backward() in each backend, from 10^4 to 3x10^6 nodes.

The graph is micrograd's demo loss (hinge + 1e-4 L2 of MLP(2, [16, 16, 1]))
over more or fewer rows of the two moons (648 nodes per row, 1,016 more), built in
one of two ways: through nn.MLP ("mlp", the neurons' fast path) or with the
Value operators one by one ("ops", the same arithmetic and the same nodes).
Each figure is the median of --repeats runs (wall time, the cycle collector
on, as a user runs it; "gc off" is the same build with the collector off, to
show its share); backward is timed on a fresh graph each run.

    python examples/bench_scale.py [--sizes 1e4,1e5,1e6,3e6] [--repeats 3] [--build ops|mlp]
                                   [--backend auto|c|python]

--backend auto (the default) times backward() in both backends where C is built.
"""
import argparse
import gc
import statistics
import time

import microbp
from microbp import losses, nn
from microbp.datasets import make_moons, MOONS_L2
from microbp.demo import positive_int

from _common import parser, require


def sizes(text):
    try:
        out = [int(float(s)) for s in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of numbers: {text!r}") from None
    if not out or min(out) < 1000:
        raise argparse.ArgumentTypeError("sizes must be at least 1000")
    return out


def by_ops(model, x):
    """model(x) written with the Value operators: b + w0*x0 + w1*x1 + ..., then
    the activation (relu in the hidden layers), layer by layer."""
    x = [microbp.Value(v) for v in x]
    for k, layer in enumerate(model.layers):
        out = []
        for n in layer.neurons:
            s = n.b + n.w[0] * x[0]
            for w, xi in zip(n.w[1:], x[1:]):
                s = s + w * xi
            out.append(s.relu() if k < len(model.layers) - 1 else s)
        x = out
    return x[0]


def graph_builder(nodes, how):
    """A function that builds the loss graph of about `nodes` nodes."""
    model = nn.MLP(2, [16, 16, 1], seed=1)
    params = model.parameters()
    rows = max(1, round((nodes - 1016) / 648))
    X, y = make_moons(rows, noise=0.1, seed=1)
    forward = model if how == "mlp" else (lambda x: by_ops(model, x))

    def build():
        return losses.hinge([forward(x) for x in X], y) + MOONS_L2 * sum(p * p for p in params)
    return build


def count(root):
    seen, stack = {root}, [root]
    while stack:
        for c in stack.pop().inputs:
            if c not in seen:
                seen.add(c)
                stack.append(c)
    return len(seen)


def timed(f):
    t0 = time.perf_counter()
    r = f()
    return time.perf_counter() - t0, r


def measure(nodes, how, repeats, backends):
    """(nodes, build seconds, build seconds with the collector off,
    {backend: backward seconds}), medians."""
    build = graph_builder(nodes, how)
    n = count(build())
    builds, quiet, back = [], [], {name: [] for name in backends}
    for _ in range(repeats):
        for name in backends:
            loss = None                       # the last graph is freed first
            t, loss = timed(build)
            builds.append(t)
            with microbp.use_backend(name):
                back[name].append(timed(loss.backward)[0])
        loss = None
        gc.disable()                          # the same build, the collector off
        try:
            t, loss = timed(build)
        finally:
            gc.enable()
        quiet.append(t)
    loss = None
    gc.collect()
    return (n, statistics.median(builds), statistics.median(quiet),
            {k: statistics.median(v) for k, v in back.items()})


def main(argv=None):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=sizes, default=sizes("1e4,1e5,1e6,3e6"),
                    help="graph sizes in nodes, comma-separated (default 1e4,1e5,1e6,3e6)")
    ap.add_argument("--repeats", type=positive_int, default=3, help="runs per size (default 3)")
    ap.add_argument("--build", choices=("ops", "mlp"), default="ops",
                    help="how the graph is built (default ops: the Value operators)")
    args = ap.parse_args(argv)
    require(args)
    backends = ([b for b in ("python", "c") if b in microbp.available_backends()]
                if args.backend == "auto" else [args.backend])
    print(f"eager graphs built with {args.build}, median of {args.repeats} runs (wall time)")
    head = f"{'nodes':>10} {'build us/node':>14} {'(gc off)':>9}" + "".join(
        f" {'backward ' + b + ' us/node':>24}" for b in backends)
    print(head + ("   python/c" if len(backends) == 2 else ""))
    for size in args.sizes:
        n, tb, tq, tw = measure(size, args.build, args.repeats, backends)
        line = f"{n:>10,} {tb / n * 1e6:>14.3f} {tq / n * 1e6:>9.3f}" + "".join(
            f" {tw[b] / n * 1e6:>24.3f}" for b in backends)
        if len(backends) == 2:
            line += f"   {tw['python'] / tw['c']:8.2f}x"
        print(line, flush=True)


if __name__ == "__main__":
    main()

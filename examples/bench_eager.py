"""Time the eager training step of micrograd's demo workload in microbp, and in
micrograd 0.1.0 when it is installed (`pip install micrograd==0.1.0`), with its
cycle collector on (its default) and off, all in one run.

Workload: MLP(2, [16, 16, 1]), 100 two-moons points, hinge loss + 1e-4 * L2,
full-batch SGD. Each step builds a fresh graph, backpropagates, updates.
Prints the median seconds per step of repeated runs and the ratios.

    python examples/bench_eager.py [--repeats 7] [--backend python|c]
"""
import gc
import statistics
import time

import microbp
from microbp import losses, nn, optim
from microbp.datasets import make_moons, MOONS_L2
from microbp.demo import positive_int

from _common import parser, require, nodes_below


def median_step(step, repeats):
    step()                                       # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def microbp_step(X, y):
    model = nn.MLP(2, [16, 16, 1], seed=1)
    params = model.parameters()
    opt = optim.SGD(params, lr=0.1)

    def loss():
        data_loss = losses.hinge([model(x) for x in X], y)
        return data_loss + MOONS_L2 * sum(p * p for p in params)

    def step():
        total = loss()
        opt.zero_grad()
        total.backward()
        opt.step()
    return step, len(nodes_below(loss()))


def micrograd_step(X, y):
    from micrograd.engine import Value
    from micrograd.nn import MLP
    model = MLP(2, [16, 16, 1])
    params = model.parameters()

    def step():
        scores = [model([Value(a), Value(b)]) for a, b in X]
        data_loss = sum((1 + -yi * si).relu() for yi, si in zip(y, scores)) * (1.0 / len(y))
        total = data_loss + MOONS_L2 * sum(p * p for p in params)
        model.zero_grad()
        total.backward()
        for p in params:
            p.data -= 0.1 * p.grad
    return step


def main(argv=None):
    ap = parser(__doc__.splitlines()[0])
    ap.set_defaults(backend="python")
    ap.add_argument("--repeats", type=positive_int, default=7, help="timed runs (default 7)")
    args = ap.parse_args(argv)
    require(args)
    X, y = make_moons(100, noise=0.1, seed=1)
    rows = []
    with microbp.use_backend(args.backend):
        step, nodes = microbp_step(X, y)
        ours = median_step(step, args.repeats)
    rows.append((f"microbp eager ({args.backend} backward)", ours))
    try:
        mg = micrograd_step(X, y)
    except ImportError:
        print("micrograd is not installed (pip install micrograd==0.1.0): microbp only")
        mg = None
    if mg:
        rows.append(("micrograd 0.1.0, gc on (default)", median_step(mg, args.repeats)))
        gc.disable()
        try:
            rows.append(("micrograd 0.1.0, gc off", median_step(mg, args.repeats)))
        finally:
            gc.enable()
    print(f"eager training step, {nodes:,} nodes, median of {args.repeats} runs")
    for name, t in rows:
        ratio = f"{t / ours:6.1f}x microbp" if t is not ours else ""
        print(f"  {name:38s} {t * 1e3:9.1f} ms  {ratio}")


if __name__ == "__main__":
    main()

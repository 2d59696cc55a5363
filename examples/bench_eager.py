"""Time the eager training step of micrograd's demo workload in microbp, and in
micrograd 0.1.0 when it is installed (`pip install micrograd==0.1.0`), with its
cycle collector on (its default) and off, all in one run.

Workload: MLP(2, [16, 16, 1]), 100 two-moons points, hinge loss + 1e-4 * L2,
full-batch SGD. Each step builds a fresh graph, backpropagates, updates.
Prints the median time per step of repeated runs and the ratios; the runs
take turns (a step of each in every round), so that a change in the
machine's load falls on all of them alike.

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


def seconds(step):
    t0 = time.perf_counter()
    step()
    return time.perf_counter() - t0


def median_steps(contenders, repeats):
    """{name: median seconds of one step} for (name, step, collector on?) in
    contenders. They take turns, a round at a time, so that a change in the
    machine's load falls on all of them alike. In each turn a contender runs
    two steps and the second is timed: it starts, as in a training loop,
    with the previous step's graph just dropped (and, with the collector
    on, any garbage that graph left to collect). Between turns the collector
    clears what is left, untimed, so that no contender pays for another's."""
    times = {name: [] for name, _, _ in contenders}
    for r in range(repeats + 1):                 # round 0 warms up
        for name, step, collect in contenders:
            gc.collect()
            if not collect:
                gc.disable()
            try:
                step()
                t = seconds(step)
            finally:
                gc.enable()
            if r:
                times[name].append(t)
    gc.collect()
    return {name: statistics.median(ts) for name, ts in times.items()}


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
    with microbp.use_backend(args.backend):
        step, nodes = microbp_step(X, y)

    def ours():
        with microbp.use_backend(args.backend):
            step()
    name = f"microbp eager ({args.backend} backward)"
    contenders = [(name, ours, True)]
    try:
        mg = micrograd_step(X, y)
    except ImportError:
        print("micrograd is not installed (pip install micrograd==0.1.0): microbp only")
    else:
        contenders += [("micrograd 0.1.0, gc on (default)", mg, True),
                       ("micrograd 0.1.0, gc off", mg, False)]
    med = median_steps(contenders, args.repeats)
    print(f"eager training step, {nodes:,} nodes, median of {args.repeats} runs")
    for other, t in med.items():
        ratio = f"{t / med[name]:6.1f}x microbp" if other != name else ""
        print(f"  {other:38s} {t * 1e3:9.1f} ms  {ratio}")


if __name__ == "__main__":
    main()

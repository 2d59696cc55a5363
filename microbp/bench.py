"""`python -m microbp bench`: seconds per training step of each workload on
each path, as medians of repeated runs, and ratios measured in the same run.

Paths: eager_python (a fresh Value graph per step, backward in pure Python),
tape_python and tape_c (the graph recorded once as a Tape and replayed over
the batch in each backend), torch (PyTorch's natural batched float64 version
of the same step, one thread; null when torch is not installed).
"""
import json
import math
import random
import statistics
import sys
import time

from . import backend, losses, nn, optim
from .datasets import make_moons
from .engine import Value
from .graph import topo
from .tape import Tape, Batch

ALPHA = 1e-4   # weight of the L2 term in the moons loss


def _median_seconds(step, budget, max_runs, min_runs=3):
    """Median wall time of step() over repeated runs (after one warm-up run)."""
    step()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs
                                     or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _eager_step(graph, opt):
    """A step that builds a fresh graph, backpropagates and updates."""
    def step():
        loss = graph()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return step


def _tape_step(tape, opt, batch):
    """A step that replays a recorded tape over the batch and updates."""
    def step():
        opt.zero_grad()
        tape.forward(batch)
        tape.backward()
        opt.step()
    return step


def _torch():
    """torch on one thread, or None when it is not installed."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    return torch


# -- workloads: each gives a model, rows [inputs..., target], and a per-row loss --

def _moons():
    X, y = make_moons(100, noise=0.1, seed=1)
    return dict(name="moons", nin=2, nouts=[16, 16, 1], rows=[x + [t] for x, t in zip(X, y)],
                loss="hinge", lr=0.1)


def _mlp_large():
    rng = random.Random(3)
    rows = []
    for _ in range(128):
        x = [rng.uniform(-1, 1) for _ in range(4)]
        rows.append(x + [math.sin(x[0]) * x[1] + x[2] * x[3]])
    return dict(name="mlp-4x32x32x1", nin=4, nouts=[32, 32, 1], rows=rows, loss="mse", lr=0.01)


def _row_loss(kind, score, target, n):
    if kind == "hinge":                       # max-margin, labels +-1
        return (1 + -target * score).relu() * (1.0 / n)
    return (score - target) ** 2 * (1.0 / n)  # mean squared error


def _mlp_paths(w):
    nin, rows, n = w["nin"], w["rows"], len(w["rows"])
    reg = ALPHA if w["loss"] == "hinge" else 0.0

    def eager():
        model = nn.MLP(nin, w["nouts"], seed=0)
        params = model.parameters()
        opt = optim.SGD(params, lr=w["lr"])

        def graph():                          # micrograd's demo loss, one big graph
            scores, targets = [model(r[:nin]) for r in rows], [r[nin] for r in rows]
            if w["loss"] == "hinge":
                return losses.hinge(scores, targets) + reg * sum(p * p for p in params)
            return losses.mse(scores, targets)

        return _eager_step(graph, opt), len(topo(graph()))

    def tape():
        model = nn.MLP(nin, w["nouts"], seed=0)
        params = model.parameters()
        slots = [Value(0.0, label=f"x{j}") for j in range(nin)] + [Value(0.0, label="y")]
        loss = _row_loss(w["loss"], model(slots[:nin]), slots[nin], n)
        if reg:
            loss = loss + (reg / n) * sum(p * p for p in params)   # once per forward
        return _tape_step(Tape(loss, slots), optim.SGD(params, lr=w["lr"]), Batch(rows))

    def torch_step():
        torch = _torch()
        if torch is None:
            return None
        torch.manual_seed(0)
        sizes = [nin] + w["nouts"]
        layers = []
        for k in range(len(w["nouts"])):
            layers.append(torch.nn.Linear(sizes[k], sizes[k + 1]).double())
            if k < len(w["nouts"]) - 1:
                layers.append(torch.nn.ReLU())
        model = torch.nn.Sequential(*layers)
        X = torch.tensor([r[:nin] for r in rows], dtype=torch.float64)
        Y = torch.tensor([r[nin] for r in rows], dtype=torch.float64)
        opt = torch.optim.SGD(model.parameters(), lr=w["lr"])

        def step():
            opt.zero_grad()
            s = model(X).squeeze(1)
            if w["loss"] == "hinge":
                loss = torch.relu(1 - Y * s).mean()
                loss = loss + reg * sum((p * p).sum() for p in model.parameters())
            else:
                loss = ((s - Y) ** 2).mean()
            loss.backward()
            opt.step()
        return step

    return eager, tape, torch_step


def _chain():
    """A long chain: h <- tanh(w h + c), 20,000 times, one row."""
    length = 20000

    def build(x):
        w, c = Value(0.9, label="w"), Value(0.1, label="c")
        h = x
        for _ in range(length):
            h = (h * w + c).tanh()
        return w, c, (h - 0.5) ** 2

    def eager():
        x = Value(0.3)
        w, c, _ = build(x)

        def graph():
            h = x
            for _ in range(length):
                h = (h * w + c).tanh()
            return (h - 0.5) ** 2
        opt = optim.SGD([w, c], lr=0.01)

        return _eager_step(graph, opt), len(topo(graph()))

    def tape():
        x = Value(0.0, label="x")
        w, c, loss = build(x)
        return _tape_step(Tape(loss, [x]), optim.SGD([w, c], lr=0.01), Batch([[0.3]]))

    def torch_step():
        torch = _torch()
        if torch is None:
            return None
        w = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
        c = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
        x = torch.tensor(0.3, dtype=torch.float64)
        opt = torch.optim.SGD([w, c], lr=0.01)

        def step():
            opt.zero_grad()
            h = x
            for _ in range(length):
                h = torch.tanh(h * w + c)
            ((h - 0.5) ** 2).backward()
            opt.step()
        return step

    return dict(name="chain-20000"), (eager, tape, torch_step)


def run(quick=False, only=None):
    """Measure every workload (or those named in `only`) on every path; return
    the JSON-ready dict."""
    budget = 0.3 if quick else 2.0
    results = []
    specs = [(_moons(), None), (_mlp_large(), None), _chain()]
    if only:
        unknown = set(only) - {w["name"] for w, _ in specs}
        if unknown:
            raise ValueError(f"unknown workload(s) {sorted(unknown)}: choose from "
                             f"{', '.join(w['name'] for w, _ in specs)}")
        specs = [(w, p) for w, p in specs if w["name"] in only]
    for w, paths in specs:
        eager, tape, torch_step = paths or _mlp_paths(w)
        with backend.use_backend("python"):
            step, nodes = eager()
            eager_s = _median_seconds(step, budget, 7 if quick else 15)
            tape_py = _median_seconds(tape(), budget, 5 if quick else 11)
        tape_c = None
        if "c" in backend.available_backends():
            with backend.use_backend("c"):
                tape_c = _median_seconds(tape(), budget, 2000)
        tstep = torch_step()
        torch_s = _median_seconds(tstep, budget, 2000) if tstep else None
        results.append(dict(name=w["name"], nodes=nodes, eager_python_s=eager_s,
                            tape_python_s=tape_py, tape_c_s=tape_c, torch_s=torch_s))
    return {"workloads": results}


def _fmt(s):
    if s is None:
        return "-"
    return f"{s * 1e3:.3f} ms" if s < 1 else f"{s:.2f} s"


def _ratio(a, b):
    return f"{a / b:.1f}x" if a and b else "-"


def table(res):
    head = ("workload", "nodes", "eager py", "tape py", "tape C", "torch",
            "C vs tape py", "C vs torch")
    lines = [head]
    for w in res["workloads"]:
        lines.append((w["name"], f"{w['nodes']:,}", _fmt(w["eager_python_s"]),
                      _fmt(w["tape_python_s"]), _fmt(w["tape_c_s"]), _fmt(w["torch_s"]),
                      _ratio(w["tape_python_s"], w["tape_c_s"]),
                      _ratio(w["torch_s"], w["tape_c_s"])))
    widths = [max(len(r[k]) for r in lines) for k in range(len(head))]
    out = ["  ".join(c.rjust(wd) if k else c.ljust(wd) for k, (c, wd) in enumerate(zip(r, widths)))
           for r in lines]
    out.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(out)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m microbp bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a rough figure)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only this workload (moons, mlp-4x32x32x1, chain-20000); repeatable")
    args = ap.parse_args(argv)
    try:
        res = run(quick=args.quick, only=args.only)
    except ValueError as e:
        ap.error(str(e))
    if args.json:
        print(json.dumps(res))
    else:
        print("seconds per training step (median of repeated runs); ratios from this run")
        print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

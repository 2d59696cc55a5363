"""Record (or check) the golden file: exact hex floats of the moons training
run (20 steps) and of the lecture network's gradients, on every path (eager,
tape Python, tape C). Recorded before the op-table redesign; the redesign
must reproduce every bit.

    python tests/golden/record.py          # rewrite tests/golden/golden.json
"""
import json
import os
import sys

import microbp
from microbp import Value, Tape, Batch, nn, optim, losses
from microbp.datasets import make_moons

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "golden.json")
from microbp.datasets import MOONS_L2 as ALPHA
STEPS = 20


def _hex(xs):
    return [float(x).hex() for x in xs]


def moons_eager(backend):
    with microbp.use_backend(backend):
        X, y = make_moons(100, noise=0.1, seed=1)
        model = nn.MLP(2, [16, 16, 1], seed=1)
        params = model.parameters()
        opt = optim.SGD(params, lr=1.0)
        trace = []
        for k in range(STEPS):
            opt.lr = 1.0 - 0.9 * k / STEPS
            scores = [model(x) for x in X]
            loss = losses.hinge(scores, y) + ALPHA * sum(p * p for p in params)
            opt.zero_grad()
            loss.backward()
            trace.append(loss.data)
            trace.extend(p.grad for p in params)
            opt.step()
        trace.extend(p.data for p in params)
        return _hex(trace)


def moons_tape(backend):
    with microbp.use_backend(backend):
        X, y = make_moons(100, noise=0.1, seed=1)
        model = nn.MLP(2, [16, 16, 1], seed=1)
        params = model.parameters()
        x0, x1, label = Value(0.0), Value(0.0), Value(0.0)
        n = len(X)
        row = (1 + -label * model([x0, x1])).relu() * (1.0 / n) + (ALPHA / n) * sum(p * p for p in params)
        tape = Tape(row, [x0, x1, label])
        batch = Batch([x + [t] for x, t in zip(X, y)])
        opt = optim.SGD(params, lr=1.0)
        trace = []
        for k in range(STEPS):
            opt.lr = 1.0 - 0.9 * k / STEPS
            opt.zero_grad()
            out = tape.forward(batch)
            tape.backward()
            trace.extend(out)
            trace.extend(p.grad for p in params)
            opt.step()
        trace.extend(p.data for p in params)
        return _hex(trace)


WEIGHTS = {"w_AC": 0.1, "w_BC": 0.4, "w_AD": 0.5, "w_BD": 0.3, "w_CE": 0.2, "w_DE": 0.6}


def _lecture_graph(w, xa, xb, y):
    yc = (w["w_AC"] * xa + w["w_BC"] * xb).sigmoid()
    yd = (w["w_AD"] * xa + w["w_BD"] * xb).sigmoid()
    yhat = (w["w_CE"] * yc + w["w_DE"] * yd).sigmoid()
    return 0.5 * (y - yhat) ** 2


def lecture_eager(backend):
    with microbp.use_backend(backend):
        w = {k: Value(v) for k, v in WEIGHTS.items()}
        L = _lecture_graph(w, Value(0.23), Value(0.82), Value(1.0))
        L.backward()
        return _hex([L.data] + [w[k].grad for k in WEIGHTS])


def lecture_tape(backend):
    with microbp.use_backend(backend):
        w = {k: Value(v) for k, v in WEIGHTS.items()}
        xa, xb, y = Value(0.0), Value(0.0), Value(0.0)
        tape = Tape(_lecture_graph(w, xa, xb, y), [xa, xb, y])
        out = tape.forward([[0.23, 0.82, 1.0], [0.5, -0.25, 0.0]])
        tape.backward()
        return _hex(out + [w[k].grad for k in WEIGHTS])


RUNS = {"moons_eager": moons_eager, "moons_tape": moons_tape,
        "lecture_eager": lecture_eager, "lecture_tape": lecture_tape}


def compute(backends):
    return {f"{name}/{b}": fn(b) for name, fn in RUNS.items() for b in backends}


if __name__ == "__main__":
    data = compute(["python", "c"])
    with open(PATH, "w") as f:
        json.dump(data, f, indent=0, sort_keys=True)
    print(f"wrote {PATH}: {sum(len(v) for v in data.values())} doubles", file=sys.stderr)

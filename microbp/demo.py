"""The moons demo (`make demo`, `python -m microbp demo`): micrograd's classic
workload, MLP(2, [16, 16, 1]) on 100 two-moons points with a max-margin loss
and L2, trained by full-batch SGD on a Tape in the selected backend, then the
loss curve and the decision boundary drawn in the terminal.

This is the part of the moons example that the installed package needs for
its `demo` command; examples/moons.py (mini-batches, a PNG) builds on it."""
import sys

from . import backend, nn, optim
from .datasets import make_moons, MOONS_L2
from .engine import Value
from .progress import Progress, plot
from .tape import Tape, Batch

BOX = (-1.5, 2.5, -1.0, 1.5)     # the region ascii_map draws: x from, x to, y from, y to


def moons_model(seed=1):
    """micrograd's moons classifier: MLP(2, [16, 16, 1]), ReLU hidden layers."""
    return nn.MLP(2, [16, 16, 1], seed=seed)


def train_full_batch(model, X, y, steps=100, progress=None):
    """Full-batch SGD on the hinge loss + MOONS_L2 * L2, recorded once as a Tape,
    with micrograd's decaying rate 1 - 0.9 k / steps. Reports each step's loss
    and accuracy (before the update) to `progress` when given; returns the
    list of losses."""
    params = model.parameters()
    x0, x1, label = Value(0.0, label="x0"), Value(0.0, label="x1"), Value(0.0, label="y")
    score = model([x0, x1])
    n = len(X)
    # per row: hinge / n, plus the L2 term / n (computed once per forward)
    row_loss = ((1 + -label * score).relu() * (1.0 / n)
                + (MOONS_L2 / n) * sum(p * p for p in params))
    tape, scorer = Tape(row_loss, [x0, x1, label]), Tape(score, [x0, x1])
    batch, points = Batch([x + [t] for x, t in zip(X, y)]), Batch(X)
    opt = optim.SGD(params, lr=1.0)
    history = []
    for k in range(steps):
        opt.lr = 1.0 - 0.9 * k / steps
        opt.zero_grad()
        loss = sum(tape.forward(batch))
        tape.backward()
        if progress is not None:
            progress.update(k + 1, loss=loss, acc=accuracy(scorer.forward(points), y))
        opt.step()
        history.append(loss)
    return history


def accuracy(scores, y):
    """The fraction of scores whose sign matches the label's."""
    return sum((s > 0) == (t > 0) for s, t in zip(scores, y)) / len(y)


def ascii_map(score, X, y, width=60, height=22):
    """The decision boundary as text: '.' where the model says -1, '#' for +1,
    the points as 'o' (label -1) and 'x' (label +1). `score` maps a list of
    [x0, x1] points to their scores (e.g. a Tape's forward)."""
    x_lo, x_hi, y_lo, y_hi = BOX
    grid = [[x_lo + (x_hi - x_lo) * (c + 0.5) / width, y_hi - (y_hi - y_lo) * (r + 0.5) / height]
            for r in range(height) for c in range(width)]
    scores = score(grid)
    rows = [["#" if scores[r * width + c] > 0 else "." for c in range(width)]
            for r in range(height)]
    for (px, py), t in zip(X, y):
        c = int((px - x_lo) / (x_hi - x_lo) * width)
        r = int((y_hi - py) / (y_hi - y_lo) * height)
        if 0 <= r < height and 0 <= c < width:
            rows[r][c] = "x" if t > 0 else "o"
    return "\n".join("".join(row) for row in rows)


def scorer(model):
    """A function from a list of [x0, x1] points to the model's scores (a Tape)."""
    x0, x1 = Value(0.0), Value(0.0)
    return Tape(model([x0, x1]), [x0, x1]).forward


def positive_int(text):
    """argparse type: a positive int (a clean usage error otherwise)."""
    import argparse
    try:
        n = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}") from None
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a positive int, got {text!r}")
    return n


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m microbp demo",
                                 description=__doc__.split("\n\n")[0])
    ap.add_argument("--backend", choices=("auto", "c", "python"), default=None,
                    help="where the sweeps run (default: the one in force)")
    ap.add_argument("--steps", type=positive_int, default=100, help="training steps (default 100)")
    args = ap.parse_args(argv)
    if args.backend == "c" and "c" not in backend.available_backends():
        ap.error(f"the C backend is not built ({backend.c_import_error()}); "
                 "try --backend python, and see python -m microbp info")
    with backend.use_backend(args.backend or backend.get_backend()) as name:
        print(f"microbp moons demo: MLP(2, [16, 16, 1]), 100 points, backend {name}")
        X, y = make_moons(100, noise=0.1, seed=1)
        model = moons_model()
        losses = train_full_batch(model, X, y, args.steps, Progress(args.steps, stream=sys.stdout))
        score = scorer(model)
        acc = accuracy(score(X), y)
        print(f"final loss {losses[-1]:.6f}, training accuracy {acc * 100:.1f}%")
        plot(losses)
        print(ascii_map(score, X, y))
    return 0 if acc == 1.0 else 1

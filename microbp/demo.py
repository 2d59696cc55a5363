"""The moons demo (`make demo`, `python -m microbp demo`): micrograd's classic
workload, MLP(2, [16, 16, 1]) on 100 two-moons points with a max-margin loss
and L2, trained by full-batch SGD on a Tape in the selected backend, then the
decision boundary drawn in the terminal."""
import sys

from . import backend, nn, optim
from .datasets import make_moons
from .engine import Value
from .progress import Progress
from .tape import Tape, Batch

ALPHA = 1e-4


class MoonsRun:
    """A model and the two tapes that train and evaluate it."""

    def __init__(self, n=100, seed=1):
        self.X, self.y = make_moons(n, noise=0.1, seed=seed)
        self.model = nn.MLP(2, [16, 16, 1], seed=seed)
        params = self.model.parameters()
        x0, x1, label = Value(0.0, label="x0"), Value(0.0, label="x1"), Value(0.0, label="y")
        score = self.model([x0, x1])
        n = len(self.X)
        # per row: hinge / n, plus the L2 term / n (computed once per forward)
        row_loss = (1 + -label * score).relu() * (1.0 / n) + (ALPHA / n) * sum(p * p for p in params)
        self.train_tape = Tape(row_loss, [x0, x1, label])
        self.score_tape = Tape(score, [x0, x1])
        self.batch = Batch([x + [t] for x, t in zip(self.X, self.y)])
        self.points = Batch(self.X)
        self.opt = optim.SGD(params, lr=1.0)

    def step(self, k, steps):
        """One full-batch step; returns (loss, accuracy) before the update."""
        self.opt.lr = 1.0 - 0.9 * k / steps          # micrograd's decaying rate
        self.opt.zero_grad()
        loss = sum(self.train_tape.forward(self.batch))
        self.train_tape.backward()
        acc = self.accuracy()
        self.opt.step()
        return loss, acc

    def accuracy(self):
        scores = self.score_tape.forward(self.points)
        return sum((s > 0) == (t > 0) for s, t in zip(scores, self.y)) / len(self.y)

    def train(self, steps=100, stream=None, every=10):
        prog = Progress(steps, every=every, stream=stream) if stream is not False else None
        loss = acc = None
        for k in range(steps):
            loss, acc = self.step(k, steps)
            if prog:
                prog.update(k + 1, loss=loss, acc=acc)
        return loss, self.accuracy()

    def ascii_map(self, width=60, height=22):
        """The decision boundary as text: '.' where the model says -1, '#' for +1,
        and the data points as 'o' (label -1) and 'x' (label +1)."""
        x_lo, x_hi, y_lo, y_hi = -1.5, 2.5, -1.0, 1.5
        grid = [[x_lo + (x_hi - x_lo) * (c + 0.5) / width, y_hi - (y_hi - y_lo) * (r + 0.5) / height]
                for r in range(height) for c in range(width)]
        scores = self.score_tape.forward(grid)
        rows = [["#" if scores[r * width + c] > 0 else "." for c in range(width)]
                for r in range(height)]
        for (px, py), t in zip(self.X, self.y):
            c = int((px - x_lo) / (x_hi - x_lo) * width)
            r = int((y_hi - py) / (y_hi - y_lo) * height)
            if 0 <= r < height and 0 <= c < width:
                rows[r][c] = "x" if t > 0 else "o"
        return "\n".join("".join(row) for row in rows)


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m microbp demo", description=__doc__)
    ap.add_argument("--backend", default=None, help="auto, c or python (default: the one in force)")
    ap.add_argument("--steps", type=int, default=100, help="training steps (default 100)")
    args = ap.parse_args(argv)
    with backend.use_backend(args.backend or backend.get_backend()) as name:
        print(f"microbp moons demo: MLP(2, [16, 16, 1]), 100 points, backend {name}")
        run = MoonsRun()
        print(f"recorded {run.train_tape}")
        loss, acc = run.train(args.steps, stream=sys.stdout)
        print(f"final loss {loss:.6f}, training accuracy {acc * 100:.1f}%")
        print(run.ascii_map())
    return 0 if acc == 1.0 else 1

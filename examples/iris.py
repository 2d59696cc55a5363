"""Fisher's iris flowers (150 rows, 3 species, 4 measurements in cm, shipped
as examples/iris.csv): a softmax classifier with one tanh hidden layer,
MLP(4, [8, 3]), trained with cross-entropy and Adam on 120 rows, tested on
the 30 it never saw (10 of each species).

The training graph is recorded once as a Tape with 7 input slots: the 4
(standardised) measurements, and the target as a one-hot triple t0, t1, t2.
A row's loss is -(t0 log p0 + t1 log p1 + t2 log p2), the cross-entropy of
the softmax p of the three logits: only the true class's term is non-zero.

    python examples/iris.py [--backend python|c] [--steps 150] [--seed 0]
"""
import csv
import os
import random
import sys

from microbp import Value, Tape, Batch, nn, losses, optim
from microbp.progress import Progress

from _common import parser, backend

CSV = os.path.join(os.path.dirname(os.path.abspath(__file__)), "iris.csv")
GOAL = 0.9           # held-out accuracy must reach this
TEST_PER_CLASS = 10


def load(path=CSV):
    """(features, class index, species names) of every row of the CSV."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    species = sorted({r["species"] for r in rows})
    cols = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    X = [[float(r[c]) for c in cols] for r in rows]
    y = [species.index(r["species"]) for r in rows]
    return X, y, species


def split(X, y, seed):
    """A stratified split: TEST_PER_CLASS random rows of each class are held out."""
    rng = random.Random(seed)
    train, test = [], []
    for k in sorted(set(y)):
        rows = [i for i in range(len(y)) if y[i] == k]
        rng.shuffle(rows)
        test += rows[:TEST_PER_CLASS]
        train += rows[TEST_PER_CLASS:]
    rng.shuffle(train)
    return train, test


def standardiser(X):
    """Per-column (x - mean) / std from these rows, as a function of one row."""
    n = len(X)
    mean = [sum(col) / n for col in zip(*X)]
    std = [(sum((v - m) ** 2 for v in col) / n) ** 0.5 for col, m in zip(zip(*X), mean)]
    return lambda row: [(v - m) / s for v, m, s in zip(row, mean, std)]


def main(argv=None):
    ap = parser(__doc__.splitlines()[0], steps=150)
    ap.add_argument("--seed", type=int, default=0, help="the split and the initial weights")
    ap.add_argument("--lr", type=float, default=0.03, help="Adam's learning rate (default 0.03)")
    args = ap.parse_args(argv)
    with backend(args) as name:
        X, y, species = load()
        train, test = split(X, y, args.seed)
        scale = standardiser([X[i] for i in train])          # training rows only
        nclass = len(species)
        print(f"iris: {len(X)} rows ({', '.join(species)}), {len(train)} to train, "
              f"{len(test)} held out; backend {name}")

        model = nn.MLP(4, [8, nclass], act="tanh", seed=args.seed)
        xs = [Value(0.0, label=f"x{j}") for j in range(4)]        # input slots
        ts = [Value(0.0, label=f"t{k}") for k in range(nclass)]   # one-hot target slots
        logits = model(xs)
        logp = losses.log_softmax(logits)
        nll = -sum(t * lp for t, lp in zip(ts, logp))
        tape = Tape(nll * (1.0 / len(train)), xs + ts)          # rows add up to the mean
        scorers = [Tape(z, xs) for z in logits]                   # one logit per tape
        print(f"{model}; recorded {tape}")

        def onehot(k):
            return [1.0 if j == k else 0.0 for j in range(nclass)]

        batch = Batch([scale(X[i]) + onehot(y[i]) for i in train])
        train_pts = Batch([scale(X[i]) for i in train])
        test_pts = Batch([scale(X[i]) for i in test])

        def predict(points):
            cols = [s.forward(points) for s in scorers]
            return [max(range(nclass), key=lambda k: cols[k][r]) for r in range(points.nrows)]

        def accuracy(points, rows):
            return sum(p == y[i] for p, i in zip(predict(points), rows)) / len(rows)

        opt = optim.Adam(model.parameters(), lr=args.lr)
        every = max(1, args.steps // 10)
        prog = Progress(args.steps, every=every)
        acc = accuracy(train_pts, train)
        for step in range(1, args.steps + 1):
            opt.zero_grad()
            loss = sum(tape.forward(batch))
            tape.backward()
            opt.step()
            if step % every == 0 or step == args.steps:
                acc = accuracy(train_pts, train)      # refreshed now and then
            prog.update(step, loss=loss, acc=acc)

        pred = predict(test_pts)
        right = sum(p == y[i] for p, i in zip(pred, test))
        held_out = right / len(test)
        print(f"\ntraining accuracy {accuracy(train_pts, train) * 100:.1f}%")
        print(f"held-out accuracy {held_out * 100:.1f}% ({right} of {len(test)})")
        print("confusion on the held-out rows (rows: true species, columns: predicted)")
        print("  " + " " * 11 + "".join(f"{s:>11}" for s in species))
        for k, s in enumerate(species):
            counts = [sum(1 for p, i in zip(pred, test) if y[i] == k and p == j)
                      for j in range(nclass)]
            print(f"  {s:>11}" + "".join(f"{c:>11}" for c in counts))
    if held_out < GOAL:
        print(f"FAILED: held-out accuracy {held_out:.3f} is below {GOAL}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Fisher's iris flowers (150 rows, 3 species, 4 measurements in cm, shipped
as examples/iris.csv): a softmax classifier with one tanh hidden layer,
MLP(4, [8, 3]), trained with cross-entropy and Adam on shuffled mini-batches
of the 120 training rows, tested on the 30 it never saw (10 of each species).

The training graph is recorded once as a Tape with 7 input slots: the 4
(standardised) measurements, and the target as a one-hot triple t0, t1, t2.
A row's loss is -(t0 log p0 + t1 log p1 + t2 log p2), the cross-entropy of
the softmax p of the three logits: only the true class's term is non-zero.

    python examples/iris.py [--backend python|c] [--epochs 40] [--batch-size 24] [--seed 0]

A tape's backward() adds up the gradients of the rows of a batch; each step
divides them by the batch's row count, so Adam follows the mean loss.
"""
import csv
import os
import random
import sys

from microbp import Value, Tape, Batch, nn, losses, optim
from microbp.datasets import batches
from microbp.demo import positive_int
from microbp.progress import Progress, plot

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
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=positive_int, default=40,
                    help="passes over the training rows (default 40)")
    ap.add_argument("--batch-size", type=positive_int, default=24,
                    help="rows per mini-batch (default 24)")
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
        tape = Tape(nll, xs + ts)                                 # the loss of one row
        scorers = [Tape(z, xs) for z in logits]                   # one logit per tape
        print(f"{model}; recorded {tape}")

        def onehot(k):
            return [1.0 if j == k else 0.0 for j in range(nclass)]

        rows = [scale(X[i]) + onehot(y[i]) for i in train]
        train_pts = Batch([scale(X[i]) for i in train])
        test_pts = Batch([scale(X[i]) for i in test])

        def predict(points):
            cols = [s.forward(points) for s in scorers]
            return [max(range(nclass), key=lambda k: cols[k][r]) for r in range(points.nrows)]

        def accuracy(points, rows):
            return sum(p == y[i] for p, i in zip(predict(points), rows)) / len(rows)

        params = model.parameters()
        opt = optim.Adam(params, lr=args.lr)
        rng = random.Random(args.seed)                  # a new order every epoch
        prog = Progress(args.epochs, every=max(1, args.epochs // 10), label="epoch")
        for epoch in range(1, args.epochs + 1):
            total = 0.0
            for batch in batches(rows, args.batch_size, seed=rng):
                opt.zero_grad()
                total += sum(tape.forward(batch))
                tape.backward()                         # the sum over the batch's rows
                for p in params:
                    p.grad /= batch.nrows               # ... made the mean
                opt.step()
            prog.update(epoch, loss=total / len(rows), acc=accuracy(train_pts, train))
        plot(prog.history["loss"], label="mean loss per epoch", unit="epoch")

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

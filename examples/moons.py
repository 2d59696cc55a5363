"""micrograd's demo in microbp, with mini-batches: MLP(2, [16, 16, 1]) learns
to separate two interleaving half-moons (100 points) with a max-margin loss
and L2, trained by SGD on shuffled mini-batches of a recorded Tape, to 100%
training accuracy. Then the loss curve, and the decision boundary: a PNG when
matplotlib is installed, a map in the terminal when it is not (or with --ascii).

    python examples/moons.py [--backend python|c] [--epochs 30] [--batch-size 20]
                             [--png moons.png] [--ascii]

The tape records the loss of one row, hinge + L2; its backward() adds up the
gradients of the rows of a batch, so the step uses the rate divided by the
number of rows: SGD on the mean loss of the batch.
"""
import random
import sys

from microbp import Value, Tape, optim
from microbp.datasets import make_moons, batches, MOONS_L2
from microbp.demo import BOX, accuracy, ascii_map, moons_model, scorer, positive_int
from microbp.progress import Progress, plot

from _common import parser, backend


def train(model, X, y, epochs, size, lr=1.0, seed=0):
    """SGD on shuffled mini-batches of `size` rows for `epochs` passes over the
    data, the rate decaying from lr to lr / 10; returns each epoch's mean loss."""
    params = model.parameters()
    x0, x1, label = Value(0.0, label="x0"), Value(0.0, label="x1"), Value(0.0, label="y")
    row_loss = (1 + -label * model([x0, x1])).relu() + MOONS_L2 * sum(p * p for p in params)
    tape = Tape(row_loss, [x0, x1, label])
    print(f"recorded {tape}")
    rows = [x + [t] for x, t in zip(X, y)]
    opt = optim.SGD(params, lr=lr)
    rng = random.Random(seed)                   # one generator: a new order every epoch
    prog = Progress(epochs, every=max(1, epochs // 10), label="epoch")
    score = scorer(model)
    for epoch in range(epochs):
        rate = lr * (1.0 - 0.9 * epoch / epochs)
        total = 0.0
        for batch in batches(rows, size, seed=rng):
            opt.lr = rate / batch.nrows          # the mean over the batch's rows
            opt.zero_grad()
            total += sum(tape.forward(batch))
            tape.backward()
            opt.step()
        prog.update(epoch + 1, loss=total / len(rows), acc=accuracy(score(X), y))
    return prog.history["loss"]


def save_png(score, X, y, path, resolution=80):
    """The decision boundary as a PNG (needs matplotlib): the model's score over
    a grid, its zero line, and the training points. False without matplotlib."""
    try:
        import matplotlib
        matplotlib.use("Agg")                         # no display needed
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    x_lo, x_hi, y_lo, y_hi = BOX
    xs = [x_lo + (x_hi - x_lo) * c / (resolution - 1) for c in range(resolution)]
    ys = [y_lo + (y_hi - y_lo) * r / (resolution - 1) for r in range(resolution)]
    scores = score([[a, b] for b in ys for a in xs])      # one tape pass
    grid = [scores[r * resolution:(r + 1) * resolution] for r in range(resolution)]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    ax.contourf(xs, ys, grid, levels=[-1e300, 0.0, 1e300], colors=["#cfe0f3", "#f6d5c4"])
    ax.contour(xs, ys, grid, levels=[0.0], colors=["#444444"], linewidths=1.0)
    for label, color, marker in ((-1.0, "#1f5fa8", "o"), (1.0, "#c0462a", "x")):
        pts = [p for p, t in zip(X, y) if t == label]
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], c=color, marker=marker, s=22,
                   label=f"label {label:+g}")
    ax.set_xlim(x_lo, x_hi)
    ax.set_ylim(y_lo, y_hi)
    ax.set_title("microbp: MLP(2, [16, 16, 1]) on two moons")
    ax.legend(loc="lower left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def main(argv=None):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=positive_int, default=30,
                    help="passes over the data (default 30)")
    ap.add_argument("--batch-size", type=positive_int, default=20,
                    help="rows per mini-batch (default 20; 100 is full-batch)")
    ap.add_argument("--png", metavar="PATH", default="moons.png",
                    help="where the PNG goes when matplotlib is installed (default moons.png)")
    ap.add_argument("--ascii", action="store_true",
                    help="draw the boundary in the terminal, and write no PNG")
    args = ap.parse_args(argv)
    with backend(args) as name:
        print(f"two moons: MLP(2, [16, 16, 1]), 100 points, hinge loss + L2, "
              f"mini-batches of {args.batch_size}, backend {name}")
        X, y = make_moons(100, noise=0.1, seed=1)
        model = moons_model()
        losses = train(model, X, y, args.epochs, args.batch_size)
        score = scorer(model)
        acc = accuracy(score(X), y)
        print(f"final loss {losses[-1]:.6f}, training accuracy {acc * 100:.1f}%")
        plot(losses, label="mean loss per epoch", unit="epoch")
        if not args.ascii and save_png(score, X, y, args.png):
            print(f"decision boundary written to {args.png}")
        else:
            if not args.ascii:
                print("(matplotlib is not installed: the decision boundary in text instead;"
                      " pip install matplotlib for a PNG)")
            print("decision boundary: '#' where the model says +1, '.' for -1;"
                  " points 'x' (+1) and 'o' (-1)")
            print(ascii_map(score, X, y))
    return 0 if acc == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())

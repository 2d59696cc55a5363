"""Fit y = sin(x) on [-pi, pi] with a small tanh network, MLP(1, [8, 1]):
64 points, mean squared error, Adam, the graph recorded once as a Tape and
replayed over the batch. Ends with the curve and the fit drawn in text.

    python examples/regression.py [--backend python|c] [--steps 300]
"""
import sys

from microbp import Value, Tape, Batch, nn, optim
from microbp.datasets import make_sine
from microbp.progress import Progress

from _common import parser, backend

GOAL = 2e-3          # the fit must reach a mean squared error below this


def plot(xs, ys, preds, height=15, lo=-1.2, hi=1.2):
    """One column per sample: '.' the target sin(x), 'o' the model, '*' both."""
    rows = [[" "] * len(xs) for _ in range(height)]

    def row(v):
        return min(height - 1, max(0, round((hi - v) / (hi - lo) * (height - 1))))

    for c, (y, p) in enumerate(zip(ys, preds)):
        ry, rp = row(y), row(p)
        rows[ry][c] = "."
        rows[rp][c] = "*" if rp == ry else "o"
    return "\n".join("  |" + "".join(r) for r in rows)


def main(argv=None):
    ap = parser(__doc__.splitlines()[0], steps=300)
    ap.add_argument("--lr", type=float, default=0.1, help="Adam's learning rate (default 0.1)")
    args = ap.parse_args(argv)
    with backend(args) as name:
        xs, ys = make_sine(64)
        model = nn.MLP(1, [8, 1], act="tanh", seed=0)
        x, y = Value(0.0, label="x"), Value(0.0, label="y")      # input slots
        pred = model([x])
        row_loss = (pred - y) ** 2 * (1.0 / len(xs))              # the rows add up to the mean
        tape = Tape(row_loss, [x, y])
        predict = Tape(pred, [x])
        batch = Batch([[a, b] for a, b in zip(xs, ys)])
        opt = optim.Adam(model.parameters(), lr=args.lr)
        print(f"sin(x) with {model}, {len(xs)} points, backend {name}; recorded {tape}")

        prog = Progress(args.steps, every=max(1, args.steps // 10))
        for step in range(1, args.steps + 1):
            opt.zero_grad()
            loss = sum(tape.forward(batch))
            tape.backward()
            opt.step()
            prog.update(step, mse=loss)
        loss = sum(tape.forward(batch))
        preds = predict.forward([[a] for a in xs])
        print(f"final mean squared error {loss:.6f} (goal: below {GOAL:g})")
        print("\nsin(x) '.', the model 'o', both '*'   (x from -pi to pi)")
        print(plot(xs, ys, preds))
    if not loss < GOAL:
        print(f"FAILED: the error {loss:.6f} is not below {GOAL:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

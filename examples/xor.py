"""XOR, the classic problem a single neuron cannot solve, learned by a small
tanh network: MLP(2, [4, 1]) with tanh everywhere, mean squared error against
labels -1/+1, plain gradient descent on a fresh (eager) graph every step.

    python examples/xor.py [--backend python|c] [--steps 200] [--seed 0]
"""
import sys

from microbp import nn, losses, optim
from microbp.progress import Progress

from _common import parser, backend

X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
Y = [-1.0, 1.0, 1.0, -1.0]          # x0 XOR x1, as -1 (false) / +1 (true)


def main(argv=None):
    ap = parser(__doc__.splitlines()[0], steps=200)
    ap.add_argument("--seed", type=int, default=0, help="initial weights (default 0)")
    ap.add_argument("--lr", type=float, default=0.2, help="learning rate (default 0.2)")
    args = ap.parse_args(argv)
    with backend(args) as name:
        model = nn.MLP(2, [4, 1], act="tanh", out_act="tanh", seed=args.seed)
        opt = optim.SGD(model.parameters(), lr=args.lr)
        print(f"XOR with {model}, {len(model.parameters())} parameters, backend {name}")
        prog = Progress(args.steps, every=max(1, args.steps // 10))
        for step in range(1, args.steps + 1):
            preds = [model(x) for x in X]            # a new graph every step
            loss = losses.mse(preds, Y)
            opt.zero_grad()
            loss.backward()
            opt.step()
            acc = sum((p.data > 0) == (y > 0) for p, y in zip(preds, Y)) / len(Y)
            prog.update(step, loss=loss.data, acc=acc)

        preds = [model(x).data for x in X]
        acc = sum((p > 0) == (y > 0) for p, y in zip(preds, Y)) / len(Y)
        print("\n x0  x1   XOR   model output")
        for x, y, p in zip(X, Y, preds):
            mark = "ok" if (p > 0) == (y > 0) else "WRONG"
            print(f" {x[0]:2g}  {x[1]:2g}   {y:+2g}   {p:+.4f}  {mark}")
        print(f"accuracy {acc * 100:.0f}%")
    return 0 if acc == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())

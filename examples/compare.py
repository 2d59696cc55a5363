"""One training run, three ways: the same model, data, loss and optimizer
steps on each of microbp's paths, to show that they compute the same losses
and how long each takes.

  eager python  a fresh graph of Values every step, backward() in pure Python
  tape python   the graph recorded once as a Tape, replayed over the batch in
                the pure-Python executor
  tape c        the same Tape replayed by the C core

Workload: micrograd's demo, MLP(2, [16, 16, 1]) on 100 two-moons points,
max-margin loss + 1e-4 L2, full-batch SGD with a decaying learning rate.
The two tape paths give bit-identical doubles; the eager graph adds the
same terms in another order, so its losses agree to about 1e-15.

    python examples/compare.py [--backend auto|python|c] [--steps 10]

--backend python runs the two pure-Python paths only; auto and c run all
three (auto leaves out C when it is not built).
"""
import sys
import time

import microbp
from microbp import Value, Tape, Batch, nn, optim
from microbp.datasets import make_moons, MOONS_L2

from _common import parser, require

RTOL = 1e-9           # eager and tape losses must agree this well


def lr_at(k, steps):
    return 1.0 - 0.9 * k / steps


def run_eager(X, y, steps):
    model = nn.MLP(2, [16, 16, 1], seed=1)
    params = model.parameters()
    opt = optim.SGD(params, lr=1.0)
    n = len(X)
    out = []
    for k in range(steps):
        hinge = sum((1 + -yi * model(xi)).relu() for xi, yi in zip(X, y)) * (1.0 / n)
        loss = hinge + MOONS_L2 * sum(p * p for p in params)
        opt.lr = lr_at(k, steps)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.data)
    return out, [p.data for p in params]


def run_tape(X, y, steps):
    model = nn.MLP(2, [16, 16, 1], seed=1)
    params = model.parameters()
    x0, x1, label = Value(0.0), Value(0.0), Value(0.0)          # input slots
    n = len(X)
    row_loss = ((1 + -label * model([x0, x1])).relu() * (1.0 / n)
                + (MOONS_L2 / n) * sum(p * p for p in params))     # the rows add up to the loss
    tape = Tape(row_loss, [x0, x1, label])
    batch = Batch([xi + [yi] for xi, yi in zip(X, y)])
    opt = optim.SGD(params, lr=1.0)
    out = []
    for k in range(steps):
        opt.lr = lr_at(k, steps)
        opt.zero_grad()
        loss = sum(tape.forward(batch))
        tape.backward()
        opt.step()
        out.append(loss)
    return out, [p.data for p in params]


def main(argv=None):
    args = parser(__doc__.splitlines()[0], steps=10).parse_args(argv)
    require(args)
    paths = [("eager python", run_eager, "python"), ("tape python", run_tape, "python")]
    if args.backend != "python" and "c" in microbp.available_backends():
        paths.append(("tape c", run_tape, "c"))
    elif args.backend != "python":
        print("(the C core is not built: tape c left out)")
    X, y = make_moons(100, noise=0.1, seed=1)
    print(f"moons, MLP(2, [16, 16, 1]), {args.steps} steps of full-batch SGD on each path")

    results = {}
    for name, run, where in paths:
        with microbp.use_backend(where):
            t0 = time.perf_counter()
            losses, params = run(X, y, args.steps)
            results[name] = (losses, params, time.perf_counter() - t0)

    names = [name for name, _, _ in paths]
    print("\nloss after each step's forward pass")
    print(f"  {'step':>4}" + "".join(f"  {n:>22}" for n in names))
    for k in range(args.steps):
        if k < 3 or k >= args.steps - 3 or (k + 1) % max(1, args.steps // 5) == 0:
            print(f"  {k + 1:>4}" + "".join(f"  {results[n][0][k]!r:>22}" for n in names))

    ok = True
    base = results["eager python"]
    print("\nagreement with eager python (largest over all steps / all parameters)")
    for n in names[1:]:
        dl = max(abs(a - b) / max(abs(a), 1e-300) for a, b in zip(base[0], results[n][0]))
        dp = max(abs(a - b) for a, b in zip(base[1], results[n][1]))
        print(f"  {n:12}  loss relative difference {dl:.1e}   final parameters {dp:.1e}")
        ok &= dl <= RTOL
    if "tape c" in results:
        same = (results["tape c"][0] == results["tape python"][0]
                and results["tape c"][1] == results["tape python"][1])
        print(f"  tape c and tape python: {'bit-identical' if same else 'DIFFERENT'}"
              " losses and parameters")
        ok &= same

    print("\ntime for the whole run")
    t_ref = base[2]
    for n in names:
        t = results[n][2]
        print(f"  {n:12}  {t:8.3f} s   {t / args.steps * 1e3:8.2f} ms/step   "
              f"{t_ref / t:6.1f}x eager python")
    if not ok:
        print("FAILED: the paths disagree", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

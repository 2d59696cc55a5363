"""Microseconds per training step of MLP(2, [w, w, 1]) on 100 two-moons rows
(hinge loss + 1e-4 * L2, SGD) on a Tape: the loop `opt.zero_grad();
tape.forward(batch); tape.backward(); opt.step()` on a packed Batch, the
same loop as the README writes it (a list of rows each step), and Tape.fit
(the same steps in one call) where this microbp has it. Medians of 7 runs;
the ratios are of the list loop to the two others, from the same run.

Only the public API, so that the same script times another build of microbp
(the README's table of what each change bought):

    python examples/bench_steps.py [--backend c] [--widths 16 32 64 128]
    PYTHONPATH=/path/to/another/checkout python examples/bench_steps.py
"""
import statistics
import time

from microbp import Batch, Tape, Value, nn, optim
from microbp.datasets import make_moons, MOONS_L2

from _common import parser, backend


def step_times(width, repeats=7):
    """(loop, list loop, fit or None) microseconds per step at this width."""
    n = 100
    X, y = make_moons(n, noise=0.1, seed=1)
    model = nn.MLP(2, [width, width, 1], seed=0)
    params = model.parameters()
    x0, x1, label = Value(0.0), Value(0.0), Value(0.0)
    loss = ((1 + -label * model([x0, x1])).relu() * (1.0 / n)
            + (MOONS_L2 / n) * sum(p * p for p in params))
    tape = Tape(loss, [x0, x1, label])
    rows = [x + [t] for x, t in zip(X, y)]
    batch, opt = Batch(rows), optim.SGD(params, lr=0.1)
    k = 100 if width < 64 else 20

    def per_step(run):
        run()
        times = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            run()
            times.append((time.perf_counter() - t0) / k)
        return statistics.median(times) * 1e6

    def loop():
        for _ in range(k):
            opt.zero_grad()
            tape.forward(batch)
            tape.backward()
            opt.step()

    def readme_loop():
        for _ in range(k):
            opt.zero_grad()
            tape.forward(rows)
            tape.backward()
            opt.step()

    fit = per_step(lambda: tape.fit(batch, opt, k)) if hasattr(tape, "fit") else None
    return per_step(loop), per_step(readme_loop), fit


def main(argv=None):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--widths", type=int, nargs="+", default=[16, 32, 64, 128],
                    help="layer widths w (default 16 32 64 128)")
    args = ap.parse_args(argv)
    if any(w < 1 for w in args.widths):
        ap.error("--widths must be positive")
    with backend(args) as name:
        print(f"us per step, backend {name}")
        for w in args.widths:
            loop, listed, fit = step_times(w)
            print(f"  w={w:<4d} loop {loop:8.1f}   list loop {listed:8.1f}"
                  + (f"   fit {fit:8.1f}" if fit else "")
                  + f"   list/loop {listed / loop:4.2f}x"
                  + (f"   list/fit {listed / fit:4.2f}x" if fit else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

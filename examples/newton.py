"""Newton's method with exact second derivatives.

Newton's step x <- x - f'(x) / f''(x) (in several dimensions x <- x - H^-1 g)
converges quadratically near a minimum: each step about squares the error,
so the number of correct digits doubles. It needs second derivatives, which
microbp gets by differentiating the gradient graph: g = grad(f, [x],
create_graph=True) is made of Values, and grad(g, [x]) is f''.

Two problems:
  1-D        minimize f(x) = exp(x) - 2x + (x - ln 2)^4, whose minimum is x* = ln 2
  logistic   fit p(y = 1 | x) = sigmoid(w x + b) to 40 noisy points by minimizing the
             mean log loss over (w, b), with the 2 x 2 Hessian

Each prints the error per step: |x - x*| for the 1-D problem, and for the
logistic regression the gradient's size |g| and the distance to the last
iterate. Exits 1 if either does not converge (error below 1e-12) in 20 steps, or not
quadratically (near the end, each error at most 10 x the square of the one before).

    python examples/newton.py [--backend auto|c|python]
"""
import math
import random
import sys

from microbp import Value
from microbp.autodiff import grad

from _common import parser, backend

STEPS = 20
TOL = 1e-12


def f1(x):
    return x.exp() - 2.0 * x + (x - math.log(2.0)) ** 4.0


def newton_1d(x0):
    x, errors = x0, []
    for _ in range(STEPS):
        xv = Value(x)
        (g,) = grad(f1(xv), [xv], create_graph=True)     # f'(x), a node of a graph
        (h,) = grad(g, [xv])                              # f''(x)
        x = x - g.data / h.data
        errors.append(abs(x - math.log(2.0)))
        if errors[-1] <= TOL:
            break
    return x, errors


def logistic_data(n=40, seed=0):
    rng = random.Random(seed)
    xs = [-3.0 + 6.0 * i / (n - 1) for i in range(n)]
    ys = [1.0 if rng.random() < 1.0 / (1.0 + math.exp(-(1.5 * x - 0.5))) else 0.0 for x in xs]
    return xs, ys


def log_loss(w, b, xs, ys):
    total = 0.0
    for x, y in zip(xs, ys):
        z = w * x + b
        total = total - (z.sigmoid().log() if y == 1.0 else (-z).sigmoid().log())
    return total * (1.0 / len(xs))


def newton_logistic(xs, ys):
    theta, history = (0.0, 0.0), []
    for _ in range(STEPS):
        w, b = Value(theta[0]), Value(theta[1])
        g = grad(log_loss(w, b, xs, ys), [w, b], create_graph=True)
        (hww, hwb), (hbw, hbb) = ([v.data for v in grad(gi, [w, b])] for gi in g)
        det = hww * hbb - hwb * hbw
        gw, gb = g[0].data, g[1].data
        step = ((hbb * gw - hwb * gb) / det, (hww * gb - hbw * gw) / det)   # H^-1 g
        theta = (theta[0] - step[0], theta[1] - step[1])
        history.append((theta, math.hypot(gw, gb)))
        if math.hypot(*step) <= TOL:
            break
    return theta, history


def quadratic(errors):
    """Whether each step near the end at least about squares the error:
    e_next <= 10 e^2 wherever e <= 1e-2 (and e_next is above rounding, 1e-15)."""
    pairs = [(e, e2) for e, e2 in zip(errors, errors[1:]) if e <= 1e-2 and e2 > 1e-15]
    return bool(pairs) and all(e2 <= 10.0 * e * e for e, e2 in pairs)


def main(argv=None):
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    with backend(args) as name:
        print(f"Newton's method with second derivatives from grad(create_graph=True) "
              f"(backend {name})")
        x, errors = newton_1d(0.0)
        print("\n1-D: minimize exp(x) - 2x + (x - ln 2)^4 from x = 0; x* = ln 2")
        for k, e in enumerate(errors, 1):
            print(f"  step {k}: |x - x*| = {e:.3e}")
        ok1 = errors[-1] <= TOL and quadratic(errors)

        xs, ys = logistic_data()
        theta, history = newton_logistic(xs, ys)
        print(f"\nlogistic regression: 2 parameters, {len(xs)} points, from (w, b) = (0, 0)")
        for k, (th, gnorm) in enumerate(history, 1):
            dist = math.hypot(th[0] - theta[0], th[1] - theta[1])
            print(f"  step {k}: w = {th[0]:.15f}  b = {th[1]:.15f}  |g| before the step = "
                  f"{gnorm:.3e}  |theta - theta_last| = {dist:.3e}")
        w, b = Value(theta[0]), Value(theta[1])
        final = math.hypot(*(v.data for v in grad(log_loss(w, b, xs, ys), [w, b])))
        print(f"  |g| at the last iterate = {final:.3e}")
        dists = [math.hypot(th[0] - theta[0], th[1] - theta[1]) for th, _ in history]
        ok2 = len(history) < STEPS and final <= 1e-12 and quadratic(dists)
    if ok1 and ok2:
        print("\nboth converged quadratically: the error about squares each step")
        return 0
    print("\nNOT CONVERGED QUADRATICALLY" + ("" if ok1 else " (1-D)") + ("" if ok2 else " (logistic)"))
    return 1


if __name__ == "__main__":
    sys.exit(main())

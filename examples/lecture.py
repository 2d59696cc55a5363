"""The 2-2-1 sigmoid network of the lecture notes (reference.md, worked
example 2): forward values, every gradient, finite differences, one step.

    inputs x_A = 0.23, x_B = 0.82, target y = 1; no biases
    hidden C = sigmoid(0.1 x_A + 0.4 x_B), D = sigmoid(0.5 x_A + 0.3 x_B)
    output E = sigmoid(0.2 y_C + 0.6 y_D), loss L = 1/2 (y - yhat)^2
    one gradient step with learning rate 0.7

    python examples/lecture.py [--backend python|c] [--graph graph.svg]

The notes print wrong gradients for the four hidden weights (they use z(1 - z)
where the sigmoid's derivative is s(z)(1 - s(z))); this program computes them
with the engine, confirms them with finite differences, and shows what the
slip would have given.
"""
import sys

from microbp import Value, optim
from microbp.draw import draw

from _common import parser, backend, explain_backward

X_A, X_B, Y = 0.23, 0.82, 1.0
WEIGHTS = {"w_AC": 0.1, "w_BC": 0.4, "w_AD": 0.5, "w_BD": 0.3, "w_CE": 0.2, "w_DE": 0.6}
LR = 0.7
EPS = 1e-6          # finite-difference step
RTOL = 1e-6         # finite differences must agree this well (they agree to ~1e-10)


def _named(v, label):
    v.label = label
    return v


def network(w, x_a, x_b, y):
    """The graph of the loss; w maps weight names to Values (or floats).
    Returns a dict of its named nodes."""
    n = {}
    for h, (wa, wb) in (("C", ("w_AC", "w_BC")), ("D", ("w_AD", "w_BD"))):
        a = _named(w[wa] * x_a, f"{wa}*x_A")
        b = _named(w[wb] * x_b, f"{wb}*x_B")
        n[f"z_{h}"] = _named(a + b, f"z_{h}")
        n[f"y_{h}"] = _named(n[f"z_{h}"].sigmoid(), f"y_{h}")
    c = _named(w["w_CE"] * n["y_C"], "w_CE*y_C")
    d = _named(w["w_DE"] * n["y_D"], "w_DE*y_D")
    n["z_E"] = _named(c + d, "z_E")
    n["yhat"] = _named(n["z_E"].sigmoid(), "yhat")
    n["err"] = _named(y - n["yhat"], "y-yhat")
    n["sq"] = _named(n["err"] ** 2, "(y-yhat)^2")
    n["L"] = _named(0.5 * n["sq"], "L")
    return n


def loss_at(weights):
    """L for plain float weights (a fresh graph; for finite differences)."""
    w = {k: Value(v) for k, v in weights.items()}
    return network(w, Value(X_A), Value(X_B), Value(Y))["L"].data


def main(argv=None):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--graph", metavar="PATH",
                    help="also draw the loss's graph, after backward, to PATH "
                         "(.svg or .png with Graphviz installed, else .dot)")
    args = ap.parse_args(argv)
    with backend(args) as name:
        print(f"The lecture notes' 2-2-1 sigmoid network (backend {name})")
        w = {k: Value(v, label=k) for k, v in WEIGHTS.items()}
        x_a, x_b, y = Value(X_A, label="x_A"), Value(X_B, label="x_B"), Value(Y, label="y")
        n = network(w, x_a, x_b, y)
        d = {k: v.data for k, v in n.items()}

        print("\nforward")
        print(f"  z_C  = w_AC x_A + w_BC x_B = 0.1*0.23 + 0.4*0.82 = {d['z_C']:.10g}")
        print(f"  y_C  = sigmoid(z_C)                           = {d['y_C']:.10g}")
        print(f"  z_D  = w_AD x_A + w_BD x_B = 0.5*0.23 + 0.3*0.82 = {d['z_D']:.10g}")
        print(f"  y_D  = sigmoid(z_D)                           = {d['y_D']:.10g}")
        print(f"  z_E  = w_CE y_C + w_DE y_D                    = {d['z_E']:.10g}")
        print(f"  yhat = sigmoid(z_E)                           = {d['yhat']:.10g}")
        print(f"  L    = 1/2 (y - yhat)^2                       = {d['L']:.10g}")

        n["L"].backward()
        print("\nbackward, node by node: local gradient x upstream gradient = product")
        print("(a node's gradient is the sum of the products on the rows that name it)")
        explain_backward(n["L"])

        if args.graph:
            print(f"graph of L drawn to {draw(n['L'], args.graph)}")

        g = {k: v.grad for k, v in n.items()}
        s_e = d["yhat"] * (1 - d["yhat"])
        s_c = d["y_C"] * (1 - d["y_C"])
        s_d = d["y_D"] * (1 - d["y_D"])
        print("\nthe chain rule, written out (every number is the engine's .grad)")
        print(f"  dL/dyhat = -(y - yhat)                    = {g['yhat']:.10g}")
        print(f"  dL/dz_E  = dL/dyhat * yhat(1 - yhat)      = {g['yhat']:.6g} * {s_e:.6g}"
              f" = {g['z_E']:.10g}")
        print(f"  dL/dw_CE = dL/dz_E * y_C                  = {w['w_CE'].grad:.10g}")
        print(f"  dL/dw_DE = dL/dz_E * y_D                  = {w['w_DE'].grad:.10g}")
        print(f"  dL/dy_C  = dL/dz_E * w_CE                 = {g['y_C']:.10g}")
        print(f"  dL/dz_C  = dL/dy_C * y_C(1 - y_C)         = {g['y_C']:.6g} * {s_c:.6g}"
              f" = {g['z_C']:.10g}")
        print(f"  dL/dw_AC = dL/dz_C * x_A                  = {w['w_AC'].grad:.10g}")
        print(f"  dL/dw_BC = dL/dz_C * x_B                  = {w['w_BC'].grad:.10g}")
        print(f"  dL/dy_D  = dL/dz_E * w_DE                 = {g['y_D']:.10g}")
        print(f"  dL/dz_D  = dL/dy_D * y_D(1 - y_D)         = {g['y_D']:.6g} * {s_d:.6g}"
              f" = {g['z_D']:.10g}")
        print(f"  dL/dw_AD = dL/dz_D * x_A                  = {w['w_AD'].grad:.10g}")
        print(f"  dL/dw_BD = dL/dz_D * x_B                  = {w['w_BD'].grad:.10g}")

        print(f"\nfinite differences: (L(w + eps) - L(w - eps)) / (2 eps), eps = {EPS:g}")
        print(f"  {'weight':6}  {'engine dL/dw':>16}  {'finite difference':>17}"
              f"  {'|difference|':>12}")
        ok = True
        for k in WEIGHTS:
            hi = dict(WEIGHTS, **{k: WEIGHTS[k] + EPS})
            lo = dict(WEIGHTS, **{k: WEIGHTS[k] - EPS})
            fd = (loss_at(hi) - loss_at(lo)) / (2 * EPS)
            diff = abs(fd - w[k].grad)
            good = diff <= RTOL * abs(fd) + 1e-12
            ok &= good
            print(f"  {k:6}  {w[k].grad:16.10g}  {fd:17.10g}  {diff:12.2e}"
                  f"{'' if good else '   DISAGREE'}")
        print("  they agree." if ok else "  FAILED: backward and finite differences disagree.")

        print("\nthe notes' slip: z(1 - z) in place of the sigmoid's derivative s(z)(1 - s(z))")
        for k, h, x in (("w_AC", "C", X_A), ("w_BC", "C", X_B), ("w_AD", "D", X_A),
                        ("w_BD", "D", X_B)):
            z = d[f"z_{h}"]
            wrong = g[f"y_{h}"] * z * (1 - z) * x
            print(f"  dL/d{k}: with z(1 - z) {wrong:12.6g}   with s(z)(1 - s(z)) "
                  f"{w[k].grad:12.6g}")
        print("  finite differences side with s(z)(1 - s(z)): the hidden gradients the notes "
              "print are off.")

        opt = optim.SGD(list(w.values()), lr=LR)
        grads = {k: v.grad for k, v in w.items()}
        opt.step()
        print(f"\none gradient step, w <- w - {LR:g} dL/dw")
        print(f"  {'weight':6}  {'before':>6}  {'dL/dw':>16}  {'after':>16}")
        for k, v in w.items():
            print(f"  {k:6}  {WEIGHTS[k]:6g}  {grads[k]:16.10g}  {v.data:16.10g}")
        new_loss = network(w, x_a, x_b, y)["L"].data
        print(f"loss before the step {d['L']:.10g}, after {new_loss:.10g}")
        ok &= new_loss < d["L"]
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())

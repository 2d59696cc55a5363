"""One ReLU neuron, backpropagated by hand and by the engine, then one step of
gradient descent (reference.md, worked example 1).

    x = [1, -2, 3], w = [-3, -1, 2], b = 1
    out = relu(x0*w0 + x1*w1 + x2*w2 + b) = relu(6) = 6
    one step with lr 0.001, then the forward pass again: 5.985

    python examples/neuron.py [--backend python|c] [--graph graph.svg]
"""
import sys

from microbp import Value, optim
from microbp.draw import draw

from _common import parser, backend, explain_backward

X = [1.0, -2.0, 3.0]
W = [-3.0, -1.0, 2.0]
B = 1.0
LR = 0.001


def forward(x, w, b):
    """relu(x0*w0 + x1*w1 + x2*w2 + b), every node labelled for the printout."""
    p = []
    for i in range(3):
        pi = x[i] * w[i]
        pi.label = f"p{i}"
        p.append(pi)
    s = p[0] + p[1]
    s.label = "p0+p1"
    s = s + p[2]
    s.label = "x.w"
    z = s + b
    z.label = "z"
    out = z.relu()
    out.label = "out"
    return p, z, out


def fmt(xs):
    return "[" + ", ".join(f"{x:g}" for x in xs) + "]"


def main(argv=None):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--graph", metavar="PATH",
                    help="also draw the neuron's graph, after backward, to PATH "
                         "(.svg or .png with Graphviz installed, else .dot)")
    args = ap.parse_args(argv)
    with backend(args) as name:
        print(f"One ReLU neuron (backend {name})")
        x = [Value(v, label=f"x{i}") for i, v in enumerate(X)]
        w = [Value(v, label=f"w{i}") for i, v in enumerate(W)]
        b = Value(B, label="b")
        print(f"  x = {fmt(X)}   w = {fmt(W)}   b = {B:g}")

        p, z, out = forward(x, w, b)
        print("\nforward")
        for i in range(3):
            print(f"  p{i} = x{i} * w{i} = {X[i]:g} * {W[i]:g} = {p[i].data:g}")
        print(f"  z = p0 + p1 + p2 + b = {z.data:g}")
        print(f"  out = relu(z) = {out.data:g}")

        out.backward()
        print("\nbackward: from the output down, each input's gradient is the local")
        print("gradient of the op times the upstream gradient (d out/d out = 1 to start)")
        by_hand = explain_backward(out)

        if args.graph:
            print(f"\ngraph drawn to {draw(out, args.graph)}")

        print("\ngradients (the engine's backward; the products above add up to them)")
        print(f"  d out/dw = {fmt(v.grad for v in w)}   (= x: multiply swaps in the other input)")
        print(f"  d out/dx = {fmt(v.grad for v in x)}   (= w)")
        print(f"  d out/db = {b.grad:g}   (add passes the gradient through)")
        ok = all(by_hand[v] == v.grad for v in x + w + [b])
        ok &= [v.grad for v in w] == X and [v.grad for v in x] == W and b.grad == 1.0

        opt = optim.SGD(w + [b], lr=LR)
        opt.step()
        print(f"\none step of gradient descent, lr {LR:g}: w <- w - {LR:g} dw, b <- b - {LR:g} db")
        print(f"  w = {fmt(v.data for v in w)}   b = {b.data:g}")
        _, _, out2 = forward(x, w, b)
        print(f"forward again: out = {out2.data:.3f}   (was {out.data:g})")
        ok &= abs(out2.data - 5.985) < 1e-12
    if not ok:
        print("FAILED: the gradients or the new output are not what reference.md says",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

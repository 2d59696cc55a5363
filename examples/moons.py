"""micrograd's demo in microbp: MLP(2, [16, 16, 1]) learns to separate two
interleaving half-moons (100 points) with a max-margin loss and L2, trained by
full-batch SGD on a recorded Tape, to 100% training accuracy. Then the
decision boundary: a PNG when matplotlib is installed, a map in the terminal
when it is not (or with --ascii).

    python examples/moons.py [--backend python|c] [--steps 100] [--png moons.png] [--ascii]
"""
import sys

from microbp.demo import MoonsRun

from _common import parser, backend

BOX = (-1.5, 2.5, -1.0, 1.5)          # x from, x to, y from, y to: the same as ascii_map


def save_png(run, path, resolution=80):
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
    scores = run.score_tape.forward([[x, y] for y in ys for x in xs])   # one tape pass
    grid = [scores[r * resolution:(r + 1) * resolution] for r in range(resolution)]
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    ax.contourf(xs, ys, grid, levels=[-1e300, 0.0, 1e300], colors=["#cfe0f3", "#f6d5c4"])
    ax.contour(xs, ys, grid, levels=[0.0], colors=["#444444"], linewidths=1.0)
    for label, color, marker in ((-1.0, "#1f5fa8", "o"), (1.0, "#c0462a", "x")):
        pts = [p for p, t in zip(run.X, run.y) if t == label]
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
    ap = parser(__doc__.splitlines()[0], steps=100)
    ap.add_argument("--png", metavar="PATH", default="moons.png",
                    help="where the PNG goes when matplotlib is installed (default moons.png)")
    ap.add_argument("--ascii", action="store_true",
                    help="draw the boundary in the terminal, and write no PNG")
    args = ap.parse_args(argv)
    with backend(args) as name:
        print(f"two moons: MLP(2, [16, 16, 1]), 100 points, hinge loss + L2, backend {name}")
        run = MoonsRun()
        print(f"recorded {run.train_tape}")
        loss, acc = run.train(args.steps, stream=sys.stdout, every=max(1, args.steps // 10))
        print(f"final loss {loss:.6f}, training accuracy {acc * 100:.1f}%")
        if not args.ascii and save_png(run, args.png):
            print(f"decision boundary written to {args.png}")
        else:
            if not args.ascii:
                print("(matplotlib is not installed: the decision boundary in text instead;"
                      " pip install matplotlib for a PNG)")
            print("decision boundary: '#' where the model says +1, '.' for -1;"
                  " points 'x' (+1) and 'o' (-1)")
            print(run.ascii_map())
    return 0 if acc == 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())

"""Forward mode or reverse mode? Count the sweeps, then time them.

The Jacobian of f: R^n -> R^m takes n forward sweeps over f's graph (each
pushes one input's tangent up through every node: a column) or m reverse
sweeps (each pulls one output's gradient down through the nodes below it:
a row). So reverse mode wins when there are many inputs and one output (a
loss over its parameters: the reason backpropagation trains networks), and
forward mode when there is one input and many outputs (a trajectory as a
function of one parameter). Two functions, one of each kind:

  many -> one   a loss of n inputs: log(1 + exp(x_i * x_{i+1})) summed, plus (sum x_i)^2
  one -> many   the m states of a recurrence s_{k+1} = s_k + h * tanh(p * s_k), as
                functions of the one parameter p (each state depends on all before it)

For each, the program counts the sweeps and the node visits of each mode
(it walks the graph), times microbp.jacobian(f, x, mode="forward") against
mode="reverse" (medians), checks that the two Jacobians agree within 1e-12,
and says which mode won and why. For the many -> one loss it also times the
two modes on a Tape (forward: Tape.jvp with one row per input; reverse:
forward() and backward() over the inputs as parameters), where both run in
the backend. Eager forward sweeps run in Python in either backend; eager
reverse sweeps run in the backend.

    python examples/forward_vs_reverse.py [--backend auto|c|python] [--size 200] [--repeats 5]

--backend auto times every available backend, c or python that one only.
Exits 1 if a measured winner contradicts the argument above.
"""
import math
import statistics
import sys
import time

import microbp
from microbp import Tape, Value
from microbp.autodiff import jacobian

from _common import parser, require


def many_to_one(*xs):
    s = 0.0
    for a, b in zip(xs, xs[1:]):
        s = s + (1.0 + (a * b).exp()).log()
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    return s + total * total * 0.01


def one_to_many(size):
    def f(p):
        s, states = Value(0.5), []
        for _ in range(size):
            s = s + 0.05 * (p * s).tanh()
            states.append(s)
        return states
    return f


def nodes_below(roots):
    """The number of nodes below each root (a walk on .inputs), and below all."""
    def walk(rs):
        seen, stack = set(map(id, rs)), list(rs)
        while stack:
            for c in stack.pop().inputs:
                if id(c) not in seen:
                    seen.add(id(c))
                    stack.append(c)
        return len(seen)
    return [walk([r]) for r in roots], walk(roots)


def median_time(fn, repeats):
    fn()                                          # warm-up
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def agree(j1, j2):
    return all(abs(a - b) <= 1e-12 * max(abs(a), abs(b), 1e-300)
               for r1, r2 in zip(j1, j2) for a, b in zip(r1, r2))


def count(name, f, x):
    xs = [Value(v) for v in x]
    outs = f(*xs)
    outs = outs if isinstance(outs, list) else [outs]
    per_out, total = nodes_below(outs)
    n, m = len(xs), len(outs)
    print(f"{name}: n = {n} inputs, m = {m} outputs, {total} nodes")
    print(f"  forward mode: {n} sweeps (one per input) x {total} nodes = {n * total} node visits")
    print(f"  reverse mode: {m} sweeps (one per output) over the nodes below each output "
          f"= {sum(per_out)} node visits")
    return n * total, sum(per_out)


def time_modes(f, x, repeats):
    jf, jr = jacobian(f, x, mode="forward"), jacobian(f, x, mode="reverse")
    t_fwd = median_time(lambda: jacobian(f, x, mode="forward"), repeats)
    t_rev = median_time(lambda: jacobian(f, x, mode="reverse"), repeats)
    return t_fwd, t_rev, agree(jf, jr)


def tape_modes(f, x, repeats):
    """Many -> one on a Tape: forward = jvp over n rows (row j: tangent e_j),
    reverse = one forward and one backward with the inputs as parameters."""
    n = len(x)
    slots = [Value(v) for v in x]
    fwd_tape = Tape(f(*slots), slots)
    rows, eye = [list(x)] * n, [[1.0 if i == j else 0.0 for i in range(n)] for j in range(n)]
    params = [Value(v) for v in x]
    rev_tape = Tape(f(*params))

    def forward():
        return fwd_tape.jvp(rows, eye)[1]

    def reverse():
        for p in params:
            p.grad = 0.0
        rev_tape.forward([[]])
        rev_tape.backward()
        return [p.grad for p in params]

    same = agree([forward()], [reverse()])
    return median_time(forward, repeats), median_time(reverse, repeats), same


def main(argv=None):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=200, help="n inputs / m outputs (default 200)")
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per mode (default 5)")
    args = ap.parse_args(argv)
    require(args)
    if args.size < 4 or args.repeats < 1:
        ap.error("--size must be >= 4 and --repeats >= 1")
    backends = microbp.available_backends() if args.backend == "auto" else [args.backend]
    x_many = [math.sin(1.7 * i) for i in range(args.size)]
    g = one_to_many(args.size)

    visits = {"many -> one": count("many -> one", many_to_one, x_many),
              "one -> many": count("one -> many", g, [0.8])}
    expect = {"many -> one": "reverse", "one -> many": "forward"}
    why = {"reverse": "one reverse sweep gives the whole gradient row; forward mode needs a "
                      "sweep per input",
           "forward": "one forward sweep gives the whole tangent column; reverse mode needs a "
                      "sweep per output, each over the shared prefix of the recurrence"}
    wrong = []
    for backend in backends:
        with microbp.use_backend(backend):
            print(f"\nbackend {backend} (median of {args.repeats})")
            cases = [("many -> one", "eager", lambda: time_modes(many_to_one, x_many, args.repeats)),
                     ("one -> many", "eager", lambda: time_modes(g, [0.8], args.repeats)),
                     ("many -> one", "tape ", lambda: tape_modes(many_to_one, x_many, args.repeats))]
            for name, path, run in cases:
                t_fwd, t_rev, same = run()
                winner = "forward" if t_fwd < t_rev else "reverse"
                ratio = max(t_fwd, t_rev) / min(t_fwd, t_rev)
                print(f"  {name} {path}: forward {t_fwd * 1e3:9.2f} ms   reverse "
                      f"{t_rev * 1e3:9.2f} ms   {winner} mode wins, {ratio:.1f}x   "
                      f"({'Jacobians agree within 1e-12' if same else 'JACOBIANS DIFFER'})")
                if winner != expect[name] or not same:
                    wrong.append(f"{backend} {path.strip()} {name}")
    print()
    for name, (fv, rv) in visits.items():
        print(f"{name}: {expect[name]} mode should win ({fv} vs {rv} node visits): "
              f"{why[expect[name]]}")
    if wrong:
        print("CONTRADICTED by the measurement: " + ", ".join(wrong))
        return 1
    print("every measured winner agrees with the sweep count")
    return 0


if __name__ == "__main__":
    sys.exit(main())

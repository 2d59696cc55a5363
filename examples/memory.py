"""Memory per node, measured with tracemalloc: an eager Value node (with its
inputs), and a recorded Tape (its arrays, and the value and gradient buffers
of a one-row forward/backward).

    python examples/memory.py [--backend python|c] [--nodes 200000]
"""
import sys
import tracemalloc

from microbp import Value, Tape
from microbp.demo import positive_int

from _common import parser, backend, nodes_below


def chain_params(n):
    """h <- tanh(h * w + c), n/3 times: parameters w, c, an input slot x."""
    x, w, c = Value(0.0, label="x"), Value(0.9, label="w"), Value(0.1, label="c")
    h = x
    for _ in range(n // 3):
        h = (h * w + c).tanh()
    return [x], h


def chain_consts(n):
    """h <- tanh(h * 1.0000001), n/3 times: a constant in every step."""
    x = Value(0.0, label="x")
    h = x
    for _ in range(n // 3):
        h = (h * 1.0000001).tanh()
    return [x], h


def measure(build, n):
    tracemalloc.start()
    m0 = tracemalloc.get_traced_memory()[0]
    inputs, out = build(n)
    m1 = tracemalloc.get_traced_memory()[0]
    eager_nodes = len(nodes_below(out))
    tape = Tape(out, inputs)
    m2 = tracemalloc.get_traced_memory()[0]
    tape.forward([[0.5] * len(inputs)])
    tape.backward()
    m3 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return ((m1 - m0) / eager_nodes, (m2 - m1) / tape.num_nodes, (m3 - m1) / tape.num_nodes, tape.num_nodes)


def per_parameter(n):
    """What binding costs a parameter (its flat-array slot and bookkeeping)."""
    leaves = [Value(float(i)) for i in range(n)]
    total = leaves[0]
    for v in leaves[1:]:
        total = total + v
    tracemalloc.start()
    m0 = tracemalloc.get_traced_memory()[0]
    tape = Tape(total, [])
    m1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    arrays = tape.num_nodes * (3 * 4 + 1)                     # op, a, b (int32) and vary
    return (m1 - m0 - arrays) / n


def main(argv=None):
    ap = parser(__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=positive_int, default=200_000,
                    help="nodes per graph (default 200000)")
    args = ap.parse_args(argv)
    with backend(args) as name:
        print(f"memory per node, backend {name}")
        print("graph                         eager B/node  tape record B/node  "
              "tape + 1-row buffers B/node")
        for label, build in (("tanh(h*w + c) chain", chain_params),
                             ("tanh(h*1.0000001) chain", chain_consts)):
            eager, record, full, n = measure(build, args.nodes)
            print(f"{label:28s} {eager:13.0f} {record:19.1f} {full:28.1f}   ({n:,} nodes)")
        print(f"binding one parameter to a flat-array store: "
              f"{per_parameter(args.nodes // 2):.0f} B")
    return 0


if __name__ == "__main__":
    sys.exit(main())

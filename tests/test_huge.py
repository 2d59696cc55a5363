"""Huge graphs: a 1,000,000-node chain and a 1,000,000-term sum, eager and
recorded, in the backend under test."""
import math

from microbp import Value, Tape

N = 1_000_000


def test_million_node_chain_eager_and_tape():
    x = Value(0.5, label="x")
    h = x
    for _ in range(N // 2):
        h = h * 1.0000001                  # a mul node and a constant each step
    h.backward()
    expect = 1.0000001 ** (N // 2)
    assert math.isclose(x.grad, expect, rel_tol=1e-9)
    slot = Value(0.0)
    t = Tape(h + slot, [slot])
    assert t.num_nodes > N // 2
    (out,) = t.forward([[2.0]])
    assert math.isclose(out, 0.5 * expect + 2.0, rel_tol=1e-9)
    x.grad = 0.0
    t.backward()                           # x is a parameter of this tape
    assert math.isclose(x.grad, expect, rel_tol=1e-9)


def test_million_term_sum_eager_and_tape():
    leaves = [Value(1.0) for _ in range(N)]
    total = leaves[0]
    for v in leaves[1:]:
        total = total + v
    assert total.data == float(N)
    total.backward()
    assert all(v.grad == 1.0 for v in leaves)
    t = Tape(total * 2.0, [])
    (out,) = t.forward([[]])
    assert out == 2.0 * N
    t.backward()
    assert leaves[0].grad == 3.0 and leaves[-1].grad == 3.0
    leaves[7].data = 11.0                  # parameters are read at each forward
    assert t.forward([[]])[0] == 2.0 * (N + 10)

"""The eager engine's fast paths give what the plain paths give, bit for bit:

- engine.weighted_sum (the forward of nn's neurons) makes the very nodes
  that `b + w0*x0 + w1*x1 + ...` makes with the operators: the same ops,
  inputs, values and creation order, and it passes by no_grad() and
  detect_anomaly() as the operators do, and every node it makes has each
  slot of a Value set;
- graph.topo (its walk is the Python backward()'s, and what the C walk must
  give) gives every node below a root once, in creation order, whichever
  inputs its chains run through;
- backward() over Values (the Python backend's sweep, written from the op
  table in graph.py) and through the C core give, for every node of a
  random graph, the gradients of the Python executor's flat sweep
  (pyexec.backward_scalar over graph.flatten), also when .grad held
  something before;
- cexec.backward_scalar takes lists or arrays, for graphs that grow and shrink.
"""
import math
import random
import struct
from array import array

import pytest
from hypothesis import given

import microbp
from microbp import Value, engine, graph, nn, ops, pyexec
from microbp.engine import weighted_sum

from test_random_graphs import EDGE, SETTINGS, build, graphs


def bits(x):
    return b"nan" if x != x else struct.pack("<d", x)


def shape(root):
    """Every node below root in creation order: (op, data bits, input positions)."""
    nodes = graph.topo(root)
    at = {v: k for k, v in enumerate(nodes)}
    return [(v.op, bits(v.data), tuple(at[c] for c in v.inputs)) for v in nodes]


def by_operators(b, w, x):
    s = w[0] * x[0] if b is None else b + w[0] * x[0]
    for wi, xi in zip(w[1:], x[1:]):
        s = s + wi * xi
    return s


def terms(rng, n):
    store = microbp.params.ParamStore()
    w = [store.new(rng.choice(EDGE + [rng.uniform(-3, 3)])) for _ in range(n)]
    x = [Value(rng.choice(EDGE + [rng.uniform(-3, 3)])) for _ in range(n)]
    return store.new(rng.uniform(-1, 1)), w, x


@pytest.mark.parametrize("n", [1, 2, 7])
@pytest.mark.parametrize("with_bias", [True, False])
def test_weighted_sum_makes_the_nodes_of_the_operators(n, with_bias):
    rng = random.Random(n)
    for _ in range(20):
        b, w, x = terms(rng, n)
        b = b if with_bias else None
        fast = weighted_sum(b, w, x, [p.data for p in w], [v.data for v in x])
        slow = by_operators(b, w, x)
        assert shape(fast) == shape(slow)
        # creation order: a mul, then its add, term by term
        made = [v.op for v in graph.topo(fast) if v.inputs]
        assert made == ["mul"] + ["add", "mul"] * (n - 1) + ["add"] if with_bias else \
            made == ["mul"] + ["mul", "add"] * (n - 1)
        for v in graph.topo(fast):
            if v.inputs:
                assert type(v.data) is float and v.grad == 0.0 and v.label == ""


def test_a_made_node_has_every_slot_of_a_value_set():
    # _MAKE (the lines every interior node is made by) sets each slot of
    # Value: a slot added to Value and left out there fails here
    x = [Value(5.0), Value(7.0)]
    s = weighted_sum(None, [Value(2.0), Value(3.0)], x, [2.0, 3.0], [5.0, 7.0])
    for v in (s, s._a, s._b, x[0] + x[1]):
        assert [name for name in Value.__slots__ if not hasattr(v, name)] == []
        assert (v.grad, v.label, type(v._data), type(v._id)) == (0.0, "", float, int)
    assert s._a._id < s._b._id < s._id and s.data == 31.0


def below(root):
    """Every node of the graph below root, found by following .inputs (plainly)."""
    found, todo = {id(root): root}, [root]
    while todo:
        for c in todo.pop().inputs:
            if id(c) not in found:
                found[id(c)] = c
                todo.append(c)
    return list(found.values())


def shapes(rng):
    """Graphs whose chains run through first inputs, second inputs, both, or
    none (the walk of graph.topo follows first inputs in place and queues
    second ones), with shared nodes, an input used twice, and a leaf root."""
    a, b = Value(rng.uniform(-2, 2)), Value(rng.uniform(-2, 2))
    yield a
    s = a
    for _ in range(30):                 # first inputs: s + w*x
        s = s + b * Value(rng.uniform(-1, 1))
    yield s
    t = b
    for _ in range(30):                 # second inputs: c * t
        t = Value(0.5) * t
    yield t
    u = a
    for k in range(40):                 # both, reusing older nodes
        u = u * u if k % 3 == 0 else (s - u if k % 3 == 1 else u.tanh() + t)
    yield u
    yield (a * a) + (a * a)


@pytest.mark.parametrize("seed", range(3))
def test_topo_is_every_node_below_the_root_once_in_creation_order(seed):
    rng = random.Random(seed)
    for root in shapes(rng):
        want = sorted(below(root), key=lambda v: v._id)
        assert graph.topo(root) == want
        assert graph.topo(root, reverse=True) == want[::-1]
        assert len(set(map(id, graph.topo(root)))) == len(want)


@SETTINGS
@given(graphs(max_nodes=200))
def test_topo_of_random_graphs(steps):
    _, nodes, out = build(steps)
    assert graph.topo(out) == sorted(below(out), key=lambda v: v._id)


def test_weighted_sum_under_no_grad_and_detect_anomaly():
    b, w, x = Value(0.5), [Value(2.0), Value(1e308)], [Value(3.0), Value(10.0)]
    wd, xd = [v.data for v in w], [v.data for v in x]
    with microbp.no_grad():
        s = weighted_sum(b, w, x, wd, xd)
    assert s.op == "const" and s.inputs == () and s.data == math.inf
    with microbp.detect_anomaly():
        with pytest.raises(FloatingPointError, match="mul"):
            weighted_sum(b, w, x, wd, xd)          # 1e308 * 10 is inf
        ok = weighted_sum(b, w[:1], x[:1], wd[:1], xd[:1])
    assert ok.data == 6.5 and ok.op == "add"


def test_neuron_forward_is_the_operators_and_refuses_an_edited_weight_list():
    model = nn.MLP(3, [4, 2], seed=5)
    x = [0.25, -1.5, 2.0]
    outs = model(x)
    h = [engine.as_value(v, "x") for v in x]
    for k, layer in enumerate(model.layers):
        h = [by_operators(n.b, n.w, h).relu() if k == 0 else by_operators(n.b, n.w, h)
             for n in layer.neurons]
    assert [shape(o) for o in outs] == [shape(o) for o in h]
    model.layers[0].neurons[0].w.append(Value(1.0))
    with pytest.raises(ValueError, match="4 weights for nin=3"):
        model(x)


def flat_reference(out):
    """{node: gradient} of pyexec's flat sweep (the arithmetic the others must give)."""
    nodes = graph.topo(out)
    adj = pyexec.backward_scalar(*graph.flatten(nodes))
    return nodes, adj


@SETTINGS
@given(graphs(max_nodes=200))
def test_every_gradient_is_the_flat_sweeps(steps):
    _, _, out = build(steps)
    nodes, adj = flat_reference(out)
    before = [random.Random(len(nodes)).choice([0.0, -0.0, 1.5, -2.0, math.inf]) for _ in nodes]
    want = [bits(g0 + g) for g0, g in zip(before, adj)]
    for name in microbp.available_backends():
        for v, g0 in zip(nodes, before):
            v.grad = g0
        with microbp.use_backend(name):
            out.backward()
        assert [bits(v.grad) for v in nodes] == want, name


def test_a_node_used_twice_and_a_leaf_root():
    for name in microbp.available_backends():
        with microbp.use_backend(name):
            x = Value(-3.0)
            y = x * x + x                      # x feeds mul twice and add once
            y.backward()
            assert x.grad == -3.0 * 1.0 + -3.0 * 1.0 + 1.0 and y.grad == 1.0
            x.backward()                       # a leaf alone: its own gradient, 1
            assert x.grad == -4.0


def test_c_backward_scalar_takes_lists_and_arrays_of_any_size():
    cexec = pytest.importorskip("microbp.cexec")
    rng = random.Random(2)
    for n in (5, 300, 40, 1000, 3):
        leaves = [Value(rng.uniform(-2, 2)) for _ in range(3)]
        s = leaves[0]
        while len(graph.topo(s)) < n:
            s = (s * leaves[1] + leaves[2]).tanh() if rng.random() < 0.5 else s * s
        args = graph.flatten(graph.topo(s))
        want = [bits(g) for g in pyexec.backward_scalar(*args)]
        as_arrays = [array("i", args[0]), array("i", args[1]), array("i", args[2]),
                     array("d", args[3])]
        assert [bits(g) for g in cexec.backward_scalar(*args)] == want
        assert [bits(g) for g in cexec.backward_scalar(*as_arrays)] == want


def test_add_sub_mul_inline_formulas_are_the_tables():
    assert all(ops.OPS[k].forward == f for k, f in engine._INLINE.items())
    for a in EDGE:
        for b in EDGE:
            for k, f in ((ops.ADD, Value.__add__), (ops.SUB, Value.__sub__),
                         (ops.MUL, Value.__mul__)):
                want = bits(ops.FORWARD[k](a, b))
                assert bits(f(Value(a), Value(b)).data) == want
                assert bits(f(Value(a), b).data) == want          # a number operand


def test_neuron_reads_its_weights_as_they_are_now():
    import copy
    import pickle
    model = nn.MLP(2, [3, 1], seed=4)
    x = [0.5, -2.0]

    def reference(m):
        h = [engine.as_value(v, "x") for v in x]
        h = [by_operators(n.b, n.w, h).relu() for n in m.layers[0].neurons]
        return by_operators(m.layers[1].neurons[0].b, m.layers[1].neurons[0].w, h)

    assert shape(model(x)) == shape(reference(model))
    n = model.layers[0].neurons[1]
    n.w[0].data = 7.25                          # through the store
    assert shape(model(x)) == shape(reference(model))
    n.w[1] = Value(-3.5)                        # a weight replaced by another Value
    out = model(x)
    assert shape(out) == shape(reference(model))
    assert n.w[1] in graph.topo(out)
    for twin in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):
        assert bits(twin(x).data) == bits(model(x).data)
        assert shape(twin(x)) == shape(reference(twin))
        twin.layers[1].neurons[0].b.data = 100.0     # the twin's own store
        assert bits(twin(x).data) != bits(model(x).data)
        assert shape(twin(x)) == shape(reference(twin))


def test_weighted_sum_of_no_terms_is_the_base_on_every_path():
    """With a base and no terms the sum is the base itself, with the hooks
    (no_grad, detect_anomaly) and without them alike; with neither, both
    paths raise IndexError (the docstring asks for one term at least)."""
    b = Value(0.5)
    assert weighted_sum(b, [], [], [], []) is b
    with microbp.no_grad():
        assert weighted_sum(b, [], [], [], []) is b
    with microbp.detect_anomaly():
        assert weighted_sum(b, [], [], [], []) is b
        with pytest.raises(IndexError):
            weighted_sum(None, [], [], [], [])
    with pytest.raises(IndexError):
        weighted_sum(None, [], [], [], [])


def test_a_leaf_is_where_the_walk_stops_whatever_its_b_holds():
    """A node whose _a is None is a leaf: its _b is not followed (by topo, the
    Python backward's walk, or the C walk, which hands such nodes back)."""
    x, y = Value(2.0, "x"), Value(3.0, "y")
    x._b = y * y                       # a leaf tampered with
    out = x * 2.0
    assert [v.label or v.op for v in graph.topo(out)] == ["x", "const", "mul"]
    with microbp.use_backend("python"):
        out.backward()
    assert x.grad == 2.0 and y.grad == 0.0


class Accumulator:
    """A .grad that adds in place (as a 0-d numpy array does)."""
    def __init__(self):
        self.total = 0.0

    def __iadd__(self, g):
        self.total += g
        return self


@pytest.mark.parametrize("backend", microbp.available_backends())
def test_grads_are_added_in_place_in_every_backend(backend):
    x = Value(2.0)
    acc = x.grad = Accumulator()
    with microbp.use_backend(backend):
        (x * 3.0).backward()
        assert x.grad is acc and acc.total == 3.0
        with microbp.detect_anomaly():
            (x * 3.0).backward()
    assert x.grad is acc and acc.total == 6.0

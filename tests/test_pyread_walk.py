"""microbp._pyread's walk() and add_grads() (csrc/pyread.c), the C that walks
a Value graph, flattens it and writes the gradients back in the C backend's
backward(). walk is a fast path: for plain graphs it must give the very
nodes, arrays and doubles of graph.topo + graph.flatten, and for anything
else hand the work back (None). add_grads does the whole Python loop
`v.grad += x`: in C where a grad is a float slot, as Python elsewhere. So
backward() does what the Python code does, with and without them: the same
gradients, or the same error.
"""
import gc
import math
import random
import struct
import sys
from array import array

import pytest
from hypothesis import given, strategies as st

import microbp
from microbp import Value, engine, graph
from microbp.params import ParamStore, Parameter

from test_random_graphs import SETTINGS, graphs

pytestmark = pytest.mark.skipif(graph._c_walk is None, reason="microbp._pyread is not built")
walk, add_grads = graph._c_walk, graph._c_add_grads


def bits(x):
    return struct.pack("<d", x)


def ints(b):
    return array("i", b).tolist()


def python_flat(root):
    """topo + flatten, as lists: (nodes, op, a, b, value bits)."""
    nodes = graph.topo(root)
    op, a, b, val = graph.flatten(nodes)
    return nodes, op, a, b, [bits(x) for x in array("d", val)]


def c_flat(root):
    """walk(root) decoded the way graph.flat_graph does, or None."""
    r = walk(root)
    if r is None:
        return None
    nodes, op, a, b, val, later = r
    val = array("d", val)
    for i in ints(later):
        val[i] = nodes[i]._data
    return nodes, ints(op), ints(a), ints(b), [bits(x) for x in val]


def assert_same_flat(root):
    want, got = python_flat(root), c_flat(root)
    assert got is not None
    assert len(got[0]) == len(want[0])
    assert all(x is y for x, y in zip(got[0], want[0]))
    assert got[1:] == want[1:]


def make(steps, store=None):
    """The graph of test_random_graphs' steps, every other leaf a Parameter
    of `store` when given; (leaves, output)."""
    nodes, leaves = [], []
    for k, s in enumerate(steps):
        if s[0] == "leaf":
            v = store.new(s[1]) if store is not None and k % 2 else Value(s[1])
            leaves.append(v)
        elif s[0] == "un":
            x = nodes[s[2]]
            v = -x if s[1] == "neg" else getattr(x, s[1])()
        elif s[0] == "powc":
            v = nodes[s[1]] ** s[2]
        else:
            x, y = nodes[s[2]], nodes[s[3]]
            v = {"add": x.__add__, "sub": x.__sub__, "mul": x.__mul__,
                 "div": x.__truediv__, "pow": x.__pow__}[s[1]](y)
        nodes.append(v)
    out = nodes[-1]
    for v in nodes[-3:-1]:
        out = out + v
    return leaves, out


def all_nodes(root):
    return graph.topo(root)


def bare(cls, **slots):
    """A cls made without __init__, its Value slots set (a leaf, made now)."""
    v = object.__new__(cls)
    fields = dict(grad=0.0, label="", _op=microbp.ops.LEAF, _a=None, _b=None,
                  _id=engine._next_id())
    for k, x in {**fields, **slots}.items():
        object.__setattr__(v, k, x)
    return v


def grads_of(root, backend, c_parts=True, monkeypatch=None):
    """The .grad of every node below root after root.backward() in `backend`
    (each starting from 0.0), with or without the C walk and write-back."""
    nodes = all_nodes(root)
    for v in nodes:
        v.grad = 0.0
    if not c_parts:
        monkeypatch.setattr(graph, "_c_walk", None)
        monkeypatch.setattr(graph, "_c_add_grads", None)
    try:
        with microbp.use_backend(backend):
            root.backward()
    finally:
        if not c_parts:
            monkeypatch.undo()
    return [bits(v.grad) for v in nodes]


def outcome(f):
    """What f() gives or raises (type and message)."""
    try:
        return ("ok", f())
    except Exception as e:          # noqa: BLE001 (compared, not swallowed)
        return (type(e), str(e))


def backward_outcome(root, monkeypatch, c_parts, backend="c"):
    nodes = list(all_nodes_loose(root))
    if not c_parts:
        monkeypatch.setattr(graph, "_c_walk", None)
        monkeypatch.setattr(graph, "_c_add_grads", None)
    try:
        with microbp.use_backend(backend):
            r = outcome(root.backward)
    finally:
        if not c_parts:
            monkeypatch.undo()
    return r, [repr(getattr(v, "grad", None)) for v in nodes]


def all_nodes_loose(root):
    """The objects below root that have a grad (no assumption that they are Values)."""
    seen, stack = {id(root): root}, [root]
    while stack:
        v = stack.pop()
        for c in (getattr(v, "_a", None), getattr(v, "_b", None)):
            if c is not None and id(c) not in seen and hasattr(c, "grad"):
                seen[id(c)] = c
                stack.append(c)
    return seen.values()


needs_c = pytest.mark.skipif("c" not in microbp.available_backends(),
                             reason="the C core is not built")


# -- equal to topo + flatten ---------------------------------------------------

@SETTINGS
@given(graphs())
def test_walk_is_topo_and_flatten_on_random_graphs(steps):
    _, out = make(steps)
    assert_same_flat(out)


@SETTINGS
@given(graphs())
def test_walk_with_parameters_of_a_store(steps):
    store = ParamStore()
    leaves, out = make(steps, store)
    assert_same_flat(out)
    nodes, *_, later = walk(out)
    params = {i for i, v in enumerate(nodes) if isinstance(v, Parameter)}
    assert set(ints(later)) == params          # a Parameter's _data is a property


def test_walk_of_a_leaf_root():
    for x in (Value(2.5), Parameter(-1.5)):
        nodes, op, a, b, val, later = walk(x)
        assert nodes == [x] and ints(op) == [microbp.ops.LEAF]
        assert ints(a) == [-1] and ints(b) == [-1]
        assert_same_flat(x)


def test_walk_of_shared_subgraphs_and_a_square():
    x = Value(1.5)
    y = x * x                                   # one input twice
    s = (y + y) * (y - x)                       # y shared, x at two depths
    assert_same_flat(s)
    nodes, op, a, b, *_ = c_flat(s)
    k = nodes.index(y)
    assert a[k] == b[k] == nodes.index(x)


def test_walk_of_a_long_chain_and_a_wide_sum():
    x = Value(0.5)
    y = x
    for _ in range(100_000):
        y = y * 1.0 + x
    assert_same_flat(y)
    w = [Value(i / 7) for i in range(3000)]
    assert_same_flat(sum(w[1:], w[0]))


def test_walk_of_nan_inf_and_signed_zeros():
    vs = [Value(v) for v in (math.nan, -math.nan, math.inf, -math.inf, 0.0, -0.0, 5e-324)]
    out = vs[0]
    for v in vs[1:]:
        out = out + v
    assert_same_flat(out)


def test_walk_with_ids_far_apart_and_negative():
    x, y = Value(1.0), Value(2.0)
    z = x * y
    x._id, y._id, z._id = -2 ** 63, 5, 2 ** 63 - 1     # still in creation order
    assert_same_flat(z)
    nodes = c_flat(z)[0]
    assert nodes == [x, y, z]


def test_walk_of_nodes_of_a_duck_type():
    """Objects of another class with the same slots are walked as topo walks them."""
    class Duck:
        __slots__ = ("_data", "grad", "label", "_op", "_a", "_b", "_id")

    d = Duck()
    d._data, d.grad, d.label, d._op, d._a, d._b, d._id = 3.0, 0.0, "", 0, None, None, -1
    x = Value(2.0)
    y = x * 1.0
    y._b = d
    assert_same_flat(y)


def test_walk_of_nodes_of_many_classes_with_slots_of_their_own():
    """Each class that makes its own _a, _b, ... slots is probed once; past the
    probe cache's room old entries make way, so a new class (and Value after
    them) is still walked in C, not handed back for the rest of the process."""
    def duck(k):
        slots = ("_data", "grad", "label", "_op", "_a", "_b", "_id")
        cls = type(f"Duck{k}", (), {"__slots__": slots})
        d = cls()
        d._data, d.grad, d.label, d._op, d._a, d._b, d._id = 3.0, 0.0, "", 0, None, None, -1
        return d

    for k in range(12):                         # 72 descriptors: the cache holds 32
        d = duck(k)
        y = Value(2.0) * 1.0
        y._b = d
        assert_same_flat(y)
    assert_same_flat(Value(2.0) * Value(3.0) + 1.0)


def test_walk_of_plain_subclasses():
    class Leaf(Value):
        __slots__ = ("__weakref__",)

    class Extra(Value):
        __slots__ = ("note",)

    x, e = Leaf(2.0), Extra(3.0)
    assert_same_flat((x * e + x).tanh())


# -- None: the Python code does it ----------------------------------------------

class PropA(Value):
    __slots__ = ()

    @property
    def _a(self):
        return None

    @_a.setter
    def _a(self, x):
        pass


class Hashed(Value):
    __slots__ = ()

    def __hash__(self):
        return 1

    def __eq__(self, other):
        return isinstance(other, Hashed)


class Dynamic(Value):
    __slots__ = ()

    def __getattr__(self, name):
        return None


def _unset_child():
    x = Value(1.0) + 2.0
    x._a = object.__new__(Value)              # every slot unset
    return x


def _bad(attr, value, on_input=False):
    """A graph x * 3.0 whose output (or input x) has attr set to value by hand."""
    def f():
        x = Value(1.0)
        y = x * 3.0
        setattr(x if on_input else y, attr, value)
        return y
    return f


def _dup_id():
    x, y = Value(1.0), Value(2.0)
    z = x + y
    y._id = x._id
    return z


def _b_without_a():
    x = Value(1.0)
    y = Value(2.0)
    y._b = x
    return y + 1.0


def _many_types():
    types = [type(f"T{k}", (Value,), {"__slots__": ()}) for k in range(9)]
    out = Value(0.0)
    for k, t in enumerate(types):
        out = out + t(float(k))
    return out


def _sparse_ids():
    x = Value(1.0)
    y = x
    for _ in range(400):
        y = y + 1.0
    for k, v in enumerate(graph.topo(y)):
        v._id = 10 ** 6 * k                     # one node a page: sparse
    return y


NOT_PLAIN = {
    "root an int": lambda: 3,
    "root None": lambda: None,
    "root an object": object,
    "an input not a Value": _bad("_a", 3),
    "an input a str": _bad("_b", "x"),
    "an unset input": _unset_child,
    "an id a str": _bad("_id", "1"),
    "an id a float": _bad("_id", 1.0),
    "an id a bool": _bad("_id", True, on_input=True),
    "an id past int64": _bad("_id", 2 ** 64),
    "an op a str": _bad("_op", "add"),
    "an op past int32": _bad("_op", 2 ** 40),
    "two nodes of one id": _dup_id,
    "a _b without an _a": _b_without_a,
    "an _a property": lambda: Value(1.0) * PropA(2.0),
    "a __hash__ of its own": lambda: Value(1.0) * Hashed(2.0),
    "a __getattr__": lambda: Value(1.0) * Dynamic(2.0),
    "nine node types": _many_types,
    "ids too sparse": _sparse_ids,
}


@pytest.mark.parametrize("case", sorted(NOT_PLAIN))
def test_walk_hands_back_what_is_not_plain(case):
    root = NOT_PLAIN[case]()
    refs = [sys.getrefcount(v) for v in all_nodes_loose(root)] if hasattr(root, "_a") else []
    assert walk(root) is None
    after = [sys.getrefcount(v) for v in all_nodes_loose(root)] if hasattr(root, "_a") else []
    assert after == refs                        # nothing kept, nothing freed


@needs_c
@pytest.mark.parametrize("case", sorted(c for c in NOT_PLAIN if not c.startswith("root")))
def test_backward_where_walk_hands_back_does_what_python_does(case, monkeypatch):
    with_c = backward_outcome(NOT_PLAIN[case](), monkeypatch, c_parts=True)
    without = backward_outcome(NOT_PLAIN[case](), monkeypatch, c_parts=False)
    assert with_c == without


def _cycle():
    x = Value(1.0)
    y = x * 2.0
    y._a = y                                    # made by hand: y below itself
    return y


def _op_out_of_range():
    y = Value(1.0) * 2.0
    y._op = 99
    return y


def _op_negative():
    y = Value(1.0) * 2.0
    y._op = -5
    return y


def _data_an_int():
    x = Value(1.0)
    y = x * 2.0
    x._data = 3                                 # the slot, past the checks
    return y


def _data_a_str():
    x = Value(1.0)
    y = x * 2.0
    x._data = "3"
    return y


def _grad_an_int():
    x = Value(1.5)
    y = x * x + x
    x.grad = 2
    return y


def _grad_unset():
    x = Value(1.5)
    y = x * 2.0
    w = y + 1.0
    del y.grad                                  # the write-back fails there, as in Python
    return w


def _id_out_of_order():
    x, y = Value(1.0), Value(2.0)
    z = x * y
    x._id = z._id + 1                           # creation order no longer topological
    return z


ODD = {"a cycle made by hand": _cycle, "an op out of range": _op_out_of_range,
       "a negative op": _op_negative, "a value that is an int": _data_an_int,
       "a value that is a str": _data_a_str, "a grad that is an int": _grad_an_int,
       "an unset grad": _grad_unset, "ids out of creation order": _id_out_of_order}


@pytest.mark.parametrize("case", sorted(ODD))
def test_walk_passes_odd_graphs_on_as_flatten_does(case):
    root = ODD[case]()
    if case not in ("a value that is a str",):
        assert_same_flat(root)


@needs_c
@pytest.mark.parametrize("case", sorted(ODD))
def test_backward_of_odd_graphs_does_what_python_does(case, monkeypatch):
    with_c = backward_outcome(ODD[case](), monkeypatch, c_parts=True)
    without = backward_outcome(ODD[case](), monkeypatch, c_parts=False)
    assert with_c == without


@needs_c
def test_a_data_property_that_changes_the_graph(monkeypatch):
    """_data runs Python code after the links are read, in walk as in flatten."""
    class Meddling(Value):
        __slots__ = ("victim",)

        @property
        def _data(self):
            v = self.victim
            v._a = v._b = None                  # cut the graph under the walk
            v._op = microbp.ops.LEAF
            gc.collect()
            return 2.0

    def build():
        m = bare(Meddling)
        x = Value(3.0)
        y = x * 2.0
        object.__setattr__(m, "victim", y)
        z = y * 1.0
        z._b = m                                # z = y * m, made by hand
        return z.exp()

    with_c = backward_outcome(build(), monkeypatch, c_parts=True)
    without = backward_outcome(build(), monkeypatch, c_parts=False)
    assert with_c == without and with_c[0][0] == "ok"


@needs_c
def test_a_data_property_that_raises(monkeypatch):
    class Broken(Value):
        __slots__ = ()

        @property
        def _data(self):
            raise RuntimeError("no data")

    def build():
        b = bare(Broken)
        y = Value(1.0) * 2.0
        y._b = b
        return y

    with_c = backward_outcome(build(), monkeypatch, c_parts=True)
    without = backward_outcome(build(), monkeypatch, c_parts=False)
    assert with_c == without and with_c[0][0] is RuntimeError


class _EqualsHook:
    """A class-dict key hashed like "_a" whose __eq__ calls hook(): Python code
    run by a lookup of "_a" in that class's dict, as walk's first look at the
    class does."""

    def __init__(self, hook):
        self.hook = hook

    def __hash__(self):
        return hash("_a")

    def __eq__(self, other):
        self.hook()
        return NotImplemented


def late_type_graph():
    """(root, u, x): root = t * x + x * 2.0 with x = u.log() (d x / d u = inf)
    and t of a new class whose first look moves x's _id (to an unused id
    between u's and x's: the graph stays the same graph). walk meets x, then
    t's class, then x again."""
    armed = []
    u = Value(0.0, "u")
    gap = [Value(0.0) for _ in range(4)]         # unused ids after u's
    x = u.log()

    def move():
        if armed:
            object.__setattr__(x, "_id", u._id + 1)
    late = type("Late", (Value,), {"__slots__": (), _EqualsHook(move): None})
    root = late(0.0, "t") * x + x * 2.0
    armed.append(gap)
    return root, u, x


def test_walk_starts_again_when_a_new_type_ran_python_code():
    """Python code run in walk's first look at a type met after nodes were read
    (a class dict key's __eq__ here; the garbage collector, or another thread
    meanwhile, in general) moves a found node's _id: each node is still found
    once, and the flat graph is topo + flatten of the graph as it is after."""
    root, u, x = late_type_graph()
    nodes, *_ = walk(root)
    assert x._id == u._id + 1                   # (the code ran)
    assert sum(v is x for v in nodes) == 1
    assert_same_flat(root)


@needs_c
def test_backward_after_a_new_type_ran_python_code(monkeypatch):
    with_c = backward_outcome(late_type_graph()[0], monkeypatch, c_parts=True)
    without = backward_outcome(late_type_graph()[0], monkeypatch, c_parts=False)
    assert with_c == without
    assert with_c[0][0] == "ok" and "inf" in with_c[1]   # u's grad: 2 * inf, not nan


# -- backward(): the same gradients with and without the C parts -------------------

def nan_as_one(grads):
    return [b"nan" if g != g else bits(g) for g in (struct.unpack("<d", x)[0] for x in grads)]


@needs_c
@SETTINGS
@given(graphs())
def test_backward_gives_the_same_grads_with_and_without_walk(steps):
    store = ParamStore()
    _, out = make(steps, store)
    with pytest.MonkeyPatch.context() as mp:
        without = grads_of(out, "c", c_parts=False, monkeypatch=mp)
    with_c = grads_of(out, "c")
    assert with_c == without
    assert nan_as_one(with_c) == nan_as_one(grads_of(out, "python"))


@needs_c
def test_backward_accumulates_into_grads_held_before(monkeypatch):
    rng = random.Random(5)

    def build():
        store = ParamStore()
        xs = [store.new(rng.uniform(-2, 2)) if k % 3 else Value(rng.uniform(-2, 2))
              for k in range(30)]
        out = xs[0]
        for x in xs[1:]:
            out = (out * x + x).tanh() if rng.random() < 0.5 else out - x * x
        for k, v in enumerate(graph.topo(out)):
            v.grad = rng.choice([0.0, -0.0, 1.5, -3.25, 1e300, math.inf]) if k % 2 else k
        return out

    state = rng.getstate()
    with_c = backward_outcome(build(), monkeypatch, c_parts=True)
    rng.setstate(state)
    without = backward_outcome(build(), monkeypatch, c_parts=False)
    assert with_c == without


@needs_c
def test_backward_falls_back_cleanly_when_walk_hands_back(monkeypatch):
    rng = random.Random(2)
    x = [Value(rng.uniform(-1, 1)) for _ in range(50)]
    out = sum((a * b).tanh() for a, b in zip(x, x[1:]))
    want = grads_of(out, "c", c_parts=False, monkeypatch=monkeypatch)
    monkeypatch.setattr(graph, "_c_walk", lambda root: None)
    assert grads_of(out, "c") == want
    monkeypatch.setattr(graph, "_c_add_grads", lambda nodes, adj, start: start)
    assert grads_of(out, "c") == want          # every .grad written by Python


@needs_c
def test_checked_backward_uses_walk_and_reports_as_before(monkeypatch):
    def build():
        x = Value(0.0, label="x")
        return x ** 0.5 + 1.0                   # finite, but d/dx = inf

    outs = []
    for c_parts in (True, False):
        if not c_parts:
            monkeypatch.setattr(graph, "_c_walk", None)
            monkeypatch.setattr(graph, "_c_add_grads", None)
        with microbp.use_backend("c"), microbp.detect_anomaly():
            outs.append(outcome(build().backward))
        x = Value(1.5, label="x")
        y = (x * x).tanh()
        with microbp.use_backend("c"), microbp.detect_anomaly():
            y.backward()
        outs.append(bits(x.grad))
    monkeypatch.undo()
    assert outs[0] == outs[2] and outs[0][0] is FloatingPointError
    assert outs[1] == outs[3]


# -- add_grads --------------------------------------------------------------------

def test_add_grads_adds_as_python_does():
    rng = random.Random(3)
    store = ParamStore()
    nodes = [store.new(1.0) if k % 4 == 0 else Value(1.0) for k in range(200)]
    olds = [rng.choice([0.0, -0.0, 2.5, -1e308, math.inf, math.nan, 3, -2]) for _ in nodes]
    adj = array("d", [rng.choice([0.0, -0.0, 1e-320, 1e308, -math.inf, rng.uniform(-9, 9)])
                      for _ in nodes])
    want = []
    for v, g, x in zip(nodes, olds, adj):
        v.grad = g
        want.append(repr(v.grad + x))
    graph.add_grads(nodes, adj)
    assert [repr(v.grad) for v in nodes] == want
    assert all(type(v.grad) is float for v in nodes)


def test_add_grads_does_as_python_where_the_grad_is_not_a_float_slot():
    store = ParamStore()
    a, p, b = Value(1.0), store.new(2.0), Value(3.0)
    b.grad = 7                                  # an int: Python's + makes the float
    adj = array("d", [0.5, 0.25, 0.125]).tobytes()
    assert add_grads([a, p, b], adj, 0) == 3
    assert (a.grad, p.grad, b.grad) == (0.5, 0.25, 7.125)
    assert store._grad.tolist() == [0.25]
    assert add_grads([a, p, b], adj, 2) == 3    # from start on
    assert (a.grad, p.grad, b.grad) == (0.5, 0.25, 7.25)


def test_add_grads_raises_where_python_raises():
    class Fussy(Value):
        __slots__ = ()

        @property
        def grad(self):
            return 1.0

        @grad.setter
        def grad(self, x):
            if x > 1.5:
                raise ValueError("too steep")

    def run(add):
        nodes = [Value(1.0), bare(Fussy, _data=1.0), Value(2.0)]
        adj = array("d", [0.25, 1.0, 0.5])
        return outcome(lambda: add(nodes, adj)), [v.grad for v in nodes]

    def python(nodes, adj):
        for v, x in zip(nodes, adj):
            v.grad += x

    got = run(lambda nodes, adj: add_grads(nodes, adj.tobytes(), 0))
    assert got == run(python)
    assert got == ((ValueError, "too steep"), [0.25, 1.0, 0.0])


def test_add_grads_after_python_code_changed_a_class():
    """A grad setter that gives a class met before a grad property, and one
    that moves a later node to a class with a grad property: the nodes after
    it are written as Python writes them."""
    def run(add):
        writes = []

        class Sub(Value):
            __slots__ = ()

        class Counted(Value):
            __slots__ = ()
            grad = property(lambda self: 10.0, lambda self, x: writes.append(("counted", x)))

        class Switch(Value):
            __slots__ = ("other",)

            @property
            def grad(self):
                return 0.0

            @grad.setter
            def grad(self, x):
                if getattr(self, "other", None) is not None:   # (not while bare() makes it)
                    Sub.grad = property(lambda s: 20.0, lambda s, y: writes.append(("sub", y)))
                    self.other.__class__ = Counted

        moved = Value(1.0)
        nodes = [Sub(1.0), bare(Switch, _data=1.0, other=moved), Value(2.0), Sub(3.0), moved]
        add(nodes, array("d", [0.5, 0.25, 0.125, 2.0, 4.0]))
        return writes, [type(v).__name__ for v in nodes], [v.grad for v in nodes]

    def python(nodes, adj):
        for v, x in zip(nodes, adj):
            v.grad += x

    got = run(lambda nodes, adj: add_grads(nodes, adj.tobytes(), 0))
    assert got == run(python)
    assert got[0] == [("sub", 22.0), ("counted", 14.0)]


def test_add_grads_with_arguments_it_does_not_take():
    a = Value(1.0)
    adj = array("d", [0.5]).tobytes()
    assert add_grads((a,), adj, 0) == 0         # not a list: nothing done
    assert add_grads([a], adj + adj, 0) == 0    # not len(nodes) doubles
    assert add_grads([a], array("d", [0.5]), 0) == 0
    assert a.grad == 0.0
    for bad in (-1, 0.0, "0", None, True):
        with pytest.raises(TypeError):
            add_grads([a], adj, bad)
    with pytest.raises(AttributeError):         # as `(3).grad += 0.5` raises
        add_grads([3, None], adj + adj, 0)
    assert a.grad == 0.0


def test_walk_and_add_grads_keep_no_references():
    x = Value(0.5)
    y = (x * x + 1.0).tanh()
    nodes = graph.topo(y)
    before = [sys.getrefcount(v) for v in nodes]
    for _ in range(3):
        r = walk(y)
        add_grads(r[0], array("d", [1.0] * len(r[0])).tobytes(), 0)
        del r
    gc.collect()
    assert [sys.getrefcount(v) for v in nodes] == before


# -- tampered graphs: backward() with and without the C parts ------------------------

_UNSET = object()


def _show(g):
    """A grad, for comparing: a Value (made by `grad += x` from one) by the
    type of its value, and a float's value if it has one."""
    if not isinstance(g, Value):
        return repr(g)
    x = getattr(g, "_data", None)
    return ("a node", type(x).__name__, repr(x) if type(x) is float else "")


def _snapshot(objs):
    return [(v, getattr(v, "grad", _UNSET)) for v in objs]


def _restore(snap):
    for v, g in snap:
        if g is _UNSET:
            try:
                delattr(v, "grad")
            except AttributeError:
                pass
        else:
            v.grad = g


@needs_c
@SETTINGS
@given(graphs(max_nodes=40), st.lists(st.tuples(st.integers(0, 10 ** 6),
                                                st.sampled_from(["_a", "_b", "_id", "_op",
                                                                 "_data", "grad"]),
                                                st.integers(0, 12)), max_size=4))
def test_backward_of_tampered_graphs_does_what_python_does(steps, tampering):
    """Links, ids, op codes, values and grads set by hand to anything: the C
    parts give the outcome of the Python code (same grads, or same error)."""
    store = ParamStore()
    _, out = make(steps, store)
    nodes = graph.topo(out)
    for k, attr, what in tampering:
        v, w = nodes[k % len(nodes)], nodes[(k // 7) % len(nodes)]
        x = [None, w, v, 3, 2 ** 70, -1, 1.5, "s", object(), True, math.nan,
             Parameter(0.5), 99][what]
        if isinstance(v, Parameter) and attr in ("_data", "grad") and not isinstance(x, float):
            continue                            # a store holds floats only
        try:
            setattr(v, attr, x)
        except (TypeError, ValueError):
            pass
    objs = list(all_nodes_loose(out))
    snap = _snapshot(objs)
    results = []
    for c_parts in (True, False):
        _restore(snap)
        with pytest.MonkeyPatch.context() as mp:
            if not c_parts:
                mp.setattr(graph, "_c_walk", None)
                mp.setattr(graph, "_c_add_grads", None)
            with microbp.use_backend("c"):
                r = outcome(out.backward)
        if r[0] is RecursionError:              # (the message tells the depth it came at)
            r = (r[0], "")
        results.append((r, [_show(getattr(v, "grad", _UNSET)) for v in objs]))
    assert results[0] == results[1]

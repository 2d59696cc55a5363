"""explain(): the backward pass op by op (microbp/explain.py)."""
import html.parser
import math
import random

import pytest

from microbp import Value
from microbp import ops
from microbp.explain import explain, local_derivatives
from microbp.graphwalk import topo

from networks import lecture_loss


# -- the table of local derivatives ------------------------------------------

# each op's forward on floats, written here independently of the engine
FORWARD = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "powc": lambda a, b: a ** b,
    "neg": lambda a, b: -a, "exp": lambda a, b: math.exp(a), "log": lambda a, b: math.log(a),
    "tanh": lambda a, b: math.tanh(a), "sigmoid": lambda a, b: 1 / (1 + math.exp(-a)),
    "relu": lambda a, b: max(a, 0.0), "abs": lambda a, b: abs(a),
    "sqrt": lambda a, b: math.sqrt(a),
}
BINARY = ("add", "sub", "mul", "div", "pow")
POINTS = [(0.7, 1.3), (2.5, -0.4), (1.9, 3.0), (0.3, 0.5), (3.2, 2.2)]   # a > 0 for log, pow


def test_the_table_covers_the_ops():
    assert {op.name for op in ops.ELEMENTARY} == set(FORWARD)
    assert local_derivatives("no such op", 1.0, 2.0, 3.0) is None


@pytest.mark.parametrize("op", sorted(FORWARD))
@pytest.mark.parametrize("a, b", POINTS)
def test_local_derivatives_agree_with_finite_differences(op, a, b):
    f = FORWARD[op]
    if op in ("relu", "abs", "neg"):
        a = a if (a * 10) % 2 < 1 else -a            # both signs, away from the kink
    if op not in BINARY and op != "powc":
        b = 0.0
    out = f(a, b)
    da, db = local_derivatives(op, a, b, out)
    h = 1e-6 * max(1.0, abs(a))
    fd_a = (f(a + h, b) - f(a - h, b)) / (2 * h)
    assert da == pytest.approx(fd_a, rel=1e-6, abs=1e-8)
    if op in BINARY:
        h = 1e-6 * max(1.0, abs(b))
        fd_b = (f(a, b + h) - f(a, b - h)) / (2 * h)
        assert db == pytest.approx(fd_b, rel=1e-6, abs=1e-8)
    else:
        assert db == 0.0             # unary ops, and the constant exponent of powc


ENGINE_OPS = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b, "neg": lambda a, b: -a,
    "exp": lambda a, b: a.exp(), "log": lambda a, b: a.log(), "tanh": lambda a, b: a.tanh(),
    "sigmoid": lambda a, b: a.sigmoid(), "relu": lambda a, b: a.relu(),
    "abs": lambda a, b: abs(a),
}


@pytest.mark.parametrize("op", sorted(ENGINE_OPS))
@pytest.mark.parametrize("a, b", POINTS + [(0.0, 2.0), (-1.5, 0.0), (0.0, 0.0)])
def test_local_derivatives_are_the_engines_gradients_with_upstream_one(op, a, b):
    x, y = Value(a, label="x"), Value(b, label="y")
    out = ENGINE_OPS[op](x, y)
    assert out.op == op
    out.backward()
    da, db = local_derivatives(op, a, b if op in BINARY else 0.0, out.data)
    same = lambda p, q: p == q or (p != p and q != q)
    assert same(da, x.grad)
    if op in BINARY:
        assert same(db, y.grad)


def test_powc_takes_its_exponent_as_the_second_input():
    x = Value(3.0, label="x")
    y = x ** 2.5
    y.backward()
    assert y.op == "powc"
    ex = explain(y, constants=True)
    (r0, r1) = ex.rows()
    assert (r0.input, r0.local) == (x, 2.5 * 3.0 ** 1.5) and r0.local == x.grad
    assert r1.input.data == 2.5 and r1.local == 0.0 and r1.product == 0.0


# -- rows and sums ------------------------------------------------------------

def simple_graph():
    """Ops whose engine gradient is exactly local * upstream, every value used
    at most twice (so the order of the sums cannot change a bit)."""
    x, w, b = Value(0.8, label="x"), Value(-1.3, label="w"), Value(0.25, label="b")
    h = (x * w + b).tanh()
    h.label = "h"
    q = h * h - x
    r = (-q).exp() + abs(w) ** 1.5 + b.relu()
    s = r * Value(1.7, label="c") ** Value(0.6, label="e")
    s.label = "s"
    s.backward()
    return s


def random_graph(seed):
    rng = random.Random(seed)
    pool = [Value(rng.uniform(0.2, 1.5), label=f"x{i}") for i in range(5)]
    for _ in range(80):
        a, b = rng.choice(pool[-8:]), rng.choice(pool)
        k = rng.randrange(9)
        v = [lambda: a + b, lambda: a * b, lambda: a - b, lambda: a / (b * b + 1.0),
             lambda: (a * 0.5).tanh(), lambda: a.sigmoid(), lambda: (a * a + 1.0).log(),
             lambda: (a * 0.1).exp(), lambda: abs(a) ** 0.5][k]()
        pool.append(v)
    root = sum(pool[-6:])
    root.backward()
    return root


def check_rows(ex):
    """Every row: product == local * upstream, upstream == the node's .grad;
    the rows of a node come after the rows of every value that uses it."""
    rows = ex.rows()
    assert rows
    first = {}
    for i, r in enumerate(rows):
        assert r.upstream == r.node.grad
        assert r.product == r.local * r.upstream
        assert r.node.inputs[r.position] is r.input
        first.setdefault(r.node, i)
    for i, r in enumerate(rows):
        if r.input in first:
            assert first[r.input] > i
    return rows


def test_simple_graph_sums_are_the_engines_gradients_exactly():
    s = simple_graph()
    ex = explain(s)
    rows = check_rows(ex)
    got = {}
    for r in rows:
        got.setdefault(r.input, []).append(r.product)
    assert all(len(p) <= 2 for p in got.values())
    for v in topo(s):
        if v is s or v.op == "const":
            continue
        assert sum(got[v]) == v.grad, ex.names[v]
    # sums() says the same
    for sm in ex.sums():
        assert sm.total == sm.grad == sm.value.grad
        assert list(sm.products) == got[sm.value]


@pytest.mark.parametrize("make", [lecture_loss] + [lambda s=s: random_graph(s) for s in range(4)])
def test_sums_over_uses_are_the_engines_gradients(make):
    root = make()
    ex = explain(root)
    rows = check_rows(ex)
    got = {}
    for r in rows:
        got.setdefault(r.input, []).append(r.product)
    for v in topo(root):
        if v is root or v.op == "const":
            continue
        scale = sum(abs(p) for p in got[v])
        assert abs(sum(got[v]) - v.grad) <= 1e-12 * max(scale, 1e-300), ex.names[v]
    assert "DIFFERS" not in str(ex)


def test_a_value_used_twice_has_two_rows_and_their_sum():
    x = Value(3.0, label="x")
    y = x * x
    y.label = "y"
    y.backward()
    ex = explain(y)
    rows = ex.rows()
    assert [(r.node_name, r.op, r.input_name, r.position) for r in rows] == \
        [("y", "mul", "x", 0), ("y", "mul", "x", 1)]
    assert [r.product for r in rows] == [3.0, 3.0]
    (sm,) = ex.sums()
    assert sm.products == (3.0, 3.0) and sm.total == 6.0 == x.grad
    assert "3 + 3 = 6" in str(ex)


def test_constants_are_left_out_unless_asked():
    x = Value(2.0, label="x")
    y = 3.0 * x + 1.0
    y.backward()
    assert [r.input_name for r in explain(y).rows()] == ["mul#2", "x"]
    names = [r.input_name for r in explain(y, constants=True).rows()]
    assert names == ["mul#2", "1", "3", "x"]


def test_explain_runs_backward_only_when_it_has_not_run():
    x = Value(0.5, label="x")
    y = (x * 4.0).tanh()
    ex = explain(y)
    assert ex.ran_backward and y.grad == 1.0 and x.grad != 0.0
    before = x.grad
    ex2 = explain(y)
    assert not ex2.ran_backward and x.grad == before
    assert "ran backward() first" in str(ex) and "ran backward() first" not in str(ex2)


def test_gradients_left_from_another_backward_are_flagged():
    x = Value(0.5, label="x")
    a = x * 2.0
    a.backward()
    b = x * 3.0
    b.label = "b"
    b.backward()                 # x.grad = 2 + 3, but the rows of b give 3
    text = str(explain(b))
    assert "DIFFERS" in text and "zeroed" in text


def test_text_is_aligned():
    ex = explain(lecture_loss())
    text = str(ex)
    lines = text.splitlines()
    head = next(i for i, line in enumerate(lines) if line.lstrip().startswith("node"))
    table = lines[head:head + 1 + len(ex.rows())]
    assert len({len(line) for line in table}) == 1        # right-aligned last column
    col = table[0].index("op")
    for line, r in zip(table[1:], ex.rows()):
        assert line[2:].startswith(r.node_name)
        assert line[col:].startswith(r.op + " ")
        assert line.endswith(format(r.product, ".6g"))
    assert "each gradient is the sum of the products over the value's uses" in text
    assert repr(ex) == text                     # the prompt shows the table as well


def test_a_leaf_has_no_rows():
    x = Value(1.0, label="x")
    ex = explain(x)
    assert ex.rows() == [] and "x is a leaf" in str(ex)


class _Fake:
    """A duck-typed value with an op the table does not know."""
    def __init__(self, data, grad, op="leaf", inputs=(), label=""):
        self.data, self.grad, self.op, self.inputs, self.label = data, grad, op, inputs, label


def test_an_op_without_a_formula_shows_a_question_mark():
    a = _Fake(1.0, 2.0, label="a")
    out = _Fake(5.0, 1.0, op="frobnicate", inputs=(a,), label="out")
    ex = explain(out)
    (r,) = ex.rows()
    assert r.local is None and r.product is None
    assert "?" in str(ex) and "no formula" in str(ex)


def test_big_graphs_print_a_bounded_table():
    h = Value(0.1, label="x")
    for _ in range(500):
        h = h.tanh()
    ex = explain(h)
    assert len(ex.rows()) == 500
    text = str(ex)
    assert "300 more rows (rows() has them all)" in text and len(text.splitlines()) < 450


class _Cells(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.rows, self._row, self._cell = [], None, None

    def handle_starttag(self, tag, attrs):
        if tag == "tr":
            self._row = []
        elif tag in ("td", "th"):
            self._cell = ""

    def handle_endtag(self, tag):
        if tag in ("td", "th"):
            self._row.append(self._cell)
            self._cell = None
        elif tag == "tr":
            self.rows.append(self._row)

    def handle_data(self, data):
        if self._cell is not None:
            self._cell += data


def test_html_table_in_a_notebook():
    x = Value(2.0, label="<x & y>")
    y = x * x
    y.label = "y"
    y.backward()
    ex = explain(y)
    p = _Cells()
    p.feed(ex._repr_html_())
    assert p.rows[0][:3] == ["node", "op", "input"]
    assert p.rows[1] == ["y", "mul", "<x & y>", "2", "1", "2"]
    assert p.rows[2] == ["y", "mul", "<x & y>", "2", "1", "2"]
    assert p.rows[3] == ["<x & y>", "2 + 2 = 4", "(.grad 4)"]
    assert "<x & y>" not in ex._repr_html_()              # escaped


def test_bad_arguments():
    with pytest.raises(TypeError, match="explain needs a Value"):
        explain(3.0)

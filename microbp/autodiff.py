"""Derivatives in every direction, on eager graphs of Values.

    jvp(f, primals, tangents)          forward mode: one sweep up the graph gives
                                       every output's directional derivative
    grad(outputs, inputs)              reverse mode: one sweep down the graph gives
                                       d(sum of outputs)/d(input) for every input
    grad(..., create_graph=True)       the same sweep on Values: the gradients are
                                       nodes of a graph, to differentiate again
    jacobian(f, values, mode)          one forward sweep per input, or one reverse
                                       sweep per output (auto: the fewer)
    hessian(f, values)                 forward over reverse

Every sweep applies the op table's rules (ops.py) and nothing else: forward
mode `t_out = t_a × d out/d a + t_b × d out/d b` (Op.tangent), reverse mode
`g_a += g × d out/d a` (Op.grads on floats, Op.grads_values on Values). None
of them reads or writes any .grad.

A tangent or a gradient that is structurally zero (a Value that depends on
no primal; relu'(x) for x <= 0) is None inside the sweeps: it contributes
nothing, even against an inf, exactly as in Tape.jvp. An input that an
output does not depend on gets gradient 0.0, as
torch.autograd.grad(..., allow_unused=True, materialize_grads=True) gives.
"""
from operator import attrgetter

from . import anomaly, graph, ops
from .backend import executor
from .checks import as_float
from .engine import Value, as_value

_OPS = ops.OPS
_creation = attrgetter("_id")
MODES = ("auto", "forward", "reverse")


# -- argument checks ---------------------------------------------------------

def _numbers(xs, name):
    if isinstance(xs, (Value, str)) or not hasattr(xs, "__iter__"):
        raise TypeError(f"{name} must be a list of numbers, not {type(xs).__name__}")
    return [as_float(x, f"{name}[{j}]") for j, x in enumerate(xs)]   # the one rule


def _values(xs, name):
    """(list of Values, whether xs was a single Value)."""
    if isinstance(xs, Value):
        return [xs], True
    if isinstance(xs, str) or not hasattr(xs, "__iter__"):
        raise TypeError(f"{name} must be a Value or a list of Values, not {type(xs).__name__}")
    xs = list(xs)
    for j, v in enumerate(xs):
        if not isinstance(v, Value):
            raise TypeError(f"{name}[{j}] must be a Value, not {type(v).__name__}")
    if not xs:
        raise ValueError(f"{name} is empty: expected at least one Value")
    return xs, False


def _leaves(values):
    if not values:
        raise ValueError("values is empty: expected at least one number")
    return [Value(x) for x in values]


# -- the sweeps ---------------------------------------------------------------

def _topo(roots):
    """The nodes below any of `roots`, inputs before outputs (creation order)."""
    seen = set(map(id, roots))
    nodes = list({id(r): r for r in roots}.values())
    stack = list(nodes)
    while stack:
        v = stack.pop()
        for c in (v._a, v._b):
            if c is not None and id(c) not in seen:
                seen.add(id(c))
                nodes.append(c)
                stack.append(c)
    nodes.sort(key=_creation)
    return nodes


def _tangents(nodes, seeds):
    """Forward mode: {id(node): tangent} for every node of `nodes` (in topological
    order) that depends on a seeded leaf; `seeds` maps id(leaf) to its tangent."""
    tan = dict(seeds)
    get = tan.get
    for v in nodes:
        a, b = v._a, v._b
        if a is None:                          # a leaf or a constant: seeded or nothing
            continue
        t = _OPS[v._op].tangent(get(id(a)), None if b is None else get(id(b)),
                                a.data, 0.0 if b is None else b.data, v.data)
        if t is not None:
            tan[id(v)] = t
    return tan


def _adjoints(outs):
    """Reverse mode on floats: (adjoints, {id(node): index}) of every node below
    `outs`, d(sum of outs)/d(node), by the executor's eager backward sweep (so
    for one output the very doubles of .backward()). Several outputs are summed
    by adds appended to the flat program, never by new Values. Inside
    detect_anomaly() a nan or inf gradient raises, as in .backward()."""
    nodes = _topo(outs)
    op, a, b, val = graph.flatten(nodes)
    pos = {id(v): i for i, v in enumerate(nodes)}
    last = pos[id(outs[0])]
    add = _OPS[ops.ADD].f
    for o in outs[1:]:
        op.append(ops.ADD), a.append(last), b.append(pos[id(o)])
        val.append(add(val[last], val[pos[id(o)]]))
        last = len(op) - 1
    ex = executor()
    adj = ex.backward_scalar(op, a, b, val)
    if anomaly.enabled():                   # as .backward() does
        anomaly.check_gradients(adj, op, lambda i: nodes[i].label if i < len(nodes) else "",
                                ex.first_nonfinite)
    return adj, pos


def _adjoint_values(outs):
    """Reverse mode on Values: {id(node): d(sum of outs)/d(node) as a Value}. The
    same contributions in the same order as _adjoints, so the same doubles; a
    None contribution (a structural zero) adds 0.0 there, and so it does here
    (it turns a -0.0 sum into 0.0, and a node reached by nothing else into 0.0)."""
    one, zero = as_value(1.0, "seed"), as_value(0.0, "zero")
    acc, zeroed = {}, set()

    def add(v, g):
        k = id(v)
        if g is None:
            zeroed.add(k)
        else:
            acc[k] = acc[k] + g if k in acc else g

    def total(k):
        g = acc.get(k)
        if k in zeroed:
            g = zero if g is None else g + zero
        return zero if g is None else g

    for o in outs:
        add(o, one)
    for v in reversed(_topo(outs)):
        if v._a is None:
            continue
        op = _OPS[v._op]
        ga, gb = op.grads_values(total(id(v)), v._a, v._b, v)   # out = v: differentiable
        add(v._a, ga)
        if op.grad_b:
            add(v._b, gb)
    return total


# -- the public functions -------------------------------------------------------

def jvp(f, primals, tangents):
    """Forward mode: `(outputs, output_tangents)` of `f` at `primals` along `tangents`.

    `f` takes one Value per primal (new leaves holding the primals, numbers) and
    returns a Value or a list of Values; `tangents` holds one number per primal.
    One sweep up the graph gives every node its tangent, local derivative ×
    input tangents, with the op table's rules. Returns f's result and its
    tangent(s): a float for a Value, a list of floats for a list. An output
    that depends on no primal has tangent 0.0; Values f uses that are not
    primals (parameters, constants) carry no tangent. The doubles are those
    of a one-row Tape(output, leaves).jvp, in either backend. Raises
    TypeError when f is not callable, primals or tangents are not lists of
    numbers, or f returns no Value; ValueError when they differ in length.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    xs = _numbers(primals, "primals")
    ts = _numbers(tangents, "tangents")
    if len(ts) != len(xs):
        raise ValueError(f"tangents has {len(ts)} entries, primals has {len(xs)}: "
                         "expected one tangent per primal")
    leaves = [Value(x) for x in xs]
    result = f(*leaves)
    outs, single = _values(result, "the result of f")
    tan = _tangents(_topo(outs), {id(x): t for x, t in zip(leaves, ts)})
    out_t = [tan.get(id(o), 0.0) for o in outs]
    return (result, out_t[0]) if single else (outs, out_t)


def grad(outputs, inputs, create_graph=False):
    """Reverse mode: d(sum of outputs)/d(input) for each of `inputs`, a list of Values.

    `outputs` is a Value or a list of Values, `inputs` a list of Values (leaves
    or not: the gradient of an interior node is its adjoint). No .grad is read
    or changed. An input that no output depends on gets 0.0.

    create_graph=False: the sweep runs in the selected backend and the
    gradients are new leaf Values holding the numbers (for one output, the
    doubles .backward() would add into .grad). create_graph=True: the sweep
    runs on Values, so each gradient is a node of a graph built from the op
    table's derivative rules, with the same doubles, that can be
    differentiated again: grad(grad(y, [x], create_graph=True)[0], [x]) is
    d2y/dx2. Second derivatives are exact at the edges too: relu'' = abs'' = 0.
    Raises TypeError for outputs or inputs that are not Values (or lists of
    them) and for a create_graph that is not a bool.
    """
    outs, _ = _values(outputs, "outputs")
    if isinstance(inputs, Value):
        raise TypeError("inputs must be a list of Values, not a Value (wrap it: [x])")
    xs, _ = _values(inputs, "inputs")
    if not isinstance(create_graph, bool):
        raise TypeError(f"create_graph must be True or False, not {type(create_graph).__name__}")
    if create_graph:
        total = _adjoint_values(outs)
        return [total(id(x)) for x in xs]
    adj, pos = _adjoints(outs)
    return [Value(adj[pos[id(x)]] if id(x) in pos else 0.0) for x in xs]


def jacobian(f, values, mode="auto"):
    """The Jacobian of `f` at `values` (numbers): rows = outputs, columns =
    inputs, as a list of lists of floats (one row for a single Value).

    `f` takes one Value per number and returns a Value or a list of Values.
    mode="forward" makes one forward sweep per input (each a column),
    "reverse" one reverse sweep per output (each a row, in the selected
    backend); "auto" takes forward mode when there are more outputs than
    inputs and reverse mode otherwise: the fewer sweeps over the same graph.
    Raises ValueError for another mode, TypeError when f is not callable,
    values are not numbers, or f returns no Value.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}, got {mode!r}")
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    xs = _leaves(_numbers(values, "values"))
    outs, _ = _values(f(*xs), "the result of f")
    if mode == "auto":
        mode = "forward" if len(outs) > len(xs) else "reverse"
    if mode == "forward":
        nodes = _topo(outs)
        cols = []
        for x in xs:                            # one sweep per input: column j
            tan = _tangents(nodes, {id(x): 1.0})
            cols.append([tan.get(id(o), 0.0) for o in outs])
        return [list(row) for row in zip(*cols)]
    rows = []
    for o in outs:                              # one sweep per output: row i
        adj, pos = _adjoints([o])
        rows.append([adj[pos[id(x)]] if id(x) in pos else 0.0 for x in xs])
    return rows


def hessian(f, values):
    """The Hessian of `f` (one Value out) at `values` (numbers): a symmetric
    list of lists of floats, H[i][j] = d2f/dx_i dx_j.

    Forward over reverse: one reverse sweep on Values builds the gradient
    graph (every df/dx_i at once), then one forward sweep over that graph per
    input x_j gives column j, every d(df/dx_i)/dx_j together. Reverse over
    reverse would need one reverse sweep per row, each with its own walk of
    the gradient graph; forward mode walks the one node list n times. The two
    mixed partials of a pair are averaged (they agree up to rounding).
    Raises TypeError when f is not callable, values are not numbers, or f
    does not return one Value.
    """
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    xs = _leaves(_numbers(values, "values"))
    out = f(*xs)
    if not isinstance(out, Value):
        raise TypeError(f"f must return a single Value for hessian, not {type(out).__name__}")
    total = _adjoint_values([out])
    gs = [total(id(x)) for x in xs]
    nodes = _topo(gs)
    cols = []
    for x in xs:
        tan = _tangents(nodes, {id(x): 1.0})
        cols.append([tan.get(id(g), 0.0) for g in gs])
    n = len(xs)
    return [[cols[j][i] if cols[j][i] == cols[i][j] else 0.5 * cols[j][i] + 0.5 * cols[i][j]
             for j in range(n)] for i in range(n)]

"""From a Value graph to a flat node array, and the eager backward pass.

Values are created in topological order (every op's inputs exist before its
output), so the nodes below a root, sorted by creation, are a topological order.

backward() adds each node's contributions to its inputs' gradients in
reverse creation order, whichever backend runs it: that order fixes the
doubles (float addition is not associative). In the C backend the graph
goes to the C core as a flat program (flatten); in the Python backend it is
swept where it stands, Value by Value, by a function written from the op
table below: the arithmetic of the Python executor's flat sweep (pyexec),
without the flat arrays, and each .grad written as soon as its node is done.
The adjoints are kept in the dict that the walk below the root collects the
nodes in (_reached): the one table of every node a backward() makes (a set
for the walk and a second dict for the sweep touched more pages of memory
than the lookup per node that the second one saved).

In the C backend the walk, the flattening and the writing back of the
.grads are C too when microbp._pyread is built (csrc/pyread.c: walk and
add_grads, fast paths that give the very lists and doubles of topo, flatten
and the loop below, and hand anything but plain nodes back to them).
"""
import ast
from array import array
from operator import attrgetter

from . import anomaly, codegen, ieee, ops
from .backend import executor, get_backend

try:        # the walk and the .grad write-back in C (csrc/pyread.c), when built
    from ._pyread import walk as _c_walk, add_grads as _c_add_grads
except ImportError:
    _c_walk = _c_add_grads = None

_creation = attrgetter("_id")
_op, _a, _b, _data = attrgetter("_op"), attrgetter("_a"), attrgetter("_b"), attrgetter("_data")


def topo(root, reverse=False):
    """The nodes of the graph below `root`, inputs before outputs, root last
    (with reverse=True: root first, the reverse creation order)."""
    return sorted(_reached(root), key=_creation, reverse=reverse)


def _reached(root):
    """{node: -0.0} for every node of the graph below `root`, root first, in the
    order a walk finds them: a dict, so that backward() can keep its adjoints
    in it (-0.0 + x is x for every x, so -0.0 is where each one starts)."""
    found = {root: -0.0}
    queue = [root]               # nodes whose inputs are still to be looked at
    push = queue.append
    for v in queue:              # first in, first out (the list grows as it is read)
        while True:              # v, then the chain of first inputs below it
            a = v._a
            if a is None:        # a leaf (its _b is not looked at)
                break
            c = v._b
            if c is not None and c not in found:
                found[c] = -0.0
                push(c)
            if a in found:
                break
            found[a] = -0.0
            v = a
    # On a sum of products (a neuron's b + w0*x0 + w1*x1 + ...: each sum's first
    # input is the sum before it, its second the product made after that), the
    # chain and its products are found in descending creation order, and the
    # queue looks at the products in that order too: the walk's order is in
    # long descending runs, which a sort by creation merges in little more than
    # the time it takes to read the keys.
    return found


def flatten(nodes):
    """Op codes, input indices (-1 for none) and values of `nodes`, as lists."""
    pos = dict(zip(nodes, range(len(nodes))))
    pos[None] = -1
    index = pos.__getitem__
    op = list(map(_op, nodes))
    a = list(map(index, map(_a, nodes)))
    b = list(map(index, map(_b, nodes)))
    val = list(map(_data, nodes))
    return op, a, b, val


def flat_graph(root):
    """(nodes, op, a, b, val): topo(root) and flatten() of it, op, a and b as
    lists or read-only views of int32, val as an array of doubles. In C when
    microbp._pyread is built and every node is plain (else topo and flatten)."""
    r = _c_walk(root) if _c_walk is not None else None
    if r is None:
        nodes = topo(root)
        op, a, b, val = flatten(nodes)
        return nodes, op, a, b, array("d", val)
    nodes, op, a, b, val, later = r               # bytes: of int32 and of doubles
    val = array("d", val)
    for i in memoryview(later).cast("i"):         # values C leaves to Python (a
        val[i] = nodes[i]._data                   # Parameter's), read after the slots
    return (nodes, *(memoryview(x).cast("i") for x in (op, a, b)), val)


def add_grads(nodes, adj, in_c=True):
    """node.grad += adj[i] for the i-th of nodes, in order: in C when in_c,
    microbp._pyread is built and adj is an array of doubles (a plain slot
    holding a float is added to there, any other grad as here)."""
    i = 0
    if in_c and _c_add_grads is not None and type(adj) is array and adj.typecode == "d":
        i = _c_add_grads(nodes, adj.tobytes(), 0)   # all of them, unless it takes none
    for k in range(i, len(nodes)):
        v = nodes[k]
        v.grad += adj[k]


def backward(root):
    """Add d root / d node into node.grad for every node below root."""
    if anomaly.enabled():
        return _checked_backward(root)
    if get_backend() == "python":
        adj = _reached(root)       # every node's adjoint, -0.0 so far
        adj[root] = 1.0
        _sweep(sorted(adj, key=_creation, reverse=True), adj)   # and .grad, node by node
        return
    nodes, op, a, b, val = flat_graph(root)   # C: a flat program, one sweep, then each .grad
    add_grads(nodes, executor().backward_scalar(op, a, b, val))


def _checked_backward(root):
    """backward() inside detect_anomaly(): every gradient is checked before
    any .grad changes."""
    in_c = get_backend() != "python"
    if in_c:
        nodes, op, a, b, val = flat_graph(root)
    else:
        nodes = topo(root)
        op, a, b, val = flatten(nodes)
    ex = executor()
    adj = ex.backward_scalar(op, a, b, val)
    anomaly.check_gradients(adj, op, lambda i: nodes[i].label, ex.first_nonfinite)
    add_grads(nodes, adj, in_c)


# -- the sweep over Values, written from the op table ------------------------

def _uses(tree):
    return {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}


def _sweep_source(table):
    """The source of _sweep(order, adj), adj a dict {node: its adjoint so far}
    and order its nodes in reverse creation order: for each node v in turn (its
    adjoint is whole by then: every use of v came after it), v.grad += adj[v],
    then adj[input] += upstream × local derivative, op by op as `table` (the op table's
    ELEMENTARY rows) states them, in the very
    arithmetic of the Python executor's sweep (pyexec): both products from
    the same values, a's adjoint first, then b's (a 0.0 for a structural
    zero is still added there, so it is here)."""
    g = codegen.name("g")
    branches = []
    for op in table:
        ga = codegen.times(g, codegen.parse(op.d_a))
        gb = codegen.times(g, codegen.parse(op.d_b)) if op.grad_b else None
        used = set().union(*(_uses(t) for t in (ga, gb) if t is not None))
        body = ["va = v._a"] + (["vb = v._b"] if op.arity == 2 else [])
        if "a" in used:
            body.append("a = va._data")
        if "b" in used:
            body.append("b = vb._data" if op.arity == 2 else "b = 0.0")
        if "out" in used:
            body.append("out = v._data")
        # x = x + (y): the arithmetic of x += y, in fewer bytecodes
        body.append(f"adj[va] = adj[va] + ({codegen.python(ga) if ga is not None else '0.0'})")
        if op.grad_b:
            body.append(f"adj[vb] = adj[vb] + ({codegen.python(gb) if gb is not None else '0.0'})")
        branches.append((f"o == {op.code}", op.name, body))
    # the if-chain is walked from the top: add and mul (nearly every node of a
    # network), then leaves and constants, then the rest
    first = [br for br in branches if br[1] in ("add", "mul")]
    rest = [br for br in branches if br[1] not in ("add", "mul")]
    chain = first + [(f"o <= {ops.CONST}", "a leaf or a constant", ["continue"])] + rest
    lines = ["def _sweep(order, adj):",
             "    for v in order:",
             "        g = adj[v]",
             "        v.grad += g                 # (in place, as add_grads does)",
             "        o = v._op"]
    for k, (test, name, body) in enumerate(chain):
        lines.append(f"        {'if' if k == 0 else 'elif'} {test}:    # {name}")
        lines += ["            " + line for line in body]
    lines += ["        else:",
              "            raise ValueError(f'a Value of op code {o} has no backward formula')"]
    return "\n".join(lines) + "\n"


# what the Python rendering of a formula calls (codegen: _div, _exp, ...)
_ENV = {"_" + f: getattr(ieee, f) for f in ("div", "exp", "log", "pow", "sqrt", "tanh", "fabs", "sign")}


def _make_sweep(table):
    """The sweep over Values of the ops in `table` (see _sweep_source)."""
    env = dict(_ENV, __name__=__name__)
    exec(compile(_sweep_source(table), "<microbp eager sweep>", "exec"), env)
    return env["_sweep"]


_sweep = _make_sweep(ops.ELEMENTARY)

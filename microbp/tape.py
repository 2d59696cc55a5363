"""microbp.Tape: record a graph once, replay it over batches in either backend.

    tape = Tape(loss, inputs=[x1, x2, y])    # the graph below `loss`, once
    tape.forward([[0.5, -1.0, 1.0], ...])    # one row per sample -> losses
    tape.backward()                          # parameter .grad += d(sum of losses)

The rows of a batch are the lanes of each node: a node that depends on an
input slot holds one value per row, every other node (parameters, constants,
a weight-decay term) holds one value, computed once per forward.
"""
from array import array
from itertools import chain

from . import anomaly, params as _params
from .backend import executor
from .engine import Value, LEAF, as_float, leaf_values
from .graph import topo, flatten
from .ops import ADD, MUL, LIN, CONST, ARITY
from .pyexec import layout, inputs_vary


class Batch:
    """Rows of floats packed once (one array of doubles), for reuse across steps."""

    __slots__ = ("rows", "nrows", "width")

    def __init__(self, rows, width=None):
        if isinstance(rows, Batch):
            rows = rows.to_list()
        if not isinstance(rows, (list, tuple)):
            raise TypeError(f"batch must be a list of rows, not {type(rows).__name__}")
        if not rows:
            raise ValueError("batch is empty: give at least one row")
        width = len(rows[0]) if width is None and hasattr(rows[0], "__len__") else width
        for r, row in enumerate(rows):
            if not isinstance(row, (list, tuple)):
                raise TypeError(f"batch row {r} must be a list or tuple of numbers, "
                                f"not {type(row).__name__}")
            if len(row) != width:
                raise ValueError(f"batch row {r} has {len(row)} entries, expected {width} "
                                 "(one per input slot)")
        try:
            flat = array("d", chain.from_iterable(rows))
        except (TypeError, OverflowError):
            for r, row in enumerate(rows):        # name the first bad entry
                for j, x in enumerate(row):
                    as_float(x, f"batch row {r} entry {j}")
            raise
        self.rows, self.nrows, self.width = flat, len(rows), width

    def to_list(self):
        w = self.width
        return [self.rows[r * w:(r + 1) * w].tolist() for r in range(self.nrows)]


def fuse_linear(nodes, op, a, b):
    """Fuse each chain acc + p*q + p*q + ... into one lin node (ops.py).

    A chain is what `acc = acc + w * x`, repeated, records: an add whose second
    input is the mul just before it, and whose first input is either the add
    just before that mul (the chain goes on) or anything else (its base). Only
    nodes used once, by the next node of their chain, are fused, and only runs
    that are contiguous in the topological order: then no other node's gradient
    contribution falls between theirs, and the lin node's forward and backward
    are the same arithmetic in the same order, bit for bit.

    Returns the kept nodes and their op, a, b lists, and the ext term lists."""
    n = len(op)
    uses = [0] * n
    uses[n - 1] = 1                              # the root is used by the caller
    for i in range(n):
        if ARITY[op[i]] >= 1:
            uses[a[i]] += 1
        if ARITY[op[i]] == 2:
            uses[b[i]] += 1
    chains = {}                                  # last add of a chain -> [base, start, terms]
    for i in range(2, n):
        m = i - 1
        if op[i] != ADD or b[i] != m or op[m] != MUL or uses[m] != 1 or a[i] == m:
            continue
        prev = a[i]
        if prev == i - 2 and prev in chains and uses[prev] == 1:
            chain = chains.pop(prev)             # the chain goes on
        else:
            chain = [prev, m, []]                # a new chain on base `prev`
        chain[2].append((a[m], b[m]))
        chains[i] = chain
    if not chains:
        return nodes, op, a, b, array("i")
    fused = bytearray(n)                         # 1: inside a chain, dropped
    for end, (base, start, terms) in chains.items():
        for k in range(start, end):
            fused[k] = 1
    new = [-1] * n
    kept = [i for i in range(n) if not fused[i]]
    for j, i in enumerate(kept):
        new[i] = j
    ext = array("i")
    nop, na, nb = [], [], []
    for i in kept:
        if i in chains:
            base, _, terms = chains[i]
            nop.append(LIN)
            na.append(new[base])
            nb.append(len(ext))
            ext.append(len(terms))
            for p, q in terms:
                ext.extend((new[p], new[q]))
        else:
            nop.append(op[i])
            na.append(new[a[i]] if a[i] >= 0 else -1)
            nb.append(new[b[i]] if b[i] >= 0 else -1)
    return [nodes[i] for i in kept], nop, na, nb, ext


class Tape:
    """A graph recorded into a flat node array, replayed by forward()/backward()."""

    def __init__(self, output, inputs=()):
        if not isinstance(output, Value):
            raise TypeError(f"output must be a Value, not {type(output).__name__}")
        inputs = leaf_values(inputs, "inputs", "the input slots")

        nodes = topo(output)
        op, a, b, _ = flatten(nodes)
        nodes, op, a, b, self.ext = fuse_linear(nodes, op, a, b)
        pos = {v: i for i, v in enumerate(nodes)}
        slot_of = {pos[v]: j for j, v in enumerate(inputs) if v in pos}
        vary = bytearray(len(nodes))          # 1: depends on an input slot
        for i, o in enumerate(op):
            if o == LEAF:
                vary[i] = i in slot_of
            elif ARITY[o] >= 1:
                vary[i] = inputs_vary(i, op, a, b, vary, self.ext)

        self.n = len(nodes)
        self.labels = {i: v.label for i, v in enumerate(nodes) if v.label}
        self.op, self.a, self.b = array("i", op), array("i", a), array("i", b)
        self.vary = vary
        # input slot j feeds node in_nodes[j] (an unused slot is left out)
        used = sorted(slot_of.items(), key=lambda kv: kv[1])
        self.in_nodes = array("i", [i for i, _ in used])
        self.in_cols = [j for _, j in used]
        self._all_cols = self.in_cols == list(range(len(inputs)))
        self.ninputs = len(inputs)
        # parameters: every other leaf; constants keep the value they were recorded with
        pnodes = [i for i, o in enumerate(op) if o == LEAF and i not in slot_of]
        self.parameters = [nodes[i] for i in pnodes]
        self.groups = [(store, array("i", [pnodes[p] for p in positions]), slots)
                       for store, slots, positions in _params.bind(self.parameters)]
        consts = [i for i, o in enumerate(op) if o == CONST]
        self.const_nodes = array("i", consts)          # constants keep their value:
        self._const_vals = array("d", [nodes[i].data for i in consts])   # until a layout
        self.nr = 0          # rows of the current layout
        self.off = self.val = self.adj = None
        self._ready = False  # a forward has filled val

    def __repr__(self):
        return (f"Tape({self.n} nodes, {self.ninputs} inputs, "
                f"{len(self.parameters)} parameters)")

    def _layout(self, nr):
        if nr == self.nr:
            return
        off, total = layout(self.vary, nr)
        val = array("d", bytes(8 * total))
        if self.val is None:                      # the first layout: recorded values
            consts = self._const_vals
            self._const_vals = None
        else:                                     # later: from the previous layout
            consts = [self.val[self.off[i]] for i in self.const_nodes]
        for i, x in zip(self.const_nodes, consts):
            val[off[i]] = x
        self.off, self.val = array("q", off), val
        self.adj = array("d", bytes(8 * total))
        self.nr = nr

    def forward(self, batch):
        """Run the graph once per row of `batch` (a list of rows with one float per
        input slot, or a Batch); return the list of output values, one per row."""
        if not isinstance(batch, Batch):
            batch = Batch(batch, self.ninputs)
        elif batch.width != self.ninputs:
            raise ValueError(f"batch rows have {batch.width} entries, expected "
                             f"{self.ninputs} (one per input slot)")
        ex, nr = executor(), batch.nrows
        self._ready = False
        self._layout(nr)
        for store, nodes, slots in self.groups:
            ex.gather(self.val, self.off, nodes, slots, store.data)
        if self.in_nodes:
            rows = batch.rows
            if not self._all_cols:                        # some slots unused
                rows = array("d", [rows[r * self.ninputs + j]
                                   for r in range(nr) for j in self.in_cols])
            ex.load_rows(self.val, self.off, self.in_nodes, rows, nr)
        ex.forward(self.val, self.op, self.a, self.b, self.vary, self.off, nr, self.ext)
        if anomaly.enabled():
            anomaly.check_lanes(self.val, self.off, self.vary, nr, self.op, self.labels.get,
                                ex.first_nonfinite, "value")
        self._ready = True
        root = self.off[self.n - 1]
        if self.vary[self.n - 1]:
            return self.val[root:root + nr].tolist()
        return [self.val[root]] * nr

    def backward(self):
        """Add to each parameter's .grad the gradient of the sum of the outputs of
        the last forward() (one per row)."""
        if not self._ready:
            raise RuntimeError("Tape.backward() needs a forward() first")
        ex = executor()
        ex.backward(self.adj, self.val, self.op, self.a, self.b, self.vary, self.off, self.nr,
                    self.ext)
        if anomaly.enabled():                # before any .grad changes
            anomaly.check_lanes(self.adj, self.off, self.vary, self.nr, self.op, self.labels.get,
                                ex.first_nonfinite, "gradient", reverse=True)
        for store, nodes, slots in self.groups:
            ex.scatter_add(store.grad, self.adj, self.off, nodes, slots)

"""microbp.Tape: record a graph once, replay it over batches in either backend.

    tape = Tape(loss, inputs=[x1, x2, y])    # the graph below `loss`, once
    tape.forward([[0.5, -1.0, 1.0], ...])    # one row per sample -> losses
    tape.backward()                          # parameter .grad += d(sum of losses)
    tape.jvp(rows, tangents)                 # forward mode over the input slots

The rows of a batch are the lanes of each node: a node that depends on an
input slot holds one value per row, every other node (parameters, constants,
a weight-decay term) holds one value, computed once per forward.

A recorded tape is a sealed program: its structure (op codes, inputs, fused
term lists, lane flags) is immutable bytes that the tape owns, and its value
and adjoint buffers are private; read it through num_nodes, ops, varies,
num_inputs and parameters. One tape serves one thread at a time: its calls
hold a lock, and backward() raises RuntimeError when the last forward() ran
in another thread (it would hand one thread's results to another).
"""
import struct
import threading
from array import array
from itertools import chain
from threading import get_ident

from . import anomaly, params as _params
from .backend import executor, get_backend
from .checks import as_float
from .engine import Value, as_value
from .graph import topo, flatten
from .ops import ADD, MUL, LIN, CONST, LEAF, ARITY, NAMES
from .tapeformat import layout, inputs_vary, lin_terms

try:        # C that reads a list of rows in one pass (csrc/pyread.c), when built
    from ._pyread import rows_to_doubles
except ImportError:
    rows_to_doubles = None


class Batch:
    """Rows of floats packed once (one array of doubles), for reuse across steps.

    `rows` is a list or tuple of rows (lists or tuples of numbers, one per
    input slot), another Batch, or a 2-D numpy array (read straight from its
    buffer when it is float64 and C-contiguous); `width` is the number of
    entries every row must have (default: the first row's). Raises TypeError
    for rows or entries of the wrong type (the one rule for numbers,
    checks.as_float) and ValueError for an empty batch, rows of another width
    or an int too large for a float."""

    __slots__ = ("rows", "nrows", "width")

    def __init__(self, rows, width=None):
        if type(rows) not in _ROWS:                       # (a list: nothing to ask)
            if isinstance(rows, Batch):
                rows = rows.to_list()
            elif getattr(rows, "ndim", None) == 2:        # a 2-D array (numpy)
                if _float64_rows(rows, width):
                    self.nrows, self.width = rows.shape
                    self.rows = array("d")
                    self.rows.frombytes(memoryview(rows).cast("B"))   # one copy
                    return
                rows = rows.tolist()
        if not isinstance(rows, (list, tuple)):
            raise TypeError(f"batch must be a list of rows, not {type(rows).__name__}")
        if not rows:
            raise ValueError("batch is empty: give at least one row")
        width = len(rows[0]) if width is None and hasattr(rows[0], "__len__") else width
        packed = rows_to_doubles(rows, width) if rows_to_doubles else None
        if packed is not None:                            # plain rows, read in C
            flat = array("d")
            flat.frombytes(packed)
        else:
            flat = _read_rows(rows, width)
        if width and len(flat) % width:       # another thread changed a row meanwhile
            raise ValueError("batch rows changed while they were read")
        self.rows, self.width = flat, width
        self.nrows = len(flat) // width if width else len(rows)   # the rows read, not len now

    def to_list(self):
        """The rows as a list of lists of floats."""
        w = self.width
        return [self.rows[r * w:(r + 1) * w].tolist() for r in range(self.nrows)]


_NUMBERS = {float, int}
_ROWS = {list, tuple}


def _read_rows(rows, width):
    """rows (a list or tuple) as an array of doubles, row-major, in Python:
    the twin of _pyread.rows_to_doubles, which names nothing; this raises
    TypeError/ValueError naming the first bad row or entry."""
    if not (set(map(type, rows)) <= _ROWS and set(map(len, rows)) == {width}):
        for r, row in enumerate(rows):       # name the first bad row
            if not isinstance(row, (list, tuple)):
                raise TypeError(f"batch row {r} must be a list or tuple of numbers, "
                                f"not {type(row).__name__}")
            if len(row) != width:
                raise ValueError(f"batch row {r} has {len(row)} entries, expected {width} "
                                 "(one per input slot)")
    entries = list(chain.from_iterable(rows))
    if set(map(type, entries)) <= _NUMBERS:          # floats and ints: one copy
        try:
            flat = array("d")
            flat.frombytes(struct.pack(f"{len(entries)}d", *entries))
            return flat
        except (OverflowError, struct.error):         # an int too large: named below
            pass
    return array("d", [as_float(x, f"batch row {k // width if width else 0} entry "
                                   f"{k % width if width else 0}")
                       for k, x in enumerate(entries)])


def _float64_rows(rows, width):
    """A C-contiguous 2-D float64 array of rows of `width` (numpy's), non-empty."""
    dtype = getattr(rows, "dtype", None)
    flags = getattr(rows, "flags", None)
    return (getattr(dtype, "str", "") == "<f8" and flags is not None
            and flags["C_CONTIGUOUS"] and rows.shape[0] > 0
            and (width is None or rows.shape[1] == width) and rows.shape[1] > 0)


def fuse_linear(nodes, op, a, b, unfused=None):
    """Fuse each chain acc + p*q + p*q + ... into one lin node (ops.py).

    A chain is what `acc = acc + w * x`, repeated, records: an add whose second
    input is the mul just before it, and whose first input is either the add
    just before that mul (the chain goes on) or anything else (its base). Only
    nodes used once, by the next node of their chain, are fused, and only runs
    that are contiguous in the topological order: then no other node's gradient
    contribution falls between theirs, and the lin node's forward and backward
    are the same arithmetic in the same order, bit for bit.

    Returns the kept nodes and their op, a, b lists, and the ext term lists.
    Each lin node's unfused (mul, add) node pairs, term by term, are kept in
    `unfused` (keyed by the lin's Value) when a dict is given, for
    detect_anomaly to name the op inside a fusion."""
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
        if unfused is not None:
            unfused[nodes[end]] = [(nodes[k], nodes[k + 1]) for k in range(start, end + 1, 2)]
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


def _const(x):
    return as_value(x, "a weight")


def _frozen(code, xs):
    """xs as a read-only view of immutable bytes (what no caller can change)."""
    return memoryview(array(code, xs).tobytes()).cast(code)


def find_layers(op, a, b, vary, ext):
    """Layers of an MLP in a fused tape: runs of lin nodes over the same varying
    inputs (strictly increasing), with bases and weights that do not vary,
    each lin followed by its activation (a unary node that is its only use),
    or not. Returns a new order of the nodes, with each run's lin nodes first
    and their activations after them (a valid topological order: an
    activation adds into its lin's adjoint only, so every adjoint receives
    its contributions in the same order), and the layers in that order as
    pairs (first, count) for tapeformat.check_layers."""
    n = len(op)
    uses = [0] * n
    for i in range(n):
        if ARITY[op[i]] >= 1:
            uses[a[i]] += 1
        if ARITY[op[i]] == 2:
            uses[b[i]] += 1
        if op[i] == LIN:
            for p, q in lin_terms(ext, b[i]):
                uses[p] += 1
                uses[q] += 1

    def fits(i, qs):
        if op[i] != LIN or vary[a[i]]:
            return False
        t = lin_terms(ext, b[i])
        return ([q for _, q in t] == qs and not any(vary[p] for p, _ in t))

    order, layers, i = [], [], 0
    while i < n:
        qs = [q for _, q in lin_terms(ext, b[i])] if op[i] == LIN else None
        ok = (qs is not None and all(vary[q] for q in qs)
              and all(x < y for x, y in zip(qs, qs[1:])) and fits(i, qs))
        if not ok:
            order.append(i)
            i += 1
            continue
        lins, acts, j = [], [], i
        while j < n and fits(j, qs):
            lins.append(j)
            act = j + 1 < n and ARITY[op[j + 1]] == 1 and op[j + 1] != LIN \
                and a[j + 1] == j and uses[j] == 1
            if act:
                acts.append(j + 1)
            j += 2 if act else 1
            if act and len(acts) != len(lins):
                break
        if len(acts) not in (0, len(lins)):      # activations on some only: keep as is
            lins, acts, j = lins[:1], acts[:1], lins[0] + 1 + (1 if acts else 0)
        if len(lins) >= 2:
            layers.extend((len(order), len(lins)))
        order.extend(lins)
        order.extend(acts)
        i = j
    return order, layers


def reorder(order, nodes, op, a, b, vary, ext):
    """The tape lists in a new order of its nodes (old indices in `order`)."""
    new = [0] * len(order)
    for k, i in enumerate(order):
        new[i] = k
    na, nb, next_ = [], [], array("i", ext)
    for i in order:
        na.append(new[a[i]] if a[i] >= 0 else -1)
        if op[i] == LIN:
            nb.append(b[i])
            s = b[i]
            for j in range(s + 1, s + 1 + 2 * ext[s]):
                next_[j] = new[ext[j]]
        else:
            nb.append(new[b[i]] if b[i] >= 0 else -1)
    return ([nodes[i] for i in order], [op[i] for i in order], na, nb,
            bytearray(vary[i] for i in order), next_)


class Tape:
    """A graph recorded into a flat node array, replayed by forward()/backward().

    `Tape(output, inputs)` records the graph below one output Value, or below
    each of a list of outputs (forward then returns one list of outputs per
    row, and backward takes a weight per output). `inputs` are the leaf
    Values that a batch row fills, one number each; every other leaf is a
    parameter (its .data is read at each forward, its .grad gets gradients).
    Raises TypeError for outputs that are not Values, and TypeError or
    ValueError for inputs that are not distinct leaf Values.
    """

    def __init__(self, outputs, inputs=()):
        self._single = isinstance(outputs, Value)
        outs = [outputs] if self._single else outputs
        if not isinstance(outs, (list, tuple)) or not outs:
            raise TypeError("outputs must be a Value or a non-empty list of Values, not "
                            f"{type(outputs).__name__}")
        for k, o in enumerate(outs):
            if not isinstance(o, Value):
                raise TypeError(f"outputs[{k}] must be a Value, not {type(o).__name__}")
        inputs = _params.leaf_values(inputs, "inputs", "the input slots")
        root, weights = outs[0], ()
        if not self._single:
            # backward seeds the last node: a hidden root sum_k w_k * output_k,
            # whose weights (constants, 1 by default) backward(weights) sets
            weights = [_const(1.0) for _ in outs]
            root = outs[0] * weights[0]
            for o, w in zip(outs[1:], weights[1:]):
                root = root + o * w

        nodes = topo(root)
        op, a, b, _ = flatten(nodes)
        unfused = {}
        nodes, op, a, b, ext = fuse_linear(nodes, op, a, b, unfused)
        pos = {v: i for i, v in enumerate(nodes)}
        slot_of = {pos[v]: j for j, v in enumerate(inputs) if v in pos}
        vary = bytearray(len(nodes))          # 1: depends on an input slot
        for i, o in enumerate(op):
            if o == LEAF:
                vary[i] = i in slot_of
            elif ARITY[o] >= 1:
                vary[i] = inputs_vary(i, op, a, b, vary, ext)
        order, layers = find_layers(op, a, b, vary, ext)
        if layers:
            nodes, op, a, b, vary, ext = reorder(order, nodes, op, a, b, vary, ext)
            pos = {v: i for i, v in enumerate(nodes)}
            slot_of = {pos[v]: j for j, v in enumerate(inputs) if v in pos}
        # parameters: every other leaf; constants keep the value they were recorded with
        pnodes = [i for i, o in enumerate(op) if o == LEAF and i not in slot_of]
        params = tuple(nodes[i] for i in pnodes)
        groups, plain = _params.groups(params)

        self._n = len(nodes)
        self._labels = {i: v.label for i, v in enumerate(nodes) if v.label}
        # what detect_anomaly names inside a lin node: its unfused ops' labels
        self._unfused = {i: tuple((m.label, s.label) for m, s in unfused[v])
                         for i, v in enumerate(nodes) if v in unfused}
        self._op, self._a, self._b = _frozen("i", op), _frozen("i", a), _frozen("i", b)
        self._ext = _frozen("i", ext)
        self._layers = _frozen("i", layers)
        self._vary = bytes(vary)
        # input slot j feeds node in_nodes[j] (an unused slot is left out)
        used = sorted(slot_of.items(), key=lambda kv: kv[1])
        self._in_nodes = _frozen("i", [i for i, _ in used])
        self._in_cols = tuple(j for _, j in used)
        self._all_cols = list(self._in_cols) == list(range(len(inputs)))
        self._ninputs = len(inputs)
        self._params = params
        self._groups = tuple((store, _frozen("i", [pnodes[p] for p in positions]),
                              memoryview(slots).cast("i"))
                             for store, slots, positions in groups)
        self._gathered = self._groups[1:]      # the stores moved in Python
        self._plain = tuple((pnodes[p], params[p]) for p in plain)
        self._out_nodes = tuple(pos[o] for o in outs)
        self._weight_nodes = tuple(pos[w] for w in weights)
        consts = [i for i, o in enumerate(op) if o == CONST]
        self._const_nodes = tuple(consts)
        self._const_vals = tuple(nodes[i].data for i in consts)
        self._nr = 0          # rows of the current layout
        self._off = self._val = self._adj = self._tan = None
        self._programs = {}   # executor -> this layout's tape, sealed by it
        self._ready = None    # the thread whose forward filled val
        self._lock = threading.Lock()

    # -- read-only views of the program ----------------------------------------
    @property
    def num_nodes(self):
        """The number of nodes of the recorded program (after fusion)."""
        return self._n

    def __len__(self) -> int:
        return self._n

    @property
    def ops(self):
        """The op name of each node, in topological order (a tuple)."""
        return tuple(NAMES[o] for o in self._op)

    @property
    def varies(self):
        """1 for each node that depends on an input slot, else 0 (bytes)."""
        return self._vary

    @property
    def num_inputs(self):
        """The number of input slots: the width of a batch row."""
        return self._ninputs

    @property
    def parameters(self):
        """The leaves that are not input slots, in topological order (a tuple)."""
        return self._params

    def __repr__(self):
        return (f"Tape({self._n} nodes, {self._ninputs} inputs, "
                f"{len(self._params)} parameters)")

    def _name(self, i, row, what):
        """(op name, label) of node i for detect_anomaly: inside a lin node, the
        unfused mul or add where the value first became nan/inf in `row` (for
        a gradient: the last add, the first one the backward sweep reaches)."""
        if self._op[i] != LIN or i not in self._unfused:
            return NAMES[self._op[i]], self._labels.get(i, "")
        pairs = self._unfused[i]
        if what != "value":
            return "add", pairs[-1][1]
        val, off, r = self._val, self._off, row or 0
        lane = lambda j: val[off[j] + (r if self._vary[j] else 0)]   # noqa: E731
        acc = lane(self._a[i])
        for (mul_label, add_label), (p, q) in zip(pairs, lin_terms(self._ext, self._b[i])):
            m = lane(p) * lane(q)
            if m != m or m in (float("inf"), float("-inf")):
                return "mul", mul_label
            acc = acc + m
            if acc != acc or acc in (float("inf"), float("-inf")):
                return "add", add_label
        return "add", pairs[-1][1]

    # -- running it ------------------------------------------------------------
    def _layout(self, nr):
        if nr == self._nr:
            return
        off, total = layout(self._vary, nr)
        off = _frozen("q", off)
        val = array("d", bytes(8 * total))
        for i, x in zip(self._const_nodes, self._const_vals):
            val[off[i]] = x
        self._off, self._val = off, val
        self._adj = array("d", bytes(8 * total))
        self._tan = None
        self._programs = {}
        self._nr = nr

    def _program(self, ex):
        """This layout's tape as executor ex's Program: checked once, then run.
        It moves the batch rows in and the first store's parameters in and out."""
        prog = self._programs.get(ex)
        if prog is None:
            params = self._groups[0][1:] if self._groups else ((), ())
            prog = self._programs[ex] = ex.Program(self._op, self._a, self._b, self._vary,
                                                   self._off, self._nr, len(self._val),
                                                   self._ext, self._layers, self._in_nodes,
                                                   params)
        return prog

    def _batch(self, batch, what="batch"):
        if not isinstance(batch, Batch):
            batch = Batch(batch, self._ninputs)
        elif batch.width != self._ninputs:
            raise ValueError(f"{what} rows have {batch.width} entries, expected "
                             f"{self._ninputs} (one per input slot)")
        return batch

    def _rows(self, batch):
        """(doubles, nrows): the rows of `batch` packed row-major, a plain
        list of rows read in C with no Batch made (a Batch's own rows, or
        its error, for anything else)."""
        if type(batch) is list and rows_to_doubles is not None and self._ninputs:
            packed = rows_to_doubles(batch, self._ninputs)
            if packed:                       # (None or nothing: Batch says why)
                return packed, len(packed) // (8 * self._ninputs)
        batch = self._batch(batch)
        return batch.rows, batch.nrows

    def _columns(self, rows, nr):
        """The values of the used input slots in `rows` (nr of them, packed:
        an array or the bytes of doubles), row by row."""
        if self._all_cols:
            return rows
        w, rows = self._ninputs, memoryview(rows).cast("B").cast("d")
        return array("d", [rows[r * w + j] for r in range(nr) for j in self._in_cols])

    def _lanes(self, arr, i, nr, fixed=None):
        """The nr lanes of node i in arr (`fixed` for each when it does not vary)."""
        o = self._off[i]
        if self._vary[i]:
            return arr[o:o + nr].tolist()
        return [arr[o] if fixed is None else fixed] * nr

    def _outputs(self, arr, nr, fixed=None):
        """One float per row (one output), or one list of the outputs per row."""
        if self._single:
            return self._lanes(arr, self._out_nodes[0], nr, fixed)
        cols = [self._lanes(arr, i, nr, fixed) for i in self._out_nodes]
        return [list(row) for row in zip(*cols)]

    def _forward(self, ex, rows, nr):
        self._layout(nr)
        val, off, groups = self._val, self._off, self._groups
        for store, nodes, slots in self._gathered:      # the program moves the first
            ex.gather(val, off, nodes, slots, store._data)
        for i, v in self._plain:
            val[off[i]] = v.data
        self._program(ex).forward(val, self._columns(rows, nr) if self._in_nodes else None,
                                  groups[0][0]._data if groups else None)
        if anomaly.enabled():
            anomaly.check_lanes(val, off, self._vary, nr, self._op, self._name,
                                ex.first_nonfinite, "value")

    def forward(self, batch):
        """Run the graph once per row of `batch` (a list of rows with one float per
        input slot, or a Batch); return the list of output values, one per row."""
        rows, nr = self._rows(batch)
        ex = executor()
        with self._lock:
            self._ready = None
            self._forward(ex, rows, nr)
            self._ready = get_ident()
            return self._outputs(self._val, nr)

    def backward(self, weights=None):
        """Add to each parameter's .grad the gradient of the sum of the outputs of
        the last forward() (over the rows, and over the outputs of a tape with
        several: weighted by `weights`, one number per output, default 1 each).
        Raises RuntimeError without a forward() first, or when the last forward()
        ran in another thread; TypeError/ValueError for bad weights."""
        ws = self._weights(weights)
        ex = executor()
        with self._lock:
            if self._ready is None:
                raise RuntimeError("Tape.backward() needs a forward() first")
            if self._ready != get_ident():
                raise RuntimeError("Tape.backward(): the last forward() of this tape ran in "
                                   "another thread; a tape serves one thread at a time")
            off, adj = self._off, self._adj
            for i, w in zip(self._weight_nodes, ws):
                self._val[off[i]] = w
            check = anomaly.enabled()
            groups = self._groups
            main = groups[0][0]._grad if groups and not check else None
            self._program(ex).backward(adj, self._val, main)
            if check:                                # before any .grad changes
                anomaly.check_lanes(adj, off, self._vary, self._nr, self._op,
                                    self._name, ex.first_nonfinite, "gradient",
                                    reverse=True)
            for store, nodes, slots in (groups if check else self._gathered):
                ex.scatter_add(store._grad, adj, off, nodes, slots)
            for i, v in self._plain:
                v.grad += adj[off[i]]

    def fit(self, batch, optimizer, steps=1, every=0, callback=None):
        """Train: `steps` steps on `batch`, each exactly (bit for bit)

            optimizer.zero_grad(); loss = sum(tape.forward(batch))
            tape.backward(); optimizer.step()

        and return the list of losses, one per step. In the C backend, when the
        tape's parameters and the optimizer's are one store (a model's) and the
        optimizer is SGD, Momentum or Adam, the steps run in one C call with no
        Python work per step. `callback(step, loss)` is called every `every`
        steps (step counted from 1) when both are given. Raises TypeError for a
        tape with several outputs, an optimizer that is not microbp's or a
        callback that cannot be called, ValueError for negative steps or every."""
        from . import optim
        batch = self._batch(batch)
        if not isinstance(optimizer, optim.Optimizer):
            raise TypeError(f"optimizer must be a microbp optimizer, not {type(optimizer).__name__}")
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        if isinstance(every, bool) or not isinstance(every, int) or every < 0:
            raise ValueError(f"every must be an int >= 0, got {every!r}")
        if callback is not None and not callable(callback):
            raise TypeError("callback must be callable")
        if not self._single:
            raise TypeError("fit needs a tape with one output (the loss of a row)")
        chunk = every if (every and callback is not None) else steps
        losses = []
        while len(losses) < steps:
            k = min(chunk, steps - len(losses))
            losses += self._fit_chunk(batch, optimizer, k)
            if callback is not None and every and len(losses) % every == 0:
                callback(len(losses), losses[-1])
        return losses

    def _fit_chunk(self, batch, opt, k):
        from . import optim
        kind = {optim.SGD: "sgd", optim.Momentum: "momentum", optim.Adam: "adam"}.get(type(opt))
        fast = (get_backend() == "c" and kind is not None
                and not anomaly.enabled() and len(self._groups) == 1 and not self._plain
                and len(opt._groups) == 1 and not opt._plain
                and opt._groups[0][0] is self._groups[0][0])
        if not fast:
            losses = []
            for _ in range(k):
                opt.zero_grad()
                losses.append(sum(self.forward(batch)))
                self.backward()
                opt.step()
            return losses
        ex = executor()
        store = self._groups[0][0]
        ostore, oslots = opt._groups[0]
        if kind == "sgd":
            hyper, s1, s2 = (opt.lr, opt.decay), array("d", [0.0]), array("d", [0.0])
        elif kind == "momentum":
            hyper, s1, s2 = (opt.lr, opt.mu), opt._vel[0], opt._vel[0]
        else:
            hyper, s1, s2 = (opt.lr, opt.beta1, opt.beta2, opt.eps), opt._m[0], opt._v[0]
        with self._lock:
            self._ready = None
            nr = batch.nrows
            self._layout(nr)
            if self._in_nodes:
                ex.load_rows(self._val, self._off, self._in_nodes,
                             self._columns(batch.rows, nr), nr)
            losses = ex.fit(self._program(ex), self._val, self._adj, store._data, store._grad,
                            oslots, kind, hyper, s1, s2, opt.steps, k)
            opt.steps += k
            self._ready = get_ident()
        return losses

    def _weights(self, weights):
        n = len(self._out_nodes)
        if weights is None:
            return [1.0] * len(self._weight_nodes)
        if self._single:
            raise TypeError("weights are for a tape with several outputs")
        if not isinstance(weights, (list, tuple)) or len(weights) != n:
            raise ValueError(f"weights must be a list of {n} numbers, one per output")
        return [as_float(w, f"weights[{k}]") for k, w in enumerate(weights)]

    def jvp(self, batch, tangents):
        """Forward mode over the input slots: for each row of `batch`, the output
        and its directional derivative along that row of `tangents` (a batch of
        the same shape: one tangent per input slot). Returns (outputs,
        output_tangents), two lists with one float per row. Parameters and
        constants carry no tangent; an output that depends on no input slot has
        tangent 0.0. Leaves .grad alone (and forgets the last forward). Raises
        ValueError when tangents and batch differ in rows or widths, TypeError
        for entries that are not numbers."""
        batch = self._batch(batch)
        tangents = self._batch(tangents, "tangents")
        if tangents.nrows != batch.nrows:
            raise ValueError(f"tangents has {tangents.nrows} rows, batch has {batch.nrows}")
        ex = executor()
        with self._lock:
            self._ready = None
            nr = batch.nrows
            self._forward(ex, batch.rows, nr)
            if self._tan is None:
                self._tan = array("d", bytes(8 * len(self._val)))
            tan = self._tan
            if self._in_nodes:
                ex.load_rows(tan, self._off, self._in_nodes,
                              self._columns(tangents.rows, nr), nr)
            self._program(ex).tangent(tan, self._val)
            return self._outputs(self._val, nr), self._outputs(tan, nr, fixed=0.0)

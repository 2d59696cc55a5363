"""`python -m microbp bench`: seconds per training step of each workload on
each path, as medians of repeated runs, and ratios measured in the same run.

Paths:
  eager_python  a fresh Value graph per step, backward in pure Python
  tape_python   the graph recorded once as a Tape, replayed over the batch in
  tape_c        the pure-Python and the C backend
  torch         PyTorch's natural batched float64 step, one thread
  jax           the whole step (forward, jax.grad, SGD update) under jax.jit,
                float64
  numpy         the same step written by hand in float64: matrix products
                forward, the backward pass (relu and hinge masks, L2 gradient)
                by hand, the SGD update in place
torch, jax and numpy are never dependencies of microbp: a path whose package
is not installed is null in --json and "-" in the table. Every array path
starts from the microbp model's initial weights and computes the same loss
and the same update. The numpy path is not written for chain-20000 (a scalar
recurrence: there are no arrays for numpy to work on), so it is null there.

Some paths are skipped (null) where one step is too slow to repeat within a
few minutes: eager_python on mlp-w64 and mlp-w128 (0.9 and 3.4 million nodes
in the graph of each step; about 4 s a step at w = 64).

Benchmark numpy with OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE unset in that
command alone (they slow a current numpy where the machine sets them):
    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python -m microbp bench
"""
import gc
import importlib
import json
import math
import random
import statistics
import sys
import time

from . import Batch, Tape, Value, backend, losses, nn, optim
from .datasets import make_moons

from .datasets import MOONS_L2 as ALPHA   # weight of the L2 term of the hinge workloads

PATHS = ("eager_python", "tape_python", "tape_c", "tape_c_fit", "torch", "jax", "numpy")
FIT_STEPS = 20     # tape_c_fit: steps per Tape.fit call (the time is per step)


# ---------------------------------------------------------------------------
# timing

def _median_seconds(step, budget, max_runs, min_runs=3):
    """Median wall time of step() over repeated runs (after one warm-up run).

    Every object alive before the runs is frozen out of the cycle collector
    first (gc.freeze): the modules that torch and jax import would otherwise
    make each full collection during an eager step slower, and a workload
    would time differently depending on the paths measured before it."""
    gc.collect()
    gc.freeze()
    try:
        return _median_of_runs(step, budget, max_runs, min_runs)
    finally:
        gc.unfreeze()


def _median_of_runs(step, budget, max_runs, min_runs):
    step()
    times = []
    start = time.perf_counter()
    while len(times) < max_runs and (len(times) < min_runs
                                     or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


# ---------------------------------------------------------------------------
# optional packages: each helper gives the configured module, or None

def _optional(name):
    """The module `name`, or None when it is not installed (tests replace
    this function to simulate a missing package)."""
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _torch():
    """torch on one thread, or None."""
    torch = _optional("torch")
    if torch is not None:
        torch.set_num_threads(1)
    return torch


def _jax():
    """jax with float64 enabled, or None."""
    jax = _optional("jax")
    if jax is not None:
        jax.config.update("jax_enable_x64", True)
    return jax


def _numpy():
    return _optional("numpy")


# ---------------------------------------------------------------------------
# helpers shared by the paths

def count_nodes(root):
    """The number of distinct Values in the graph below root (a walk on .inputs)."""
    seen = {id(root)}
    stack = [root]
    while stack:
        for v in stack.pop().inputs:
            if id(v) not in seen:
                seen.add(id(v))
                stack.append(v)
    return len(seen)


def _eager_step(graph, params, lr):
    """A step that builds a fresh graph, backpropagates and updates (SGD);
    it returns the loss Value."""
    opt = optim.SGD(params, lr=lr)

    def step():
        loss = graph()
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss
    return step


def _tape_step(loss, slots, rows, params, lr, fit=False):
    """A step that replays the graph below loss, recorded once, over the rows
    and updates (SGD); with fit, FIT_STEPS such steps in one Tape.fit call."""
    tape, batch, opt = Tape(loss, slots), Batch(rows), optim.SGD(params, lr=lr)

    def step():
        opt.zero_grad()
        tape.forward(batch)
        tape.backward()
        opt.step()

    def fit_steps():
        tape.fit(batch, opt, FIT_STEPS)
    return fit_steps if fit else step


# ---------------------------------------------------------------------------
# the MLP family: a model, rows [inputs..., target], a loss, a learning rate

def mlp_workload(name, nin, nouts, rows, loss, lr, reg, python=True):
    """A workload of the MLP family. loss is "hinge" (labels +-1, plus
    reg * the sum of squared parameters) or "mse"; python=False skips
    eager_python (too slow a step to repeat)."""
    return dict(name=name, family="mlp", nin=nin, nouts=list(nouts), rows=rows,
                loss=loss, lr=lr, reg=reg, python=python)


def _moons_rows():
    X, y = make_moons(100, noise=0.1, seed=1)
    return [x + [t] for x, t in zip(X, y)]


def _regression_rows():
    rng = random.Random(3)
    rows = []
    for _ in range(128):
        x = [rng.uniform(-1, 1) for _ in range(4)]
        rows.append(x + [math.sin(x[0]) * x[1] + x[2] * x[3]])
    return rows


def mlp_model(w):
    """The microbp model every path of an MLP workload starts from."""
    return nn.MLP(w["nin"], w["nouts"], seed=0)


def layer_arrays(model):
    """[(W, b)] per layer as nested lists: W[i][j] is neuron i's weight j."""
    return [([[p.data for p in n.w] for n in layer.neurons], [n.b.data for n in layer.neurons])
            for layer in model.layers]


def flat_arrays(params):
    """Floats of array params [W0, b0, W1, b1, ...] (numpy, jax or torch) in the order
    of model.parameters(): each neuron's weights, then its bias."""
    return [x for W, b in zip(params[::2], params[1::2])
            for row, bi in zip(W.tolist(), b.tolist()) for x in row + [bi]]


def _columns(w):
    """(inputs, targets) of the rows as lists."""
    nin = w["nin"]
    return [r[:nin] for r in w["rows"]], [r[nin] for r in w["rows"]]


def mlp_eager_path(w, model=None):
    """(step, nodes): the eager step (one graph over all rows; micrograd's demo
    loss) and the node count of its graph."""
    model = model or mlp_model(w)
    params = model.parameters()
    X, Y = _columns(w)

    def graph():
        scores = [model(x) for x in X]
        if w["loss"] == "hinge":
            return losses.hinge(scores, Y) + w["reg"] * sum(p * p for p in params)
        return losses.mse(scores, Y)

    return _eager_step(graph, params, w["lr"]), count_nodes(graph())


def mlp_tape_path(w, fit=False):
    """The tape step: one row's loss recorded once, the rows as lanes (with
    fit: FIT_STEPS steps in one Tape.fit call)."""
    model = mlp_model(w)
    params = model.parameters()
    nin, n = w["nin"], len(w["rows"])
    slots = [Value(0.0, label=f"x{j}") for j in range(nin)] + [Value(0.0, label="y")]
    score, target = model(slots[:nin]), slots[nin]
    if w["loss"] == "hinge":
        loss = (1 + -target * score).relu() * (1.0 / n)
        loss = loss + (w["reg"] / n) * sum(p * p for p in params)   # once per forward
    else:
        loss = (score - target) ** 2 * (1.0 / n)
    return _tape_step(loss, slots, w["rows"], params, w["lr"], fit)


def _array_forward(xp, params, X):
    """Pre-activations and activations of an MLP over the rows X, for numpy or
    jax.numpy; params is [W0, b0, W1, b1, ...] (W: out x in). Returns
    (zs, hs, scores) with hs[0] = X and scores the last layer's one column."""
    zs, hs = [], [X]
    for k in range(0, len(params), 2):
        z = hs[-1] @ params[k].T + params[k + 1]
        zs.append(z)
        if k + 2 < len(params):
            hs.append(xp.where(z > 0, z, 0.0))          # relu, relu'(0) = 0
    return zs, hs, zs[-1][:, 0]


def _array_loss(xp, w, params, scores, Y):
    """The workload's loss from the scores, for numpy or jax.numpy."""
    if w["loss"] == "hinge":
        margin = 1.0 - Y * scores
        loss = xp.sum(xp.where(margin > 0, margin, 0.0)) / len(w["rows"])
        return loss + w["reg"] * sum(xp.sum(p * p) for p in params)
    return xp.sum((scores - Y) ** 2) / len(w["rows"])


def mlp_numpy_path(w, model=None):
    """(step, params) of the hand-written numpy step, or None without numpy:
    step() updates the arrays of params in place and returns the loss (before
    the update)."""
    np = _numpy()
    if np is None:
        return None
    params = [np.array(a, dtype=np.float64) for W, b in layer_arrays(model or mlp_model(w))
              for a in (W, b)]
    X, Y = (np.array(c, dtype=np.float64) for c in _columns(w))
    n, lr, reg = len(Y), w["lr"], w["reg"]

    def step():
        zs, hs, s = _array_forward(np, params, X)
        loss = _array_loss(np, w, params, s, Y)
        if w["loss"] == "hinge":                # d loss / d score, one per row
            ds = np.where(1.0 - Y * s > 0, -Y / n, 0.0)
        else:
            ds = 2.0 * (s - Y) / n
        g = ds[:, None]                         # d loss / d z of the last layer
        grads = [None] * len(params)
        for k in range(len(params) // 2 - 1, -1, -1):
            grads[2 * k], grads[2 * k + 1] = g.T @ hs[k], g.sum(axis=0)
            if k:
                g = (g @ params[2 * k]) * (zs[k - 1] > 0)
        for p, gp in zip(params, grads):
            if reg:
                gp = gp + (2.0 * reg) * p
            p -= lr * gp
        return loss
    return step, params


def mlp_jax_path(w, model=None):
    """(step, state) of the jax step, or None without jax: step() runs the
    jitted step (loss, jax.grad, SGD) on state["params"], stores the new
    params there and returns the loss (before the update)."""
    jax = _jax()
    if jax is None:
        return None
    jnp = jax.numpy
    state = {"params": [jnp.array(a, dtype=jnp.float64)
                        for W, b in layer_arrays(model or mlp_model(w)) for a in (W, b)]}
    X, Y = (jnp.array(c, dtype=jnp.float64) for c in _columns(w))

    def loss_fn(params):
        return _array_loss(jnp, w, params, _array_forward(jnp, params, X)[2], Y)

    @jax.jit
    def jstep(params):
        loss, grads = jax.value_and_grad(loss_fn)(params)
        return [p - w["lr"] * g for p, g in zip(params, grads)], loss

    def step():
        state["params"], loss = jstep(state["params"])
        return jax.block_until_ready(loss)
    return step, state


def mlp_torch_path(w, model=None):
    """(step, params) of the torch step (nn.Linear layers from the microbp
    model's weights, one thread), or None without torch: step() updates params
    [W0, b0, ...] in place and returns the loss (before the update)."""
    torch = _torch()
    if torch is None:
        return None
    layers = []
    for k, (W, b) in enumerate(layer_arrays(model or mlp_model(w))):
        lin = torch.nn.Linear(len(W[0]), len(W)).double()
        with torch.no_grad():
            lin.weight.copy_(torch.tensor(W, dtype=torch.float64))
            lin.bias.copy_(torch.tensor(b, dtype=torch.float64))
        layers += [lin, torch.nn.ReLU()] if k < len(w["nouts"]) - 1 else [lin]
    model = torch.nn.Sequential(*layers)
    X, Y = (torch.tensor(c, dtype=torch.float64) for c in _columns(w))
    opt = torch.optim.SGD(model.parameters(), lr=w["lr"])

    def step():
        opt.zero_grad()
        s = model(X).squeeze(1)
        if w["loss"] == "hinge":
            loss = torch.relu(1 - Y * s).mean()
            loss = loss + w["reg"] * sum((p * p).sum() for p in model.parameters())
        else:
            loss = ((s - Y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.detach()
    return step, list(model.parameters())


def _step_of(built):
    """The step of a (step, state) pair, or None."""
    return None if built is None else built[0]


def _mlp_paths(w):
    """path name -> a builder of () -> (step, nodes) / step / None."""
    return {"eager_python": (lambda: mlp_eager_path(w)) if w["python"] else None,
            "tape_python": lambda: mlp_tape_path(w),
            "tape_c": lambda: mlp_tape_path(w),
            "tape_c_fit": lambda: mlp_tape_path(w, fit=True),
            "torch": lambda: _step_of(mlp_torch_path(w)),
            "jax": lambda: _step_of(mlp_jax_path(w)),
            "numpy": lambda: _step_of(mlp_numpy_path(w))}


# ---------------------------------------------------------------------------
# the chain: h <- tanh(w h + c), 20,000 times, one row

CHAIN = 20000


def _chain_graph(x, w, c):
    """The chain's loss from x, w, c: microbp Values or torch tensors."""
    h = x
    for _ in range(CHAIN):
        h = (h * w + c).tanh()
    return (h - 0.5) ** 2


def chain_eager_path():
    """(step, nodes): the eager chain step and the node count of its graph."""
    x, w, c = Value(0.3), Value(0.9, label="w"), Value(0.1, label="c")
    graph = lambda: _chain_graph(x, w, c)        # noqa: E731
    return _eager_step(graph, [w, c], 0.01), count_nodes(graph())


def chain_tape_path():
    """The chain recorded once as a tape over one row x = 0.3."""
    x, w, c = Value(0.0, label="x"), Value(0.9, label="w"), Value(0.1, label="c")
    return _tape_step(_chain_graph(x, w, c), [x], [[0.3]], [w, c], 0.01)


def chain_torch_path():
    """The chain step in torch float64 (one thread), or None."""
    torch = _torch()
    if torch is None:
        return None
    w = torch.tensor(0.9, dtype=torch.float64, requires_grad=True)
    c = torch.tensor(0.1, dtype=torch.float64, requires_grad=True)
    x = torch.tensor(0.3, dtype=torch.float64)
    opt = torch.optim.SGD([w, c], lr=0.01)

    def step():
        opt.zero_grad()
        _chain_graph(x, w, c).backward()
        opt.step()
    return step


def chain_jax_path():
    """(step, state) of the chain as a lax.fori_loop under jax.jit, or None:
    step() updates state["params"] = [w, c] and returns the loss (before the
    update)."""
    jax = _jax()
    if jax is None:
        return None
    jnp = jax.numpy

    def loss_fn(p):
        h = jax.lax.fori_loop(0, CHAIN, lambda _, h: jnp.tanh(h * p[0] + p[1]),
                              jnp.float64(0.3))
        return (h - 0.5) ** 2

    @jax.jit
    def jstep(p):
        loss, grad = jax.value_and_grad(loss_fn)(p)
        return p - 0.01 * grad, loss

    state = {"params": jnp.array([0.9, 0.1], dtype=jnp.float64)}

    def step():
        state["params"], loss = jstep(state["params"])
        return jax.block_until_ready(loss)
    return step, state


def _chain_paths():
    return {"eager_python": chain_eager_path, "tape_python": chain_tape_path,
            "tape_c": chain_tape_path, "tape_c_fit": None, "torch": chain_torch_path,
            "jax": lambda: _step_of(chain_jax_path()),
            "numpy": None}


# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Hessian-vector products: a gradient graph recorded into a Tape

def hvp_tape_path():
    """H v over the 100 moons rows: the gradient graph of one row's loss
    tanh(1 - y out)^2 of MLP(2, [16, 16, 1]) (grad(create_graph=True)),
    dotted with a fixed v, recorded once; forward + backward leave H v (summed
    over the rows) in the parameters' .grad."""
    model, slots, s = _hvp_graph()
    tape, batch = Tape(s, slots), Batch(_moons_rows())

    def step():
        model.zero_grad()
        tape.forward(batch)
        tape.backward()
    return step


def _hvp_graph():
    from .autodiff import grad
    model = nn.MLP(2, [16, 16, 1], seed=0)
    params = model.parameters()
    x0, x1, label = Value(0.0), Value(0.0), Value(0.0)
    loss = ((1 + -label * model([x0, x1])).tanh()) ** 2
    g = grad(loss, params, create_graph=True)
    rng = random.Random(5)
    return model, [x0, x1, label], sum(gk * rng.uniform(-1, 1) for gk in g)


def _hvp_paths():
    return {name: None for name in PATHS} | {"tape_python": hvp_tape_path,
                                             "tape_c": hvp_tape_path}


def workloads():
    """Every workload in the order of the table."""
    moons = _moons_rows()
    out = [mlp_workload("moons", 2, [16, 16, 1], moons, "hinge", 0.1, ALPHA),
           mlp_workload("mlp-4x32x32x1", 4, [32, 32, 1], _regression_rows(), "mse", 0.01, 0.0),
           dict(name=f"chain-{CHAIN}", family="chain")]
    for width in (16, 32, 64, 128):
        out.append(mlp_workload(f"mlp-w{width}", 2, [width, width, 1], moons, "hinge", 0.1,
                                ALPHA, python=width < 64))
    out.append(dict(name="hvp-w16", family="hvp"))
    return out


# (backend to run in, most runs: full, quick) for each path
_RUNS = {"eager_python": ("python", 15, 7), "tape_python": ("python", 11, 5),
         "tape_c": ("c", 2000, 2000), "tape_c_fit": ("c", 200, 200),
         "torch": (None, 2000, 2000),
         "jax": (None, 2000, 2000), "numpy": (None, 2000, 2000)}


def _measure(name, build, budget, quick):
    """(seconds, nodes) of one path: nodes only for eager_python; seconds
    None when the path is skipped, its package missing or its backend absent."""
    where, runs, quick_runs = _RUNS[name]
    if build is None or (where and where not in backend.available_backends()):
        return None, None
    with backend.use_backend(where or backend.get_backend()):
        built = build()
        if built is None:
            return None, None
        step, nodes = built if name == "eager_python" else (built, None)
        seconds = _median_seconds(step, budget, quick_runs if quick else runs)
        return seconds / (FIT_STEPS if name == "tape_c_fit" else 1), nodes


def run(quick=False, only=None, budget=None):
    """Measure every workload (or those named in `only`) on every path; return
    the JSON-ready dict. budget: seconds of repeats per path (default 2.0,
    0.3 with quick)."""
    budget = (0.3 if quick else 2.0) if budget is None else budget
    specs = workloads()
    if only:
        unknown = set(only) - {w["name"] for w in specs}
        if unknown:
            raise ValueError(f"unknown workload(s) {sorted(unknown)}: choose from "
                             f"{', '.join(w['name'] for w in specs)}")
        specs = [w for w in specs if w["name"] in only]
    results = []
    for w in specs:
        builders = (_mlp_paths(w) if w["family"] == "mlp" else
                    _hvp_paths() if w["family"] == "hvp" else _chain_paths())
        row = dict(name=w["name"], nodes=None)
        for name in PATHS:
            row[f"{name}_s"], nodes = _measure(name, builders[name], budget, quick)
            if nodes is not None:
                row["nodes"] = nodes
        if row["nodes"] is None:               # eager skipped: count one graph all the same
            row["nodes"] = (mlp_eager_path(w)[1] if w["family"] == "mlp"
                            else count_nodes(_hvp_graph()[2]))
        results.append(row)
    return {"workloads": results}


# ---------------------------------------------------------------------------
# the table

def _fmt(s):
    if s is None:
        return "-"
    if s < 1e-3:
        return f"{s * 1e6:.1f} µs"
    return f"{s * 1e3:.2f} ms" if s < 1 else f"{s:.2f} s"


def _ratio(a, b):
    return f"{a / b:.1f}x" if a and b else "-"


_COLUMNS = [("eager py", "eager_python_s"), ("tape py", "tape_python_s"),
            ("tape C", "tape_c_s"), ("C fit", "tape_c_fit_s"), ("torch", "torch_s"),
            ("jax", "jax_s"),
            ("numpy", "numpy_s")]
_RATIOS = [("C vs tape py", "tape_python_s"), ("C vs torch", "torch_s"),
           ("C vs jax", "jax_s"), ("C vs numpy", "numpy_s")]


def _fastest_c(w):
    times = [t for t in (w["tape_c_s"], w.get("tape_c_fit_s")) if t is not None]
    return min(times) if times else None


def table(res):
    """The results of run() as a text table; ratios are (that path) / (the
    faster of tape C and C fit: the fastest documented C path)."""
    head = ("workload", "nodes") + tuple(h for h, _ in _COLUMNS) + tuple(h for h, _ in _RATIOS)
    lines = [head]
    for w in res["workloads"]:
        lines.append((w["name"], f"{w['nodes']:,}")
                     + tuple(_fmt(w[k]) for _, k in _COLUMNS)
                     + tuple(_ratio(w[k], _fastest_c(w)) for _, k in _RATIOS))
    widths = [max(len(r[k]) for r in lines) for k in range(len(head))]
    out = ["  ".join(c.rjust(wd) if k else c.ljust(wd) for k, (c, wd) in enumerate(zip(r, widths)))
           for r in lines]
    out.insert(1, "  ".join("-" * wd for wd in widths))
    return "\n".join(out)


def _seconds(text):
    try:
        s = float(text)
    except ValueError:
        raise ValueError(f"--budget must be a number of seconds, got {text!r}") from None
    if not s >= 0:
        raise ValueError(f"--budget must be >= 0 seconds, got {text!r}")
    return s


def main(argv=None):
    import argparse
    ap = argparse.ArgumentParser(prog="python -m microbp bench", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    ap.add_argument("--quick", action="store_true", help="fewer repeats (a rough figure)")
    ap.add_argument("--budget", metavar="SECONDS",
                    help="seconds of repeats per path and workload (default 2, 0.3 with "
                         "--quick); at least 3 runs after a warm-up all the same")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help="run only this workload (" + ", ".join(w["name"] for w in workloads())
                         + "); repeatable")
    args = ap.parse_args(argv)
    try:
        budget = None if args.budget is None else _seconds(args.budget)
        res = run(quick=args.quick, only=args.only, budget=budget)
    except ValueError as e:
        ap.error(str(e))
    if args.json:
        print(json.dumps(res))
    else:
        print("time per training step (median of repeated runs); ratios from this run")
        print(table(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())

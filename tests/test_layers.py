"""Layers and Tape.fit: the recorder finds the layers of an MLP and the C core
sweeps each as one (register tiles), and fit() runs whole training steps in
one call; both give the very bits of the node-by-node sweeps and of the
zero_grad / forward / backward / step loop, in both backends."""
import shutil
import struct
from array import array

import pytest
from hypothesis import given, settings, strategies as st, HealthCheck

import microbp
from microbp import Value, Tape, TapeError, nn, optim

import executors
from microbp.tapeformat import lin_terms

HAVE_C = "c" in microbp.available_backends()
BACKENDS = ["python", "c"] if HAVE_C else ["python"]
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def bits(xs):
    return [struct.pack("<d", x) for x in xs]


def mlp_tape(nin, widths, seed, act="relu", loss=True):
    model = nn.MLP(nin, widths, act=act, seed=seed)
    slots = [Value(0.0) for _ in range(nin + 1)]
    out = model(slots[:nin])
    if loss:
        out = (out - slots[nin]) ** 2 + 1e-3 * sum(p * p for p in model.parameters())
    return Tape(out, slots if loss else slots[:nin]), model


def rows_for(nin, nrows, seed):
    import random
    rng = random.Random(seed)
    return [[rng.uniform(-2, 2) for _ in range(nin + 1)] for _ in range(nrows)]


@SETTINGS
@given(st.integers(1, 5), st.lists(st.integers(1, 9), min_size=1, max_size=3),
       st.integers(1, 13), st.integers(0, 99), st.sampled_from(["relu", "tanh", "sigmoid"]))
def test_layers_give_the_bits_of_the_node_by_node_sweep(nin, widths, nrows, seed, act):
    widths = widths + [1]
    tape, model = mlp_tape(nin, widths, seed, act)
    if max(widths[:-1]) >= 2:
        assert len(tape._layers) >= 2                 # at least one layer found
    rows = rows_for(nin, nrows, seed)
    results = []
    for be in BACKENDS:
        with microbp.use_backend(be):
            model.zero_grad()
            out = tape.forward(rows)
            tape.backward()
            results.append(bits(out + [p.grad for p in model.parameters()]))
    # the same tape swept node by node (no layers): the reference bits
    ex = executors.executor("python")
    val = array("d", tape._val)
    ex.forward(val, tape._op, tape._a, tape._b, tape._vary, tape._off, nrows, tape._ext)
    assert bits(tape._val) == bits(val)
    assert all(r == results[0] for r in results)
    if HAVE_C:
        from microbp import cexec
        adj_plain, adj_layers = array("d", tape._adj), array("d", tape._adj)
        cexec.backward(adj_plain, tape._val, tape._op, tape._a, tape._b, tape._vary, tape._off,
                       nrows, tape._ext)
        cexec.backward(adj_layers, tape._val, tape._op, tape._a, tape._b, tape._vary,
                       tape._off, nrows, tape._ext, tape._layers)
        assert bits(adj_plain) == bits(adj_layers)


OPTIMIZERS = {"sgd": lambda p: optim.SGD(p, lr=0.005, decay=0.01),
              "momentum": lambda p: optim.Momentum(p, lr=0.002, mu=0.9),
              "adam": lambda p: optim.Adam(p, lr=0.01)}


@pytest.mark.parametrize("kind", sorted(OPTIMIZERS))
@pytest.mark.parametrize("widths", [[5, 1], [8, 3, 1], [4, 4, 1]])
def test_fit_gives_the_bits_of_the_training_loop(kind, widths):
    rows = rows_for(3, 11, 1)
    ref = None
    for be in BACKENDS:
        for use_fit in (False, True):
            tape, model = mlp_tape(3, widths, 7)
            opt = OPTIMIZERS[kind](model.parameters())
            with microbp.use_backend(be):
                if use_fit:
                    seen = []
                    losses = tape.fit(rows, opt, 6, every=2,
                                      callback=lambda k, loss: seen.append((k, loss)))
                    assert [k for k, _ in seen] == [2, 4, 6]
                    assert [l for _, l in seen] == [losses[1], losses[3], losses[5]]
                else:
                    losses = []
                    for _ in range(6):
                        opt.zero_grad()
                        losses.append(sum(tape.forward(rows)))
                        tape.backward()
                        opt.step()
            got = bits(losses + [p.data for p in model.parameters()]
                       + [p.grad for p in model.parameters()]) + [opt.steps]
            ref = ref or got
            assert got == ref, (be, use_fit)
    assert struct.unpack("<d", ref[5])[0] < struct.unpack("<d", ref[0])[0]    # it learns


def test_fit_with_plain_values_and_two_optimizers_falls_back_to_the_loop():
    w, b, x, y = Value(0.5), Value(0.0), Value(0.0), Value(0.0)
    tape = Tape((w * x + b - y) ** 2, [x, y])
    opt = optim.SGD([w, b], lr=0.1)
    losses = tape.fit([[1.0, 2.0], [2.0, 3.0]], opt, 30)
    assert losses[-1] < losses[0] and opt.steps == 30


def test_fit_bad_arguments():
    tape, model = mlp_tape(2, [3, 1], 0)
    opt = optim.SGD(model.parameters(), lr=0.1)
    rows = rows_for(2, 3, 0)
    with pytest.raises(TypeError):
        tape.fit(rows, "sgd")
    with pytest.raises(ValueError):
        tape.fit(rows, opt, -1)
    with pytest.raises(ValueError):
        tape.fit(rows, opt, 2, every=-1)
    with pytest.raises(TypeError):
        tape.fit(rows, opt, 2, every=1, callback=3)
    p0, p1 = model.parameters()[:2]
    two = Tape([p0 * 1.0, p1 * 1.0], [])
    with pytest.raises(TypeError, match="one output"):
        two.fit([[]], opt)
    assert tape.fit(rows, opt, 0) == [] and opt.steps == 0


@pytest.mark.parametrize("damage", ["odd", "not-lin", "overlap", "count-zero", "past-end",
                                    "mixed-inputs"])
def test_malformed_layers_are_refused_alike(damage):
    tape, model = mlp_tape(2, [4, 4, 1], 0)
    tape.forward(rows_for(2, 3, 0))
    layers = list(tape._layers)
    first, count = layers[0], layers[1]
    bad = {"odd": layers[:3], "not-lin": [0, 2], "overlap": layers[:2] + [first + 1, 2],
           "count-zero": [first, 0], "past-end": [first, tape.num_nodes],
           "mixed-inputs": [first, count + 4]}[damage]
    outcomes = []
    for be in BACKENDS:
        ex = executors.executor(be)
        val = array("d", tape._val)
        with pytest.raises(TapeError):
            ex.forward(val, tape._op, tape._a, tape._b, tape._vary, tape._off, 3, tape._ext,
                       array("i", bad))
        outcomes.append(bits(val))
    assert all(o == outcomes[0] for o in outcomes)


# Widths that are not multiples of any tile (C's tiles: 8 or 16 outputs or
# inputs, 4 or 8 lanes, weight sums 8 inputs or 8 outputs x 6 inputs at once),
# next to some that are; every lane count from 1 to 13 (a whole tile of 8, one
# of 4, and 0..3 lanes left) and the 100 rows of the benchmark.
LAYER_SHAPES = [(1, [3, 17]), (3, [7, 33]), (7, [9, 9]), (9, [33, 7]), (17, [3, 3]),
                (33, [17, 9]), (2, [16, 16]), (5, [8, 32])]
LAYER_ROWS = list(range(1, 14)) + [16, 17, 100]


# How a layer's weights sit in the value array. A Tape lays out an MLP's as a
# matrix (lin j's term s weight at o + j * ld + s), which the C kernels read
# row by row; any other layout they look up weight by weight. Layers built by
# hand give both: rows ld > 0, 0 (every neuron the same weights) or < 0 apart,
# rows that are not runs of nodes, a last row that breaks the pattern only
# at its second weight, bases that are weights of the layer too.
LAYOUTS = ("plain", "shared", "reversed", "permuted", "one-off", "base-is-weight")


def layout_tape(kind, nin, width, seed):
    """(z - y)**2 for z = head . act(layer(x)): a layer of width neurons over
    nin inputs with its weights laid out as `kind` says (LAYOUTS)."""
    import random
    rng = random.Random(seed)

    def new():
        return Value(rng.uniform(-1, 1))

    xs, y = [Value(0.0) for _ in range(nin)], Value(0.0)
    pool = [new() for _ in range(nin)]
    if kind == "shared":
        W = [pool] * width
    elif kind == "permuted":
        W = [pool[j % nin:] + pool[:j % nin] for j in range(width)]
    else:
        W = [[new() for _ in range(nin)] for _ in range(width)]
    if kind == "reversed":
        W = W[::-1]
    if kind == "one-off" and nin >= 2:
        W[-1] = [W[-1][0], W[0][1]] + W[-1][2:]
    B = [w[0] for w in W] if kind == "base-is-weight" else [new() for _ in range(width)]
    head, z = [new() for _ in range(width)], new()
    outs = []
    for w, b in zip(W, B):
        acc = b
        for wi, xi in zip(w, xs):
            acc = acc + wi * xi
        outs.append(acc.relu())
    for h, out in zip(head, outs):
        z = z + h * out
    return Tape((z - y) ** 2, xs + [y])


def weight_layouts(tape):
    """For each layer of a tape (after a forward): the ld of its weight matrix,
    or None when its weights are laid out otherwise (the C kernels' test)."""
    off, ext, b, layers = tape._off, tape._ext, tape._b, list(tape._layers)
    out = []
    for first, count in zip(layers[::2], layers[1::2]):
        rows = [[p for p, _ in lin_terms(ext, b[first + j])] for j in range(count)]
        o = off[rows[0][0]]
        ld = off[rows[1][0]] - o if count > 1 else 0
        ok = all(off[r[0]] == o + j * ld and r == list(range(r[0], r[0] + len(r)))
                 for j, r in enumerate(rows))
        out.append(ld if ok else None)
    return out


def layer_cases(shapes=LAYER_SHAPES, layouts=LAYOUTS):
    """(tape, nin, row counts) to sweep: MLPs of every shape, then the layouts."""
    for nin, widths in shapes:
        tape, _ = mlp_tape(nin, widths + [1], seed=nin, act="tanh" if nin % 2 else "relu")
        yield tape, nin, LAYER_ROWS
    for kind in layouts:
        for nin, width in ((3, 5), (9, 17)):
            yield layout_tape(kind, nin, width, seed=nin), nin, [1, 5, 8, 13]


def layer_mismatches(cases=None):
    """The cases (tape, nrows) at which the C core's layer sweeps (forward
    values, backward adjoints) differ in any bit from the Python executor's
    node-by-node sweeps of the same tape. Run by this process and, for the C
    cores whose layer kernels are capped at a variant this CPU would not
    choose, by a subprocess (test_every_layer_kernel_variant_gives_the_same_bits)."""
    from microbp import cexec
    py = executors.executor("python")
    bad = []
    for tape, nin, nrows_list in (layer_cases() if cases is None else cases):
        assert len(tape._layers) >= 2
        for nrows in nrows_list:
            with microbp.use_backend("python"):
                tape.forward(rows_for(nin, nrows, nrows)[:nrows])
            args = (tape._op, tape._a, tape._b, tape._vary, tape._off, nrows, tape._ext)
            val_py, val_c = array("d", tape._val), array("d", tape._val)
            py.forward(val_py, *args)
            cexec.forward(val_c, *args, tape._layers)
            adj_py, adj_c = array("d", tape._adj), array("d", tape._adj)
            py.backward(adj_py, val_py, *args)
            cexec.backward(adj_c, val_py, *args, tape._layers)
            if bits(val_py) != bits(val_c) or bits(adj_py) != bits(adj_c):
                bad.append((repr(tape), nrows))
    return bad


def test_the_layouts_cover_the_weight_matrices_and_the_rest():
    """Both ways of reading weights run: matrices with rows ld > 0, 0 and < 0
    apart, and layers whose weights are no matrix."""
    seen = set()
    for tape, nin, _ in layer_cases(shapes=LAYER_SHAPES[:1]):
        tape.forward(rows_for(nin, 2, 0))
        for ld in weight_layouts(tape):
            seen.add("none" if ld is None else "pos" if ld > 0 else "zero" if ld == 0 else "neg")
    assert seen == {"none", "pos", "zero", "neg"}


@pytest.mark.skipif(not HAVE_C, reason="the C core is not built")
def test_layer_kernels_at_widths_off_the_tiles_give_the_bits_of_python():
    assert layer_mismatches() == []


VARIANT_BUILDS = {"baseline": "-DMBP_LAYERS_MAX=0", "avx2": "-DMBP_LAYERS_MAX=1",
                  "no-clones": "-DMBP_NO_CLONES"}


@pytest.mark.skipif(not HAVE_C, reason="the C core is not built")
@pytest.mark.skipif(shutil.which("cc") is None, reason="no C compiler")
@pytest.mark.parametrize("variant", sorted(VARIANT_BUILDS))
def test_every_layer_kernel_variant_gives_the_same_bits(variant, tmp_path):
    """The C core picks one variant of its layer kernels by what the CPU has
    (AVX-512, AVX2, the baseline): the others never run here. A core built
    with the choice capped (or with the baseline alone) runs them, in a
    subprocess, through the same bitwise comparison with Python."""
    import os
    import subprocess
    import sys
    root = os.path.dirname(os.path.dirname(os.path.abspath(microbp.__file__)))
    shutil.copytree(os.path.join(root, "microbp"), tmp_path / "microbp",
                    ignore=shutil.ignore_patterns("_cmicrobp*", "__pycache__"))
    shutil.copytree(os.path.join(root, "csrc"), tmp_path / "csrc")
    flag = VARIANT_BUILDS[variant]
    env = dict(os.environ, MICROBP_CFLAGS=flag)
    env.pop("MICROBP_LDFLAGS", None)
    build = subprocess.run([sys.executable, os.path.join("microbp", "_cbuild.py")],
                           cwd=tmp_path, env=env, capture_output=True, text=True)
    assert build.returncode == 0, build.stdout + build.stderr
    here = os.path.dirname(os.path.abspath(__file__))
    check = ("import sys; sys.path.insert(1, %r)\n"
             "from microbp import cexec\n"
             "assert %r in cexec.build_flags() and cexec.__file__.startswith(%r), cexec.__file__\n"
             "import test_layers\n"
             "print(test_layers.layer_mismatches())\n" % (here, flag, str(tmp_path)))
    env = dict(os.environ, PYTHONPATH=str(tmp_path), MICROBP_BACKEND="c")
    run = subprocess.run([sys.executable, "-c", check], cwd=tmp_path, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "[]"

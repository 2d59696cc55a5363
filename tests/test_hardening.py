"""No silent wrong results: deep graphs pickle, detect_anomaly names the op
inside a fused node, pow's edges are C's pow in both backends (sqrt() is
PyTorch's sqrt), numpy arrays are read as numbers, sizes are bounded, and the
backend chosen in the environment explains itself at first use."""
import copy
import math
import pickle
import subprocess
import sys

import pytest

import microbp
from microbp import Value, Tape, Batch, nn, detect_anomaly

HAVE_C = "c" in microbp.available_backends()
BACKENDS = ["python", "c"] if HAVE_C else ["python"]


def test_a_deep_graph_pickles_and_deepcopies():
    x = Value(0.5, label="x")
    h = x
    for _ in range(100_000):
        h = h * 1.0000001
    for clone in (pickle.loads(pickle.dumps(h)), copy.deepcopy(h)):
        assert clone.data == h.data
        clone.backward()
        leaf = clone
        while leaf.inputs:
            leaf = leaf.inputs[0]
        assert leaf.label == "x" and leaf.grad == pytest.approx(1.0000001 ** 100_000)
    pair = pickle.loads(pickle.dumps([x, h]))
    deep = pair[1]
    while deep.inputs:
        deep = deep.inputs[0]
    assert deep is pair[0]                         # a shared leaf stays shared


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_detect_anomaly_on_a_tape_names_the_op_inside_a_fusion(backend_name):
    w1, w2, b = Value(1e308, label="w1"), Value(2.0, label="w2"), Value(0.0, label="b")
    x1, x2 = Value(0.0, label="x1"), Value(0.0, label="x2")
    p1 = w1 * x1
    p1.label = "w1*x1"
    z = b + p1 + w2 * x2
    tape = Tape(z.tanh(), [x1, x2])
    assert "lin" in tape.ops
    with microbp.use_backend(backend_name), detect_anomaly():
        tape.forward([[1.0, 1.0]])
        with pytest.raises(FloatingPointError, match=r"mul labelled 'w1\*x1', row 1"):
            tape.forward([[1.0, 1.0], [10.0, 1.0]])


@pytest.mark.parametrize("backend_name", BACKENDS)
def test_pow_edges_are_c_pow_and_sqrt_is_pytorch_sqrt(backend_name):
    # documented in the README's edge table
    with microbp.use_backend(backend_name):
        cases = [(-math.inf, 0.5, math.inf), (-math.inf, -0.5, 0.0), (-0.0, 0.5, 0.0)]
        for x, c, want in cases:
            y = Value(x) ** c
            assert y.data == want and math.copysign(1, y.data) == math.copysign(1, want)
        s = Value(-0.0).sqrt()
        assert s.data == 0.0 and math.copysign(1, s.data) == -1.0     # sqrt(-0) = -0
        assert math.isnan(Value(-math.inf).sqrt().data)


def test_a_negative_zero_gradient_reads_plus_zero():
    # documented: .grad starts at +0.0 and backward adds, so -0.0 + 0.0 = +0.0
    x = Value(0.0)
    (x * -0.0).backward()
    assert math.copysign(1, x.grad) == 1.0


def test_numpy_arrays_as_inputs_targets_and_batches():
    np = pytest.importorskip("numpy")
    model = nn.MLP(2, [3, 1], seed=0)
    assert model(np.array([0.5, -1.0])).data == model([0.5, -1.0]).data
    assert microbp.losses.mse([model([1.0, 2.0])], np.array([1.0])).data == \
        microbp.losses.mse([model([1.0, 2.0])], [1.0]).data
    rows = np.array([[0.5, -1.0], [1.0, 2.0]])
    assert Batch(rows).rows.tolist() == [0.5, -1.0, 1.0, 2.0]
    assert Batch(rows.T.copy(order="F").T).rows.tolist() == [0.5, -1.0, 1.0, 2.0]
    assert Batch(np.array([[1, 2]])).rows.tolist() == [1.0, 2.0]
    with pytest.raises(TypeError):
        Batch(np.array([[True, False]]))
    with pytest.raises(ValueError):
        Batch(np.array([[1.0, 2.0]]), width=3)
    x = [Value(0.0), Value(0.0)]
    tape = Tape(model(x), x)
    assert tape.forward(rows) == tape.forward(rows.tolist())


def test_model_sizes_are_bounded():
    with pytest.raises(ValueError, match="nin"):
        nn.MLP(10 ** 400, [1])
    with pytest.raises(ValueError, match="nouts"):
        nn.MLP(2, [2 ** 31])


def _child(code, env):
    import os
    full = {k: v for k, v in os.environ.items() if not k.startswith("MICROBP_")}
    full.update(env)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, env=full)


NO_C = "import sys; sys.modules['microbp._cmicrobp'] = None\nimport microbp\n"


def test_backend_from_the_environment_explains_itself_at_first_use():
    r = _child(NO_C + "print('imported')\nmicrobp.get_backend()", {"MICROBP_BACKEND": "c"})
    assert "imported" in r.stdout and r.returncode != 0
    assert "C backend is not available" in r.stderr and "pip install" in r.stderr
    r = _child(NO_C + "print('imported')\n(microbp.Value(1.0) * 2).backward()",
               {"MICROBP_REQUIRE_C": "1"})
    assert "imported" in r.stdout and "MICROBP_REQUIRE_C=1" in r.stderr
    r = _child(NO_C + "print(microbp.get_backend())", {})
    assert r.stdout.strip() == "python" and r.returncode == 0
    r = _child("import microbp\nprint('imported')\nmicrobp.get_backend()",
               {"MICROBP_BACKEND": "gpu"})
    assert "imported" in r.stdout and "choose one of auto, c, python" in r.stderr

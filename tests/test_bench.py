"""python -m microbp bench: its JSON shape, its paths' arithmetic, its options
(never its speed: speed is what the benchmark prints, not what a test asserts)."""
import json
import subprocess
import sys

import pytest

import microbp
from microbp import bench

FIELDS = {"name", "nodes", "eager_python_s", "tape_python_s", "tape_c_s", "tape_c_fit_s",
          "torch_s", "jax_s", "numpy_s"}


def installed(name):
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def workload(name):
    (w,) = [w for w in bench.workloads() if w["name"] == name]
    return w


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "microbp", "bench", *args],
                          capture_output=True, text=True, timeout=300)


def test_bench_json_has_every_field():
    r = run_cli("--quick", "--budget", "0", "--json", "--only", "moons", "--only", "mlp-w16")
    assert r.returncode == 0, r.stderr
    moons, w16 = json.loads(r.stdout)["workloads"]
    for w in (moons, w16):
        assert set(w) == FIELDS
        assert w["nodes"] > 60000
        assert w["eager_python_s"] > 0 and w["tape_python_s"] > 0
        assert (w["tape_c_s"] is None) == ("c" not in microbp.available_backends())
        assert (w["tape_c_fit_s"] is None) == ("c" not in microbp.available_backends())
        for path in ("torch", "jax", "numpy"):
            if installed(path):
                assert w[f"{path}_s"] > 0, path
            else:
                assert w[f"{path}_s"] is None, path
    assert moons["name"] == "moons" and w16["name"] == "mlp-w16"
    assert moons["nodes"] == w16["nodes"]          # the same model on the same rows
    bad = run_cli("--only", "nope")
    assert bad.returncode == 2 and "moons" in bad.stderr and "mlp-w128" in bad.stderr
    bad = run_cli("--budget", "soon", "--only", "moons")
    assert bad.returncode == 2 and "--budget" in bad.stderr


def test_table_names_every_path_and_ratio():
    r = run_cli("--quick", "--budget", "0", "--only", "mlp-w16")
    assert r.returncode == 0, r.stderr
    head, rule, row = r.stdout.splitlines()[1:]
    for column in ("eager py", "tape py", "tape C", "torch", "jax", "numpy",
                   "C vs tape py", "C vs torch", "C vs jax", "C vs numpy"):
        assert column in head
    assert row.startswith("mlp-w16 ") and set(rule) == {"-", " "}


@pytest.mark.parametrize("missing", ["torch", "jax", "numpy"])
def test_a_missing_package_gives_null(monkeypatch, missing):
    real = bench._optional
    asked = []

    def optional(name):
        asked.append(name)
        return None if name == missing else real(name)
    monkeypatch.setattr(bench, "_optional", optional)
    (w,) = bench.run(quick=True, only=["mlp-w16"], budget=0)["workloads"]
    assert set(w) == FIELDS
    assert missing in asked and w[f"{missing}_s"] is None
    for other in {"torch", "jax", "numpy"} - {missing}:
        assert (w[f"{other}_s"] is None) == (not installed(other)), other
    assert w["tape_python_s"] > 0


def test_workloads_are_the_issues_mlps():
    moons = workload("moons")
    for width in (16, 32, 64, 128):
        w = workload(f"mlp-w{width}")
        assert (w["nin"], w["nouts"], w["loss"], w["lr"], w["reg"]) == \
            (2, [width, width, 1], "hinge", moons["lr"], 1e-4)
        assert w["rows"] == moons["rows"] and len(w["rows"]) == 100
    assert [workload(f"mlp-w{k}")["python"] for k in (16, 32, 64, 128)] == [True, True, False, False]


def test_a_skipped_eager_path_is_null_and_nodes_still_counted(monkeypatch):
    """A workload whose eager step is skipped reports eager_python null but
    still counts its graph (a small width stands in for mlp-w128 here)."""
    small = dict(workload("mlp-w16"), python=False)
    monkeypatch.setattr(bench, "workloads", lambda: [small])
    (w,) = bench.run(quick=True, only=["mlp-w16"], budget=0)["workloads"]
    assert w["eager_python_s"] is None and w["tape_python_s"] > 0
    assert w["nodes"] == bench.mlp_eager_path(workload("mlp-w16"))[1]


def test_count_nodes_counts_shared_nodes_once():
    x = microbp.Value(2.0)
    y = x * x                                   # x used twice
    z = y + y * 3.0                             # y used twice, 3.0 a constant leaf
    assert bench.count_nodes(z) == 5            # x, y, 3.0, y*3, z
    assert bench.count_nodes(x) == 1


# -- the array paths compute microbp's step --------------------------------

def microbp_step(w, model):
    """One eager microbp step on model: (loss, parameters after the update)."""
    step, _ = bench.mlp_eager_path(w, model)
    loss = step().data
    return loss, [p.data for p in model.parameters()]


def assert_same_step(w, model, array_step, read_params):
    """One step of an array path equals microbp's: the loss within 1e-12
    relative; parameters and their updates within 1e-12 of the largest one
    (entries that are sums cancelling to ~1e-19 have no relative accuracy)."""
    before = [p.data for p in model.parameters()]
    assert bench.flat_arrays(read_params()) == before          # same start, same order
    loss = float(array_step())
    ref_loss, after = microbp_step(w, model)
    got = bench.flat_arrays(read_params())
    assert abs(loss - ref_loss) <= 1e-12 * abs(ref_loss)
    scale = max(abs(a) for a in after)
    assert max(abs(g - a) for g, a in zip(got, after)) <= 1e-12 * scale
    update = [a - b for a, b in zip(after, before)]
    got_update = [g - b for g, b in zip(got, before)]
    scale = max(abs(u) for u in update)
    assert scale > 0
    assert max(abs(g - u) for g, u in zip(got_update, update)) <= 1e-12 * scale


STEP_WORKLOADS = ["mlp-w16", "mlp-w32", "mlp-4x32x32x1"]      # hinge + L2, and mse


def array_path(path, w, model):
    """(step, read params) of an array path started from model's weights."""
    pytest.importorskip(path)
    if path == "jax":
        step, state = bench.mlp_jax_path(w, model)
        assert state["params"][0].dtype.name == "float64"
        return step, lambda: state["params"]
    step, params = (bench.mlp_numpy_path if path == "numpy" else bench.mlp_torch_path)(w, model)
    assert "float64" in str(params[0].dtype)
    return step, lambda: params


@pytest.mark.parametrize("path", ["numpy", "jax", "torch"])
@pytest.mark.parametrize("name", STEP_WORKLOADS)
def test_an_array_step_is_microbps_step(path, name):
    w = workload(name)
    model = bench.mlp_model(w)
    assert_same_step(w, model, *array_path(path, w, model))


def test_array_steps_go_on_stepping():
    """A second step starts from the first one's parameters (the timed loop
    repeats the step): numpy and jax agree after three steps."""
    pytest.importorskip("numpy")
    pytest.importorskip("jax")
    w = workload("mlp-w16")
    np_step, np_params = bench.mlp_numpy_path(w)
    jax_step, state = bench.mlp_jax_path(w)
    losses = [(float(np_step()), float(jax_step())) for _ in range(3)]
    assert losses[2][0] < losses[0][0]                          # it trains
    for a, b in losses:
        assert abs(a - b) <= 1e-12 * abs(b)
    got, ref = bench.flat_arrays(np_params), bench.flat_arrays(state["params"])
    scale = max(abs(r) for r in ref)
    assert max(abs(g - r) for g, r in zip(got, ref)) <= 1e-12 * scale


def test_jax_chain_step_is_microbps_step():
    pytest.importorskip("jax")
    step, state = bench.chain_jax_path()
    loss = float(step())
    w, c = microbp.Value(0.9), microbp.Value(0.1)
    ref = bench._chain_graph(microbp.Value(0.3), w, c)
    ref.backward()
    assert abs(loss - ref.data) <= 1e-12 * abs(ref.data)
    got = state["params"].tolist()
    for g, p in zip(got, (w, c)):
        assert abs((g - p.data) - (-0.01 * p.grad)) <= 1e-12 * abs(0.01 * p.grad)


def test_hvp_workload_runs_on_the_tapes_only():
    r = run_cli("--quick", "--budget", "0", "--json", "--only", "hvp-w16")
    assert r.returncode == 0, r.stderr
    (w,) = json.loads(r.stdout)["workloads"]
    assert set(w) == FIELDS and w["name"] == "hvp-w16" and w["nodes"] > 1000
    assert w["tape_python_s"] > 0
    assert (w["tape_c_s"] is None) == ("c" not in microbp.available_backends())
    assert all(w[f"{p}_s"] is None for p in ("eager_python", "tape_c_fit", "torch", "jax",
                                             "numpy"))

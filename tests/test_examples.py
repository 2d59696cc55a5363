"""Smoke tests of examples/: each runs as its own process in the backend of this
run of the suite, must exit 0 (its goal met) and print what it promises.
Numbers the examples print are checked against independent computations."""
import importlib.util
import math
import os
import re
import subprocess
import sys

import pytest

import microbp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")
ALL = sorted(f for f in os.listdir(EXAMPLES) if f.endswith(".py") and not f.startswith("_"))


def run(name, backend, *args, cwd=None):
    env = dict(os.environ)
    env["PYTHONPATH"] = ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.pop("MICROBP_BACKEND", None)          # --backend alone decides
    return subprocess.run([sys.executable, os.path.join(EXAMPLES, name), "--backend", backend,
                           *args], capture_output=True, text=True, timeout=120, env=env,
                          cwd=cwd)


def ok(done):
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_examples_are_all_there():
    assert {"neuron.py", "lecture.py", "xor.py", "moons.py", "regression.py", "iris.py",
            "compare.py", "memory.py", "bench_eager.py"} <= set(ALL)


@pytest.mark.parametrize("name", ALL)
def test_every_example_takes_backend(name, backend):
    out = ok(run(name, backend, "--help"))
    assert "--backend" in out


@pytest.mark.parametrize("name", ALL)
def test_a_bad_argument_is_a_usage_error_not_a_traceback(name, backend):
    done = run(name, backend, "--nonsense")
    assert done.returncode == 2 and "usage:" in done.stderr
    assert "Traceback" not in done.stderr


def test_examples_use_only_the_public_api():
    """The engine's internals change; the examples show what a user can write."""
    for name in os.listdir(EXAMPLES):
        if name.endswith(".py"):
            with open(os.path.join(EXAMPLES, name), encoding="utf-8") as f:
                text = f.read()
            for internal in ("microbp.graph", "microbp.ops", "microbp.pyexec", "microbp.params",
                             "microbp.engine", "from microbp import ops", "._op", "._a", "._id"):
                assert internal not in text, (name, internal)


# ---------------------------------------------------------------------------

def test_neuron(backend, tmp_path):
    out = ok(run("neuron.py", backend, "--graph", str(tmp_path / "n.dot")))
    assert f"(backend {backend})" in out
    assert "d out/dw = [1, -2, 3]" in out
    assert "d out/dx = [-3, -1, 2]" in out
    assert "d out/db = 1 " in out
    assert "w = [-3.001, -0.998, 1.997]   b = 0.999" in out
    assert "forward again: out = 5.985" in out
    # a row per (node, input) pair: 3 adds x 2 inputs, 3 muls x 2, one relu
    table = re.findall(r"^  (\S+)\s+(add|mul|relu)\s+(\S+)\s+(\S+)\s+(\S+)\s+(\S+)$", out, re.M)
    assert len(table) == 3 * 2 + 3 * 2 + 1
    rows = {(node, inp): (float(loc), float(up), float(prod))
            for node, _, inp, loc, up, prod in table}
    assert rows[("p1", "w1")] == (-2.0, 1.0, -2.0)     # local = x1, upstream 1
    assert rows[("out", "z")] == (1.0, 1.0, 1.0)       # relu'(6) = 1
    assert "digraph microbp" in (tmp_path / "n.dot").read_text(encoding="utf-8")


def lecture_by_hand():
    """The lecture network with plain floats and the chain rule written out."""
    xa, xb, y = 0.23, 0.82, 1.0
    w = {"w_AC": 0.1, "w_BC": 0.4, "w_AD": 0.5, "w_BD": 0.3, "w_CE": 0.2, "w_DE": 0.6}

    def s(z):
        return 1.0 / (1.0 + math.exp(-z))
    zc = w["w_AC"] * xa + w["w_BC"] * xb
    zd = w["w_AD"] * xa + w["w_BD"] * xb
    yc, yd = s(zc), s(zd)
    ze = w["w_CE"] * yc + w["w_DE"] * yd
    yhat = s(ze)
    loss = 0.5 * (y - yhat) ** 2
    dze = (yhat - y) * yhat * (1 - yhat)
    dzc = dze * w["w_CE"] * yc * (1 - yc)
    dzd = dze * w["w_DE"] * yd * (1 - yd)
    g = {"w_CE": dze * yc, "w_DE": dze * yd, "w_AC": dzc * xa, "w_BC": dzc * xb,
         "w_AD": dzd * xa, "w_BD": dzd * xb}
    forward = {"z_C": zc, "y_C": yc, "z_D": zd, "y_D": yd, "z_E": ze, "yhat": yhat, "L": loss}
    return forward, g, {k: w[k] - 0.7 * g[k] for k in w}


def section(out, title):
    """The lines of `out` from the one starting with `title` to the next blank line."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(title))
    end = next((i for i in range(start, len(lines)) if not lines[i].strip()), len(lines))
    return lines[start + 1:end]


def test_lecture_numbers_match_an_independent_computation(backend):
    out = ok(run("lecture.py", backend))
    forward, grads, new = lecture_by_hand()
    printed = {}
    for line in section(out, "forward"):
        name, value = line.split()[0], float(line.split("=")[-1])
        printed[name] = value
    assert printed.keys() == forward.keys()
    for k in forward:
        assert printed[k] == pytest.approx(forward[k], rel=1e-9), k
    # the notes' forward values (rounded there)
    assert printed["z_C"] == pytest.approx(0.351) and printed["z_D"] == pytest.approx(0.361)
    assert round(printed["yhat"], 4) == 0.6156 and round(printed["L"], 4) == 0.0739

    fd_rows = [line.split() for line in section(out, "finite differences")[1:-1]]
    assert sorted(r[0] for r in fd_rows) == sorted(grads)
    for name, engine, fd, diff in fd_rows:
        assert float(engine) == pytest.approx(grads[name], rel=1e-9)
        assert float(fd) == pytest.approx(grads[name], rel=1e-6)
    assert "they agree." in out

    step_rows = [line.split() for line in section(out, "one gradient step")[1:-1]]
    assert sorted(r[0] for r in step_rows) == sorted(grads)
    for name, before, grad, after in step_rows:
        assert float(grad) == pytest.approx(grads[name], rel=1e-9)
        assert float(after) == pytest.approx(new[name], rel=1e-9)
    # the output weights' gradients, as the notes print them (they are right)
    assert round(grads["w_CE"], 4) == -0.0534 and round(grads["w_DE"], 4) == -0.0536
    before, after = re.search(r"loss before the step (\S+), after (\S+)", out).groups()
    assert float(after) < float(before)


def test_xor_reaches_100_percent(backend):
    out = ok(run("xor.py", backend))
    assert "accuracy 100%" in out
    assert out.count(" ok") == 4


def test_an_example_whose_goal_is_not_met_exits_non_zero(backend):
    done = run("xor.py", backend, "--steps", "1")
    assert done.returncode == 1
    assert "WRONG" in done.stdout


def ascii_grid(out):
    return [line for line in out.splitlines() if re.fullmatch(r"[.#ox]{60}", line)]


def test_moons_reaches_100_percent_on_mini_batches(backend, tmp_path):
    out = ok(run("moons.py", backend, "--ascii", cwd=str(tmp_path)))
    assert "mini-batches of 20" in out
    assert "training accuracy 100.0%" in out
    assert re.search(r"^epoch 30/30  loss \S+  acc 100\.0%", out, re.M)   # progress lines
    curve = re.search(r"^mean loss per epoch \S+ (\S+) \S+", out, re.M).group(1)
    assert len(curve) == 30                            # the loss curve: a bar per epoch
    grid = ascii_grid(out)
    assert len(grid) == 22 and sum(line.count("x") + line.count("o") for line in grid) > 80
    assert not os.listdir(tmp_path)                    # --ascii writes no file


def test_moons_batch_size_is_checked(backend):
    done = run("moons.py", backend, "--batch-size", "0")
    assert done.returncode == 2 and "must be a positive int" in done.stderr


HAVE_MPL = importlib.util.find_spec("matplotlib") is not None


@pytest.mark.skipif(HAVE_MPL, reason="matplotlib is installed")
def test_moons_without_matplotlib_draws_in_text(backend, tmp_path):
    done = run("moons.py", backend, "--epochs", "1", "--png", str(tmp_path / "m.png"))
    assert done.returncode == 1                        # 1 epoch: not at 100% yet
    assert "matplotlib is not installed" in done.stdout
    assert len(ascii_grid(done.stdout)) == 22
    assert not os.listdir(tmp_path)


@pytest.mark.skipif(not HAVE_MPL, reason="matplotlib is not installed")
def test_moons_png(backend, tmp_path):
    png = tmp_path / "m.png"
    out = ok(run("moons.py", backend, "--png", str(png)))
    assert f"decision boundary written to {png}" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_regression_fits_sine(backend):
    out = ok(run("regression.py", backend))
    err = float(re.search(r"final mean squared error (\S+)", out).group(1))
    assert err < 2e-3
    assert len([line for line in out.splitlines() if line.startswith("  |")]) == 15


def test_iris_csv_is_fishers_data():
    path = os.path.join(EXAMPLES, "iris.csv")
    with open(path) as f:
        lines = f.read().splitlines()
    assert lines[0] == "sepal_length,sepal_width,petal_length,petal_width,species"
    rows = [line.split(",") for line in lines[1:]]
    assert len(rows) == 150
    species = [r[4] for r in rows]
    assert {s: species.count(s) for s in set(species)} == \
        {"setosa": 50, "versicolor": 50, "virginica": 50}
    # the per-species means of the four measurements, as every statistics text quotes them
    means = {"setosa": (5.006, 3.428, 1.462, 0.246),
             "versicolor": (5.936, 2.770, 4.260, 1.326),
             "virginica": (6.588, 2.974, 5.552, 2.026)}
    for s, m in means.items():
        part = [[float(v) for v in r[:4]] for r in rows if r[4] == s]
        assert [round(sum(c) / 50, 3) for c in zip(*part)] == list(m), s


def test_iris_held_out_accuracy(backend):
    out = ok(run("iris.py", backend))
    acc = float(re.search(r"held-out accuracy (\S+)%", out).group(1))
    assert acc >= 90.0
    assert "120 to train, 30 held out" in out
    assert re.search(r"^epoch 40/40  loss \S+  acc", out, re.M)


def test_memory_measures_both_graphs(backend):
    out = ok(run("memory.py", backend, "--nodes", "3000"))
    assert f"backend {backend}" in out
    rows = re.findall(r"^tanh\(.*?\) chain\s+(\d+)\s+(\S+)\s+(\S+)\s+\((\S+) nodes\)", out, re.M)
    assert len(rows) == 2 and all(float(r[0]) > 0 and float(r[1]) > 0 for r in rows)


def test_bench_eager_times_microbp(backend):
    out = ok(run("bench_eager.py", backend, "--repeats", "1"))
    assert f"microbp eager ({backend} backward)" in out and " ms" in out


def test_compare_paths_agree(backend):
    out = ok(run("compare.py", backend, "--steps", "3"))
    assert "eager python" in out and "tape python" in out
    assert "ms/step" in out
    if backend == "c":
        assert "tape c and tape python: bit-identical losses and parameters" in out
    rows = re.findall(r"^  (tape \w+)\s+loss relative difference (\S+)", out, re.M)
    assert rows and all(float(d) <= 1e-9 for _, d in rows)


def test_asking_for_c_where_it_is_not_built(tmp_path):
    if "c" in microbp.available_backends():
        pytest.skip("the C core is built here")
    done = run("neuron.py", "c")
    assert done.returncode == 2 and "not built" in done.stderr

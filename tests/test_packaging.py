"""Packaging: an sdist and a wheel built from this checkout, each installed into
a fresh virtual environment, work there with the C core; the sdist is the whole
project (a user who unpacks it can run the suite); the license and the wheel's
tag are what they say.

It builds with the setuptools and cffi of this environment (no build
isolation) and installs with pip, which fetches cffi (and, for the sdist, the
build requirements) from the package index or pip's cache. About a minute. It
runs once in `make test` (in the C run) and not under the sanitizers.
"""
import glob
import os
import re
import subprocess
import sys
import tarfile
import textwrap
import zipfile

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _setuptools_version():
    try:
        from importlib.metadata import version
        return tuple(int(p) for p in re.findall(r"\d+", version("setuptools"))[:2])
    except Exception:
        return (0,)


pytestmark = [
    pytest.mark.skipif(os.environ.get("MICROBP_BACKEND") == "python",
                       reason="packaging is checked once, in the C run of the suite"),
    pytest.mark.skipif("LD_PRELOAD" in os.environ,
                       reason="not under the sanitizers (they check the C core)"),
    pytest.mark.skipif(_setuptools_version() < (77,),
                       reason="building needs setuptools>=77 (pip install -e '.[test]')"),
]

SMOKE = textwrap.dedent("""
    import sys
    import microbp
    from microbp import Tape, Value, losses, nn, optim, use_backend
    assert microbp.__file__.startswith(sys.prefix), microbp.__file__   # the installed copy
    assert microbp.available_backends() == ["c", "python"], (
        microbp.available_backends(), microbp.backend.c_import_error())
    assert microbp.tape.rows_to_doubles is not None        # microbp._pyread, installed too
    trained = {}
    for name in ("python", "c"):
        with use_backend(name):
            model = nn.MLP(2, [4, 1], act="tanh", seed=0)
            opt = optim.SGD(model.parameters(), lr=0.1)
            x0, x1, y = Value(0.0), Value(0.0), Value(0.0)
            tape = Tape(losses.mse([model([x0, x1])], [y]), [x0, x1, y])
            rows = [[0.0, 0.0, -1.0], [0.0, 1.0, 1.0], [1.0, 0.0, 1.0], [1.0, 1.0, -1.0]]
            first = sum(tape.forward(rows))
            for _ in range(30):
                last = sum(tape.forward(rows))
                opt.zero_grad()
                tape.backward()
                opt.step()
            assert last < first, (first, last)
            trained[name] = [p.data.hex() for p in model.parameters()]
    assert trained["python"] == trained["c"]
    model.save("model.json")
    assert nn.MLP.from_file("model.json").state_dict() == model.state_dict()
    print("smoke:", microbp.available_backends())
""")


def run(cmd, cwd=None, env=None, timeout=600):
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, (f"{' '.join(map(str, cmd))}: exit {done.returncode}\n"
                                  f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "MICROBP_BACKEND", "MICROBP_REQUIRE_C")}
    env.update(extra)
    return env


def build(hook, out, cwd):
    """Call setuptools' PEP 517 hook (build_sdist or build_wheel) in cwd: the file."""
    code = f"from setuptools import build_meta as b; print(b.{hook}({str(out)!r}))"
    name = run([sys.executable, "-c", code], cwd=cwd, env=clean_env()).split()[-1]
    return os.path.join(out, name)


def venv(path):
    run([sys.executable, "-m", "venv", str(path)])
    return os.path.join(path, "bin", "python")


@pytest.fixture(scope="module")
def dist(tmp_path_factory):
    """The sdist built from this checkout, the wheel built from that sdist (as
    `python -m build` does), and where the sdist was unpacked."""
    out = tmp_path_factory.mktemp("dist")
    sdist = build("build_sdist", str(out), ROOT)
    with tarfile.open(sdist) as tar:
        tar.extractall(out / "unpacked",
                       **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    src = os.path.join(out, "unpacked", os.path.basename(sdist)[:-len(".tar.gz")])
    wheel = build("build_wheel", str(out), src)
    return {"sdist": sdist, "wheel": wheel, "src": src, "tmp": out}


def test_sdist_is_the_whole_project(dist):
    with tarfile.open(dist["sdist"]) as tar:
        top = os.path.commonpath(tar.getnames())
        names = {os.path.relpath(n, top) for n in tar.getnames()}
        pkg_info = tar.extractfile(f"{top}/PKG-INFO").read().decode()
    tracked = ["LICENSE", "README.md", "Makefile", "setup.py", "pyproject.toml", "MANIFEST.in",
               ".ci/run", "tests/conftest.py", "tests/nocc_install.sh",
               "tests/golden/golden.json", "tests/golden/record.py", "examples/iris.csv"]
    tracked += [os.path.relpath(p, ROOT) for pattern in
                ("microbp/*.py", "csrc/*.[ch]", "tests/test_*.py", "examples/*.py", "docs/*")
                for p in glob.glob(os.path.join(ROOT, pattern))]
    assert sorted(set(tracked) - names) == []
    assert not [n for n in names if n.endswith((".so", ".pyd", ".pyc", ".o"))]
    assert "License-Expression: MIT" in pkg_info and "License-File: LICENSE" in pkg_info


def test_wheel_license_metadata_and_tag(dist):
    with zipfile.ZipFile(dist["wheel"]) as whl:
        names = whl.namelist()
        info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        metadata = whl.read(f"{info}/METADATA").decode()
        tags = re.findall(r"^Tag: (\S+)$", whl.read(f"{info}/WHEEL").decode(), re.M)
        with open(os.path.join(ROOT, "LICENSE"), "rb") as f:
            assert whl.read(f"{info}/licenses/LICENSE") == f.read()
    assert "License-Expression: MIT" in metadata
    assert not re.search(r"^License: |^Classifier: License ::", metadata, re.M)  # deprecated forms
    [core] = [n for n in names if n.startswith("microbp/_cmicrobp")]
    [pyread] = [n for n in names if n.startswith("microbp/_pyread")]
    assert pyread.endswith(core[len("microbp/_cmicrobp"):])    # built for the same ABI
    [tag] = tags
    assert os.path.basename(dist["wheel"]).endswith(f"-{tag}.whl")
    # the tag says what the C core is built for: the stable ABI (abi3, from the
    # oldest Python the package supports) or exactly this interpreter
    if core.endswith(".abi3.so"):
        assert re.fullmatch(r"cp39-abi3-\w+", tag), tag
        assert 'requires-python = ">=3.9"' in open(os.path.join(ROOT, "pyproject.toml")).read()
    else:
        v = f"{sys.version_info.major}{sys.version_info.minor}"
        assert tag.startswith(f"cp{v}-cp{v}"), (core, tag)


def test_wheel_installs_into_a_fresh_venv(dist):
    python = venv(dist["tmp"] / "venv-wheel")
    run([python, "-m", "pip", "install", "-q", dist["wheel"]], env=clean_env())
    work = dist["tmp"] / "work-wheel"
    work.mkdir()
    assert "smoke: ['c', 'python']" in run([python, "-c", SMOKE], cwd=work, env=clean_env())


def test_sdist_installs_and_runs_its_own_suite(dist):
    python = venv(dist["tmp"] / "venv-sdist")
    run([python, "-m", "pip", "install", "-q", dist["sdist"], "pytest==9.2.0",
         "hypothesis==6.170.17"], env=clean_env())
    work = dist["tmp"] / "work-sdist"
    work.mkdir()
    assert "smoke: ['c', 'python']" in run([python, "-c", SMOKE], cwd=work, env=clean_env())
    # from the unpacked sdist: its conftest, the golden file and the example data
    # are there (bin/pytest, not python -m pytest: the installed microbp is tested)
    pytest_bin = os.path.join(os.path.dirname(python), "pytest")
    out = run([pytest_bin, "-p", "no:cacheprovider", "tests/test_golden.py"], cwd=dist["src"],
              env=clean_env(MICROBP_BACKEND="c", MICROBP_REQUIRE_C="1"))
    assert re.search(r"\b\d+ passed\b", out) and "failed" not in out
    out = run([pytest_bin, "-p", "no:cacheprovider", "tests/test_examples.py", "-k", "iris"],
              cwd=dist["src"], env=clean_env(MICROBP_BACKEND="python"))
    assert re.search(r"\b\d+ passed\b", out) and "skipped" not in out

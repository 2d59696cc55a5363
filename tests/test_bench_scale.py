"""examples/bench_scale.py runs and prints a row per size with sane figures."""
import os
import re
import subprocess
import sys

import microbp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_bench_scale_prints_a_row_per_size(backend):
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.pop("MICROBP_BACKEND", None)
    done = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "bench_scale.py"),
                           "--sizes", "2000,5000", "--repeats", "1", "--build", "mlp"],
                          capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
    rows = [line.split() for line in done.stdout.splitlines() if re.match(r"\s+\d[\d,]*\s", line)]
    # 648 nodes per row of the moons, and 1,016 more: within half a row of the size
    assert [abs(int(r[0].replace(",", "")) - size) <= 324 for r, size in zip(rows, (2000, 5000))] \
        == [True, True]
    backends = microbp.available_backends()
    for r in rows:
        figures = [float(x.rstrip("x")) for x in r[1:]]
        assert len(figures) == 2 + len(backends) + (len(backends) == 2)
        assert all(f > 0 for f in figures)

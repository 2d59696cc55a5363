"""python -m microbp: demo, info, help (bench: tests/test_bench.py)."""
import subprocess
import sys

import microbp


def run(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "microbp", *args], capture_output=True,
                          text=True, timeout=timeout)


def test_help_lists_the_commands():
    r = run("--help")
    assert r.returncode == 0
    for name in ("bench", "demo", "info"):
        assert name in r.stdout
    assert run("nonsense").returncode == 2
    for name in ("bench", "demo", "info"):
        assert run(name, "--help").returncode == 0


def test_info_names_backends_and_flags():
    r = run("info")
    assert r.returncode == 0
    assert f"microbp {microbp.__version__}" in r.stdout
    assert "available backends: " + ", ".join(microbp.available_backends()) in r.stdout
    if "c" in microbp.available_backends():
        assert "-ffp-contract=off" in r.stdout and "-ffast-math" not in r.stdout


def test_demo_trains_moons_to_100_percent():
    r = run("demo", "--backend", microbp.get_backend())
    assert r.returncode == 0, r.stdout + r.stderr
    assert "training accuracy 100.0%" in r.stdout
    assert "step 100/100" in r.stdout

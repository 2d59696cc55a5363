"""python -m microbp: demo, info, help, --version (bench: tests/test_bench.py)."""
import os
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


def test_version():
    for flag in ("--version", "-V"):
        r = run(flag)
        assert r.returncode == 0 and r.stdout == f"microbp {microbp.__version__}\n"


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


def without_backend_choice():
    """The environment less MICROBP_BACKEND (the suite's C run sets it to c)."""
    env = dict(os.environ)
    env.pop("MICROBP_BACKEND", None)
    return env


def test_info_without_the_c_core_gives_the_reason_and_the_fix():
    """The C core made unimportable in a child process (a None in sys.modules)."""
    code = ("import sys; sys.modules['microbp._cmicrobp'] = None\n"
            "from microbp.__main__ import main; sys.exit(main(['info']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=without_backend_choice())
    assert r.returncode == 0, r.stderr
    assert "available backends: python\n" in r.stdout
    assert "C core: not built: " in r.stdout and "microbp._cmicrobp" in r.stdout   # the reason
    assert "install a C compiler" in r.stdout and "pip install" in r.stdout        # the fix


def test_demo_bad_arguments_are_usage_errors():
    for args in (["--steps", "0"], ["--steps", "many"], ["--backend", "gpu"], ["--what"]):
        r = run("demo", *args)
        assert r.returncode == 2, args
        assert "usage: python -m microbp demo" in r.stderr, args
        assert "Traceback" not in r.stderr, args


def test_demo_short_run_reports_its_failure_and_draws_the_curve():
    r = run("demo", "--steps", "3")
    assert r.returncode == 1                          # 3 steps: not yet 100%
    assert "step 3/3" in r.stdout
    assert r.stdout.count("\nloss ") == 1             # the loss curve line


def test_demo_asking_for_c_where_it_is_not_built_is_a_usage_error():
    code = ("import sys; sys.modules['microbp._cmicrobp'] = None\n"
            "from microbp.__main__ import main; sys.exit(main(['demo', '--backend', 'c']))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       env=without_backend_choice())
    assert r.returncode == 2 and "the C backend is not built" in r.stderr
    assert "python -m microbp info" in r.stderr and "Traceback" not in r.stderr

"""The two executors as the tests call them: every function of executor.py,
plus the optimizer kernels (C's from cexec, Python's from optim.py)."""
from types import SimpleNamespace

from microbp import optim, pyexec

try:
    from microbp import cexec
except ImportError:       # the C core is not built
    cexec = None

PY = SimpleNamespace(**{k: getattr(pyexec, k) for k in dir(pyexec) if not k.startswith("__")},
                     **optim.PYTHON_KERNELS)


def executor(name):
    return PY if name == "python" else cexec

"""microbp: a small, exact, fast scalar autograd engine.

    from microbp import Value
    x = Value(2.0); y = (x * x + 1).tanh(); y.backward(); x.grad

Pure Python at its core, with an optional C core (built with cffi) that runs
recorded graphs (microbp.Tape) and eager backward passes with the same doubles.
"""
from .engine import Value, no_grad
from .params import Parameter, ParamStore
from .backend import (set_backend, get_backend, use_backend, available_backends,
                      BackendError)
from .tape import Tape, Batch
from .tapeformat import TapeError
from .gradcheck import gradcheck, GradcheckError
from .anomaly import detect_anomaly
from .draw import draw
from .explain import explain
from .autodiff import jvp, grad, jacobian, hessian
from . import nn, losses, optim, datasets, serialize

__version__ = "0.1.0"

__all__ = ["Value", "no_grad", "Parameter", "ParamStore", "Tape", "Batch", "TapeError", "set_backend", "get_backend",
           "use_backend", "available_backends", "BackendError", "gradcheck",
           "GradcheckError", "detect_anomaly", "draw", "explain", "jvp", "grad", "jacobian", "hessian", "nn", "losses", "optim",
           "datasets", "serialize", "__version__"]

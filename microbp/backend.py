"""Choosing where the sweeps run: "python" (pyexec.py), "c" (the cffi module
built from csrc/), or "auto" (C when it is built, else Python).

The choice starts from the environment variable MICROBP_BACKEND (read at
import, default "auto"). set_backend() changes it for the whole process;
`with use_backend(name):` changes it for the current thread only, until the
block ends. get_backend() names the backend in force ("c" or "python").
"""
from __future__ import annotations

import contextlib
import os
import threading
from types import ModuleType
from typing import Iterator, Optional

CHOICES = ("auto", "c", "python")

_cexec: Optional[ModuleType]
_C_ERROR: Optional[ImportError]
try:
    from . import cexec as _cexec
    _C_ERROR = None
except ImportError as e:                 # the C core was not built
    _cexec = None
    _C_ERROR = e

from . import pyexec as _pyexec


class BackendError(ValueError):
    """An unknown backend name, or "c" asked for where it is not built."""


def available_backends() -> list[str]:
    """The backends this installation can run: ["python"] or ["c", "python"]."""
    return ["c", "python"] if _cexec is not None else ["python"]


def c_import_error() -> Optional[ImportError]:
    """Why the C core is missing (an ImportError), or None when it is built."""
    return _C_ERROR


def _resolve(name, what="backend"):
    if not isinstance(name, str):
        raise TypeError(f"{what} must be a str, one of {', '.join(CHOICES)}; "
                        f"got {type(name).__name__}")
    key = name.strip().lower()
    if key not in CHOICES:
        raise BackendError(f"unknown {what} {name!r}: choose one of {', '.join(CHOICES)}")
    if key == "auto":
        return "c" if _cexec is not None else "python"
    if key == "c" and _cexec is None:
        raise BackendError(
            f"the C backend is not available: importing microbp._cmicrobp failed ({_C_ERROR}). "
            "Install a C compiler (gcc) and reinstall microbp (pip install .) to build it, "
            "or use set_backend('python').")
    return key


def _from_environment():
    """The starting backend from MICROBP_BACKEND, or the error to raise at its
    first use (import microbp stays silent). With MICROBP_REQUIRE_C=1, "auto"
    without a C core is such an error too."""
    name = os.environ.get("MICROBP_BACKEND") or "auto"
    try:
        resolved = _resolve(name, "MICROBP_BACKEND")
    except (BackendError, TypeError) as e:
        return None, e
    if (resolved == "python" and name.strip().lower() == "auto"
            and os.environ.get("MICROBP_REQUIRE_C") == "1"):
        return None, BackendError(
            f"MICROBP_REQUIRE_C=1 but the C core is not built: importing microbp._cmicrobp "
            f"failed ({_C_ERROR}). Install a C compiler (gcc) and reinstall microbp "
            "(pip install -v . shows the build output).")
    return resolved, None


_default, _default_error = _from_environment()


class _Chosen(threading.local):
    name: Optional[str] = None      # use_backend's choice in this thread (a class
                                    # default: no AttributeError to catch per read)


_local = _Chosen()


def set_backend(name: str) -> None:
    """Use backend `name` ("auto", "c" or "python"; case and surrounding spaces
    ignored) in every thread from now on (a thread inside `use_backend` keeps
    its own until the block ends). TypeError if name is not a str;
    BackendError (a ValueError) for an unknown name or "c" where the C core
    is not built, and the backend stays as it was."""
    global _default, _default_error
    _default, _default_error = _resolve(name), None


def get_backend() -> str:
    """The backend in force in this thread: "c" or "python". Raises the
    error of MICROBP_BACKEND (BackendError, or TypeError) when the
    environment asked for a backend that cannot be used and no set_backend()
    or use_backend() has chosen one since."""
    name = _local.name or _default
    if name is None:
        raise _default_error
    return name


@contextlib.contextmanager
def use_backend(name: str) -> Iterator[str]:
    """`with use_backend("python"): ...` runs the block in that backend (this
    thread only); `as` gives the resolved name ("c" or "python"). name as
    for set_backend(): TypeError or BackendError before the block runs."""
    resolved = _resolve(name)
    previous = _local.name
    _local.name = resolved
    try:
        yield resolved
    finally:
        _local.name = previous


def executor(name: Optional[str] = None) -> Optional[ModuleType]:
    """The executor module of backend `name` ("c" or "python"; default: the
    one in force): cexec or pyexec. None for "c" when the C core is not
    built (get_backend() never names it then)."""
    return _cexec if (name or get_backend()) == "c" else _pyexec

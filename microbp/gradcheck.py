"""gradcheck: compare backward()'s gradients with central differences.

    gradcheck(lambda a, b: (a * b).tanh(), [Value(0.3), Value(-1.2)])   # -> True

f(*values) must build a scalar Value from `values`. backward() runs once on
it for the analytic gradients; then each value's .data is nudged by +-eps
and f is evaluated again for the numeric ones. A value passes when
|analytic - numeric| <= atol + rtol * |numeric|; otherwise GradcheckError
names every value that failed.

gradcheck leaves no trace: the .data and .grad of every value, and the .grad
of every node of f's graph (parameters that f uses but that are not checked,
say), are what they were before the call, whether it returns or raises.
"""
from __future__ import annotations

from typing import Callable, Sequence

from .checks import setting
from .engine import Value
from .graph import topo


class GradcheckError(AssertionError):
    """An analytic gradient that disagrees with its central difference."""


def _scalar(f: Callable[..., Value], values: list[Value]) -> Value:
    out = f(*values)
    if not isinstance(out, Value):
        raise TypeError(f"f must return a Value, not {type(out).__name__}")
    return out


def _name(i, v):
    return f"values[{i}]" + (f" ({v.label!r})" if v.label else "")


def gradcheck(f: Callable[..., Value], values: Sequence[Value], eps: float = 1e-6,
              atol: float = 1e-6, rtol: float = 1e-4) -> bool:
    """True if backward() on f(*values) agrees with central differences for
    every value, else raise GradcheckError.

    Args:
        f: a function of len(values) Values that returns a scalar Value.
        values: a non-empty list or tuple of the Values to check.
        eps: the step of the central differences, a finite number > 0.
        atol, rtol: a value passes when |analytic - numeric| <= atol + rtol *
            |numeric| (finite numbers >= 0).

    Returns True. Raises GradcheckError (an AssertionError) naming every
    value whose gradients disagree (a nan disagrees); TypeError if f is not
    callable or does not return a Value, if values is not a list or tuple
    of Values, or a setting is not a number; ValueError if values is empty,
    a setting is out of range, or eps is too small to move a value. Every
    .data and .grad is restored, also on error."""
    if not callable(f):
        raise TypeError(f"f must be callable, not {type(f).__name__}")
    if isinstance(values, Value) or not isinstance(values, (list, tuple)):
        raise TypeError(f"values must be a list of Values, not {type(values).__name__}")
    if not values:
        raise ValueError("values is empty: give at least one Value to check")
    for i, v in enumerate(values):
        if not isinstance(v, Value):
            raise TypeError(f"values[{i}] must be a Value, not {type(v).__name__}")
    eps = setting(eps, "eps")
    atol = setting(atol, "atol", allow_zero=True)
    rtol = setting(rtol, "rtol", allow_zero=True)

    values = list(values)
    saved = [(v.data, v.grad) for v in values]
    try:
        analytic = _analytic(f, values)
        failures = []
        for i, v in enumerate(values):
            num = _numeric(f, values, i, eps)
            ana = analytic[i]
            diff = abs(ana - num)
            if not (ana == num or diff <= atol + rtol * abs(num)):   # nan fails
                failures.append(f"{_name(i, v)}: analytic {ana!r}, numeric {num!r}, "
                                f"difference {diff!r}")
    finally:
        for v, (data, grad) in zip(reversed(values), reversed(saved)):
            v.data, v.grad = data, grad
    if failures:
        raise GradcheckError(
            f"gradcheck failed for {len(failures)} of {len(values)} values "
            f"(eps={eps}, atol={atol}, rtol={rtol}):\n  " + "\n  ".join(failures))
    return True


def _analytic(f, values):
    """d f / d v for each v, by one backward() from zeroed gradients (a value
    f does not use gets 0); the gradients of f's graph are put back afterwards."""
    out = _scalar(f, values)
    nodes = topo(out)
    before = [n.grad for n in nodes]
    try:
        for v in values:
            v.grad = 0.0
        out.backward()
        return [v.grad for v in values]
    finally:
        for n, g in zip(nodes, before):
            n.grad = g


def _numeric(f, values, i, eps):
    """(f(x + eps) - f(x - eps)) / (step) for values[i], where step is the
    distance actually moved, (x + eps) - (x - eps) in floats (2 eps up to
    rounding). values[i].data is restored."""
    v = values[i]
    x = v.data
    hi, lo = x + eps, x - eps
    if hi == lo:
        raise ValueError(f"eps={eps} does not move {_name(i, v)} (data {x!r}): "
                         "use a larger eps")
    try:
        v.data = hi
        f_hi = _scalar(f, values).data
        v.data = lo
        f_lo = _scalar(f, values).data
    finally:
        v.data = x
    return (f_hi - f_lo) / (hi - lo)

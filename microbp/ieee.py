"""IEEE-754 versions of the float operations that Python raises on.

Each returns exactly what the C library returns (Python's math module calls
the same libm functions for every finite case), so that the pure-Python
executor and the C core give the same doubles: 1/0 = inf, log(0) = -inf,
(-8) ** 0.5 = nan, exp(1000) = inf, sqrt(-1) = nan. No exception escapes.
"""
from __future__ import annotations

import math

inf = math.inf
nan = inf - inf     # the default nan of the hardware, as C's 0/0 and log(-1) give it
                    # (math.nan has the other sign bit on x86)


def div(x: float, y: float) -> float:
    """x / y, with C's results for a zero divisor."""
    try:
        return x / y
    except ZeroDivisionError:          # x / +-0
        if x != x:
            return x                   # nan/0: the nan goes on, as in C
        if x == 0.0:
            return nan                 # 0/0
        return math.copysign(inf, x) * math.copysign(1.0, y)


def _odd_integer(y: float) -> bool:
    return y == y and abs(y) != inf and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def pow(x: float, y: float) -> float:
    """C's pow(x, y)."""
    try:
        return math.pow(x, y)
    except ValueError:                 # 0 ** negative (a pole) or negative ** non-integer
        if x == 0.0:
            return math.copysign(inf, x) if _odd_integer(y) else inf
        return nan
    except OverflowError:
        return -inf if (x < 0.0 and _odd_integer(y)) else inf


def exp(x: float) -> float:
    """C's exp(x): inf on overflow."""
    try:
        return math.exp(x)
    except OverflowError:
        return inf


def log(x: float) -> float:
    """C's log(x): log(+-0) = -inf, log(negative) = nan."""
    try:
        return math.log(x)
    except ValueError:
        return -inf if x == 0.0 else nan


def sqrt(x: float) -> float:
    """C's sqrt(x): sqrt(-0.0) = -0.0, sqrt(negative) = nan."""
    try:
        return math.sqrt(x)
    except ValueError:
        return nan


def sign(x: float) -> float:
    """The sign of x: 1.0, -1.0, or 0.0 for +-0 and nan, like torch.sign."""
    if x > 0.0:
        return 1.0
    if x < 0.0:
        return -1.0
    return 0.0


tanh = math.tanh       # never raises
fabs = math.fabs

"""Argument checks shared by the public entry points: numbers and settings.

One rule for numbers everywhere (Value data, model inputs, batch entries,
loss targets, parameters, state dicts): an int, a float, or any other real
number type (numbers.Real, e.g. numpy's float64 or a Fraction) is accepted
and converted to a Python float (float64); bool (a slip in a list of
numbers), complex, Decimal, strings and arrays are a TypeError naming what was
expected; an int too large for a float is a ValueError.
"""
from __future__ import annotations

import math
import numbers
import os
import random
from typing import Any, Union

# a file path, as open() takes it
PathLike = Union[str, os.PathLike[str]]

# where random numbers come from: None (seeded by the OS), an int seed, or a
# random.Random (used as is)
Seed = Union[None, int, random.Random]


def as_float(x: Any, what: str = "data") -> float:
    """x (a real number, not a bool) as a Python float; TypeError naming
    `what` for any other type, ValueError for an int too large for a float."""
    if type(x) is float:
        return x
    if isinstance(x, numbers.Real) and not isinstance(x, bool):
        try:
            return float(x)
        except OverflowError:
            # a Real too big for float() (an int, a Fraction): int() takes it
            raise ValueError(f"{what}: an int of {int(x).bit_length()} bits is too large "  # type: ignore[call-overload]
                             "for a float") from None
    raise TypeError(f"{what} must be an int or float, not {type(x).__name__}")


def setting(x: Any, name: str, allow_zero: bool = False) -> float:
    """x as a finite float > 0 (>= 0 with allow_zero), for a setting such as a
    learning rate or a tolerance; TypeError/ValueError naming `name`."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be a number, not {type(x).__name__}")
    x = as_float(x, name)
    if not math.isfinite(x) or x < 0.0 or (x == 0.0 and not allow_zero):
        raise ValueError(f"{name} must be {'>= 0' if allow_zero else '> 0'} and finite, got {x!r}")
    return x


def is_sequence(x):
    """True when x is a list, a tuple or a 1-D array (numpy's, or anything with
    len(), indexing and ndim == 1): what model inputs and loss targets accept."""
    if isinstance(x, (list, tuple)):
        return True
    if isinstance(x, (str, bytes)) or not (hasattr(x, "__len__") and hasattr(x, "__getitem__")):
        return False
    return getattr(x, "ndim", 1) == 1

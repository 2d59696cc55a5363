"""Small deterministic data sets for the examples and the benchmark (no numpy,
no sklearn): two interleaving half-moons and a sine curve; and `batches`,
which deals the rows of a data set out as shuffled mini-batches.

    X, y = make_moons(100)                       # MOONS_L2: its L2 weight
    for batch in batches([x + [t] for x, t in zip(X, y)], 20, seed=0):
        tape.forward(batch)                      # a microbp.Batch of <= 20 rows
"""
from __future__ import annotations

import math
import numbers
import random
from typing import Any, Iterator, Optional

from .checks import Seed
from .tape import Batch

MOONS_L2 = 1e-4      # the weight of the L2 term in the moons workload's loss
MAX_ROWS = 10 ** 7   # the most points make_moons and make_sine build (a list of floats)


def _count(n: int, name: str = "n", low: int = 2) -> int:
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(n).__name__}")
    if n < low:
        raise ValueError(f"{name} must be at least {low}, got {n}")
    if n > MAX_ROWS:
        raise ValueError(f"{name} must be at most {MAX_ROWS:,} (the data is a list of "
                         f"floats), got {n:.3g}" if n < 10 ** 300 else
                         f"{name} must be at most {MAX_ROWS:,}, got an int of "
                         f"{int(n).bit_length()} bits")
    return int(n)


def _real(x: float, name: str, low: Optional[float] = None) -> float:
    """x as a finite float (>= low when given), or TypeError / ValueError."""
    if isinstance(x, bool) or not isinstance(x, numbers.Real):
        raise TypeError(f"{name} must be an int or float, not {type(x).__name__}")
    try:
        f = float(x)
    except OverflowError:
        raise ValueError(f"{name} is too large for a float") from None
    if not math.isfinite(f):
        raise ValueError(f"{name} must be finite, got {f!r}")
    if low is not None and f < low:
        raise ValueError(f"{name} must be at least {low}, got {f!r}")
    return f


def _rng(seed: Seed, name: str = "seed") -> random.Random:
    """A random.Random from None (seeded by the OS), an int, or a Random."""
    if seed is None:
        return random.Random()
    if isinstance(seed, random.Random):
        return seed
    if isinstance(seed, numbers.Integral) and not isinstance(seed, bool):
        return random.Random(int(seed))
    raise TypeError(f"{name} must be None, an int or a random.Random, "
                    f"not {type(seed).__name__}")


def make_moons(n: int = 100, noise: float = 0.1, seed: Seed = 1) -> tuple[list[list[float]], list[float]]:
    """n points of two interleaving half circles with Gaussian noise of standard
    deviation `noise`; labels -1/+1. Returns (X, y): X a list of [x0, x1], y a
    list of -1.0/+1.0, in shuffled order. `seed` (an int, a random.Random or
    None) fixes the noise and the order.

    TypeError if n is not an int, noise not a real number or seed not None,
    an int or a Random (bool is refused everywhere); ValueError if n is
    below 2 or above MAX_ROWS, or noise is negative or not finite."""
    n = _count(n)
    noise = _real(noise, "noise", low=0.0)
    rng = _rng(seed)
    n_out = n // 2
    n_in = n - n_out
    X, y = [], []
    for k in range(n_out):                      # upper moon, label -1
        t = math.pi * k / max(n_out - 1, 1)
        X.append([math.cos(t), math.sin(t)])
        y.append(-1.0)
    for k in range(n_in):                       # lower moon, label +1
        t = math.pi * k / max(n_in - 1, 1)
        X.append([1.0 - math.cos(t), 0.5 - math.sin(t)])
        y.append(1.0)
    X = [[a + rng.gauss(0.0, noise), b + rng.gauss(0.0, noise)] for a, b in X]
    order = list(range(n))
    rng.shuffle(order)
    return [X[i] for i in order], [y[i] for i in order]


def make_sine(n: int = 64, lo: float = -math.pi,
              hi: float = math.pi) -> tuple[list[float], list[float]]:
    """n evenly spaced points of y = sin(x) on [lo, hi]: (xs, ys), two lists
    of floats. TypeError if n is not an int or lo, hi not real numbers (bool
    is refused); ValueError if n is below 2 or above MAX_ROWS, lo or hi is
    not finite, or lo >= hi."""
    n = _count(n)
    lo, hi = _real(lo, "lo"), _real(hi, "hi")
    if not lo < hi:
        raise ValueError(f"lo must be below hi, got lo={lo!r}, hi={hi!r}")
    xs = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
    return xs, [math.sin(x) for x in xs]


def _rows(rows: Any) -> list[Any]:
    """rows as a list of lists: from a list or tuple of rows, a microbp.Batch,
    or a 2-D array (anything with .ndim == 2 and .tolist(), such as numpy's)."""
    if isinstance(rows, Batch):
        return rows.to_list()
    if getattr(rows, "ndim", None) == 2 and hasattr(rows, "tolist"):
        return rows.tolist()
    if getattr(rows, "ndim", None) is not None:
        raise ValueError(f"rows must be 2-D (one row per sample), got an array with "
                         f"{rows.ndim} dimension(s)")
    if not isinstance(rows, (list, tuple)):
        raise TypeError(f"rows must be a list of rows, a Batch or a 2-D array, "
                        f"not {type(rows).__name__}")
    return [r.tolist() if getattr(r, "ndim", None) == 1 else r for r in rows]


def batches(rows: Any, size: int, shuffle: bool = True,
            seed: Seed = None) -> Iterator[Batch]:
    """Deal `rows` (a list of rows of numbers, a Batch, or a 2-D numpy array) out
    as microbp.Batch objects of `size` rows each; the last one holds what is
    left (fewer rows when size does not divide the count). One call is one
    pass over the data (an epoch); with shuffle=True the rows come in a random
    order drawn from `seed` (None, an int or a random.Random: pass one Random
    to get a new order every epoch, or an int for the same order every time).

    Everything is checked when batches() is called, before the first Batch:
    rows of different lengths, a non-number, a size that is not a positive
    int. TypeError if rows is not a list or tuple of rows, a Batch or an
    array, an entry is not a real number, size is not an int, shuffle not a
    bool, or seed not None, an int or a Random; ValueError if an array is
    not 2-D, the rows are empty or differ in length, or size is below 1.
    Returns an iterator of Batch objects."""
    rows = _rows(rows)
    if isinstance(size, bool) or not isinstance(size, numbers.Integral):
        raise TypeError(f"size must be an int, not {type(size).__name__}")
    if size < 1:
        raise ValueError(f"size must be a positive int, got {size}")
    if not isinstance(shuffle, bool):
        raise TypeError(f"shuffle must be a bool, not {type(shuffle).__name__}")
    rng = _rng(seed)
    whole = Batch(rows)                       # checks every row and entry
    order = list(range(whole.nrows))
    if shuffle:
        rng.shuffle(order)
    size = int(size)
    return _deal(whole, order, size)


def _deal(whole, order, size):
    w, flat = whole.width, whole.rows
    for start in range(0, len(order), size):
        yield Batch([flat[i * w:(i + 1) * w].tolist() for i in order[start:start + size]], w)

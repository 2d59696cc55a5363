"""Small deterministic data sets for the examples and the benchmark (no numpy,
no sklearn): two interleaving half-moons and a sine curve."""
import math
import random


def _count(n):
    if isinstance(n, bool) or not isinstance(n, int):
        raise TypeError(f"n must be an int, not {type(n).__name__}")
    if n < 2:
        raise ValueError(f"n must be at least 2, got {n}")


def make_moons(n=100, noise=0.1, seed=1):
    """n points of two interleaving half circles with Gaussian noise; labels -1/+1.
    Returns (X, y): X a list of [x0, x1], y a list of -1.0/+1.0."""
    _count(n)
    rng = seed if isinstance(seed, random.Random) else random.Random(seed)
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


def make_sine(n=64, lo=-math.pi, hi=math.pi):
    """n evenly spaced points of y = sin(x) on [lo, hi]: (xs, ys)."""
    _count(n)
    xs = [lo + (hi - lo) * k / (n - 1) for k in range(n)]
    return xs, [math.sin(x) for x in xs]

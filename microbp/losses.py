"""Loss functions and softmax over lists of Values.

    loss = losses.mse(preds, targets)          # a Value; loss.backward()

Every function takes lists (or tuples) whose entries are Values or plain
numbers; a number becomes a constant node, so a loss recorded into a Tape
keeps its targets fixed instead of treating them as parameters. Each result
is a Value, even when every entry is a number. Sums run left to right and
means divide by the count, so a loss is the same graph in every backend.

The exp/log formulas are arranged to stay finite for large |logit|:
softmax and friends subtract max(logits) (its .data, as a constant: softmax
does not change under a shift, so the gradients stay exact), and
bce_with_logits never exponentiates a positive number and computes
log(1 + exp(-|z|)) to a few ulps, with one graph for either sign of z.
"""
from __future__ import annotations

import numbers
from typing import Sequence

from .checks import is_sequence
from .engine import Operand, Value, as_value

# every loss takes lists or tuples (or 1-D arrays) of these
Entries = Sequence[Operand]


# ---------------------------------------------------------------------------
# argument checks

def _entries(xs: Entries, name: str, fname: str) -> list[Value]:
    """xs as a list of Values: numbers become constant nodes."""
    if not is_sequence(xs):
        raise TypeError(f"{fname}: {name} must be a list of Values or numbers, "
                        f"not {type(xs).__name__}")
    return [as_value(x, f"{fname}: {name}[{i}]") for i, x in enumerate(xs)]


def _pair(a: Entries, b: Entries, an: str, bn: str,
          fname: str) -> tuple[list[Value], list[Value]]:
    """Two lists of one non-zero length, as lists of Values."""
    a, b = _entries(a, an, fname), _entries(b, bn, fname)
    if len(a) != len(b) or not a:
        raise ValueError(f"{fname}: {an} has {len(a)} entries and {bn} has {len(b)}; "
                         "they need the same length, at least 1")
    return a, b


def _nonempty(xs: Entries, name: str, fname: str) -> list[Value]:
    xs = _entries(xs, name, fname)
    if not xs:
        raise ValueError(f"{fname}: {name} is empty: give at least one entry")
    return xs


def _sum(terms: list[Value]) -> Value:
    """terms[0] + terms[1] + ... added left to right (no extra 0 node)."""
    s = terms[0]
    for t in terms[1:]:
        s = s + t
    return s


def _mean(terms: list[Value]) -> Value:
    return _sum(terms) / len(terms)


# ---------------------------------------------------------------------------
# regression

def mse(preds: Entries, targets: Entries) -> Value:
    """Mean squared error: mean of (p - t)**2.

    Args:
        preds: a list or tuple of Values or real numbers (numbers become
            constants).
        targets: the same, of the same length.

    Returns a Value. Raises TypeError if either is not a list or tuple or
    holds anything else than a Value or a real number (bool included),
    ValueError if their lengths differ or are 0."""
    p, t = _pair(preds, targets, "preds", "targets", "mse")
    return _mean([(pi - ti) ** 2 for pi, ti in zip(p, t)])


def half_sse(preds: Entries, targets: Entries) -> Value:
    """Half the sum of squared errors: 1/2 * sum of (t - p)**2 (gradient p - t).

    Args:
        preds: a list or tuple of Values or real numbers (numbers become
            constants).
        targets: the same, of the same length.

    Returns a Value. Raises TypeError if either is not a list or tuple or
    holds anything else than a Value or a real number (bool included),
    ValueError if their lengths differ or are 0."""
    p, t = _pair(preds, targets, "preds", "targets", "half_sse")
    return 0.5 * _sum([(ti - pi) ** 2 for pi, ti in zip(p, t)])


# ---------------------------------------------------------------------------
# binary classification

def hinge(scores: Entries, labels: Entries) -> Value:
    """Max-margin loss: mean of relu(1 - y*s), for labels y in {+1, -1}.

    Args:
        scores: a list or tuple of Values or real numbers (numbers become
            constants).
        labels: the same, of the same length.

    Returns a Value. Raises TypeError if either is not a list or tuple or
    holds anything else than a Value or a real number (bool included),
    ValueError if their lengths differ or are 0, or if a label is not +1
    or -1."""
    s, y = _pair(scores, labels, "scores", "labels", "hinge")
    for i, yi in enumerate(y):
        if yi.data != 1.0 and yi.data != -1.0:
            raise ValueError(f"hinge: labels[{i}] is {yi.data!r}; labels must be +1 or -1")
    return _mean([(1.0 - yi * si).relu() for si, yi in zip(s, y)])


def _log1p(u: Value) -> Value:
    """log(1 + u) for a Value u >= 0, to a few ulps even where 1 + u rounds to 1.

    w = 1 + u is rounded; c = (w - 1) - u is exactly its rounding error (both
    subtractions are exact), so 1 + u = w - c and
    log(1 + u) = log(w) + log(1 - c/w) = log(w) - c/w, up to (c/w)**2 / 2 <= 2**-107.
    For u below 2**-53, w = 1 and this gives u itself. No branch: the same
    graph is right for every u, so a Tape may replay it at any value."""
    w = 1.0 + u
    return w.log() - ((w - 1.0) - u) / w


def _bce_term(z: Value, t: Value) -> Value:
    """softplus(z) - z*t for one logit, as one graph that is right for either
    sign of z (see bce_with_logits)."""
    # Two private copies of z (z + 0.0 is z): each part below sums its own
    # gradient contributions before they reach z, so the exactly cancelling
    # terms of one part never round away the tiny gradient of the other.
    zl, ze = z + 0.0, z + 0.0
    r = zl.relu()
    m = zl - r                      # min(z, 0), exactly
    linear = r * (1.0 - t) - m * t  # z*(1 - t) for z > 0, -z*t for z < 0: both >= 0
    re = ze.relu()
    u = (ze - 2.0 * re).exp()       # exp(-|z|), exactly -|z| inside: never overflows
    return linear + _log1p(u)


def bce_with_logits(logits: Entries, targets: Entries) -> Value:
    """Mean binary cross-entropy of sigmoid(z) against targets t in [0, 1]:
    mean of softplus(z) - z*t, with softplus(z) = log(1 + exp(z)).

    Each term is computed as
        max(z, 0)*(1 - t) - min(z, 0)*t + log1p(exp(-|z|))
    a sum of three terms >= 0 (nothing cancels), with exp only ever of a
    number <= 0 and log1p accurate to a few ulps: the loss is exact to about
    1e-15 relative at every finite z (z = 40 gives 4.2e-18, not 0), and the
    gradient is sigmoid(z) - t to a few ulps. max and min are relu nodes, so
    the graph holds no choice made from z's value: a Tape recorded at one z
    is exact at every other z, either sign. At z = 0 exactly, the gradient
    is sigmoid(0) - t = 0.5 - t (the kinks are arranged to agree there). A
    logit of +inf gives nan, -inf gives inf (t > 0) or nan (t = 0). Targets
    are checked when the graph is built: a Tape that replays a target slot
    does not check the rows it is given.

    Args:
        logits: a list or tuple of Values or real numbers.
        targets: the same, of the same length, each in [0, 1].

    Returns a Value. Raises TypeError if either is not a list or tuple or
    holds anything else than a Value or a real number (bool included),
    ValueError if their lengths differ or are 0, or if a target is outside
    [0, 1] (nan included).
    """
    z, t = _pair(logits, targets, "logits", "targets", "bce_with_logits")
    for i, ti in enumerate(t):
        if not 0.0 <= ti.data <= 1.0:
            raise ValueError(f"bce_with_logits: targets[{i}] is {ti.data!r}; "
                             "targets must be in [0, 1]")
    return _mean([_bce_term(zi, ti) for zi, ti in zip(z, t)])


# ---------------------------------------------------------------------------
# multi-class classification

def _shifted(logits: Entries, fname: str) -> list[Value]:
    """logits minus max(logits).data, a constant: every shifted value is <= 0."""
    z = _nonempty(logits, "logits", fname)
    m = max(zi.data for zi in z)
    return [zi - m for zi in z]


def _log_sum_exp(shifted: list[Value]) -> Value:
    return _sum([si.exp() for si in shifted]).log()


def softmax(logits: Entries) -> list[Value]:
    """exp(z_i) / sum_j exp(z_j), as a list of Values (shifted by max(z)).

    `logits` is a non-empty list or tuple of Values or real numbers.
    TypeError if it is not a list or tuple or holds anything else than a
    Value or a real number (bool included), ValueError if it is empty."""
    e = [si.exp() for si in _shifted(logits, "softmax")]
    total = _sum(e)
    return [ei / total for ei in e]


def log_softmax(logits: Entries) -> list[Value]:
    """z_i - log(sum_j exp(z_j)), as a list of Values (shifted by max(z)).

    `logits` is a non-empty list or tuple of Values or real numbers.
    TypeError if it is not a list or tuple or holds anything else than a
    Value or a real number (bool included), ValueError if it is empty."""
    s = _shifted(logits, "log_softmax")
    lse = _log_sum_exp(s)
    return [si - lse for si in s]


def cross_entropy(logits: Entries, target: int) -> Value:
    """-log softmax(logits)[target] for one sample whose class is the int
    `target`; its gradient with respect to the logits is softmax - onehot.

    `logits` is a non-empty list or tuple of Values or real numbers, `target`
    an int in 0..len(logits)-1. Returns a Value. TypeError if target is not
    an int (bool included) or logits is not a list or tuple of Values and
    real numbers; ValueError if logits is empty or target is out of range."""
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise TypeError(f"cross_entropy: target must be an int class index, "
                        f"not {type(target).__name__}")
    s = _shifted(logits, "cross_entropy")
    if not 0 <= target < len(s):
        raise ValueError(f"cross_entropy: target {target} is out of range for {len(s)} "
                         f"classes: give a class index in 0..{len(s) - 1}")
    return _log_sum_exp(s) - s[int(target)]

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
bce_with_logits picks, per logit, the form of softplus that never
exponentiates a positive number.
"""
import numbers

from .engine import Value, as_value


# ---------------------------------------------------------------------------
# argument checks

def _entries(xs, name, fname):
    """xs as a list of Values: numbers become constant nodes."""
    if not isinstance(xs, (list, tuple)):
        raise TypeError(f"{fname}: {name} must be a list of Values or numbers, "
                        f"not {type(xs).__name__}")
    return [as_value(x, f"{fname}: {name}[{i}]") for i, x in enumerate(xs)]


def _pair(a, b, an, bn, fname):
    """Two lists of one non-zero length, as lists of Values."""
    a, b = _entries(a, an, fname), _entries(b, bn, fname)
    if len(a) != len(b) or not a:
        raise ValueError(f"{fname}: {an} has {len(a)} entries and {bn} has {len(b)}; "
                         "they need the same length, at least 1")
    return a, b


def _nonempty(xs, name, fname):
    xs = _entries(xs, name, fname)
    if not xs:
        raise ValueError(f"{fname}: {name} is empty: give at least one entry")
    return xs


def _sum(terms):
    """terms[0] + terms[1] + ... added left to right (no extra 0 node)."""
    s = terms[0]
    for t in terms[1:]:
        s = s + t
    return s


def _mean(terms):
    return _sum(terms) / len(terms)


# ---------------------------------------------------------------------------
# regression

def mse(preds, targets):
    """Mean squared error: mean of (p - t)**2."""
    p, t = _pair(preds, targets, "preds", "targets", "mse")
    return _mean([(pi - ti) ** 2 for pi, ti in zip(p, t)])


def half_sse(preds, targets):
    """Half the sum of squared errors: 1/2 * sum of (t - p)**2 (gradient p - t)."""
    p, t = _pair(preds, targets, "preds", "targets", "half_sse")
    return 0.5 * _sum([(ti - pi) ** 2 for pi, ti in zip(p, t)])


# ---------------------------------------------------------------------------
# binary classification

def hinge(scores, labels):
    """Max-margin loss: mean of relu(1 - y*s), for labels y in {+1, -1}."""
    s, y = _pair(scores, labels, "scores", "labels", "hinge")
    for i, yi in enumerate(y):
        if yi.data != 1.0 and yi.data != -1.0:
            raise ValueError(f"hinge: labels[{i}] is {yi.data!r}; labels must be +1 or -1")
    return _mean([(1.0 - yi * si).relu() for si, yi in zip(s, y)])


def bce_with_logits(logits, targets):
    """Mean binary cross-entropy of sigmoid(z) against targets t in [0, 1]:
    mean of softplus(z) - z*t, with softplus(z) = log(1 + exp(z)).

    Per logit, the form is chosen from its value at this point:
        z >= 0:  z*(1 - t) + log(1 + exp(-z))
        z <  0:  log(1 + exp(z)) - z*t
    Both are the same smooth function, so the gradient is sigmoid(z) - t
    everywhere, z = 0 included (the one-formula version
    relu(z) - z*t + log(1 + exp(-|z|)) gets -t there, from the kinks of relu
    and abs). exp only ever sees a number <= 0, so z = +-1000 gives a finite
    loss and the exact gradient.
    """
    z, t = _pair(logits, targets, "logits", "targets", "bce_with_logits")
    for i, ti in enumerate(t):
        if not 0.0 <= ti.data <= 1.0:
            raise ValueError(f"bce_with_logits: targets[{i}] is {ti.data!r}; "
                             "targets must be in [0, 1]")
    terms = []
    for zi, ti in zip(z, t):
        if zi.data >= 0.0:
            terms.append(zi * (1.0 - ti) + (1.0 + (-zi).exp()).log())
        else:
            terms.append((1.0 + zi.exp()).log() - zi * ti)
    return _mean(terms)


# ---------------------------------------------------------------------------
# multi-class classification

def _shifted(logits, fname):
    """logits minus max(logits).data, a constant: every shifted value is <= 0."""
    z = _nonempty(logits, "logits", fname)
    m = max(zi.data for zi in z)
    return [zi - m for zi in z]


def _log_sum_exp(shifted):
    return _sum([si.exp() for si in shifted]).log()


def softmax(logits):
    """exp(z_i) / sum_j exp(z_j), as a list of Values (shifted by max(z))."""
    e = [si.exp() for si in _shifted(logits, "softmax")]
    total = _sum(e)
    return [ei / total for ei in e]


def log_softmax(logits):
    """z_i - log(sum_j exp(z_j)), as a list of Values (shifted by max(z))."""
    s = _shifted(logits, "log_softmax")
    lse = _log_sum_exp(s)
    return [si - lse for si in s]


def cross_entropy(logits, target):
    """-log softmax(logits)[target] for one sample whose class is the int
    `target`; its gradient with respect to the logits is softmax - onehot."""
    if isinstance(target, bool) or not isinstance(target, numbers.Integral):
        raise TypeError(f"cross_entropy: target must be an int class index, "
                        f"not {type(target).__name__}")
    s = _shifted(logits, "cross_entropy")
    if not 0 <= target < len(s):
        raise ValueError(f"cross_entropy: target {target} is out of range for {len(s)} "
                         f"classes: give a class index in 0..{len(s) - 1}")
    return _log_sum_exp(s) - s[int(target)]

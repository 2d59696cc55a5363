"""Optimizers over a list of parameter Values: SGD, Momentum and Adam.

Each step updates the flat stores where the parameters live (params.py) in
one call per store: the C kernel (csrc/microbp.c) in the C backend, its
Python twin (below, beside each optimizer) otherwise; both give the same
doubles. Plain Values (not Parameters) are copied into a private store of the
optimizer and back, each step. `.data` and `.grad` stay truthful at all times.
Settings (lr, decay, mu, betas, eps) are checked when set, in the constructor
and afterwards.
"""
from __future__ import annotations

from array import array
from typing import Iterable, Sequence

from . import ieee, params as _params
from .backend import get_backend, executor
from .checks import setting
from .engine import Value
from .tapeformat import TapeError, check_slots


def _kernel(python_kernel, name):
    """The C kernel `name` in the C backend, else the Python twin."""
    return getattr(executor("c"), name) if get_backend() == "c" else python_kernel


def _int32s(slots):
    """The slot numbers of `slots` (bytes of int32, or any sequence of ints)."""
    return memoryview(slots).cast("i") if isinstance(slots, (bytes, bytearray)) else slots


def _state(slots):
    """Zeros, one per slot of `slots` (bytes of int32): an optimizer's state."""
    return array("d", bytes(8 * len(_int32s(slots))))


def _zeros_if_prefix(slots):
    """Zeros to copy over a store's first k grads when `slots` are 0, 1, ...,
    k-1 in order (a whole model's store, the usual case): zero_grad is then
    one slice copy in either backend. None for any other slots."""
    s = _int32s(slots)
    return array("d", bytes(8 * len(s))) if list(s) == list(range(len(s))) else None


def _python_fill(dst, slots, value):
    s = _int32s(slots)
    check_slots(s, len(dst))
    for k in s:
        dst[k] = value


class Optimizer:
    """Base class: holds the parameters and their stores; zero_grad() for all.
    Subclasses check their own settings before calling this __init__, which
    changes nothing outside the optimizer.

    Args:
        params: the leaf Values to update (e.g. model.parameters()), a
            non-empty list or other iterable, each Value once.
        lr: the learning rate, a finite number > 0.

    Raises:
        TypeError: params is not an iterable of Values (a single Value is
            refused too), or lr is not a number.
        ValueError: params is empty, repeats a Value or holds a Value that
            is not a leaf; lr is not finite and > 0.
    """

    def __init__(self, params: Iterable[Value], lr: float) -> None:
        params = _params.leaf_values(params, "params", "e.g. model.parameters()")
        if not params:
            raise ValueError("params is empty: give the optimizer at least one Value")
        self.lr = lr
        self._params = tuple(params)
        self.steps = 0
        groups, plain = _params.groups(params)
        self._plain = tuple(params[i] for i in plain)
        if self._plain:                      # a private store for plain Values
            mirror = _params.ParamStore()
            mirror._data = array("d", bytes(8 * len(plain)))
            mirror._grad = array("d", bytes(8 * len(plain)))
            groups.append((mirror, array("i", range(len(plain))).tobytes(), plain))
        self._groups = tuple((store, slots) for store, slots, _ in groups)
        self._zeros = tuple(_zeros_if_prefix(slots) for _, slots in self._groups)
        self._slot_by_slot = any(z is None for z in self._zeros)
        # each store's grads must be this long (its largest slot + 1)
        self._ends = tuple(max(_int32s(slots), default=-1) + 1 for _, slots in self._groups)

    @property
    def params(self) -> tuple[Value, ...]:
        """The parameters, in the order given (a tuple)."""
        return self._params

    lr = property(lambda self: self._lr,
                  lambda self, x: setattr(self, "_lr", setting(x, "lr")),
                  doc="The learning rate: a finite float > 0, checked when set "
                      "(TypeError/ValueError).")

    def zero_grad(self) -> None:
        """Set the .grad of every parameter to 0."""
        # everything that can fail comes before the first write, so that a
        # backend that cannot be used (get_backend raises) or a store's grads
        # shorter than its slots leave every grad as it was
        fill = _kernel(_python_fill, "fill") if self._slot_by_slot else _python_fill
        for (store, slots), end in zip(self._groups, self._ends):
            if len(store._grad) < end:          # the kernel names it, writing nothing
                _kernel(_python_fill, "fill")(store._grad, slots, 0.0)
        for (store, slots), zeros in zip(self._groups, self._zeros):
            if zeros is None:
                fill(store._grad, slots, 0.0)   # (_slot_by_slot: the backend's kernel)
            else:
                store._grad[:len(zeros)] = zeros      # one copy, no resize
        for v in self._plain:
            v.grad = 0.0

    def step(self) -> None:
        """One update of every parameter's .data from its .grad (the rule of
        the subclass), in the backend in force; counts the step."""
        if self._plain:
            mirror = self._groups[-1][0]
            for j, v in enumerate(self._plain):
                mirror._data[j], mirror._grad[j] = v.data, v.grad
        self._update()
        if self._plain:
            data = self._groups[-1][0]._data
            for j, v in enumerate(self._plain):
                v.data = data[j]

    def _update(self):
        raise NotImplementedError


def _python_sgd(data, grad, slots, lr):
    s = _int32s(slots)
    check_slots(s, min(len(data), len(grad)))
    for k in s:
        data[k] = data[k] - lr * grad[k]


class SGD(Optimizer):
    """w <- w - lr_t * g, with lr_t = lr / (1 + decay * t) at step t = 0, 1, ...

    `SGD(params, lr=0.01, decay=0.0)`: params and lr as for Optimizer; decay
    a finite number >= 0. TypeError/ValueError for a bad argument (see
    Optimizer), nothing is changed then."""

    def __init__(self, params: Iterable[Value], lr: float = 0.01, decay: float = 0.0) -> None:
        self.decay = decay
        super().__init__(params, lr)

    decay = property(lambda self: self._decay,
                     lambda self, x: setattr(self, "_decay", setting(x, "decay", allow_zero=True)),
                     doc="The learning rate decay: a finite float >= 0, checked when set "
                         "(TypeError/ValueError).")

    def _update(self):
        lr = self.lr / (1.0 + self.decay * self.steps)
        sgd = _kernel(_python_sgd, "sgd")
        for store, slots in self._groups:
            sgd(store._data, store._grad, slots, lr)
        self.steps += 1


def _python_momentum(data, vel, grad, slots, lr, mu):
    s = _int32s(slots)
    if len(s) > len(vel):
        raise TapeError("the velocity array is shorter than the slots")
    check_slots(s, min(len(data), len(grad)))
    for j, k in enumerate(s):
        vel[j] = mu * vel[j] - lr * grad[k]           # v <- mu v - lr g
        data[k] = data[k] + vel[j]                    # w <- w + v


class Momentum(Optimizer):
    """v <- mu v - lr g;  w <- w + v  (one velocity per parameter, starting at 0).

    `Momentum(params, lr=0.01, mu=0.9)`: params and lr as for Optimizer; mu a
    finite number >= 0. TypeError/ValueError for a bad argument (see
    Optimizer), nothing is changed then."""

    def __init__(self, params: Iterable[Value], lr: float = 0.01, mu: float = 0.9) -> None:
        self.mu = mu
        super().__init__(params, lr)
        self._vel = tuple(_state(slots) for _, slots in self._groups)

    mu = property(lambda self: self._mu,
                  lambda self, x: setattr(self, "_mu", setting(x, "mu", allow_zero=True)),
                  doc="The momentum: a finite float >= 0, checked when set "
                      "(TypeError/ValueError).")

    def _update(self):
        momentum = _kernel(_python_momentum, "momentum")
        for (store, slots), vel in zip(self._groups, self._vel):
            momentum(store._data, vel, store._grad, slots, self.lr, self.mu)
        self.steps += 1


def _python_adam(data, m, v, grad, slots, lr, beta1, beta2, eps, bc1, bc2):
    s = _int32s(slots)
    if len(s) > min(len(m), len(v)):
        raise TapeError("the moment arrays are shorter than the slots")
    check_slots(s, min(len(data), len(grad)))
    for j, k in enumerate(s):
        gr = grad[k]
        m[j] = beta1 * m[j] + (1.0 - beta1) * gr
        v[j] = beta2 * v[j] + (1.0 - beta2) * (gr * gr)
        mhat, vhat = ieee.div(m[j], bc1), ieee.div(v[j], bc2)   # bias correction
        root = ieee.sqrt(vhat)                                   # C's sqrt: no exception
        data[k] = data[k] - ieee.div(lr * mhat, root + eps)


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction:
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    w <- w - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps).

    `Adam(params, lr=0.001, betas=(0.9, 0.999), eps=1e-8)`: params and lr as
    for Optimizer; betas a pair of numbers in [0, 1); eps a finite number
    > 0. TypeError/ValueError for a bad argument (see Optimizer and
    Adam.betas), nothing is changed then."""

    def __init__(self, params: Iterable[Value], lr: float = 0.001,
                 betas: Sequence[float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.betas = betas
        self.eps = eps
        super().__init__(params, lr)
        self._m = tuple(_state(slots) for _, slots in self._groups)
        self._v = tuple(_state(slots) for _, slots in self._groups)

    @property
    def betas(self) -> tuple[float, float]:
        """(beta1, beta2), each in [0, 1), checked when set: TypeError if not a
        tuple or list of numbers, ValueError if not two of them, each finite
        and in [0, 1)."""
        return (self.beta1, self.beta2)

    @betas.setter
    def betas(self, betas: Sequence[float]) -> None:
        if not isinstance(betas, (tuple, list)):
            raise TypeError(f"betas must be a pair (beta1, beta2), not {type(betas).__name__}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {len(betas)} numbers")
        b1, b2 = (setting(b, f"betas[{k}]", allow_zero=True) for k, b in enumerate(betas))
        if b1 >= 1.0 or b2 >= 1.0:
            raise ValueError(f"betas must be in [0, 1), got {tuple(betas)}")
        self.beta1, self.beta2 = b1, b2

    eps = property(lambda self: self._eps,
                   lambda self, x: setattr(self, "_eps", setting(x, "eps")),
                   doc="The term added to the root in the denominator: a finite float > 0, "
                       "checked when set (TypeError/ValueError).")

    def _update(self):
        t = self.steps + 1
        bc1, bc2 = 1.0 - self.beta1 ** t, 1.0 - self.beta2 ** t
        adam = _kernel(_python_adam, "adam")
        for (store, slots), m, v in zip(self._groups, self._m, self._v):
            adam(store._data, m, v, store._grad, slots, self.lr, self.beta1, self.beta2,
                 self.eps, bc1, bc2)
        self.steps = t





# the Python twins of the C core's optimizer kernels, by the C core's names
PYTHON_KERNELS = {"sgd": _python_sgd, "momentum": _python_momentum, "adam": _python_adam,
                  "fill": _python_fill}

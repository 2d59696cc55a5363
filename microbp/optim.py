"""Optimizers over a list of parameter Values: SGD, Momentum and Adam.

An optimizer binds its parameters to a ParamStore (params.py): their data and
grad then live in flat arrays, and step() / zero_grad() update them in one
call of the selected backend (the C and Python kernels give the same doubles).
`.data` and `.grad` of each Value stay truthful at all times.
"""
from array import array

from . import params as _params
from .backend import executor
from .engine import leaf_values, setting


class Optimizer:
    """Base class: holds the parameters and their stores; zero_grad() for all.
    Subclasses check their own settings before calling this __init__, which
    binds the parameters last: a constructor that fails changes nothing."""

    def __init__(self, params, lr):
        params = leaf_values(params, "params", "e.g. model.parameters()")
        if not params:
            raise ValueError("params is empty: give the optimizer at least one Value")
        self.lr = setting(lr, "lr")
        self.params = params
        self.steps = 0
        self._groups = [(store, slots) for store, slots, _ in _params.bind(params)]

    def zero_grad(self):
        """Set the .grad of every parameter to 0."""
        ex = executor()
        for store, slots in self._groups:
            ex.fill(store.grad, slots, 0.0)

    def step(self):
        raise NotImplementedError


class SGD(Optimizer):
    """w <- w - lr_t * g, with lr_t = lr / (1 + decay * t) at step t = 0, 1, ..."""

    def __init__(self, params, lr=0.01, decay=0.0):
        self.decay = setting(decay, "decay", allow_zero=True)
        super().__init__(params, lr)

    def step(self):
        lr = self.lr / (1.0 + self.decay * self.steps)
        ex = executor()
        for store, slots in self._groups:
            ex.sgd(store.data, store.grad, slots, lr)
        self.steps += 1


class Momentum(Optimizer):
    """v <- mu v - lr g;  w <- w + v  (one velocity per parameter, starting at 0)."""

    def __init__(self, params, lr=0.01, mu=0.9):
        self.mu = setting(mu, "mu", allow_zero=True)
        super().__init__(params, lr)
        self._vel = [array("d", bytes(8 * len(slots))) for _, slots in self._groups]

    def step(self):
        ex = executor()
        for (store, slots), vel in zip(self._groups, self._vel):
            ex.momentum(store.data, vel, store.grad, slots, self.lr, self.mu)
        self.steps += 1


class Adam(Optimizer):
    """Adam (Kingma & Ba) with bias correction:
    m <- b1 m + (1-b1) g;  v <- b2 v + (1-b2) g^2;
    w <- w - lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps)."""

    def __init__(self, params, lr=0.001, betas=(0.9, 0.999), eps=1e-8):
        if not isinstance(betas, (tuple, list)):
            raise TypeError(f"betas must be a pair (beta1, beta2), not {type(betas).__name__}")
        if len(betas) != 2:
            raise ValueError(f"betas must be a pair (beta1, beta2), got {len(betas)} numbers")
        self.beta1, self.beta2 = (setting(b, f"betas[{k}]", allow_zero=True)
                                  for k, b in enumerate(betas))
        if self.beta1 >= 1.0 or self.beta2 >= 1.0:
            raise ValueError(f"betas must be in [0, 1), got {tuple(betas)}")
        self.eps = setting(eps, "eps")
        super().__init__(params, lr)
        self._m = [array("d", bytes(8 * len(slots))) for _, slots in self._groups]
        self._v = [array("d", bytes(8 * len(slots))) for _, slots in self._groups]

    def step(self):
        t = self.steps + 1
        bc1, bc2 = 1.0 - self.beta1 ** t, 1.0 - self.beta2 ** t
        ex = executor()
        for (store, slots), m, v in zip(self._groups, self._m, self._v):
            ex.adam(store.data, m, v, store.grad, slots, self.lr, self.beta1, self.beta2,
                    self.eps, bc1, bc2)
        self.steps = t

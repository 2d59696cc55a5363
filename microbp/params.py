"""Parameter stores: where the data and grad of parameters live once a Tape or
an optimizer takes them over.

Binding a leaf Value moves its data and grad into two flat arrays of doubles
(array('d')) shared by the Python and C executors; the Value itself turns into
a BoundValue whose .data and .grad read and write those arrays, so they are
always truthful. Training steps then move no Python floats at all: a tape
gathers the values from the store, scatters gradients back, and the optimizer
updates the store in one call. A Value is bound once and stays bound.
"""
from array import array

from .engine import Value, LEAF


class ParamStore:
    """data[slot] and grad[slot] of the Values bound to it, in binding order."""

    def __init__(self, values):
        # no list of the Values here: a Value refers to its store, and the
        # store referring back would make every trained model a reference cycle
        self.data = array("d", [v.data for v in values])
        self.grad = array("d", [v.grad for v in values])

    def __len__(self):
        return len(self.data)


_plain_data, _plain_grad = Value.__dict__["data"], Value.__dict__["grad"]


def _unbound(data, grad, label):
    v = Value(data, label)
    v.grad = grad
    return v


class BoundValue(Value):
    """A leaf Value whose data and grad live in a ParamStore."""

    __slots__ = ()

    def __reduce__(self):
        # a copy (copy.deepcopy, pickle) is a plain Value with the same numbers,
        # not a second view of this store
        return _unbound, (self.data, self.grad, self.label)

    @property
    def data(self):
        store, slot = self._bind
        return store.data[slot]

    @data.setter
    def data(self, x):
        store, slot = self._bind
        store.data[slot] = x

    @property
    def grad(self):
        store, slot = self._bind
        return store.grad[slot]

    @grad.setter
    def grad(self, x):
        store, slot = self._bind
        store.grad[slot] = x


def bind(values):
    """Bind the leaf Values not bound yet to a new store; return the groups
    [(store, slots, positions)] that say where each of `values` lives:
    values[positions[j]] is store slot slots[j]."""
    fresh, seen = [], set()
    for v in values:
        if v._op != LEAF:
            raise ValueError(f"only leaf Values can be parameters, not the output of {v.op!r}")
        if v._bind is None and v not in seen:
            seen.add(v)
            fresh.append(v)
    if fresh:
        store = ParamStore(fresh)
        for slot, v in enumerate(fresh):
            v.__class__ = BoundValue
            v._bind = (store, slot)
            _plain_data.__set__(v, 0.0)    # the store holds the truth now: drop the
            _plain_grad.__set__(v, 0.0)    # Value's own floats (the slots BoundValue hides)
    groups = {}
    for pos, v in enumerate(values):
        store, slot = v._bind
        group = groups.get(store)
        if group is None:
            group = groups[store] = (array("i"), [])
        group[0].append(slot)
        group[1].append(pos)
    return [(store, slots, positions) for store, (slots, positions) in groups.items()]

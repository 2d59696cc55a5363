"""Parameters in flat storage from birth.

A ParamStore holds the data and grad of its parameters in two flat arrays of
doubles (array('d')), shared by the Python and C executors. A Parameter is a
leaf Value created in a store (one slot), whose .data and .grad read and
write that slot, so they are always truthful. A model (microbp.nn) creates
all its parameters in one store, as one allocation: a Tape gathers their
values from it and scatters gradients into it, and an optimizer updates it,
in single calls with no Python work per parameter.

Plain Values work as parameters too (the Tape and the optimizers copy their
numbers in and out each step); they never change class.
"""
from __future__ import annotations

from array import array
from typing import Iterable, Optional

from .checks import as_float
from .engine import Value, leaf_init
from .ops import LEAF


class ParamStore:
    """The data and grad of the Parameters created in it, slot by slot.
    `ParamStore()` is empty; store.new(x) adds a Parameter, len(store)
    counts them. A copy (pickle, copy.deepcopy) owns new arrays."""

    __slots__ = ("_data", "_grad", "__weakref__")

    _data: array[float]
    _grad: array[float]

    def __init__(self) -> None:
        self._data = array("d")
        self._grad = array("d")

    def new(self, data: float, label: str = "") -> Parameter:
        """A new Parameter with value `data` (its grad 0) in the next slot of
        this store, labelled `label`. TypeError if data is not a real number
        (or is a bool), ValueError if it is an int too large for a float; the
        store is unchanged then."""
        x = as_float(data, "Parameter data")
        self._data.append(x)
        self._grad.append(0.0)
        return _parameter(self, len(self._data) - 1, label)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"ParamStore({len(self)} parameters)"

    def __reduce__(self):
        # a copy (pickle, copy.deepcopy) owns new arrays with the same numbers
        return _store_from, (self._data, self._grad)


def _store_from(data, grad):
    s = ParamStore()
    s._data, s._grad = array("d", data), array("d", grad)
    return s


_new = object.__new__


class Parameter(Value):
    """A leaf Value whose data and grad live in a ParamStore slot.

    `Parameter(0.5, label="w")` makes one in a store of its own; models make
    theirs with `store.new(...)`. Everything a Value does, a Parameter does.

    Args:
        data: the starting value, a real number (not a bool).
        label: a name for pictures and messages.
        store: the ParamStore to add it to (default: a new one).

    Raises:
        TypeError: data is not a real number (or is a bool), label is not a
            str, or store is not a ParamStore.
        ValueError: data is an int too large for a float.
    """

    __slots__ = ("_store", "_slot")

    _store: ParamStore
    _slot: int

    def __init__(self, data: float, label: str = "",
                 store: Optional[ParamStore] = None) -> None:
        if not isinstance(label, str):
            raise TypeError(f"label must be a str, not {type(label).__name__}")
        if store is not None and not isinstance(store, ParamStore):
            raise TypeError(f"store must be a ParamStore, not {type(store).__name__}")
        x = as_float(data, "Parameter data")
        store = ParamStore() if store is None else store
        store._data.append(x)
        store._grad.append(0.0)
        _init(self, store, len(store._data) - 1, label)

    def __reduce__(self):
        return _parameter, (self._store, self._slot, self.label)

    def __copy__(self) -> Parameter:
        """A copy is a Parameter in a new store (not a second view of this slot)."""
        p = Parameter(self.data, self.label)
        p.grad = self.grad
        return p

    @property
    def _data(self):                     # what Value.data and the ops read
        return self._store._data[self._slot]

    @_data.setter
    def _data(self, x):
        self._store._data[self._slot] = x

    @property
    def grad(self) -> float:
        """d(output)/d(this parameter), in the store's grad array: always a
        float (an assignment is converted; TypeError/ValueError by the rules
        of Value(...))."""
        return self._store._grad[self._slot]

    @grad.setter
    def grad(self, x: float) -> None:
        self._store._grad[self._slot] = x if type(x) is float else as_float(x, "Parameter grad")


def _init(p, store, slot, label):
    leaf_init(p, label)       # the Value's own data and grad slots stay unused
    p._store, p._slot = store, slot


def _parameter(store, slot, label):
    p = _new(Parameter)
    _init(p, store, slot, label)
    return p


def groups(values: list[Value]) -> tuple[list[tuple[ParamStore, bytes, list[int]]], list[int]]:
    """Where each of `values` (leaf Values) lives: [(store, slots, positions)]
    for the Parameters, grouped by store (values[positions[j]] is slot
    slots[j], slots as bytes of int32), and the positions of plain Values."""
    by_store: dict[int, tuple[ParamStore, array[int], list[int]]]
    plain: list[int]
    by_store, plain = {}, []
    for pos, v in enumerate(values):
        if isinstance(v, Parameter):
            g = by_store.get(id(v._store))
            if g is None:
                g = by_store[id(v._store)] = (v._store, array("i"), [])
            g[1].append(v._slot)
            g[2].append(pos)
        else:
            plain.append(pos)
    return [(s, slots.tobytes(), pos) for s, slots, pos in by_store.values()], plain


def leaf_values(xs: Iterable[Value], name: str, hint: str) -> list[Value]:
    """xs as a list of distinct leaf Values; TypeError/ValueError naming `name`
    and the offending entry otherwise (`hint` says what the list is for)."""
    if isinstance(xs, Value) or not hasattr(xs, "__iter__"):
        raise TypeError(f"{name} must be a list of leaf Values ({hint})")
    xs = list(xs)
    for j, v in enumerate(xs):
        if not isinstance(v, Value):
            raise TypeError(f"{name}[{j}] must be a Value, not {type(v).__name__}")
        if v._op != LEAF:
            raise ValueError(f"{name}[{j}] must be a leaf Value, not the output of {v.op!r}")
    if len(set(map(id, xs))) != len(xs):
        raise ValueError(f"{name} must not repeat a Value")
    return xs

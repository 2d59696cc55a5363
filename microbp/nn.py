"""Neural networks of scalar Values: Neuron, Layer and MLP.

    model = MLP(2, [8, 8, 1], seed=0)       # ReLU hidden layers, linear output
    score = model([0.5, -1.0])              # one output -> a single Value

A neuron computes act(b + w0*x0 + w1*x1 + ...), summed left to right starting
from the bias, so that every model builds its graph in one fixed order (the
tape recorder fuses that chain of adds and muls into one node, tape.py).

Parameters live in flat storage from birth (params.py): a model creates all
of its parameters in one ParamStore, so that a Tape and an optimizer move
them with one call each, and they carry structural labels ("L1.N3.w2" is
weight 2 of neuron 3 of the first layer, "L1.N3.b" its bias; numbers given as
inputs become constants labelled "x0", "x1", ...).

Initial weights come from one random.Random per model: a fixed seed gives an
identical model. ReLU layers use He init, w ~ N(0, 2 / fan_in); tanh, sigmoid
and linear layers use Glorot (normal) init, w ~ N(0, 2 / (fan_in + fan_out)).
Biases start at 0.

Parameters have names that follow the structure ("layers.0.neurons.3.w.1",
"layers.0.neurons.3.b"); model.state_dict() / load_state_dict() and
model.save(path) / MLP.from_file(path) / model.load(path) keep them exactly
(microbp.serialize: JSON, atomic writes, checked loads).
"""
from __future__ import annotations

import math
import numbers
import random
from typing import Any, Callable, Mapping, Optional, Sequence, TypeVar, Union

from . import serialize
from .checks import PathLike, Seed, is_sequence
from .engine import Operand, Value, as_value, weighted_sum
from .params import ParamStore, Parameter

M = TypeVar("M", bound="Module")

# activation name -> the Value method that applies it (None: identity)
ACTIVATIONS: dict[str, Optional[Callable[[Value], Value]]] = {
    "relu": Value.relu,
    "tanh": Value.tanh,
    "sigmoid": Value.sigmoid,
    "linear": None,
}


# ---------------------------------------------------------------------------
# argument checks

MAX_SIZE = 2 ** 31 - 1      # a tape indexes nodes with int32


def _positive_int(x, name):
    if isinstance(x, bool) or not isinstance(x, numbers.Integral):
        raise TypeError(f"{name} must be an int, not {type(x).__name__}")
    if not 1 <= x <= MAX_SIZE:
        raise ValueError(f"{name} must be a positive int (at most {MAX_SIZE}), got {x!r}")
    return int(x)


def _activation(act, name):
    if not isinstance(act, str):
        raise TypeError(f"{name} must be a str, not {type(act).__name__}")
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown {name} {act!r}: choose one of {', '.join(ACTIVATIONS)}")
    return act


def _flag(x, name):
    if not isinstance(x, bool):
        raise TypeError(f"{name} must be a bool, not {type(x).__name__}")
    return x


def _random(x: Seed, name: str) -> random.Random:
    """A random.Random from None (seeded by the OS), an int seed, or a Random."""
    if x is None:
        return random.Random()
    if isinstance(x, random.Random):
        return x
    if isinstance(x, numbers.Integral) and not isinstance(x, bool):
        return random.Random(int(x))
    raise TypeError(f"{name} must be None, an int seed or a random.Random, "
                    f"not {type(x).__name__}")


def _inputs(x: Sequence[Operand], nin: int) -> list[Value]:
    """x checked as nin inputs (Values or numbers); a number becomes one constant
    leaf, shared by every neuron that reads it."""
    if not is_sequence(x):
        raise TypeError(f"input must be a list of {nin} Values or numbers, "
                        f"not {type(x).__name__}")
    if len(x) != nin:
        raise ValueError(f"expected {nin} inputs, got {len(x)}")
    out = [as_value(xj, f"input {j}") for j, xj in enumerate(x)]
    for j, (v, xj) in enumerate(zip(out, x)):
        if v is not xj:
            v.label = f"x{j}"            # a number given as input j
    return out


def _init_std(act, fan_in, fan_out):
    if act == "relu":
        return math.sqrt(2.0 / fan_in)                  # He
    return math.sqrt(2.0 / (fan_in + fan_out))          # Glorot (normal)


# ---------------------------------------------------------------------------

class Module:
    """Anything with parameters: parameters() lists them, zero_grad() clears them,
    state_dict() / save() keep their values (see microbp.serialize).
    Subclasses override parameters(), and named_parameters() and config() to
    be saved and rebuilt from files."""

    def parameters(self) -> list[Value]:
        """The parameter Values of this module, in a fixed order (a new list;
        the base class has none)."""
        return []

    def named_parameters(self) -> list[tuple[str, Value]]:
        """[(name, Value)] in the order of parameters(); by default the names
        are the positions "0", "1", ... (subclasses name them by structure)."""
        return [(str(i), p) for i, p in enumerate(self.parameters())]

    def config(self) -> Optional[dict[str, Any]]:
        """The constructor arguments that rebuild this module (a dict that JSON
        can hold), or None if a file cannot rebuild it (Cls.from_file(path)
        then fails, model.load(path) still works)."""
        return None

    def zero_grad(self) -> None:
        """Set the .grad of every parameter to 0."""
        for p in self.parameters():
            p.grad = 0.0

    @classmethod
    def expected_parameters(cls, config: Mapping[str, Any]) -> Optional[int]:
        """How many parameters cls(**config) will have, from config alone, for
        Neuron, Layer, MLP and subclasses that build models the same way;
        None when that cannot be told. serialize checks a file with it
        before building anything."""
        base = next((b for b in (MLP, Layer, Neuron) if issubclass(cls, b)), None)
        if base is None or any(getattr(cls, f) is not getattr(base, f)
                               for f in ("__init__", "parameters", "named_parameters")):
            return None
        get, bias = config.get, config.get("bias", True)
        given = get("nouts")
        nouts: list[Any] = (given if isinstance(given, list)
                            else [None] if base is MLP else [get("nout")] if base is Layer
                            else [1])
        sizes: list[Any] = [get("nin")] + nouts
        if type(bias) is not bool or len(sizes) < 2 or any(type(n) is not int or n < 1
                                                           for n in sizes):
            return None
        return sum(n * (fan_in + bias) for fan_in, n in zip(sizes, sizes[1:]))

    def to_torch(self) -> Any:
        """An equivalent float64 torch.nn.Sequential (see microbp.torch_bridge);
        ImportError with the fix when torch is not installed."""
        from .torch_bridge import to_torch
        return to_torch(self)

    def state_dict(self) -> dict[str, float]:
        """{name: float} of every parameter, in order: a copy of their values.
        TypeError/ValueError if named_parameters() gives a name that is not a
        str, a name twice, or something that is not a Value."""
        return serialize.state_dict(self)

    def load_state_dict(self, state: Mapping[str, Union[float, str]]) -> None:
        """Set every parameter from state ({name: float, int or float string},
        exactly the names of state_dict()). Everything is checked before anything
        is set: on TypeError or ValueError the module is unchanged."""
        serialize.load_state_dict(self, state)

    def save(self, path: PathLike) -> None:
        """Write this module to path as JSON (format: microbp.serialize),
        atomically: path holds the old file or the new one, never a part.
        OSError if the file cannot be written; TypeError/ValueError if
        config() is not a JSON dict without a "class" key."""
        serialize.save(self, path)

    @classmethod
    def from_file(cls: type[M], path: PathLike) -> M:
        """A new module of this class, built from the file at path (its "model"
        description) with the file's parameters. A bad file raises
        microbp.serialize.FormatError (a ValueError)."""
        return serialize.load_new(cls, path)

    def load(self: M, path: PathLike) -> M:
        """Load the file at path into this module (same architecture) and return
        it. A bad file raises microbp.serialize.FormatError (a ValueError) and
        changes nothing; OSError if it cannot be read."""
        return serialize.load_into(self, path)


class Neuron(Module):
    """act(b + sum_i w_i x_i) over nin inputs; `neuron(x)` returns a Value.

    Args:
        nin: the number of inputs (a positive int).
        act: "relu", "tanh", "sigmoid" or "linear" (no activation).
        bias: whether the neuron has a bias b (starting at 0).
        rng: where the initial weights come from: None (seeded by the OS),
            an int seed, or a random.Random.
        fan_out: (keyword only) the width of the layer the neuron belongs to;
            it only sets the Glorot init scale of non-ReLU neurons (1 when alone).
        store: (keyword only) the ParamStore to create the parameters in
            (default: a new one).
        name: (keyword only) the prefix of the parameters' labels ("w0", "b").

    Raises:
        TypeError: an argument of the wrong type (nin or fan_out not an int,
            act or name not a str, bias not a bool, rng not None/int/Random,
            store not a ParamStore).
        ValueError: nin or fan_out below 1, or an unknown act.
    """

    w: list[Value]              # Parameters in the store
    b: Optional[Value]

    def __init__(self, nin: int, act: str = "relu", bias: bool = True, rng: Seed = None, *,
                 fan_out: int = 1, store: Optional[ParamStore] = None,
                 name: str = "") -> None:
        self.nin = _positive_int(nin, "nin")
        self.act = _activation(act, "act")
        bias = _flag(bias, "bias")
        rng = _random(rng, "rng")
        std = _init_std(self.act, self.nin, _positive_int(fan_out, "fan_out"))
        if store is not None and not isinstance(store, ParamStore):
            raise TypeError(f"store must be a ParamStore, not {type(store).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        store = ParamStore() if store is None else store
        draws = [rng.gauss(0.0, 1.0) * std for _ in range(self.nin)]
        prefix = f"{name}." if name else ""
        self.w = [store.new(x, f"{prefix}w{i}") for i, x in enumerate(draws)]
        self.b = store.new(0.0, f"{prefix}b") if bias else None
        slots = [p._slot for p in self.w if isinstance(p, Parameter)]
        if slots == list(range(slots[0], slots[0] + self.nin)):
            # the weights' data is one slice of the store, as long as w holds them
            self._w_slice = (list(self.w), store, slots[0], slots[0] + self.nin)

    def __call__(self, x: Sequence[Operand]) -> Value:
        """act(b + w0*x0 + w1*x1 + ...) for x, a list or tuple of nin Values or
        numbers (a number becomes a constant labelled "x0", "x1", ...).
        TypeError if x is not a list or tuple or holds something else than a
        Value or a real number (bool included); ValueError if it does not
        hold nin entries."""
        return self._forward(_inputs(x, self.nin))

    def _forward(self, x, xd=None):
        # x is already checked (xd: its data, when the caller has read it); the
        # sum starts from b (or w0*x0) and runs left to right
        w = self.w
        if len(w) != self.nin:
            raise ValueError(f"this neuron has {len(w)} weights for nin={self.nin}: "
                             "its list w was edited into another length")
        fast = self.__dict__.get("_w_slice")
        if fast is not None and fast[0] == w:     # == on lists: `is` first, item by item
            wd = fast[1]._data[fast[2]:fast[3]]
        else:
            wd = [p._data for p in w]
        s = weighted_sum(self.b, w, x, wd, [v._data for v in x] if xd is None else xd)
        f = ACTIVATIONS[self.act]
        return s if f is None else f(s)

    def parameters(self) -> list[Value]:
        """[w0, w1, ..., b] (no b without a bias)."""
        return self.w + ([self.b] if self.b is not None else [])

    def named_parameters(self) -> list[tuple[str, Value]]:
        """[("w.0", w0), ("w.1", w1), ..., ("b", b)], in the order of parameters()."""
        named: list[tuple[str, Value]] = [(f"w.{i}", w) for i, w in enumerate(self.w)]
        return named + ([("b", self.b)] if self.b is not None else [])

    def config(self) -> dict[str, Any]:
        """{"nin": ..., "act": ..., "bias": ...}: what rebuilds this neuron."""
        return {"nin": self.nin, "act": self.act, "bias": self.b is not None}

    def __repr__(self):
        nb = "" if self.b is not None else ", bias=False"
        return f"Neuron(nin={self.nin}, act={self.act!r}{nb})"


class Layer(Module):
    """nout neurons over the same nin inputs; one output is returned as a Value,
    more as a list of Values.

    Args:
        nin: the number of inputs (a positive int).
        nout: the number of neurons (a positive int).
        act, bias, rng: as for Neuron, for every neuron of the layer (one
            generator draws all their weights).
        store: (keyword only) the ParamStore for all the layer's parameters
            (default: a new one).
        name: (keyword only) the prefix of the parameters' labels ("N3.w2").

    Raises:
        TypeError: an argument of the wrong type, as for Neuron.
        ValueError: nin or nout below 1, or an unknown act.
    """

    def __init__(self, nin: int, nout: int, act: str = "relu", bias: bool = True,
                 rng: Seed = None, *, store: Optional[ParamStore] = None,
                 name: str = "") -> None:
        self.nin = _positive_int(nin, "nin")
        self.nout = _positive_int(nout, "nout")
        act = _activation(act, "act")
        bias = _flag(bias, "bias")
        rng = _random(rng, "rng")
        if store is not None and not isinstance(store, ParamStore):
            raise TypeError(f"store must be a ParamStore, not {type(store).__name__}")
        if not isinstance(name, str):
            raise TypeError(f"name must be a str, not {type(name).__name__}")
        store = ParamStore() if store is None else store      # one store for the layer
        self.neurons = [Neuron(self.nin, act, bias, rng, fan_out=self.nout, store=store,
                               name=f"{name}.N{i}" if name else f"N{i}")
                        for i in range(self.nout)]

    @property
    def act(self) -> str:
        """The activation of the layer's neurons ("relu", "tanh", ...)."""
        return self.neurons[0].act

    def __call__(self, x: Sequence[Operand]) -> Union[Value, list[Value]]:
        """The outputs of the neurons for x (a list or tuple of nin Values or
        numbers): a Value when nout is 1, else a list of nout Values.
        TypeError/ValueError for bad inputs, as for Neuron."""
        out = self._forward(_inputs(x, self.nin))
        return out[0] if self.nout == 1 else out

    def _forward(self, x: list[Value]) -> list[Value]:
        xd = [v._data for v in x]
        return [n._forward(x, xd) for n in self.neurons]      # always a list

    def parameters(self) -> list[Value]:
        """The parameters of every neuron, neuron by neuron."""
        return [p for n in self.neurons for p in n.parameters()]

    def named_parameters(self) -> list[tuple[str, Value]]:
        """[("neurons.0.w.0", ...), ...], in the order of parameters()."""
        return [(f"neurons.{i}.{name}", p)
                for i, n in enumerate(self.neurons) for name, p in n.named_parameters()]

    def config(self) -> dict[str, Any]:
        """{"nin", "nout", "act", "bias"}: what rebuilds this layer."""
        return {"nin": self.nin, "nout": self.nout, "act": self.act,
                "bias": self.neurons[0].b is not None}

    def __repr__(self):
        nb = "" if self.neurons[0].b is not None else ", bias=False"
        return f"Layer(nin={self.nin}, nout={self.nout}, act={self.act!r}{nb})"


class MLP(Module):
    """A multi-layer perceptron: layers of widths `nouts` over nin inputs.
    Hidden layers use `act`, the last one `out_act`; all parameters live in
    one ParamStore.

    Args:
        nin: the number of inputs (a positive int).
        nouts: the layer widths, a non-empty list or tuple of positive ints.
        act: the activation of the hidden layers ("relu", "tanh", "sigmoid"
            or "linear").
        out_act: the activation of the last layer (default "linear").
        bias: whether every neuron has a bias.
        seed: None (seeded by the OS), an int seed or a random.Random: a fixed
            seed gives an identical model.

    Raises:
        TypeError: an argument of the wrong type (nin or a width not an int,
            nouts not a list or tuple, act not a str, bias not a bool, seed
            not None/int/Random).
        ValueError: nin or a width below 1, nouts empty, or an unknown act.
    """

    def __init__(self, nin: int, nouts: Sequence[int], act: str = "relu",
                 out_act: str = "linear", bias: bool = True, seed: Seed = None) -> None:
        nin = _positive_int(nin, "nin")
        if not isinstance(nouts, (list, tuple)):
            raise TypeError(f"nouts must be a list of layer widths, not {type(nouts).__name__}")
        if not nouts:
            raise ValueError("nouts is empty: give at least one layer width")
        nouts = [_positive_int(n, f"nouts[{k}]") for k, n in enumerate(nouts)]
        act = _activation(act, "act")
        out_act = _activation(out_act, "out_act")
        bias = _flag(bias, "bias")
        rng = _random(seed, "seed")         # every layer draws from this one generator
        sizes = [nin] + nouts
        last = len(nouts) - 1
        store = ParamStore()                # every parameter of the model, one allocation
        self.layers = [Layer(sizes[k], sizes[k + 1], out_act if k == last else act, bias, rng,
                             store=store, name=f"L{k + 1}")
                       for k in range(len(nouts))]
        self.nin, self.nout = nin, nouts[-1]
        self.act, self.out_act = act, out_act

    def __call__(self, x: Sequence[Operand]) -> Union[Value, list[Value]]:
        """The model's outputs for x (a list or tuple of nin Values or
        numbers): a Value when the last layer has one neuron, else a list.
        TypeError/ValueError for bad inputs, as for Neuron."""
        x = _inputs(x, self.nin)
        for layer in self.layers:
            x = layer._forward(x)
        return x[0] if self.nout == 1 else x

    @classmethod
    def from_torch(cls, module: Any) -> MLP:
        """An MLP with the weights of a torch.nn.Sequential of Linear layers,
        each optionally followed by ReLU, Tanh or Sigmoid (copied as doubles).
        TypeError naming a layer of another kind (or a module that is not a
        Sequential), ValueError for a Sequential an MLP cannot hold (see
        microbp.torch_bridge.mlp_parts); ImportError when torch is missing."""
        from .torch_bridge import mlp_parts
        config, weights = mlp_parts(module)
        model = cls(config.pop("nin"), config.pop("nouts"), seed=0, **config)
        for layer, (w, b) in zip(model.layers, weights):
            for i, neuron in enumerate(layer.neurons):
                for p, x in zip(neuron.w, w[i]):
                    p.data = x
                if b is not None:     # then the model was built with biases
                    neuron.b.data = b[i]  # type: ignore[union-attr]
        return model

    def parameters(self) -> list[Value]:
        """The parameters of every layer, layer by layer."""
        return [p for layer in self.layers for p in layer.parameters()]

    def named_parameters(self) -> list[tuple[str, Value]]:
        """[("layers.0.neurons.0.w.0", ...), ...], in the order of parameters()."""
        return [(f"layers.{k}.{name}", p)
                for k, layer in enumerate(self.layers) for name, p in layer.named_parameters()]

    def config(self) -> dict[str, Any]:
        """{"nin", "nouts", "act", "out_act", "bias"}: what rebuilds this MLP."""
        return {"nin": self.nin, "nouts": [layer.nout for layer in self.layers],
                "act": self.act, "out_act": self.out_act,
                "bias": self.layers[0].neurons[0].b is not None}

    def __repr__(self):
        widths = [layer.nout for layer in self.layers]
        return f"MLP({self.nin} -> {widths}, act={self.act!r}, out_act={self.out_act!r})"

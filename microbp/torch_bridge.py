"""From microbp to PyTorch and back: an MLP as a `torch.nn.Sequential` of
`Linear` layers and activations, in float64.

    net = model.to_torch()         # Sequential(Linear, ReLU, Linear, ReLU, Linear)
    model = nn.MLP.from_torch(net) # an nn.MLP with the same weights

(this module knows nothing of microbp.nn: it reads a model's layers, and
mlp_parts() reads a Sequential into what nn.MLP.from_torch builds)

A microbp layer of nout neurons over nin inputs is a `Linear(nin, nout)`
whose weight row i holds neuron i's w and whose bias[i] is neuron i's b; a
layer's activation ("relu", "tanh", "sigmoid") follows it as `ReLU()`,
`Tanh()` or `Sigmoid()` ("linear" adds nothing). The weights are copied, not
shared: training one does not change the other.

PyTorch's Linear adds its products in its own order, so outputs agree with
microbp's to about 1e-15 relative, not bit for bit. The torch module maps a
batch of shape (rows, nin) to (rows, nout), also when nout is 1 (where
microbp's model returns a single Value).

torch is optional: it is imported when one of these functions is called,
and a clear ImportError says how to install it when it is missing.
"""
from __future__ import annotations

from typing import Any, Optional

_ACT_TO_TORCH = {"relu": "ReLU", "tanh": "Tanh", "sigmoid": "Sigmoid"}


def _torch():
    try:
        import torch
    except ImportError as e:
        raise ImportError("converting between microbp and PyTorch needs PyTorch, which is "
                          f"not installed ({e}): pip install torch") from e
    return torch


def _layers(model):
    """The nn.Layers of an MLP, a Layer, or a Neuron (as a one-neuron layer)."""
    if hasattr(model, "layers"):          # an MLP
        return model.layers
    if hasattr(model, "neurons"):         # a Layer
        return [model]
    if hasattr(model, "w") and hasattr(model, "act"):     # a Neuron
        return [_NeuronAsLayer(model)]
    raise TypeError(f"to_torch needs a microbp nn.MLP, nn.Layer or nn.Neuron, "
                    f"not {type(model).__name__}")


class _NeuronAsLayer:
    def __init__(self, neuron):
        self.nin, self.nout, self.act, self.neurons = neuron.nin, 1, neuron.act, [neuron]


def to_torch(model: Any) -> Any:
    """An equivalent `torch.nn.Sequential` in float64 for a microbp nn.MLP (or a
    Layer, or a Neuron): one Linear per layer, each followed by its activation
    (none for "linear"). The weights are copied from the model's current values.
    TypeError for another kind of model; ImportError (with the pip command)
    when torch is not installed."""
    layers = _layers(model)
    torch = _torch()
    modules = []
    with torch.no_grad():
        for layer in layers:
            bias = layer.neurons[0].b is not None
            lin = torch.nn.Linear(layer.nin, layer.nout, bias=bias, dtype=torch.float64)
            lin.weight.copy_(torch.tensor([[w.data for w in n.w] for n in layer.neurons],
                                          dtype=torch.float64))
            if bias:
                lin.bias.copy_(torch.tensor([n.b.data for n in layer.neurons],
                                            dtype=torch.float64))
            modules.append(lin)
            if layer.act != "linear":
                modules.append(getattr(torch.nn, _ACT_TO_TORCH[layer.act])())
    return torch.nn.Sequential(*modules)


def _describe(k, m):
    return f"layer {k} ({type(m).__name__})"


def mlp_parts(module: Any) -> tuple[dict[str, Any],
                                    list[tuple[list[list[float]], Optional[list[float]]]]]:
    """What nn.MLP.from_torch(module) builds: (MLP keyword arguments, weights),
    with weights [(rows of w, biases or None)] per layer, read from `module`,
    a `torch.nn.Sequential` of `Linear` layers, each optionally followed by one `ReLU`, `Tanh` or
    `Sigmoid`. An MLP has one activation for its hidden layers and one for its
    output layer, and either every layer has a bias or none has: a Sequential
    that does not fit (another kind of layer, two activations in a row,
    mismatched sizes, mixed activations or biases) raises TypeError or
    ValueError naming the layer. The weights are copied (as doubles). With one
    Linear there is no hidden layer: the MLP gets act="relu", its default."""
    torch = _torch()
    if not isinstance(module, torch.nn.Sequential):
        raise TypeError(f"from_torch needs a torch.nn.Sequential, not {type(module).__name__}")
    acts = {getattr(torch.nn, cls): name for name, cls in _ACT_TO_TORCH.items()}
    children = list(module)
    if not children:
        raise ValueError("the Sequential is empty: give at least one Linear layer")
    linears: list[tuple[int, Any]]
    layer_acts: list[str]
    linears, layer_acts = [], []          # per Linear: (index, module), its activation
    for k, m in enumerate(children):
        if type(m) is torch.nn.Linear:
            if linears and m.in_features != linears[-1][1].out_features:
                raise ValueError(f"{_describe(k, m)} takes {m.in_features} inputs but the "
                                 f"Linear before it gives {linears[-1][1].out_features}")
            if m.weight.is_complex():
                raise TypeError(f"{_describe(k, m)} has complex weights ({m.weight.dtype}): "
                                "microbp holds real doubles")
            linears.append((k, m))
            layer_acts.append("linear")
        elif type(m) in acts:
            if not linears:
                raise ValueError(f"{_describe(k, m)} comes before any Linear layer")
            if layer_acts[-1] != "linear":
                raise ValueError(f"{_describe(k, m)} follows another activation: an MLP "
                                 "layer has one")
            layer_acts[-1] = acts[type(m)]
        else:
            raise TypeError(f"{_describe(k, m)} is not supported: from_torch takes Linear "
                            "layers, each optionally followed by ReLU, Tanh or Sigmoid")
    hidden = set(layer_acts[:-1])
    if len(hidden) > 1:
        found = ", ".join(f"{_describe(k, m)}: {a}"
                          for (k, m), a in zip(linears[:-1], layer_acts[:-1]))
        raise ValueError(f"the hidden layers have different activations ({found}); "
                         "a microbp MLP uses one activation for all of them")
    with_bias = [m.bias is not None for _, m in linears]
    if len(set(with_bias)) > 1:
        k, m = linears[with_bias.index(not with_bias[0])]
        raise ValueError(f"{_describe(k, m)} has bias={not with_bias[0]} but layer "
                         f"{linears[0][0]} has bias={with_bias[0]}: in a microbp MLP "
                         "every layer has a bias or none has")
    weights = [(m.weight.detach().to("cpu", torch.float64).tolist(),
                None if m.bias is None else m.bias.detach().to("cpu", torch.float64).tolist())
               for _, m in linears]
    return dict(nin=linears[0][1].in_features, nouts=[m.out_features for _, m in linears],
                act=hidden.pop() if hidden else "relu", out_act=layer_acts[-1],
                bias=with_bias[0]), weights

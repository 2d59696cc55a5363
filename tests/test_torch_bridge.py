"""microbp <-> PyTorch: to_torch(model) gives a float64 Sequential with the same
outputs and gradients (within 1e-12 relative), _MLP.from_torch(Sequential)
gives back an MLP with the same weights, and what does not fit an MLP is
refused with an error that names the layer."""
import math
import random
import sys

import pytest

from microbp import nn, losses, optim
from microbp.datasets import make_moons
from microbp.torch_bridge import to_torch
from microbp.nn import MLP as _MLP

RTOL = 1e-12


def close(a, b):
    return a == b or abs(a - b) <= RTOL * max(abs(a), abs(b))


def weights_of(model):
    return [p.data for p in model.parameters()]


def test_missing_torch_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)      # `import torch` fails
    model = nn.MLP(2, [3, 1], seed=0)
    with pytest.raises(ImportError, match="pip install torch"):
        to_torch(model)
    with pytest.raises(ImportError, match="pip install torch"):
        _MLP.from_torch(object())


def test_a_model_that_is_not_one_is_refused_before_torch_is_needed(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(TypeError, match="nn.MLP"):
        to_torch([1.0, 2.0])


# --- with torch ------------------------------------------------------------

torch = pytest.importorskip("torch")


def rows(n, nin, seed):
    rng = random.Random(seed)
    return [[rng.uniform(-2, 2) for _ in range(nin)] for _ in range(n)]


def outputs(model, X):
    out = [model(x) for x in X]
    return [[o.data] if model.nout == 1 else [v.data for v in o] for o in out]


@pytest.mark.parametrize("act,out_act,bias", [("relu", "linear", True), ("tanh", "sigmoid", True),
                                              ("sigmoid", "tanh", False),
                                              ("linear", "relu", True)])
def test_the_exported_module_computes_the_same_outputs(act, out_act, bias):
    model = nn.MLP(3, [5, 4, 2], act=act, out_act=out_act, bias=bias, seed=3)
    net = to_torch(model)
    assert isinstance(net, torch.nn.Sequential)
    assert all(p.dtype == torch.float64 for p in net.parameters())
    kinds = [type(m).__name__ for m in net]
    expect = {"relu": ["ReLU"], "tanh": ["Tanh"], "sigmoid": ["Sigmoid"], "linear": []}
    assert kinds == (["Linear"] + expect[act]) * 2 + ["Linear"] + expect[out_act]
    assert sum(p.numel() for p in net.parameters()) == len(model.parameters())
    X = rows(20, 3, seed=1)
    got = net(torch.tensor(X, dtype=torch.float64)).tolist()
    want = outputs(model, X)
    assert all(close(a, b) for g, w in zip(got, want) for a, b in zip(g, w)), (got, want)


def test_weights_are_copied_not_shared():
    model = nn.MLP(2, [3, 1], seed=0)
    net = to_torch(model)
    before = weights_of(model)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(1.0)
    assert weights_of(model) == before
    model.parameters()[0].data = 42.0
    assert 42.0 not in net[0].weight.flatten().tolist()


def test_trained_in_microbp_then_outputs_and_gradients_match_pytorch():
    """Train a few SGD steps in microbp, export, then on the same batch compare
    the loss, every parameter's gradient and every input's gradient."""
    X, y = make_moons(40, noise=0.1, seed=2)
    model = nn.MLP(2, [8, 8, 1], seed=2)
    opt = optim.SGD(model.parameters(), lr=0.5)
    for _ in range(5):
        loss = losses.hinge([model(x) for x in X], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert len({round(p.data, 12) for p in model.parameters()}) > 10   # really trained

    net = to_torch(model)
    # microbp: loss, parameter and input gradients on one batch
    from microbp import Value
    xs = [[Value(a), Value(b)] for a, b in X]
    model.zero_grad()
    loss = losses.hinge([model(x) for x in xs], y)
    loss.backward()
    # PyTorch, on the same batch
    xt = torch.tensor(X, dtype=torch.float64, requires_grad=True)
    yt = torch.tensor(y, dtype=torch.float64)
    tloss = torch.relu(1 - yt * net(xt)[:, 0]).mean()
    tloss.backward()

    assert close(loss.data, tloss.item())
    # gradients are sums over the rows and can cancel to nearly 0 (an output
    # bias whose +1 and -1 rows balance): each is held to 1e-12 of the largest
    # gradient of its kind rather than of itself
    mine, theirs = [], []
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    assert len(linears) == len(model.layers) == 3
    for layer, lin in zip(model.layers, linears):
        for i, neuron in enumerate(layer.neurons):
            mine += [p.grad for p in neuron.w] + [neuron.b.grad]
            theirs += lin.weight.grad[i].tolist() + [lin.bias.grad[i].item()]
    assert agree(mine, theirs)
    gx = [g for row in xt.grad.tolist() for g in row]
    assert agree([v.grad for row in xs for v in row], gx)


def agree(mine, theirs):
    assert len(mine) == len(theirs)
    scale = max(abs(t) for t in theirs)
    assert scale > 0
    bad = [(k, a, b) for k, (a, b) in enumerate(zip(mine, theirs)) if abs(a - b) > RTOL * scale]
    return not bad or print(bad)


def test_round_trip_keeps_every_weight_bit_for_bit():
    model = nn.MLP(4, [6, 3], act="tanh", out_act="sigmoid", seed=5)
    back = _MLP.from_torch(to_torch(model))
    assert isinstance(back, nn.MLP)
    assert back.config() == model.config()
    assert weights_of(back) == weights_of(model)
    x = [0.3, -1.2, 2.0, 0.7]
    assert [v.data for v in back(x)] == [v.data for v in model(x)]


def test_from_torch_builds_the_matching_mlp():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 4),
                              torch.nn.Tanh(), torch.nn.Linear(4, 2))         # float32
    model = _MLP.from_torch(net)
    assert model.config() == {"nin": 3, "nouts": [4, 4, 2], "act": "tanh",
                              "out_act": "linear", "bias": True}
    # float32 weights become the same numbers as doubles
    assert model.layers[0].neurons[1].w[2].data == net[0].weight[1, 2].item()
    assert model.layers[2].neurons[1].b.data == net[4].bias[1].item()
    X = rows(10, 3, seed=4)
    got = net.double()(torch.tensor(X, dtype=torch.float64)).tolist()
    want = outputs(model, X)
    assert all(close(a, b) for g, w in zip(got, want) for a, b in zip(g, w))


def test_from_torch_one_layer_and_no_bias():
    lin = torch.nn.Linear(2, 1, bias=False, dtype=torch.float64)
    model = _MLP.from_torch(torch.nn.Sequential(lin, torch.nn.Sigmoid()))
    assert model.config()["out_act"] == "sigmoid" and model.config()["bias"] is False
    assert len(model.parameters()) == 2
    assert close(model([1.0, -2.0]).data,
                 torch.sigmoid(lin(torch.tensor([1.0, -2.0], dtype=torch.float64))).item())


def test_layer_and_neuron_export_too():
    layer = nn.Layer(3, 2, act="tanh", rng=1)
    net = to_torch(layer)
    got = net(torch.tensor([0.5, -1.0, 2.0], dtype=torch.float64)).tolist()
    assert all(close(a, v.data) for a, v in zip(got, layer([0.5, -1.0, 2.0])))
    neuron = nn.Neuron(3, act="relu", rng=2)
    assert [type(m).__name__ for m in to_torch(neuron)] == ["Linear", "ReLU"]


L, R, T, S = (torch.nn.Linear, torch.nn.ReLU, torch.nn.Tanh, torch.nn.Sigmoid)


@pytest.mark.parametrize("layers,error,words", [
    ([L(2, 3), torch.nn.Dropout(0.1), L(3, 1)], TypeError, "layer 1 (Dropout)"),
    ([L(2, 3), torch.nn.LeakyReLU(), L(3, 1)], TypeError, "layer 1 (LeakyReLU)"),
    ([torch.nn.Conv1d(1, 1, 2)], TypeError, "layer 0 (Conv1d)"),
    ([L(2, 3), torch.nn.Sequential(L(3, 1))], TypeError, "layer 1 (Sequential)"),
    ([L(2, 3), R(), L(4, 1)], ValueError, "takes 4 inputs"),
    ([R(), L(2, 1)], ValueError, "before any Linear"),
    ([L(2, 3), R(), T(), L(3, 1)], ValueError, "follows another activation"),
    ([L(2, 3), R(), L(3, 3), T(), L(3, 1)], ValueError, "different activations"),
    ([L(2, 3), R(), L(3, 1, bias=False)], ValueError, "layer 2 (Linear) has bias=False"),
    ([], ValueError, "empty"),
])
def test_what_an_mlp_cannot_hold_is_refused(layers, error, words):
    with pytest.raises(error) as e:
        _MLP.from_torch(torch.nn.Sequential(*layers))
    assert words in str(e.value)


def test_from_torch_needs_a_sequential():
    with pytest.raises(TypeError, match="torch.nn.Sequential, not Linear"):
        _MLP.from_torch(torch.nn.Linear(2, 1))


def test_from_torch_refuses_complex_weights():
    lin = torch.nn.Linear(2, 1, dtype=torch.complex128)
    with pytest.raises(TypeError, match="complex"):
        _MLP.from_torch(torch.nn.Sequential(lin))


def test_wrong_input_size_is_an_error_on_both_sides():
    model = nn.MLP(3, [2, 1], seed=0)
    net = to_torch(model)
    with pytest.raises(ValueError):
        model([1.0, 2.0])
    with pytest.raises(RuntimeError):
        net(torch.zeros(1, 2, dtype=torch.float64))


def test_nan_and_inf_weights_travel():
    model = nn.MLP(1, [1], seed=0)
    model.layers[0].neurons[0].w[0].data = math.inf
    model.layers[0].neurons[0].b.data = math.nan
    back = _MLP.from_torch(to_torch(model))
    assert back.layers[0].neurons[0].w[0].data == math.inf
    assert math.isnan(back.layers[0].neurons[0].b.data)

"""microbp.nn: structure, init, call order, input checks, training, gradients."""
import math
import random
import statistics

import pytest

from microbp import Value
from microbp import losses
from microbp.gradcheck import gradcheck
from microbp.nn import MLP, Layer, Module, Neuron
from microbp.optim import Adam


# -- structure --------------------------------------------------------------

def test_mlp_parameter_count_and_layers():
    m = MLP(3, [4, 4, 1], seed=0)
    assert len(m.parameters()) == (3 * 4 + 4) + (4 * 4 + 4) + (4 * 1 + 1)
    assert [(l.nin, l.nout) for l in m.layers] == [(3, 4), (4, 4), (4, 1)]
    assert [l.act for l in m.layers] == ["relu", "relu", "linear"]     # micrograd defaults
    assert len({id(p) for p in m.parameters()}) == 41                   # no sharing
    assert all(isinstance(p, Value) and p.op == "leaf" for p in m.parameters())


def test_no_bias_parameter_count():
    m = MLP(3, [4, 2], bias=False, seed=0)
    assert len(m.parameters()) == 3 * 4 + 4 * 2
    n = Neuron(5, bias=False, rng=0)
    assert n.b is None and len(n.parameters()) == 5


def test_neuron_labels_and_zero_bias():
    n = Neuron(3, rng=1)
    assert [w.label for w in n.w] == ["w0", "w1", "w2"]
    assert n.b.label == "b" and n.b.data == 0.0
    assert n.parameters() == n.w + [n.b]
    m = MLP(2, [3, 2], seed=0)
    assert all(n.b.data == 0.0 for l in m.layers for n in l.neurons)


def test_activations():
    x = [0.5, -2.0]
    for act, f in [("relu", lambda s: max(s, 0.0)), ("tanh", math.tanh),
                   ("sigmoid", lambda s: 1.0 / (1.0 + math.exp(-s))), ("linear", lambda s: s)]:
        n = Neuron(2, act=act, rng=3)
        n.b.data = 0.25
        s = 0.25 + n.w[0].data * 0.5 + n.w[1].data * -2.0
        assert n(x).data == pytest.approx(f(s), rel=1e-15, abs=1e-300)


def test_neuron_sums_from_bias_left_to_right():
    # act(b + w0*x0 + w1*x1 + w2*x2) as ((b + w0*x0) + w1*x1) + w2*x2
    n = Neuron(3, act="linear", rng=2)
    x = [Value(1.5), Value(-0.5), Value(2.0)]
    out = n(x)
    node, terms = out, []
    while node.op == "add":
        left, right = node.inputs
        assert right.op == "mul"
        terms.append(right.inputs)
        node = left
    assert node is n.b
    assert terms[::-1] == [(n.w[0], x[0]), (n.w[1], x[1]), (n.w[2], x[2])]
    # the same doubles as that order in floats
    b, w = n.b.data, [wi.data for wi in n.w]
    assert out.data == ((b + w[0] * 1.5) + w[1] * -0.5) + w[2] * 2.0


def test_neuron_without_bias_starts_from_first_product():
    n = Neuron(2, act="relu", bias=False, rng=2)
    x = [Value(1.0), Value(3.0)]
    out = n(x)
    assert out.op == "relu"
    s = out.inputs[0]
    left, right = s.inputs
    assert s.op == "add" and left.op == "mul" and right.op == "mul"
    assert left.inputs == (n.w[0], x[0]) and right.inputs == (n.w[1], x[1])


def test_numbers_and_values_mix_as_inputs():
    m = MLP(2, [3, 1], act="tanh", seed=5)
    a = m([0.5, 2])
    b = m([Value(0.5), Value(2.0)])
    assert a.data == b.data


def test_single_output_is_a_value_and_wider_is_a_list():
    assert isinstance(MLP(2, [3, 1], seed=0)([1.0, 2.0]), Value)
    assert isinstance(Layer(2, 1, rng=0)([1.0, 2.0]), Value)
    out = Layer(2, 3, rng=0)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 3 and all(isinstance(v, Value) for v in out)
    out = MLP(2, [3, 2], seed=0)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 2
    # a hidden layer of width 1 still feeds the next layer
    out = MLP(2, [1, 3], seed=0)([1.0, 2.0])
    assert isinstance(out, list) and len(out) == 3


def test_mlp_output_is_the_layers_composed():
    m = MLP(2, [3, 2], act="tanh", out_act="sigmoid", seed=4)
    x = [0.3, -0.7]
    h = m.layers[0](x)
    assert [v.data for v in m(x)] == [v.data for v in m.layers[1](h)]
    assert m.layers[1].act == "sigmoid"


def test_repr():
    assert repr(Neuron(3, act="tanh", rng=0)) == "Neuron(nin=3, act='tanh')"
    assert repr(Neuron(3, bias=False, rng=0)) == "Neuron(nin=3, act='relu', bias=False)"
    assert repr(Layer(3, 4, rng=0)) == "Layer(nin=3, nout=4, act='relu')"
    assert repr(MLP(2, [8, 1], seed=0)) == "MLP(2 -> [8, 1], act='relu', out_act='linear')"


# -- init -------------------------------------------------------------------

def _data(model):
    return [p.data for p in model.parameters()]


def test_seed_reproducible():
    assert _data(MLP(3, [5, 2], seed=7)) == _data(MLP(3, [5, 2], seed=7))
    assert _data(MLP(3, [5, 2], seed=7)) == _data(MLP(3, [5, 2], seed=random.Random(7)))
    assert _data(MLP(3, [5, 2], seed=7)) != _data(MLP(3, [5, 2], seed=8))
    assert _data(Layer(4, 3, rng=11)) == _data(Layer(4, 3, rng=11))


def test_one_generator_for_the_whole_model():
    # the layers draw one after another from the same generator
    rng = random.Random(3)
    l1, l2 = Layer(2, 3, act="relu", rng=rng), Layer(3, 1, act="linear", rng=rng)
    m = MLP(2, [3, 1], seed=3)
    assert _data(m) == _data(l1) + _data(l2)


def test_he_init_scale_for_relu():
    layer = Layer(400, 50, act="relu", rng=0)
    w = [wi.data for n in layer.neurons for wi in n.w]          # 20000 draws
    assert abs(statistics.fmean(w)) < 0.003
    assert statistics.pstdev(w) == pytest.approx(math.sqrt(2 / 400), rel=0.03)
    assert all(n.b.data == 0.0 for n in layer.neurons)


@pytest.mark.parametrize("act", ["tanh", "sigmoid", "linear"])
def test_glorot_init_scale(act):
    layer = Layer(300, 100, act=act, rng=1)
    w = [wi.data for n in layer.neurons for wi in n.w]          # 30000 draws
    assert statistics.pstdev(w) == pytest.approx(math.sqrt(2 / 400), rel=0.03)


def test_mlp_init_scale_per_layer():
    m = MLP(200, [100, 50], act="relu", out_act="linear", seed=2)
    hidden = [wi.data for n in m.layers[0].neurons for wi in n.w]
    out = [wi.data for n in m.layers[1].neurons for wi in n.w]
    assert statistics.pstdev(hidden) == pytest.approx(math.sqrt(2 / 200), rel=0.03)
    assert statistics.pstdev(out) == pytest.approx(math.sqrt(2 / 150), rel=0.05)


# -- errors -----------------------------------------------------------------

@pytest.mark.parametrize("model", [MLP(2, [3, 1], seed=0), Layer(2, 3, rng=0), Neuron(2, rng=0)])
def test_wrong_input_count(model):
    with pytest.raises(ValueError, match="expected 2 inputs, got 3"):
        model([1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="expected 2 inputs, got 1"):
        model([1.0])


@pytest.mark.parametrize("model", [MLP(2, [3, 1], seed=0), Layer(2, 3, rng=0), Neuron(2, rng=0)])
def test_bad_input_types(model):
    with pytest.raises(TypeError, match="Value"):
        model(Value(1.0))
    with pytest.raises(TypeError, match="str"):
        model("ab")
    with pytest.raises(TypeError, match=r"input 1 .*str"):
        model([1.0, "x"])
    with pytest.raises(TypeError, match=r"input 0 .*bool"):
        model([True, 1.0])
    with pytest.raises(TypeError, match="NoneType"):
        model([None, 1.0])


def test_constructor_checks():
    with pytest.raises(TypeError, match="nin"):
        MLP(2.0, [3])
    with pytest.raises(ValueError, match="nin"):
        MLP(0, [3])
    with pytest.raises(TypeError, match="nouts"):
        MLP(2, 3)
    with pytest.raises(ValueError, match="nouts"):
        MLP(2, [])
    with pytest.raises(ValueError, match=r"nouts\[1\]"):
        MLP(2, [3, 0])
    with pytest.raises(TypeError, match=r"nouts\[0\]"):
        MLP(2, [True])
    with pytest.raises(TypeError, match="bias"):
        MLP(2, [3], bias=1)
    with pytest.raises(TypeError, match="seed"):
        MLP(2, [3], seed=1.5)
    with pytest.raises(ValueError, match="nout"):
        Layer(2, 0)
    with pytest.raises(TypeError, match="nin"):
        Neuron(None)
    with pytest.raises(TypeError, match="rng"):
        Neuron(2, rng="x")


def test_unknown_activation_lists_the_valid_ones():
    for make in (lambda: Neuron(2, act="gelu"), lambda: Layer(2, 2, act="gelu"),
                 lambda: MLP(2, [2], act="gelu"), lambda: MLP(2, [2], out_act="gelu")):
        with pytest.raises(ValueError) as e:
            make()
        assert "gelu" in str(e.value)
        assert all(name in str(e.value) for name in ("relu", "tanh", "sigmoid", "linear"))
    with pytest.raises(TypeError, match="act"):
        Neuron(2, act=None)


# -- gradients and training -------------------------------------------------

def test_zero_grad():
    m = MLP(2, [3, 1], seed=0)
    m([1.0, -2.0]).backward()
    assert any(p.grad != 0.0 for p in m.parameters())
    m.zero_grad()
    assert all(p.grad == 0.0 for p in m.parameters())
    assert isinstance(m, Module) and Module().parameters() == []


@pytest.mark.parametrize("act,out_act", [("tanh", "linear"), ("sigmoid", "tanh"),
                                         ("relu", "sigmoid")])
def test_mlp_gradients_pass_gradcheck(act, out_act):
    m = MLP(3, [4, 3, 1], act=act, out_act=out_act, seed=21)
    for n in (n for l in m.layers for n in l.neurons):
        n.b.data = 0.1                       # exercise the bias gradients too
    x, y = [0.4, -1.1, 0.7], 0.3
    params = m.parameters()
    assert gradcheck(lambda *ps: (m(x) - y) ** 2, params)
    # and with respect to the inputs
    xs = [Value(v) for v in x]
    assert gradcheck(lambda *v: m(list(v)), xs)


def test_layer_gradcheck_through_a_loss():
    layer = Layer(2, 3, act="tanh", rng=9)
    x = [0.5, -0.25]
    assert gradcheck(lambda *ps: losses.cross_entropy(layer(x), 1), layer.parameters())


def test_mlp_learns_xor():
    X = [[0.0, 0.0], [0.0, 1.0], [1.0, 0.0], [1.0, 1.0]]
    Y = [-1.0, 1.0, 1.0, -1.0]
    m = MLP(2, [4, 1], act="tanh", seed=0)
    opt = Adam(m.parameters(), lr=0.1)
    first = None
    for _ in range(100):
        loss = losses.mse([m(x) for x in X], Y)
        first = loss.data if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    preds = [m(x).data for x in X]
    assert [p > 0 for p in preds] == [y > 0 for y in Y]          # 100% accuracy
    assert losses.mse(preds, Y).data < 0.1 * first

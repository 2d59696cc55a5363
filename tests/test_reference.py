"""The two worked examples of the reference notes (../shared/reference.md).

Expected values come from the notes where they are right, and otherwise from
an independent computation with plain Python floats (math.exp, hand-derived
chain rule) and from central finite differences. The notes' printed gradients
for the hidden-layer weights are wrong (they use z(1 - z) for the sigmoid
derivative) and are deliberately not used.
"""
import math

import pytest

import microbp
from microbp import Value
from microbp.optim import SGD


# ---------------------------------------------------------------------------
# worked example 1: one ReLU neuron

X1 = [1.0, -2.0, 3.0]
W1 = [-3.0, -1.0, 2.0]
B1 = 1.0


def neuron(xs, ws, b):
    z = b
    for x, w in zip(xs, ws):
        z = z + x * w
    return z.relu()


def test_relu_neuron_forward_and_gradients():
    xs = [Value(x) for x in X1]
    ws = [Value(w) for w in W1]
    b = Value(B1)
    out = neuron(xs, ws, b)
    assert out.data == 6.0
    out.backward()
    assert [w.grad for w in ws] == X1          # dw = x
    assert [x.grad for x in xs] == W1          # dx = w
    assert b.grad == 1.0                       # db = 1


def test_relu_neuron_one_step_by_hand():
    xs = [Value(x) for x in X1]
    ws = [Value(w) for w in W1]
    b = Value(B1)
    neuron(xs, ws, b).backward()
    for p in ws + [b]:
        p.data -= 0.001 * p.grad
    assert [w.data for w in ws] == pytest.approx([-3.001, -0.998, 1.997], abs=1e-15)
    assert b.data == pytest.approx(0.999, abs=1e-15)
    assert neuron([Value(x) for x in X1], ws, b).data == pytest.approx(5.985, abs=1e-12)


@pytest.mark.parametrize("backend_name", ["python", "c"])
def test_relu_neuron_one_step_with_sgd(backend_name):
    if backend_name not in microbp.available_backends():
        pytest.skip("the C core is not built")
    with microbp.use_backend(backend_name):
        xs = [Value(x) for x in X1]
        ws = [Value(w) for w in W1]
        b = Value(B1)
        opt = SGD(ws + [b], lr=0.001)
        opt.zero_grad()
        neuron(xs, ws, b).backward()
        assert [w.grad for w in ws] == X1 and b.grad == 1.0
        opt.step()
        assert [w.data for w in ws] == pytest.approx([-3.001, -0.998, 1.997], abs=1e-15)
        assert b.data == pytest.approx(0.999, abs=1e-15)
        assert neuron(xs, ws, b).data == pytest.approx(5.985, abs=1e-12)


# ---------------------------------------------------------------------------
# worked example 2: a 2-2-1 sigmoid network, no biases, L = 1/2 (y - yhat)^2

XA, XB, Y = 0.23, 0.82, 1.0
# weight name -> value: "AC" is the weight from input A into hidden unit C
W2 = {"AC": 0.1, "BC": 0.4, "AD": 0.5, "BD": 0.3, "CE": 0.2, "DE": 0.6}
NAMES = list(W2)


def _sig(z):
    return 1.0 / (1.0 + math.exp(-z))


def float_forward(w):
    """The network on plain floats: (z_C, z_D, y_C, y_D, z_E, yhat, L)."""
    zc = w["AC"] * XA + w["BC"] * XB
    zd = w["AD"] * XA + w["BD"] * XB
    yc, yd = _sig(zc), _sig(zd)
    ze = w["CE"] * yc + w["DE"] * yd
    yh = _sig(ze)
    return zc, zd, yc, yd, ze, yh, 0.5 * (Y - yh) ** 2


def float_gradients(w):
    """dL/dw by the chain rule written out by hand, with s'(z) = s(z)(1 - s(z))."""
    zc, zd, yc, yd, ze, yh, _ = float_forward(w)
    d_e = (yh - Y) * yh * (1.0 - yh)                 # dL/dz_E
    d_c = d_e * w["CE"] * yc * (1.0 - yc)            # dL/dz_C
    d_d = d_e * w["DE"] * yd * (1.0 - yd)            # dL/dz_D
    return {"AC": d_c * XA, "BC": d_c * XB, "AD": d_d * XA, "BD": d_d * XB,
            "CE": d_e * yc, "DE": d_e * yd}


def engine_network(w):
    """The network with microbp: (dict of weight Values, dict of node Values)."""
    p = {k: Value(v, label=k) for k, v in w.items()}
    xa, xb, y = Value(XA), Value(XB), Value(Y)
    zc = p["AC"] * xa + p["BC"] * xb
    zd = p["AD"] * xa + p["BD"] * xb
    yc, yd = zc.sigmoid(), zd.sigmoid()
    ze = p["CE"] * yc + p["DE"] * yd
    yh = ze.sigmoid()
    loss = 0.5 * (y - yh) ** 2
    return p, {"zc": zc, "zd": zd, "yc": yc, "yd": yd, "ze": ze, "yh": yh, "L": loss}


def test_network_forward_matches_notes():
    _, n = engine_network(W2)
    # exact to the printed figures
    assert n["zc"].data == pytest.approx(0.351, abs=1e-15)
    assert n["zd"].data == pytest.approx(0.361, abs=1e-15)
    # four printed decimals
    assert n["yc"].data == pytest.approx(0.5868, abs=1e-4)
    assert n["yd"].data == pytest.approx(0.5892, abs=1e-4)
    assert n["L"].data == pytest.approx(0.0739, abs=1e-4)
    # The notes carry the rounded y_C, y_D forward: 0.2 * 0.5868 + 0.6 * 0.5892
    # = 0.47088 ("0.4708"), and sigmoid of that ("0.6155"). The exact values are
    # 0.47094 and 0.61561, within two units of the last printed place.
    assert 0.2 * 0.5868 + 0.6 * 0.5892 == pytest.approx(0.4708, abs=1e-4)
    assert n["ze"].data == pytest.approx(0.4708, abs=2e-4)
    assert n["yh"].data == pytest.approx(0.6155, abs=2e-4)


def test_network_forward_matches_float_recomputation():
    _, n = engine_network(W2)
    expected = float_forward(W2)
    got = [n[k].data for k in ("zc", "zd", "yc", "yd", "ze", "yh", "L")]
    assert got == pytest.approx(list(expected), rel=1e-13)


def _central_diff_loss(name, h=1e-6):
    up, dn = dict(W2), dict(W2)
    up[name] += h
    dn[name] -= h
    return (float_forward(up)[-1] - float_forward(dn)[-1]) / (up[name] - dn[name])


def test_network_gradients_vs_finite_differences():
    p, n = engine_network(W2)
    n["L"].backward()
    for k in NAMES:
        fd = _central_diff_loss(k)
        assert p[k].grad == pytest.approx(fd, rel=1e-6, abs=1e-10), k


def test_network_gradients_vs_hand_chain_rule():
    p, n = engine_network(W2)
    n["L"].backward()
    expected = float_gradients(W2)
    for k in NAMES:
        assert p[k].grad == pytest.approx(expected[k], rel=1e-12), k


def test_network_output_weight_gradients_match_notes():
    p, n = engine_network(W2)
    n["L"].backward()
    assert p["CE"].grad == pytest.approx(-0.0533, abs=1e-4)
    assert p["DE"].grad == pytest.approx(-0.0536, abs=1e-4)


def test_network_hidden_gradients_are_not_the_notes_formula():
    # The notes' mistake, s'(z) taken as z (1 - z), gives different numbers;
    # the engine must agree with s(z)(1 - s(z)) (finite differences) instead.
    p, n = engine_network(W2)
    n["L"].backward()
    zc = float_forward(W2)[0]
    yh = float_forward(W2)[5]
    d_e = (yh - Y) * yh * (1.0 - yh)
    wrong_ac = d_e * W2["CE"] * zc * (1.0 - zc) * XA
    assert abs(p["AC"].grad - wrong_ac) > 0.01 * abs(wrong_ac)     # 6% apart
    assert p["AC"].grad == pytest.approx(_central_diff_loss("AC"), rel=1e-6)


def test_network_one_gradient_step_lowers_loss():
    lr = 0.7
    p, n = engine_network(W2)
    before = n["L"].data
    n["L"].backward()
    grads = {k: p[k].grad for k in NAMES}
    for k in NAMES:
        p[k].data -= lr * p[k].grad
    _, n2 = engine_network({k: p[k].data for k in NAMES})
    after = n2["L"].data
    assert after < before
    # the same step done entirely on floats, with hand-derived gradients
    fg = float_gradients(W2)
    updated = {k: W2[k] - lr * fg[k] for k in NAMES}
    assert {k: p[k].data for k in NAMES} == pytest.approx(updated, rel=1e-13)
    assert after == pytest.approx(float_forward(updated)[-1], rel=1e-12)
    # and with the engine's own gradients, recomputed on floats
    assert after == pytest.approx(
        float_forward({k: W2[k] - lr * grads[k] for k in NAMES})[-1], rel=1e-14)


def test_network_one_step_with_sgd():
    p, n = engine_network(W2)
    params = [p[k] for k in NAMES]
    opt = SGD(params, lr=0.7)
    opt.zero_grad()
    before = n["L"].data
    n["L"].backward()
    opt.step()
    fg = float_gradients(W2)
    updated = {k: W2[k] - 0.7 * fg[k] for k in NAMES}
    assert [q.data for q in params] == pytest.approx([updated[k] for k in NAMES], rel=1e-13)
    _, n2 = engine_network({k: p[k].data for k in NAMES})
    assert n2["L"].data < before
    assert n2["L"].data == pytest.approx(float_forward(updated)[-1], rel=1e-12)

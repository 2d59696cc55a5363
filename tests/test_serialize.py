"""microbp.serialize: state dicts, the JSON model file, exact float round trips,
checked loads that change nothing on error, and atomic saves (crashes included)."""
import errno
import inspect
import json
import math
import os
import random
import stat
import struct
import subprocess
import sys
import textwrap
import time

import pytest

import microbp
from microbp import Tape, Value, losses, serialize
from microbp.nn import MLP, Layer, Module, Neuron
from microbp.optim import SGD, Adam
from microbp.params import Parameter
from microbp.serialize import FormatError, decode_float, encode_float

INF, NAN = math.inf, math.nan
SPECIAL = [INF, -INF, NAN, -0.0, 0.0, 5e-324, -5e-324, 1.7976931348623157e308,
           -1.7976931348623157e308, 2.2250738585072014e-308, 2.225073858507201e-308,
           0.1, 1 / 3, -2.5, 1e16, 9007199254740993.0, 1e-300, 123456789.125]


# -- helpers ------------------------------------------------------------------

def bits(x):
    return struct.pack("<d", x)


def same(x, y):
    """Bitwise equal, any nan equal to any nan."""
    return (x != x and y != y) or bits(x) == bits(y)


def snapshot(model):
    """The exact bits of every parameter (nan payloads too)."""
    return [bits(p.data) for p in model.parameters()]


def random_double(rng):
    """A double with 64 random bits: any exponent, subnormals, infs and nans."""
    return struct.unpack("<d", rng.getrandbits(64).to_bytes(8, "little"))[0]


def special_model(seed=0, **kw):
    """An MLP whose parameters are SPECIAL followed by random bit patterns."""
    m = MLP(3, [4, 4, 2], seed=seed, **kw)
    rng = random.Random(seed)
    for i, p in enumerate(m.parameters()):
        p.data = SPECIAL[i] if i < len(SPECIAL) else random_double(rng)
    return m


def assert_same_params(a, b):
    pa, pb = a.parameters(), b.parameters()
    assert len(pa) == len(pb)
    for i, (x, y) in enumerate(zip(pa, pb)):
        assert same(x.data, y.data), (i, x.data, y.data)


def files_in(d):
    return sorted(os.listdir(d))


# -- names and state dicts ----------------------------------------------------

def test_names_follow_structure():
    m = MLP(2, [3, 1], seed=0)
    names = [n for n, _ in m.named_parameters()]
    expect = []
    for i in range(3):
        expect += [f"layers.0.neurons.{i}.w.0", f"layers.0.neurons.{i}.w.1",
                   f"layers.0.neurons.{i}.b"]
    expect += [f"layers.1.neurons.0.w.{j}" for j in range(3)] + ["layers.1.neurons.0.b"]
    assert names == expect
    assert [p for _, p in m.named_parameters()] == m.parameters()    # same Values, same order
    assert list(m.state_dict()) == expect

    assert [n for n, _ in Neuron(2, rng=0).named_parameters()] == ["w.0", "w.1", "b"]
    assert [n for n, _ in Neuron(2, bias=False, rng=0).named_parameters()] == ["w.0", "w.1"]
    assert [n for n, _ in Layer(1, 2, rng=0).named_parameters()] == [
        "neurons.0.w.0", "neurons.0.b", "neurons.1.w.0", "neurons.1.b"]
    nb = MLP(2, [2], bias=False, seed=0)
    assert list(nb.state_dict()) == ["layers.0.neurons.0.w.0", "layers.0.neurons.0.w.1",
                                     "layers.0.neurons.1.w.0", "layers.0.neurons.1.w.1"]


def test_state_dict_is_an_ordered_copy_of_floats():
    m = MLP(2, [3, 1], seed=0)
    sd = m.state_dict()
    assert list(sd.values()) == [p.data for p in m.parameters()]
    assert all(type(x) is float for x in sd.values())
    before = snapshot(m)
    for k in sd:
        sd[k] = 42.0                     # the dict is a copy: the model does not move
    assert snapshot(m) == before


def test_state_dict_round_trip_is_bitwise():
    src, dst = special_model(0), special_model(1)
    dst.load_state_dict(src.state_dict())
    assert_same_params(src, dst)
    assert math.isnan(dst.parameters()[2].data)
    assert bits(dst.parameters()[3].data) == bits(-0.0)


def test_load_state_dict_accepts_ints_and_float_strings():
    m = MLP(1, [2], seed=0)              # 4 parameters
    names = list(m.state_dict())
    m.load_state_dict(dict(zip(names, [3, "-0.0", "nan", "5e-324"])))
    d = [p.data for p in m.parameters()]
    assert type(d[0]) is float and d[0] == 3.0
    assert bits(d[1]) == bits(-0.0) and math.isnan(d[2]) and d[3] == 5e-324
    m.load_state_dict(dict(zip(names, ["-inf", "inf", "1", "0.50"])))
    assert [p.data for p in m.parameters()] == [-INF, INF, 1.0, 0.5]


def _last(sd):
    return list(sd)[-1]


def _bad_last(value):
    def mutate(sd):
        sd[_last(sd)] = value
        return sd
    return mutate


def _without_last(sd):
    del sd[_last(sd)]
    return sd


def _with_extra(key):
    def mutate(sd):
        sd[key] = 1.0
        return sd
    return mutate


B = "state_dict['layers.1.neurons.0.b']"


@pytest.mark.parametrize("mutate, exc, words", [
    (lambda sd: list(sd.items()), TypeError, "must be a mapping of parameter names to floats"),
    (_without_last, ValueError, "missing 1 parameter(s): 'layers.1.neurons.0.b'"),
    (_with_extra("layers.9.b"), ValueError, "unexpected 1 name(s): 'layers.9.b'"),
    (_with_extra(3), ValueError, "unexpected 1 name(s): 3"),
    (_bad_last(None), TypeError, f"{B} must be a float, an int or a float as a string"),
    (_bad_last([1.0]), TypeError, f"{B} must be a float"),
    (_bad_last(True), TypeError, "not bool"),
    (_bad_last("abc"), ValueError, f"{B}: 'abc' is not a float as a string"),
    (_bad_last(" 1.0"), ValueError, "is not a float"),
    (_bad_last("Infinity"), ValueError, "is not a float"),
    (_bad_last("0x1p-3"), ValueError, "is not a float"),
    (_bad_last("1_000.0"), ValueError, "is not a float"),
    (_bad_last("1e999"), ValueError, f"{B}: '1e999' is too large for a double"),
    (_bad_last("-1e-999"), ValueError, "too small"),
    (_bad_last(10 ** 400), ValueError, "too large"),
])
def test_failed_load_state_dict_changes_nothing(mutate, exc, words):
    m = MLP(2, [3, 1], seed=0)
    before = snapshot(m)
    # every value differs from the model's, and the bad entry comes last: a loader
    # that assigned as it checked would have moved every other parameter
    sd = {k: v + 1.0 for k, v in m.state_dict().items()}
    with pytest.raises(exc) as info:
        m.load_state_dict(mutate(sd))
    assert words in str(info.value)
    assert snapshot(m) == before


def test_error_lists_missing_and_unexpected_names():
    small, big = MLP(2, [3, 1], seed=0), MLP(2, [4, 1], seed=0)
    with pytest.raises(ValueError) as info:
        big.load_state_dict(small.state_dict())
    msg = str(info.value)
    assert "does not fit MLP(nin=2, nouts=[4, 1]" in msg and "(17 parameters)" in msg
    assert ("missing 4 parameter(s): 'layers.0.neurons.3.w.0', 'layers.0.neurons.3.w.1', "
            "'layers.0.neurons.3.b', 'layers.1.neurons.0.w.3'") in msg
    with pytest.raises(ValueError) as info:
        MLP(2, [9, 1], seed=0).load_state_dict(small.state_dict())
    assert "missing 24 parameter(s): 'layers.0.neurons.3.w.0', 'layers.0.neurons.3.w.1', " \
           "'layers.0.neurons.3.b', 'layers.0.neurons.4.w.0', 'layers.0.neurons.4.w.1', " \
           "... (19 more)" in str(info.value)
    with pytest.raises(ValueError) as info:
        MLP(2, [2, 1], seed=0).load_state_dict(small.state_dict())
    assert str(info.value).endswith(
        "(9 parameters): unexpected 4 name(s): 'layers.0.neurons.2.w.0', "
        "'layers.0.neurons.2.w.1', 'layers.0.neurons.2.b', 'layers.1.neurons.0.w.2'")


class Pair(Module):
    """A Module with no names of its own: named by position."""

    def __init__(self):
        self.a, self.b = Value(1.5), Value(-2.0)

    def parameters(self):
        return [self.a, self.b]


class NeedsArgs(Pair):
    def __init__(self, x):
        super().__init__()


class Twice(Pair):
    def named_parameters(self):
        return [("p", self.a), ("p", self.b)]


def test_module_default_names_by_position(tmp_path):
    p = Pair()
    assert p.state_dict() == {"0": 1.5, "1": -2.0}
    p.save(tmp_path / "p.json")
    doc = json.loads((tmp_path / "p.json").read_text())
    assert doc["model"] == {"class": "Pair"} and doc["params"] == {"0": "1.5", "1": "-2.0"}
    q = Pair()
    q.a.data = 0.0
    assert q.load(tmp_path / "p.json") is q and q.a.data == 1.5
    r = Pair.from_file(tmp_path / "p.json")           # Pair() needs no arguments
    assert type(r) is Pair and r.state_dict() == p.state_dict()

    n = NeedsArgs(1)
    n.save(tmp_path / "n.json")
    with pytest.raises(FormatError, match=r"cannot build NeedsArgs\(\) from the file: TypeError"):
        NeedsArgs.from_file(tmp_path / "n.json")
    assert NeedsArgs(2).load(tmp_path / "n.json").state_dict() == n.state_dict()


def test_duplicate_names_are_refused(tmp_path):
    with pytest.raises(ValueError, match="gave the name 'p' twice"):
        Twice().state_dict()
    with pytest.raises(ValueError, match="twice"):
        Twice().save(tmp_path / "t.json")
    assert files_in(tmp_path) == []


# -- floats as strings ----------------------------------------------------------

def test_every_double_survives_the_string_code():
    rng = random.Random(1234)
    xs = SPECIAL + [random_double(rng) for _ in range(20000)]
    xs += [math.nextafter(x, d) for x in (0.0, 1.0, 2.2250738585072014e-308,
                                            1.7976931348623157e308) for d in (-INF, INF)]
    for x in xs:
        s = encode_float(x)
        assert s.isascii()
        assert same(decode_float(s), x), (x, s)
    assert encode_float(-0.0) == "-0.0" and encode_float(-NAN) == "nan"
    assert [encode_float(x) for x in (INF, -INF, 5e-324)] == ["inf", "-inf", "5e-324"]


@pytest.mark.parametrize("s", ["", " 1", "1 ", "+1.0", "1.", ".5", "1e", "e5", "--1", "NaN",
                               "Inf", "infinity", "0x1p0", "1_0", "١", "1.0f", "nan(1)"])
def test_decode_float_is_strict(s):
    with pytest.raises(ValueError, match="is not a float"):
        decode_float(s, "x")


def test_decode_float_refuses_to_lose_a_value():
    with pytest.raises(ValueError, match="too large"):
        decode_float("1.8e308")
    with pytest.raises(ValueError, match="too small"):
        decode_float("2e-324")                  # below half the least subnormal: 0
    assert decode_float("3e-324") == 5e-324     # rounds to the least subnormal: kept
    assert bits(decode_float("-0.000e5")) == bits(-0.0)


# -- the file ---------------------------------------------------------------------

def test_file_format(tmp_path):
    m = MLP(2, [3, 1], act="tanh", out_act="sigmoid", seed=0)
    m.parameters()[0].data = NAN
    m.parameters()[1].data = -INF
    path = tmp_path / "model.json"
    m.save(path)
    raw = path.read_bytes()
    assert raw.isascii() and raw.endswith(b"}\n")

    def strict(name):
        raise AssertionError(f"{name} in the file")
    doc = json.loads(raw, parse_constant=strict)
    assert list(doc) == ["format", "version", "model", "params"]
    assert doc["format"] == "microbp" and doc["version"] == 1
    assert doc["model"] == {"class": "MLP", "nin": 2, "nouts": [3, 1], "act": "tanh",
                            "out_act": "sigmoid", "bias": True}
    assert list(doc["params"]) == list(m.state_dict())
    assert all(type(v) is str for v in doc["params"].values())
    assert doc["params"]["layers.0.neurons.0.w.0"] == "nan"
    assert doc["params"]["layers.0.neurons.0.w.1"] == "-inf"
    m.save(path)
    assert path.read_bytes() == raw              # deterministic


@pytest.mark.parametrize("kw", [{}, {"act": "tanh", "out_act": "sigmoid"}, {"bias": False}])
def test_save_load_round_trip_is_bitwise(tmp_path, kw):
    src = special_model(0, **kw)
    path = tmp_path / "model.json"
    src.save(path)
    new = MLP.from_file(path)
    assert type(new) is MLP and new.config() == src.config()
    assert_same_params(src, new)
    into = special_model(7, **kw)
    assert into.load(path) is into
    assert_same_params(src, into)
    ps = into.parameters()
    assert [bits(p.data) for p in ps[3:8]] == [bits(x) for x in SPECIAL[3:8]]
    assert ps[0].data == INF and ps[1].data == -INF and math.isnan(ps[2].data)


def test_layer_and_neuron_files(tmp_path):
    layer = Layer(3, 2, act="tanh", bias=False, rng=1)
    layer.neurons[1].w[2].data = -0.0
    layer.save(tmp_path / "l.json")
    back = Layer.from_file(tmp_path / "l.json")
    assert repr(back) == repr(layer)
    assert_same_params(layer, back)
    n = Neuron(4, act="sigmoid", rng=2)
    n.b.data = 5e-324
    n.save(tmp_path / "n.json")
    assert_same_params(n, Neuron.from_file(tmp_path / "n.json"))
    with pytest.raises(FormatError, match=r"holds a Neuron\(nin=4.*not a Layer"):
        Layer.from_file(tmp_path / "n.json")


# -- bound parameters, optimizers and tapes -------------------------------------

def test_bound_parameters_save_and_load(tmp_path, backend):
    m = MLP(2, [4, 1], seed=0)
    opt = Adam(m.parameters(), lr=0.01)
    assert all(type(p) is Parameter for p in m.parameters())
    for _ in range(3):
        opt.zero_grad()
        losses.mse([m([0.5, -1.0])], [1.0]).backward()
        opt.step()
    path = tmp_path / "model.json"
    m.save(path)
    fresh = MLP.from_file(path)
    assert all(type(p) is Parameter for p in fresh.parameters())
    assert_same_params(m, fresh)

    other = special_model(3)
    other_path = tmp_path / "special.json"
    other.save(other_path)
    target = MLP(3, [4, 4, 2], seed=5)
    SGD(target.parameters(), lr=0.1)             # bound to a store
    grads = [p.grad for p in target.parameters()]
    target.load(other_path)
    assert_same_params(other, target)
    store = target.parameters()[0]._store
    assert same(store._data[0], INF) and math.isnan(store._data[2])
    assert bits(store._data[3]) == bits(-0.0)     # the flat array holds them exactly
    assert [p.grad for p in target.parameters()] == grads     # grads are not touched


def test_failed_load_leaves_bound_parameters_unchanged(tmp_path):
    m = MLP(2, [3, 1], seed=0)
    SGD(m.parameters(), lr=0.1)
    before = snapshot(m)
    sd = {k: v + 1.0 for k, v in m.state_dict().items()}
    sd[_last(sd)] = "oops"
    with pytest.raises(ValueError, match="oops"):
        m.load_state_dict(sd)
    assert snapshot(m) == before
    path = tmp_path / "bad.json"
    MLP(2, [3, 1], seed=1).save(path)
    path.write_text(path.read_text().replace('"layers.1.neurons.0.b": "0.0"',
                                              '"layers.1.neurons.0.b": "zero"'))
    with pytest.raises(FormatError, match="zero"):
        m.load(path)
    assert snapshot(m) == before


def test_optimizer_and_tape_see_loaded_values(tmp_path, backend):
    xs = [Value(0.0, label=f"x{j}") for j in range(3)]
    m = MLP(3, [5, 1], act="tanh", seed=0)
    tape = Tape(m(xs), xs)                       # binds the parameters
    opt = SGD(m.parameters(), lr=0.1)
    src = MLP(3, [5, 1], act="tanh", seed=9)
    path = tmp_path / "model.json"
    src.save(path)
    m.load(path)
    rows = [[0.5, -1.0, 2.0], [0.0, 0.25, -0.75]]
    assert tape.forward(rows) == [src(r).data for r in rows]
    opt.zero_grad()
    tape.backward()
    opt.step()                                   # steps from the loaded values
    src.zero_grad()
    for r in rows:
        src(r).backward()
    expect = [p.data - 0.1 * p.grad for p in src.parameters()]
    assert [p.data for p in m.parameters()] == pytest.approx(expect, rel=1e-12, abs=1e-15)


# -- bad files: clear errors, model unchanged ---------------------------------

def _doc(model):
    from microbp import serialize
    return json.loads(serialize.dumps(model))


def _set(path, value):
    def mutate(doc):
        d = doc
        for k in path[:-1]:
            d = d[k]
        d[path[-1]] = value
        return doc
    return mutate


def _drop(path):
    def mutate(doc):
        d = doc
        for k in path[:-1]:
            d = d[k]
        del d[path[-1]]
        return doc
    return mutate


LAST = "layers.1.neurons.0.b"
FIRST = "layers.0.neurons.0.w.0"

BAD_DOCS = [
    ("list", lambda d: [d], "expected a JSON object, found an array"),
    ("string", lambda d: "model", "expected a JSON object, found a string"),
    ("format", _set(["format"], "pytorch"), "not a microbp model file: \"format\" is 'pytorch'"),
    ("no format", _drop(["format"]), "\"format\" is missing"),
    ("newer", _set(["version"], 2), "unsupported version 2 (written by a newer microbp)"),
    ("version 0", _set(["version"], 0), "unsupported version 0: this microbp reads version 1"),
    ("version str", _set(["version"], "1"), "\"version\" must be an integer, found a string"),
    ("version bool", _set(["version"], True), "\"version\" must be an integer, found true/false"),
    ("version float", _set(["version"], 1.0), "\"version\" must be an integer, found a number"),
    ("no version", _drop(["version"]), "\"version\" must be an integer, found missing"),
    ("extra key", _set(["comment"], "hi"), "unexpected 'comment'"),
    ("no params", _drop(["params"]), "missing 'params'"),
    ("no model", _drop(["model"]), "missing 'model'"),
    ("model list", _set(["model"], ["MLP"]), "\"model\" must be an object, found an array"),
    ("no class", _drop(["model", "class"]), "\"model\" must name the model's class"),
    ("class", _set(["model", "class"], "Layer"), "the file holds a Layer(nin=2"),
    ("nouts", _set(["model", "nouts"], [4, 1]),
     "nouts is [4, 1] in the file but [3, 1] in this model"),
    ("act", _set(["model", "act"], "tanh"), "act is 'tanh' in the file but 'relu'"),
    ("bias 1", _set(["model", "bias"], 1), "bias is 1 in the file but True in this model"),
    ("model extra", _set(["model", "seed"], 0), "seed is 0 in the file but '(absent)'"),
    ("params list", _set(["params"], []), "\"params\" must be an object, found an array"),
    ("missing name", _drop(["params", LAST]), f"missing 1 parameter(s): '{LAST}'"),
    ("extra name", _set(["params", "layers.2.neurons.0.b"], "0.0"),
     "unexpected 1 name(s): 'layers.2.neurons.0.b'"),
    ("number", _set(["params", LAST], 0.5),
     f"params['{LAST}'] must be a float as a string such as \"0.5\""),
    ("null", _set(["params", LAST], None), "found null"),
    ("nested", _set(["params", LAST], {"v": "1.0"}), "found an object"),
    ("word", _set(["params", LAST], "one"), f"params['{LAST}']: 'one' is not a float"),
    ("overflow", _set(["params", LAST], "1e400"), "too large for a double"),
    ("underflow", _set(["params", FIRST], "1e-400"), "too small for a double"),
    ("NaN word", _set(["params", LAST], "NaN"), "is not a float"),
]


def _write_doc(path, doc):
    path.write_text(json.dumps(doc))


@pytest.mark.parametrize("name, mutate, words", BAD_DOCS, ids=[b[0] for b in BAD_DOCS])
def test_bad_document_into_model(tmp_path, name, mutate, words):
    m = MLP(2, [3, 1], seed=0)
    SGD(m.parameters(), lr=0.1)
    before = snapshot(m)
    path = tmp_path / "bad.json"
    _write_doc(path, mutate(_doc(MLP(2, [3, 1], seed=1))))
    with pytest.raises(FormatError) as info:
        m.load(path)
    assert str(info.value).startswith(str(path) + ": ")
    assert words in str(info.value)
    assert isinstance(info.value, ValueError)
    assert snapshot(m) == before


@pytest.mark.parametrize("name, mutate, words", BAD_DOCS, ids=[b[0] for b in BAD_DOCS])
def test_bad_document_new_model(tmp_path, name, mutate, words):
    path = tmp_path / "bad.json"
    _write_doc(path, mutate(_doc(MLP(2, [3, 1], seed=1))))
    if name == "act":                            # another architecture, but a sound file
        assert MLP.from_file(path).act == "tanh"
        return
    with pytest.raises(FormatError) as info:
        MLP.from_file(path)
    assert str(info.value).startswith(str(path) + ": ")


@pytest.mark.parametrize("config, words", [
    ({"nin": 0}, "ValueError: nin must be a positive int"),
    ({"nin": "2"}, "TypeError: nin must be an int"),
    ({"nin": 2.0}, "TypeError: nin must be an int"),
    ({"nouts": []}, "nouts is empty"),
    ({"act": "gelu"}, "unknown act 'gelu'"),
    ({"bias": 1}, "bias must be a bool"),
    ({"seed": 0}, "builds MLP(nin=2, nouts=[3, 1], act='relu', out_act='linear', bias=True)"),
    ({"width": 3}, "unexpected keyword argument 'width'"),
])
def test_bad_model_config_new_model(tmp_path, config, words):
    doc = _doc(MLP(2, [3, 1], seed=1))
    doc["model"].update(config)
    path = tmp_path / "bad.json"
    _write_doc(path, doc)
    with pytest.raises(FormatError) as info:
        MLP.from_file(path)
    assert words in str(info.value)


def test_params_that_do_not_fit_the_model_config(tmp_path):
    doc = _doc(MLP(2, [3, 1], seed=1))
    doc["model"]["nouts"] = [2, 1]               # the params are still those of [3, 1]
    path = tmp_path / "bad.json"
    _write_doc(path, doc)
    with pytest.raises(FormatError, match=r"params does not fit MLP\(nin=2, nouts=\[2, 1\].* "
                                          r"\(9 parameters\): unexpected 4 name\(s\): "
                                          r"'layers.0.neurons.2.w.0'"):
        MLP.from_file(path)
    doc["model"]["nin"] = 3                      # and now some are missing too
    _write_doc(path, doc)
    with pytest.raises(FormatError, match=r"missing 2 parameter\(s\): 'layers.0.neurons.0.w.2'.*"
                                          r"; unexpected 4 name\(s\)"):
        MLP.from_file(path)


BAD_TEXTS = [
    ("empty", b"", "the file is empty"),
    ("blank", b" \n\t", "the file is empty"),
    ("not json", b"hello", "not valid JSON (it stops early: truncated?): Expecting value"),
    ("garbage", b"{'format': 'microbp'}", "not valid JSON: Expecting property name"),
    ("binary", b"\xff\xfe{}", "not UTF-8 text (bad byte at offset 0)"),
    ("NaN", None, "NaN is not JSON"),
    ("Infinity", None, "-Infinity is not JSON"),
    ("duplicate", None, f"the key '{LAST}' appears twice in one object"),
    ("trailing", None, "not valid JSON: Extra data"),
    ("deep", b"[" * 100000 + b"]" * 100000, "not valid JSON"),
    ("huge int", b'{"format": "microbp", "version": ' + b"9" * 5000 + b"}", "not valid JSON"),
]


def _bad_text(name, raw, good):
    if raw is not None:
        return raw
    last = f'"{LAST}": "0.0"'.encode()
    return {"NaN": good.replace(last, f'"{LAST}": NaN'.encode()),
            "Infinity": good.replace(last, f'"{LAST}": -Infinity'.encode()),
            "duplicate": good.replace(last, last + b",\n    " + last),
            "trailing": good + b"{}"}[name]


@pytest.mark.parametrize("name, raw, words", BAD_TEXTS, ids=[b[0] for b in BAD_TEXTS])
def test_bad_text(tmp_path, name, raw, words):
    good_path = tmp_path / "good.json"
    MLP(2, [3, 1], seed=1).save(good_path)
    raw = _bad_text(name, raw, good_path.read_bytes())
    path = tmp_path / "bad.json"
    path.write_bytes(raw)
    m = MLP(2, [3, 1], seed=0)
    before = snapshot(m)
    with pytest.raises(FormatError) as info:
        m.load(path)
    assert words in str(info.value)
    assert snapshot(m) == before
    with pytest.raises(FormatError):
        MLP.from_file(path)


def test_every_truncation_is_refused(tmp_path):
    src = special_model(0)
    good = tmp_path / "good.json"
    src.save(good)
    raw = good.read_bytes()
    m = special_model(1)
    before = snapshot(m)
    path = tmp_path / "cut.json"
    end = len(raw.rstrip())
    for n in range(0, end):
        path.write_bytes(raw[:n])
        with pytest.raises(FormatError) as info:
            m.load(path)
        assert n == 0 or "not valid JSON" in str(info.value), n
        assert snapshot(m) == before, n
    path.write_bytes(raw[:end])                  # only the final newline gone: still whole
    assert_same_params(src, MLP.from_file(path))


def test_a_missing_file_is_an_os_error(tmp_path):
    m = MLP(2, [3, 1], seed=0)
    with pytest.raises(FileNotFoundError):
        m.load(tmp_path / "nope.json")
    with pytest.raises(FileNotFoundError):
        MLP.from_file(str(tmp_path / "nope.json"))


# -- atomic saves ---------------------------------------------------------------

def test_save_steps_in_order(tmp_path, monkeypatch):
    events = []
    real_write, real_fsync, real_replace = os.write, os.fsync, os.replace

    def write(fd, data):
        if not events or events[-1] != "write":
            events.append("write")
        return real_write(fd, data)

    def fsync(fd):
        events.append("fsync dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync file")
        return real_fsync(fd)

    def replace(src, dst):
        events.append("replace")
        assert os.path.dirname(src) == os.path.dirname(dst)      # same directory
        assert os.path.basename(src).startswith(".model.json.")
        assert os.path.basename(src).endswith(".tmp")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "write", write)
    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    MLP(2, [3, 1], seed=0).save(tmp_path / "model.json")
    monkeypatch.undo()
    if os.name == "posix":
        assert events == ["write", "fsync file", "replace", "fsync dir"]
    else:
        assert events == ["write", "fsync file", "replace"]
    assert files_in(tmp_path) == ["model.json"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_save_keeps_the_file_mode(tmp_path):
    path = tmp_path / "model.json"
    MLP(2, [3, 1], seed=0).save(path)
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o666 & ~umask     # like open(path, "w")
    os.chmod(path, 0o640)
    MLP(2, [3, 1], seed=1).save(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_save_through_a_symlink_replaces_its_target(tmp_path):
    real = tmp_path / "real.json"
    MLP(2, [3, 1], seed=0).save(real)
    link = tmp_path / "link.json"
    link.symlink_to(real)
    src = MLP(2, [3, 1], seed=1)
    src.save(link)
    assert link.is_symlink()
    assert_same_params(src, MLP.from_file(real))
    assert files_in(tmp_path) == ["link.json", "real.json"]


def _fail_write_halfway(exc, tmp_path, seen):
    real_write = os.write

    def write(fd, data):
        if not seen:                             # a short write: half the bytes land
            seen.append(len(data))
            return real_write(fd, bytes(data[:len(data) // 2]))
        temps = [f for f in files_in(tmp_path) if f.endswith(".tmp")]
        assert len(temps) == 1                   # the crash really is mid-file
        assert os.path.getsize(tmp_path / temps[0]) == seen[0] // 2
        raise exc
    return "write", write


def _raise(exc):
    def fake(*args):
        raise exc
    return fake


def _close_then_fail(fd, _real=os.close):
    _real(fd)
    raise OSError(errno.EIO, "Input/output error")


CRASHES = {
    "disk full mid-write": lambda tp, seen: _fail_write_halfway(
        OSError(errno.ENOSPC, "No space left on device"), tp, seen),
    "interrupt mid-write": lambda tp, seen: _fail_write_halfway(KeyboardInterrupt(), tp, seen),
    "fsync fails": lambda tp, seen: ("fsync", _raise(OSError(errno.EIO, "Input/output error"))),
    "close fails": lambda tp, seen: ("close", _close_then_fail),
    "chmod fails": lambda tp, seen: ("chmod", _raise(PermissionError(errno.EPERM, "no"))),
    "replace fails": lambda tp, seen: ("replace", _raise(PermissionError(errno.EACCES, "no"))),
}


@pytest.mark.parametrize("old", [True, False], ids=["over old file", "new file"])
@pytest.mark.parametrize("crash", list(CRASHES))
def test_crash_during_save_leaves_old_file_and_no_temp(tmp_path, monkeypatch, crash, old):
    path = tmp_path / "model.json"
    old_model = MLP(2, [3, 1], seed=0)
    if old:
        old_model.save(path)
        old_bytes = path.read_bytes()
    elif crash == "chmod fails":
        pytest.skip("a new file keeps the mode it was made with: no chmod")
    seen = []
    name, fake = CRASHES[crash](tmp_path, seen)
    monkeypatch.setattr(os, name, fake)
    expected = KeyboardInterrupt if crash == "interrupt mid-write" else OSError
    with pytest.raises(expected):
        MLP(2, [3, 1], seed=1).save(path)
    monkeypatch.undo()
    if old:
        assert files_in(tmp_path) == ["model.json"]
        assert path.read_bytes() == old_bytes
        assert_same_params(old_model, MLP.from_file(path))
    else:
        assert files_in(tmp_path) == []
    new = MLP(2, [3, 1], seed=2)
    new.save(path)                               # and the next save works
    assert_same_params(new, MLP.from_file(path))
    assert files_in(tmp_path) == ["model.json"]


def test_killed_in_the_middle_of_a_save(tmp_path):
    """A process that dies mid-write (no cleanup runs at all) leaves the old file
    whole; only a stray temporary file holds the part written."""
    path = tmp_path / "model.json"
    old = MLP(3, [16, 16, 1], seed=0)
    old.save(path)
    old_bytes = path.read_bytes()
    script = textwrap.dedent("""
        import os, sys
        from microbp.nn import MLP
        real_write = os.write
        def dying_write(fd, data):
            real_write(fd, bytes(data[:len(data) // 2]))
            os._exit(3)                          # killed: no except, no finally
        os.write = dying_write
        MLP(3, [16, 16, 1], seed=1).save(sys.argv[1])
    """)
    root = os.path.dirname(os.path.dirname(os.path.abspath(microbp.__file__)))
    env = dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, "-c", script, str(path)], env=env,
                          capture_output=True, timeout=120)
    assert proc.returncode == 3, proc.stderr.decode()
    assert path.read_bytes() == old_bytes
    assert_same_params(old, MLP.from_file(path))
    temps = [f for f in files_in(tmp_path) if f != "model.json"]
    assert len(temps) == 1 and temps[0].startswith(".model.json.") and temps[0].endswith(".tmp")
    from microbp import serialize
    part = (tmp_path / temps[0]).read_bytes()
    whole = serialize.dumps(MLP(3, [16, 16, 1], seed=1)).encode()
    assert 0 < len(part) < len(whole) and whole.startswith(part)
    with pytest.raises(FormatError, match="truncated"):
        MLP.from_file(tmp_path / temps[0])


def test_save_errors_leave_nothing_behind(tmp_path):
    with pytest.raises(FileNotFoundError):
        MLP(2, [1], seed=0).save(tmp_path / "no" / "such" / "dir.json")
    (tmp_path / "adir").mkdir()
    with pytest.raises(OSError):
        MLP(2, [1], seed=0).save(tmp_path / "adir")
    assert files_in(tmp_path) == ["adir"] and files_in(tmp_path / "adir") == []


# -- from_file and load: two methods, two names -----------------------------------

def test_from_file_builds_and_load_loads_into(tmp_path):
    src = special_model(0)
    path = tmp_path / "model.json"
    src.save(path)
    assert isinstance(inspect.getattr_static(Module, "from_file"), classmethod)
    assert inspect.isfunction(inspect.getattr_static(Module, "load"))
    new = MLP.from_file(path)
    assert type(new) is MLP and new is not src
    assert_same_params(src, new)
    into = special_model(5)
    assert into.load(path) is into
    assert_same_params(src, into)
    with pytest.raises(TypeError):               # load is an instance method only
        MLP.load(path)
    assert not hasattr(serialize, "dualmethod")


# -- saving: the directory fsync, special files, stale temporaries -------------------

@pytest.mark.skipif(os.name != "posix", reason="directory fsync is POSIX")
def test_failed_directory_fsync_after_the_rename_is_a_warning(tmp_path, monkeypatch):
    path = tmp_path / "model.json"
    MLP(2, [3, 1], seed=0).save(path)
    real_fsync = os.fsync

    def fsync(fd):
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, "Input/output error")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    new = MLP(2, [3, 1], seed=1)
    with pytest.warns(RuntimeWarning, match="saved .*model.json, but could not fsync its "
                                            "directory .*Input/output error"):
        new.save(path)                           # success: the new file is in place
    monkeypatch.undo()
    assert_same_params(new, MLP.from_file(path))
    assert files_in(tmp_path) == ["model.json"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="FIFOs are POSIX")
def test_save_refuses_a_fifo_and_other_special_files(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    link = tmp_path / "link.json"
    link.symlink_to(fifo)
    for target in (fifo, link, str(fifo)):
        with pytest.raises(ValueError, match=r"cannot save to .*: it is a FIFO \(named pipe\); "
                                             r"a model is saved to a regular file or a new path"):
            MLP(2, [1], seed=0).save(target)
    assert stat.S_ISFIFO(os.stat(fifo).st_mode)  # still a FIFO, not a file
    assert files_in(tmp_path) == ["link.json", "pipe"]
    with pytest.raises(IsADirectoryError, match="it is a directory"):
        MLP(2, [1], seed=0).save(tmp_path)


def _child_env():
    root = os.path.dirname(os.path.dirname(os.path.abspath(microbp.__file__)))
    return dict(os.environ, PYTHONPATH=root + os.pathsep + os.environ.get("PYTHONPATH", ""))


def temps(d):
    return [f for f in files_in(d) if f.endswith(".tmp")]


@pytest.mark.skipif(os.name != "posix", reason="kill -9 and flock are POSIX")
def test_a_save_killed_with_sigkill_leaves_a_temp_the_next_save_removes(tmp_path):
    path = tmp_path / "model.json"
    MLP(2, [3, 1], seed=0).save(path)
    other = tmp_path / ".other.json.0123456789ab.tmp"        # another file's temporary
    other.write_text("not ours")
    script = textwrap.dedent("""
        import os, sys, time
        from microbp.nn import MLP
        def stuck_replace(src, dst):         # the whole file written and fsynced
            print("writing done", flush=True)
            time.sleep(120)
        os.replace = stuck_replace
        MLP(2, [3, 1], seed=1).save(sys.argv[1])
    """)
    child = subprocess.Popen([sys.executable, "-c", script, str(path)], env=_child_env(),
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"writing done\n", child.stderr.read().decode()
        [tmp] = [t for t in temps(tmp_path) if t.startswith(".model.json.")]
        live = MLP(2, [3, 1], seed=2)
        live.save(path)                          # the child is alive: its temp is kept
        assert tmp in files_in(tmp_path)
        assert_same_params(live, MLP.from_file(path))
    finally:
        child.kill()                             # SIGKILL: no cleanup runs in the child
        child.wait(timeout=60)
        child.stdout.close()
        child.stderr.close()
    assert child.returncode == -9
    assert tmp in files_in(tmp_path)             # what a crash leaves behind
    last = MLP(2, [3, 1], seed=3)
    last.save(path)                              # ... and the next save of that name removes
    assert files_in(tmp_path) == [".other.json.0123456789ab.tmp", "model.json"]
    assert_same_params(last, MLP.from_file(path))


# -- a small file cannot make from_file build a huge model ---------------------------

@pytest.mark.parametrize("cls, config, name", [
    (MLP, {"nin": 3 * 10 ** 6, "nouts": [1], "act": "relu", "out_act": "linear",
           "bias": True}, "layers.0.neurons.0.b"),
    (MLP, {"nin": 2, "nouts": [10 ** 9, 1], "act": "relu", "out_act": "linear",
           "bias": True}, "layers.0.neurons.0.b"),
    (Layer, {"nin": 3 * 10 ** 6, "nout": 1, "act": "relu", "bias": True}, "neurons.0.b"),
    (Neuron, {"nin": 3 * 10 ** 6, "act": "relu", "bias": True}, "b"),
])
def test_a_file_claiming_a_huge_model_fails_before_building(tmp_path, monkeypatch,
                                                             cls, config, name):
    doc = {"format": "microbp", "version": 1, "model": {"class": cls.__name__, **config},
           "params": {name: "0.0"}}
    path = tmp_path / "huge.json"
    path.write_text(json.dumps(doc))
    assert path.stat().st_size < 200             # the file had 186 bytes
    built = []
    real_init = Neuron.__init__

    def counting_init(self, *args, **kw):
        built.append(1)
        real_init(self, *args, **kw)

    monkeypatch.setattr(Neuron, "__init__", counting_init)
    start = time.perf_counter()
    with pytest.raises(FormatError, match=r"params does not fit .*: the file holds 1 "
                                          r"parameter\(s\), that model has \d+ \(not built\)"):
        cls.from_file(path)
    assert time.perf_counter() - start < 1.0     # building it took 18 s
    assert built == []


def test_from_file_trusts_no_size_rule_for_a_subclass_that_builds_differently(tmp_path):
    class Narrow(MLP):                           # hidden layers half as wide as asked
        def __init__(self, nin, nouts, **kw):
            super().__init__(nin, [n // 2 for n in nouts[:-1]] + nouts[-1:], **kw)
            self.asked = list(nouts)

        def config(self):
            return {"nin": self.nin, "nouts": self.asked}
    n = Narrow(2, [4, 1], seed=0)
    n.save(tmp_path / "n.json")                  # 9 parameters, where MLP(2, [4, 1]) has 17
    assert_same_params(n, Narrow.from_file(tmp_path / "n.json"))

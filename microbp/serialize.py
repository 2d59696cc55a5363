"""Save and load models as JSON, losing nothing.

    model.save("model.json")              # atomic: temp file, fsync, rename
    model = MLP.from_file("model.json")   # a new model, built from the file
    model.load("model.json")              # or into this model (same architecture)
    sd = model.state_dict()               # {name: float}, in parameter order
    model.load_state_dict(sd)             # all checked first, then all assigned

A model file is strict JSON in ASCII: {"format": "microbp", "version": 1,
"model": {"class": "MLP", "nin": 2, "nouts": [8, 1], ...}, "params":
{"layers.0.neurons.0.w.0": "0.7071067811865476", ...}}. "model" is the class
name plus the constructor arguments that rebuild the model (Module.config());
"params" maps each name of Module.named_parameters() to the repr of its float
("0.1", "-0.0", "5e-324", "inf", "nan"): the shortest decimal that reads back
as the same double in any correctly rounding reader, and a string, since JSON
numbers have no inf or nan and a reader may round them. A nan comes back as
a nan (not its sign or payload).

Loading checks the whole file before it touches the model: anything wrong
raises FormatError (a ValueError) naming the problem, and the model keeps its
parameters. from_file() refuses a description of a microbp.nn model with
more parameters than the file holds before it builds anything.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import re
from collections.abc import Mapping
from typing import Any, TypeVar, Union, TYPE_CHECKING

from .atomicfile import write_atomic
from .checks import PathLike
from .engine import Value

if TYPE_CHECKING:
    from .nn import Module

M = TypeVar("M", bound="Module")

FORMAT = "microbp"
VERSION = 1
_KEYS = ("format", "version", "model", "params")


class FormatError(ValueError):
    """A model file that cannot be loaded: not JSON, truncated, another format or
    version, another architecture, or parameters that do not fit."""


# ---------------------------------------------------------------------------
# floats as strings

# what repr(float) writes (and plain decimals like "1" or "0.50"): ASCII only
_FLOAT = re.compile(r"-?(?:inf|nan|([0-9]+(?:\.[0-9]+)?)(?:e[+-]?[0-9]+)?)")
_EXPECTED = 'a float as a string such as "0.5", "-0.0", "1e-300", "inf", "-inf" or "nan"'


def encode_float(x: float) -> str:
    """x (a float, or a number float() takes) as the string that reads back as
    the same double ("nan" for any nan)."""
    return float.__repr__(float(x))


def decode_float(s: str, what: str = "value") -> float:
    """The double that string s stands for (what encode_float writes, or a
    plain decimal). ValueError, naming `what`, if s is not one, or if a
    finite decimal would read as inf or as 0 (that would lose it)."""
    m = _FLOAT.fullmatch(s)
    if m is None:
        raise ValueError(f"{what}: {_short(s)} is not {_EXPECTED}")
    x = float(s)
    if m.group(1) is not None and math.isinf(x):
        raise ValueError(f"{what}: {_short(s)} is too large for a double")
    if m.group(1) is not None and x == 0.0 and m.group(1).strip("0.") != "":
        raise ValueError(f"{what}: {_short(s)} is too small for a double (it reads as 0)")
    return x


def _short(s, limit=40):
    return repr(s) if len(s) <= limit else repr(s[:limit]) + "..."


def _to_float(v, what):
    """A value of a state dict as a float: a float string, or a real number that is
    not a bool (the rule of Value() and the losses; Decimal and complex are not
    numbers.Real)."""
    if isinstance(v, str):
        return decode_float(v, what)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{what} must be a float, an int or {_EXPECTED}, "
                        f"not {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{what}: an int of {int(v).bit_length()} bits is too large "
                         "for a float") from None


# ---------------------------------------------------------------------------
# state dicts

def named_parameters(module: Module) -> dict[str, Value]:
    """{name: Value} of module.named_parameters(), checked: TypeError for a
    name that is not a str or a parameter that is not a Value, ValueError for
    a name given twice."""
    named, cls = {}, type(module).__name__
    for name, p in module.named_parameters():
        if not isinstance(name, str):
            raise TypeError(f"{cls}.named_parameters() gave a name of type "
                            f"{type(name).__name__}; names must be str")
        if name in named:
            raise ValueError(f"{cls}.named_parameters() gave the name {name!r} twice")
        if not isinstance(p, Value):
            raise TypeError(f"parameter {name!r} is a {type(p).__name__}, not a Value")
        named[name] = p
    return named


def state_dict(module: Module) -> dict[str, float]:
    """{name: float} of the module's parameters, in parameter order (a copy).
    TypeError/ValueError as named_parameters()."""
    return {name: float(p.data) for name, p in named_parameters(module).items()}


def _names(names, limit=5):
    shown = ", ".join(repr(n) for n in names[:limit])
    return shown + (f", ... ({len(names) - limit} more)" if len(names) > limit else "")


def _plan(module, state, source="state_dict"):
    """[(Value, float)] to assign, after checking every name and value of state;
    TypeError or ValueError naming the first problem (state called `source`)."""
    if not isinstance(state, Mapping):
        raise TypeError("state_dict must be a mapping of parameter names to floats, "
                        f"not {type(state).__name__}")
    named = named_parameters(module)
    missing = [n for n in named if n not in state]
    unexpected = [k for k in state if not (isinstance(k, str) and k in named)]
    if missing or unexpected:
        parts = ([f"missing {len(missing)} parameter(s): {_names(missing)}"] * bool(missing)
                 + [f"unexpected {len(unexpected)} name(s): {_names(unexpected)}"]
                 * bool(unexpected))
        raise ValueError(f"{source} does not fit {_describe(model_info(module))} "
                         f"({len(named)} parameters): {'; '.join(parts)}")
    return [(p, _to_float(state[name], f"{source}[{name!r}]")) for name, p in named.items()]


def load_state_dict(module: Module, state: Mapping[str, Any]) -> None:
    """Set every parameter of module from state, {name: float, int or float
    string} with exactly the names of module.state_dict(). Everything is
    checked first, then everything is set: on error nothing changes.
    TypeError if state is not a mapping or a value is not a number or
    string; ValueError for missing or unexpected names or a string that is
    not a float."""
    for p, x in _plan(module, state):
        p.data = x


# ---------------------------------------------------------------------------
# the model description

def model_info(module: Module) -> dict[str, Any]:
    """{"class": name, **module.config()}, as it reads back from JSON.
    TypeError if config() is not a dict or None (or holds what JSON cannot),
    ValueError if it has a "class" key or a float inf or nan."""
    cls = type(module).__name__
    config = module.config()
    if config is not None and not isinstance(config, dict):
        raise TypeError(f"{cls}.config() must return a dict or None, "
                        f"not {type(config).__name__}")
    if config and "class" in config:
        raise ValueError(f"{cls}.config() must not have a 'class' key")
    return json.loads(json.dumps({"class": cls, **(config or {})}, allow_nan=False))


def _same(a, b):
    """Equal as JSON (true is not 1, 2 is not 2.0), key order aside."""
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _describe(info):
    args = ", ".join(f"{k}={v!r}" for k, v in info.items() if k != "class")
    return f"{info.get('class', '?')}({args})"


def _mismatch(found, mine):
    """Why a file's model description differs from this model's."""
    if found["class"] != mine["class"]:
        return f"the file holds a {_describe(found)}, not a {mine['class']}"
    keys = [k for k in list(mine) + [k for k in found if k not in mine] if k != "class"]
    diffs = [f"{k} is {found.get(k, '(absent)')!r} in the file but "
             f"{mine.get(k, '(absent)')!r} in this model"
             for k in keys if not _same(found.get(k, "(absent)"), mine.get(k, "(absent)"))]
    return f"the file holds {_describe(found)}, this model is {_describe(mine)}: " + "; ".join(diffs)


def _size(cls, config):
    """How many parameters cls(**config) will have, from config alone (a
    Module's expected_parameters; None when that cannot be told: the
    constructor then judges config)."""
    expected = getattr(cls, "expected_parameters", None)
    return expected(config) if callable(expected) else None


# ---------------------------------------------------------------------------
# the file

def dumps(module: Module) -> str:
    """The text of the model file of module: the model description on one line,
    then one parameter per line (easy to read and to diff). TypeError/
    ValueError as model_info() and state_dict()."""
    dump = json.dumps                   # ASCII, strict (no NaN / Infinity)
    params = [f"    {dump(n)}: {dump(encode_float(x))}" for n, x in state_dict(module).items()]
    body = "{\n" + ",\n".join(params) + "\n  }" if params else "{}"
    return (f'{{\n  "format": {dump(FORMAT)},\n  "version": {VERSION},\n'
            f'  "model": {dump(model_info(module), allow_nan=False)},\n  "params": {body}\n}}\n')


def _json_type(x):
    return {dict: "an object", list: "an array", str: "a string", int: "a number",
            float: "a number", bool: "true/false", type(None): "null"}.get(type(x), "?")


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise FormatError(f"the key {k!r} appears twice in one object")
        obj[k] = v
    return obj


def _no_constant(name):
    raise FormatError(f"{name} is not JSON; floats are stored as strings (\"nan\", \"inf\")")


def loads(text: Union[str, bytes, bytearray], where: str = "<string>") -> tuple[dict[str, Any], dict[str, float]]:
    """Parse and check the text (str, or UTF-8 bytes) of a model file: (model
    info, {name: float}). FormatError (a ValueError), prefixed with `where`,
    for anything wrong."""
    try:
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8")
            except UnicodeDecodeError as e:
                raise FormatError(f"not UTF-8 text (bad byte at offset {e.start})") from None
        if not text.strip():
            raise FormatError("the file is empty")
        try:
            doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
        except json.JSONDecodeError as e:
            hint = "" if text.rstrip().endswith("}") else " (it stops early: truncated?)"
            raise FormatError(f"not valid JSON{hint}: {e.msg} at line {e.lineno} "
                              f"column {e.colno}") from None
        except FormatError:
            raise
        except (ValueError, RecursionError) as e:     # too deep, an int too long
            raise FormatError(f"not valid JSON: {e}") from None
        return _check(doc)
    except FormatError as e:
        raise FormatError(f"{where}: {e}") from None


def _check(doc):
    if not isinstance(doc, dict):
        raise FormatError(f"not a microbp model file: expected a JSON object, "
                          f"found {_json_type(doc)}")
    if doc.get("format") != FORMAT:
        found = repr(doc["format"]) if "format" in doc else "missing"
        raise FormatError(f"not a microbp model file: \"format\" is {found}, expected {FORMAT!r}")
    version = doc.get("version")
    if type(version) is not int:
        found = _json_type(version) if "version" in doc else "missing"
        raise FormatError(f"\"version\" must be an integer, found {found}")
    if version != VERSION:
        newer = " (written by a newer microbp)" if version > VERSION else ""
        raise FormatError(f"unsupported version {version}{newer}: this microbp reads "
                          f"version {VERSION}")
    missing = [k for k in _KEYS if k not in doc]
    extra = [k for k in doc if k not in _KEYS]
    if missing or extra:
        raise FormatError(f"expected the keys {', '.join(_KEYS)}; " + "; ".join(
            [f"missing {_names(missing)}"] * bool(missing)
            + [f"unexpected {_names(extra)}"] * bool(extra)))
    info, params = doc["model"], doc["params"]
    if not isinstance(info, dict):
        raise FormatError(f"\"model\" must be an object, found {_json_type(info)}")
    if not isinstance(info.get("class"), str) or not info["class"]:
        raise FormatError("\"model\" must name the model's class: {\"class\": \"MLP\", ...}")
    if not isinstance(params, dict):
        raise FormatError(f"\"params\" must be an object, found {_json_type(params)}")
    values = {}
    for name, s in params.items():
        what = f"params[{name!r}]"
        if not isinstance(s, str):
            raise FormatError(f"{what} must be {_EXPECTED} (floats are stored as strings so "
                              f"that they read back exactly), found {_json_type(s)}")
        try:
            values[name] = decode_float(s, what)
        except ValueError as e:
            raise FormatError(str(e)) from None
    return info, values


def read(path: PathLike) -> tuple[dict[str, Any], dict[str, float]]:
    """(model info, {name: float}) of the model file at path; FormatError if it
    is not one, OSError if it cannot be read."""
    with open(path, "rb") as f:
        return loads(f.read(), os.fsdecode(os.fspath(path)))


def _assign(module, values, where):
    """Check every value of the file against module, then assign them all."""
    try:
        plan = _plan(module, values, "params")
    except (TypeError, ValueError) as e:
        raise FormatError(f"{where}: {e}") from None
    for p, x in plan:
        p.data = x
    return module


def load_into(module: M, path: PathLike) -> M:
    """Load the file at path into module, whose architecture must match it.
    Everything is checked first: on any error the module is unchanged.
    Returns module. FormatError (a ValueError) for a bad file or another
    architecture, OSError if it cannot be read."""
    info, values = read(path)
    where = os.fsdecode(os.fspath(path))
    mine = model_info(module)
    if not _same(info, mine):
        raise FormatError(f"{where}: {_mismatch(info, mine)}")
    return _assign(module, values, where)


def load_new(cls: type[M], path: PathLike) -> M:
    """A new cls built from the "model" description in the file at path, with
    its parameters loaded from the file. A description of a model with more
    parameters than the file holds is refused before anything is built.
    FormatError (a ValueError) for a bad file, another class, or arguments
    the constructor refuses; OSError if it cannot be read."""
    info, values = read(path)
    where = os.fsdecode(os.fspath(path))
    if info["class"] != cls.__name__:
        raise FormatError(f"{where}: the file holds a {_describe(info)}, not a {cls.__name__}")
    config = {k: v for k, v in info.items() if k != "class"}
    size = _size(cls, config)
    if size is not None and size > len(values):
        raise FormatError(f"{where}: params does not fit {_describe(info)}: the file holds "
                          f"{len(values)} parameter(s), that model has {size} (not built)")
    try:
        module = cls(**config)
    except (TypeError, ValueError) as e:
        raise FormatError(f"{where}: cannot build {_describe(info)} from the file: "
                          f"{type(e).__name__}: {e}") from None
    built = model_info(module)
    if not _same(built, info):
        raise FormatError(f"{where}: {_describe(info)} builds {_describe(built)}")
    return _assign(module, values, where)


def save(module: Module, path: PathLike) -> None:
    """Write module's model file to path, atomically (see
    microbp.atomicfile.write_atomic): path then holds the old file or the
    new one, never a part. OSError if it cannot be written; TypeError/
    ValueError as dumps()."""
    write_atomic(path, dumps(module).encode("ascii"))

"""Save and load models as JSON, losing nothing.

    model.save("model.json")            # atomic: temp file, fsync, rename
    model = MLP.load("model.json")      # a new model, built from the file
    model.load("model.json")            # or into this model (same architecture)
    sd = model.state_dict()             # {name: float}, in parameter order
    model.load_state_dict(sd)           # all checked first, then all assigned

A model file is strict JSON (RFC 8259) in UTF-8 (in fact ASCII):

    {
      "format": "microbp",
      "version": 1,
      "model": {"class": "MLP", "nin": 2, "nouts": [8, 1], "act": "relu",
                "out_act": "linear", "bias": true},
      "params": {"layers.0.neurons.0.w.0": "0.7071067811865476", ...}
    }

"model" is the class name plus the constructor arguments that rebuild the
model (Module.config()); "params" maps each parameter name
(Module.named_parameters()) to its value.

Every value is a string: the Python repr of the float ("0.1", "-0.0",
"5e-324", "1.7976931348623157e+308", "inf", "-inf", "nan"). repr is the
shortest decimal that reads back as the same double, so float() returns every
finite value bit for bit, -0.0 included; any correctly rounding reader (C
strtod, JavaScript Number, Rust parse) does too. JSON numbers have no inf or
nan, and a string stops a JSON reader from rounding a value on the way. A nan
comes back as a nan (its sign and payload bits are not kept).

Loading checks the whole file before it touches the model: a truncated or
malformed file, another format or version, a different architecture, missing
or extra names, or a value that is not a float raise FormatError (a
ValueError) naming the problem, and the model keeps its parameters. Since a
JSON object ends with its closing brace, no truncated file parses.
"""
import errno
import json
import math
import numbers
import os
import re
import stat
import types
from collections.abc import Mapping

from .engine import Value

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


def encode_float(x):
    """x as the string that reads back as the same double ("nan" for any nan)."""
    return float.__repr__(float(x))


def decode_float(s, what="value"):
    """The double that string s stands for; ValueError if s is not one, or if a
    finite decimal would read as inf or as 0 (that would lose it)."""
    m = _FLOAT.fullmatch(s)
    if m is None:
        raise ValueError(f"{what}: {_short(s)} is not {_EXPECTED}")
    x = float(s)
    digits = m.group(1)
    if digits is not None:
        if math.isinf(x):
            raise ValueError(f"{what}: {_short(s)} is too large for a double")
        if x == 0.0 and digits.strip("0.") != "":
            raise ValueError(f"{what}: {_short(s)} is too small for a double (it reads as 0)")
    return x


def _short(s, limit=40):
    return repr(s) if len(s) <= limit else repr(s[:limit]) + "..."


def _to_float(v, what):
    """A value of a state dict (float, int or float string) as a float."""
    if isinstance(v, str):
        return decode_float(v, what)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{what} must be a float, an int or {_EXPECTED}, "
                        f"not {type(v).__name__}")
    try:
        return float(v)
    except OverflowError:
        raise ValueError(f"{what}: {v!r} is too large for a double") from None


# ---------------------------------------------------------------------------
# state dicts

def named_parameters(module):
    """{name: Value} of module.named_parameters(), checked: str names, each once."""
    named = {}
    for name, p in module.named_parameters():
        if not isinstance(name, str):
            raise TypeError(f"{type(module).__name__}.named_parameters() gave a name of "
                            f"type {type(name).__name__}; names must be str")
        if name in named:
            raise ValueError(f"{type(module).__name__}.named_parameters() gave the name "
                             f"{name!r} twice")
        if not isinstance(p, Value):
            raise TypeError(f"parameter {name!r} is a {type(p).__name__}, not a Value")
        named[name] = p
    return named


def state_dict(module):
    """{name: float} of the module's parameters, in parameter order (a copy)."""
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
        parts = []
        if missing:
            parts.append(f"missing {len(missing)} parameter(s): {_names(missing)}")
        if unexpected:
            parts.append(f"unexpected {len(unexpected)} name(s): {_names(unexpected)}")
        raise ValueError(f"{source} does not fit {_describe(model_info(module))} "
                         f"({len(named)} parameters): {'; '.join(parts)}")
    return [(p, _to_float(state[name], f"{source}[{name!r}]"))
            for name, p in named.items()]


def load_state_dict(module, state):
    """Check everything in state, then set every parameter: all or nothing."""
    for p, x in _plan(module, state):
        p.data = x


# ---------------------------------------------------------------------------
# the model description

def _jsonable(x):
    """x as it reads back from JSON (tuples become lists, ...)."""
    return json.loads(json.dumps(x, allow_nan=False))


def model_info(module):
    """{"class": name, **module.config()}, as it reads back from JSON."""
    info = {"class": type(module).__name__}
    config = module.config()
    if config is not None:
        if not isinstance(config, dict):
            raise TypeError(f"{type(module).__name__}.config() must return a dict or None, "
                            f"not {type(config).__name__}")
        if "class" in config:
            raise ValueError(f"{type(module).__name__}.config() must not have a 'class' key")
        info.update(config)
    return _jsonable(info)


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
    diffs = []
    for k in list(mine) + [k for k in found if k not in mine]:
        if k == "class":
            continue
        a, b = found.get(k, "(absent)"), mine.get(k, "(absent)")
        if not _same(a, b):
            diffs.append(f"{k} is {a!r} in the file but {b!r} in this model")
    return (f"the file holds {_describe(found)}, this model is {_describe(mine)}: "
            + "; ".join(diffs))


# ---------------------------------------------------------------------------
# the file

def dumps(module):
    """The text of the model file of module: the model description on one line,
    then one parameter per line (easy to read and to diff)."""
    dump = json.dumps                   # ASCII, strict (no NaN / Infinity)
    model = dump(model_info(module), allow_nan=False)
    params = [f"    {dump(n)}: {dump(encode_float(x))}" for n, x in state_dict(module).items()]
    body = "{\n" + ",\n".join(params) + "\n  }" if params else "{}"
    return (f'{{\n  "format": {dump(FORMAT)},\n  "version": {VERSION},\n'
            f'  "model": {model},\n  "params": {body}\n}}\n')


_JSON_TYPES = {dict: "an object", list: "an array", str: "a string", int: "a number",
               float: "a number", bool: "true/false", type(None): "null"}


def _json_type(x):
    return _JSON_TYPES.get(type(x), type(x).__name__)


def _no_duplicates(pairs):
    obj = {}
    for k, v in pairs:
        if k in obj:
            raise FormatError(f"the key {k!r} appears twice in one object")
        obj[k] = v
    return obj


def _no_constant(name):
    raise FormatError(f"{name} is not JSON; floats are stored as strings (\"nan\", \"inf\")")


def loads(text, where="<string>"):
    """Parse and check the text of a model file: (model info, {name: float}).
    FormatError, prefixed with `where`, for anything wrong."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{where}: not UTF-8 text (bad byte at offset {e.start})") from None
    if not text.strip():
        raise FormatError(f"{where}: the file is empty")
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_no_constant)
    except FormatError as e:
        raise FormatError(f"{where}: {e}") from None
    except json.JSONDecodeError as e:
        hint = "" if text.rstrip().endswith("}") else " (it stops early: truncated?)"
        raise FormatError(f"{where}: not valid JSON{hint}: {e.msg} at line {e.lineno} "
                          f"column {e.colno}") from None
    except (ValueError, RecursionError) as e:
        raise FormatError(f"{where}: not valid JSON: {e}") from None
    try:
        return _check(doc)
    except FormatError as e:
        raise FormatError(f"{where}: {e}") from None


def _check(doc):
    if not isinstance(doc, dict):
        raise FormatError("not a microbp model file: expected a JSON object, "
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
        raise FormatError(f"expected the keys {', '.join(_KEYS)}; "
                          + "; ".join(([f"missing {_names(missing)}"] if missing else [])
                                      + ([f"unexpected {_names(extra)}"] if extra else [])))
    info = doc["model"]
    if not isinstance(info, dict):
        raise FormatError(f"\"model\" must be an object, found {_json_type(info)}")
    if not isinstance(info.get("class"), str) or not info["class"]:
        raise FormatError("\"model\" must name the model's class: {\"class\": \"MLP\", ...}")
    params = doc["params"]
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


def read(path):
    """(model info, {name: float}) of the model file at path; FormatError if it
    is not one, OSError if it cannot be read."""
    with open(path, "rb") as f:
        raw = f.read()
    return loads(raw, os.fsdecode(os.fspath(path)))


def _assign(module, values, where):
    """Check every value of the file against module, then assign them all."""
    try:
        plan = _plan(module, values, "params")
    except (TypeError, ValueError) as e:
        raise FormatError(f"{where}: {e}") from None
    for p, x in plan:
        p.data = x
    return module


def load_into(module, path):
    """Load the file at path into module, whose architecture must match it.
    Everything is checked first: on any error the module is unchanged.
    Returns module."""
    info, values = read(path)
    where = os.fsdecode(os.fspath(path))
    mine = model_info(module)
    if not _same(info, mine):
        raise FormatError(f"{where}: {_mismatch(info, mine)}")
    return _assign(module, values, where)


def load_new(cls, path):
    """A new cls built from the "model" description in the file, with its
    parameters loaded from the file."""
    info, values = read(path)
    where = os.fsdecode(os.fspath(path))
    if info["class"] != cls.__name__:
        raise FormatError(f"{where}: the file holds a {_describe(info)}, not a {cls.__name__}")
    config = {k: v for k, v in info.items() if k != "class"}
    try:
        module = cls(**config)
    except (TypeError, ValueError) as e:
        raise FormatError(f"{where}: cannot build {_describe(info)} from the file: "
                          f"{type(e).__name__}: {e}") from None
    built = model_info(module)
    if not _same(built, info):
        raise FormatError(f"{where}: {_describe(info)} builds {_describe(built)}")
    return _assign(module, values, where)


# ---------------------------------------------------------------------------
# atomic write

def _create_temp(directory, base):
    """A new file next to the target, opened for writing: (fd, path)."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = os.path.join(directory, f".{base[:200]}.{os.urandom(6).hex()}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp      # 0o666 & ~umask, like open()
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "no free temporary file name", directory)


def _write_all(fd, data):
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _fsync_dir(directory):
    """Make the rename durable (POSIX; Windows cannot open a directory)."""
    if os.name != "posix":
        return
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP):    # not supported there
            raise
    finally:
        os.close(fd)


def write_atomic(path, data):
    """Write bytes data to path so that path holds either its old contents or all
    of data, whatever happens: write a temporary file in the same directory,
    fsync it, rename it onto path, fsync the directory. On any exception the
    temporary file is removed and path is untouched. A symlink at path is
    followed (its target is replaced); an existing file keeps its mode bits."""
    target = os.path.realpath(os.fsdecode(os.fspath(path)))
    directory, base = os.path.split(target)
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None
    fd, tmp = _create_temp(directory, base)
    try:
        try:
            _write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        if mode is not None:
            os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    _fsync_dir(directory)


def save(module, path):
    """Write module's model file to path, atomically (see write_atomic)."""
    write_atomic(path, dumps(module).encode("ascii"))


class dualmethod:
    """A method that does one thing when called on the class and another when
    called on an instance: `MLP.load(path)` builds a new model, while
    `model.load(path)` loads into `model` (instead of quietly returning a new
    model and leaving `model` as it was)."""

    def __init__(self, on_class, on_instance, doc=None):
        self.on_class, self.on_instance = on_class, on_instance
        self.__doc__ = doc

    def __get__(self, obj, cls=None):
        if obj is None:
            return types.MethodType(self.on_class, cls)
        return types.MethodType(self.on_instance, obj)

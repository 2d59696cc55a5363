"""Pictures of a graph, with no dependency: Graphviz DOT text, SVG drawn by
Graphviz's `dot` when it is installed and by microbp's own layout otherwise,
and a page that steps through backpropagation.

    y.to_dot()                        # DOT text of the graph below y (a str)
    microbp.draw(y, "graph.svg")      # SVG: Graphviz if installed, else own layout
    microbp.draw(y, "graph.png")      # PNG with `dot`; else graph.dot
    microbp.draw(y, "backprop.html")  # a page to step through (microbp.stepper)
    repr_svg(y), repr_mimebundle(y)   # what a notebook shows for a Value

Every Value is a box showing its label, data and grad; every op that made a
value is a small node of its own (`*`, `+`, `tanh`, ...) between the boxes of
its inputs and the box of its result, so the picture reads left to right as
the forward pass, and right to left as backpropagation. Constants (the
numbers in `2 * x`) are grey boxes.

A big graph is summarised rather than drawn in full: the `max_nodes` values
nearest the output are kept (a value only once every value that uses it is),
and one note node says how many were left out; dashed arrows lead from it to
the values whose inputs are not shown.

Nothing here imports the engine: a value is read through its public
attributes (.data, .grad, .label, .op, .inputs) only.
"""
from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from typing import Container, Optional, TYPE_CHECKING

from .checks import PathLike
from .graphwalk import check_value, nearest, is_const, number
from . import svg

if TYPE_CHECKING:                # for the hints only: nothing here imports the engine
    from .engine import Value

FORMATS = (".svg", ".png", ".dot", ".html")

# the text of each op's node; ops not listed show their name
_SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "powc": "**",
           "neg": "-x"}

_MAX_LABEL = 40      # longer labels are cut, with an ellipsis


def _check_max_nodes(max_nodes):
    if isinstance(max_nodes, bool) or not isinstance(max_nodes, int):
        raise TypeError(f"max_nodes must be an int, not {type(max_nodes).__name__}")
    if max_nodes < 1:
        raise ValueError(f"max_nodes must be at least 1, got {max_nodes!r}")
    return max_nodes


_ENTITIES = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;",
             "\\": "\\\\"}      # dot reads \N, \G, ... as escapes even in HTML labels


def _escape(text):
    """`text` made safe inside a Graphviz HTML-like label: the markup
    characters become entities, a backslash is doubled (Graphviz would read
    "\\N" as the node's name), and control characters and lone surrogates
    (which neither XML nor UTF-8 can carry) become visible escapes like \\n."""
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0:
            ch = ch.encode("unicode_escape").decode("ascii")      # \n, \x00, ...
        elif 0xD800 <= code < 0xE000:
            ch = f"\\u{code:04x}"
        out.append("".join(_ENTITIES.get(c, c) for c in ch))
    return "".join(out)


def _short(label):
    return label if len(label) <= _MAX_LABEL else label[:_MAX_LABEL - 1] + "\u2026"


def to_dot(value: Value, max_nodes: int = 200, rankdir: str = "LR") -> str:
    """Graphviz DOT text of the graph below `value`: one box per value (label,
    data, grad), one node per op, arrows from inputs to ops to results. At most
    `max_nodes` values are drawn, those nearest `value`; a note node says how
    many were left out. `rankdir` "TB" draws top to bottom.

    TypeError if value is not a Value (lacks .data, .grad, .label, .op or
    .inputs) or max_nodes is not an int; ValueError if max_nodes is below 1
    or rankdir is not "LR" or "TB"."""
    check_value(value, "to_dot")
    if rankdir not in ("LR", "TB"):
        raise ValueError(f"rankdir must be 'LR' or 'TB', not {rankdir!r}")
    max_nodes = _check_max_nodes(max_nodes)
    kept, order = nearest(value, max_nodes)   # inputs before results
    return _dot(value, kept, len(order), rankdir)


def _dot(value, kept, total, rankdir):
    """The DOT text of `kept` (values in topological order, of `total` in the
    graph below `value`)."""
    name = {v: f"v{k}" for k, v in enumerate(kept)}
    left_out = total - len(kept)

    lines = [
        f"// microbp graph: {total} values"
        + (f", the {len(kept)} nearest the output drawn" if left_out else ""),
        "digraph microbp {",
        f"  rankdir={rankdir};",
        '  node [fontname="Helvetica", fontsize=11, margin=0, width=0, height=0];',
        "  ranksep=0.3; nodesep=0.15;",
        '  edge [color="#555555", arrowsize=0.7];',
    ]
    frontier = []                              # kept values with an input not drawn
    for v in kept:
        n = name[v]
        cells = []
        if v.label:
            cells.append(f"<B>{_escape(_short(v.label))}</B>")
        elif is_const(v):
            cells.append("<I>const</I>")
        cells.append(f"data {number(v.data)}")
        cells.append(f"grad {number(v.grad)}")
        # one line each: a box stays narrow, so a picture of many values stays readable
        rows = "".join(f'<TR><TD ALIGN="LEFT">{c}</TD></TR>' for c in cells)
        fill = ' BGCOLOR="#e8e8e8"' if is_const(v) else ""
        border = "2" if v is value else "1"        # the output's box is drawn bold
        lines.append(f'  {n} [shape=plaintext label=<<TABLE BORDER="{border}"'
                     f' CELLBORDER="0" CELLSPACING="0" CELLPADDING="2"{fill}>{rows}'
                     f'</TABLE>>];')
        inputs = v.inputs
        if not inputs:
            continue
        symbol = _SYMBOL.get(v.op, v.op)
        lines.append(f'  {n}_op [shape=ellipse label="{symbol}" margin="0.05,0.02"'
                     f' height=0.3];')
        lines.append(f"  {n}_op -> {n};")
        missing = False
        ordered = len(inputs) == 2 and v.op in ("sub", "div", "pow", "powc")
        for k, c in enumerate(inputs):
            if c in name:
                # which input is which matters for a - b, a / b and a ** b
                port = (f' [headlabel="{"ab"[k]}" labelfontsize=8 labeldistance=1.8]'
                        if ordered else "")
                lines.append(f"  {name[c]} -> {n}_op{port};")
            else:
                missing = True
        if missing:
            frontier.append(n)
    if left_out:
        lines.append(f'  omitted [shape=note style=filled fillcolor="#fff3c4" '
                     f'label="{left_out} more value{"s" if left_out != 1 else ""} not shown\\n'
                     f'(drawn: the {len(kept)} nearest the output;\\n'
                     f'raise max_nodes to see more)"];')
        for n in frontier:
            lines.append(f"  omitted -> {n}_op [style=dashed];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def _check_directory(path):
    """FileNotFoundError naming the directory when `path` cannot be written
    because its directory does not exist (checked before anything is made)."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: the directory {folder!r} "
                                "does not exist (create it first)")


def _run_dot(text, fmt, timeout, path=None):
    """Run Graphviz's dot on DOT `text`; returns (output bytes or None, why
    not). Writes to `path` when given."""
    dot = shutil.which("dot")
    if dot is None:
        return None, "Graphviz's `dot` program was not found"
    args = [dot, f"-T{fmt}"] + (["-o", path] if path else [])
    try:
        done = subprocess.run(args, input=text.encode("utf-8"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, timeout=timeout, check=True)
        return done.stdout, None
    except subprocess.TimeoutExpired:
        return None, f"`dot` did not finish within {timeout} s"
    except subprocess.CalledProcessError as e:
        err = e.stderr.decode("utf-8", "replace").strip()
        return None, f"`dot` failed ({err or 'exit status ' + str(e.returncode)})"
    except OSError as e:
        return None, f"`dot` could not be run ({e})"


def draw(value: Value, path: PathLike, max_nodes: int = 200, timeout: float = 60) -> str:
    """Draw the graph below `value` into `path`: an .svg, .png, .dot or .html
    file. Returns the path written (a str).

    .svg is rendered by Graphviz's `dot` program (run with a timeout) when it
    is installed, else by microbp's own layout (microbp.svg). .png needs
    `dot`: without it, the DOT text goes to the same path with the suffix .dot,
    and a message says how to render it. .html writes the step-through page
    of the forward and backward passes (microbp.stepper). A directory that
    does not exist is a FileNotFoundError, before anything is written.

    TypeError if value is not a Value, path is bytes or not a path, or
    max_nodes is not an int; ValueError if the suffix is not one of
    FORMATS or max_nodes is below 1; OSError if the file cannot be
    written."""
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError("path must be a str or a path, not bytes")
    check_value(value, "draw")
    max_nodes = _check_max_nodes(max_nodes)
    stem, suffix = os.path.splitext(path)
    suffix = suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the picture format from {path!r}: "
                         f"end the path with one of {', '.join(FORMATS)}")
    _check_directory(path)
    if suffix == ".html":
        from .explain import explain
        return explain(value).save(path, max_nodes=min(max_nodes, 60))
    text = to_dot(value, max_nodes=max_nodes)
    if suffix == ".dot":
        _write(path, text)
        return path
    _, why = _run_dot(text, suffix[1:], timeout, path)
    if why is None:
        return path
    if suffix == ".svg":
        _write(path, svg.to_svg(value, max_nodes=max_nodes))
        return path
    dot_path = stem + ".dot"
    _write(dot_path, text)
    print(f"microbp.draw: {why}; wrote {dot_path} instead. Render it with\n"
          f"    dot -T{suffix[1:]} {shlex.quote(dot_path)} -o {shlex.quote(path)}\n"
          "after installing Graphviz (apt-get install graphviz, brew install graphviz,\n"
          "or https://graphviz.org/download/), or paste the file into any online\n"
          "Graphviz viewer; or draw to an .svg file, which needs no Graphviz.",
          file=sys.stderr)
    return dot_path


def repr_svg(value: Value, timeout: float = 10) -> str:
    """The picture of the graph below `value` as SVG text, for a notebook.

    Graphviz's, when `dot` is installed, works within `timeout` seconds and
    its picture is readable at the displayed size (at most svg.MAX_WIDTH x
    svg.MAX_HEIGHT pixels, text at least svg.MIN_SCALE of its size); else
    microbp's own layout, which summarises a big graph until it is. Never
    text. TypeError if value is not a Value."""
    check_value(value, "repr_svg")
    layout = svg.fit(value)
    if shutil.which("dot") is not None:
        text = _dot(value, layout.kept, layout.total, "TB" if layout.vertical else "LR")
        out, why = _run_dot(text, "svg", timeout)
        if why is None:
            fitted = _fit_graphviz(out.decode("utf-8", "replace"))
            if fitted is not None:
                return fitted
    return svg.render(layout)


_SIZE = re.compile(r'<svg\s+width="([0-9.]+)pt"\s+height="([0-9.]+)pt"')


def _fit_graphviz(text):
    """Graphviz's SVG without its XML prolog, its size in pixels capped like
    the own layout's; None when it would have to shrink too far to read."""
    start = text.find("<svg")
    m = _SIZE.match(text, start) if start >= 0 else None
    if m is None:
        return None
    w, h = float(m.group(1)) * 4 / 3, float(m.group(2)) * 4 / 3     # pt -> px
    scale = min(1.0, svg.MAX_WIDTH / w, svg.MAX_HEIGHT / h)
    if scale < svg.MIN_SCALE:
        return None
    return (f'<svg width="{w * scale:.0f}px" height="{h * scale:.0f}px"'
            + text[m.end():])


def repr_mimebundle(value: Value, include: Optional[Container[str]] = None,
                    exclude: Optional[Container[str]] = None) -> dict[str, str]:
    """What a notebook shows for a Value: {"image/svg+xml": the picture of
    its graph (repr_svg), "text/plain": repr(value)}, keeping only the types
    in `include` (when given) and dropping those in `exclude`. TypeError if
    value is not a Value (when the picture is asked for)."""
    wanted = ["image/svg+xml", "text/plain"]
    if include is not None:
        wanted = [m for m in wanted if m in include]
    if exclude is not None:
        wanted = [m for m in wanted if m not in exclude]
    out = {}
    if "image/svg+xml" in wanted:
        out["image/svg+xml"] = repr_svg(value)
    if "text/plain" in wanted:
        out["text/plain"] = repr(value)
    return out


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)

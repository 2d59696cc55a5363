"""Pictures of a graph without dependencies: Graphviz DOT text, and a drawing
when Graphviz's `dot` program is installed.

    y.to_dot()                      # DOT text of the graph below y (a str)
    microbp.draw(y, "graph.svg")    # SVG (or .png) with `dot`; else graph.dot

Every Value is a box showing its label, data and grad; every op that made a
value is a small node of its own (`*`, `+`, `tanh`, ...) between the boxes of
its inputs and the box of its result, so the picture reads left to right as
the forward pass, and right to left as backpropagation. Constants (the
numbers in `2 * x`) are grey boxes.

A big graph is summarised rather than drawn in full: the `max_nodes` values
nearest the output (breadth first from it) are kept, and one note node says
how many were left out; dashed arrows lead from it to the values whose inputs
are not shown.
"""
import os
import shlex
import shutil
import subprocess
import sys
from collections import deque

from . import ops

FORMATS = (".svg", ".png", ".dot")

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


def _number(x):
    """A float for a picture: six significant digits ("nan" and "inf" as such)."""
    return format(x, ".6g")


def _nearest(root, max_nodes):
    """The first max_nodes values of a breadth-first walk down from root, and
    how many values the whole graph below root has."""
    seen = {root}
    queue = deque([root])
    kept = []
    while queue:
        v = queue.popleft()
        if len(kept) < max_nodes:
            kept.append(v)
        for c in (v._a, v._b):
            if c is not None and c not in seen:
                seen.add(c)
                queue.append(c)
    return kept, len(seen)


def to_dot(value, max_nodes=200):
    """Graphviz DOT text of the graph below `value`: one box per value (label,
    data, grad), one node per op, arrows from inputs to ops to results. At most
    `max_nodes` values are drawn, those nearest `value`; a note node says how
    many were left out."""
    from .engine import Value
    if not isinstance(value, Value):
        raise TypeError(f"to_dot needs a Value, not {type(value).__name__}")
    max_nodes = _check_max_nodes(max_nodes)
    kept, total = _nearest(value, max_nodes)
    kept.sort(key=lambda v: v._id)            # creation order: inputs before results
    name = {v: f"v{k}" for k, v in enumerate(kept)}
    left_out = total - len(kept)

    lines = [
        f"// microbp graph: {total} values"
        + (f", the {len(kept)} nearest the output drawn" if left_out else ""),
        "digraph microbp {",
        "  rankdir=LR;",
        '  node [fontname="Helvetica", fontsize=11];',
        '  edge [color="#555555", arrowsize=0.7];',
    ]
    frontier = []                              # kept values with an input not drawn
    for v in kept:
        n = name[v]
        cells = []
        if v.label:
            cells.append(f"<B>{_escape(_short(v.label))}</B>")
        elif v._op == ops.CONST:
            cells.append("<I>const</I>")
        cells.append(f"data {_number(v.data)}")
        cells.append(f"grad {_number(v.grad)}")
        row = "".join(f"<TD>{c}</TD>" for c in cells)
        fill = ' BGCOLOR="#e8e8e8"' if v._op == ops.CONST else ""
        border = "2" if v is value else "1"        # the output's box is drawn bold
        lines.append(f'  {n} [shape=plaintext label=<<TABLE BORDER="{border}"'
                     f' CELLBORDER="1" CELLSPACING="0" CELLPADDING="4"{fill}><TR>{row}</TR>'
                     f'</TABLE>>];')
        inputs = v.inputs
        if not inputs:
            continue
        symbol = _SYMBOL.get(v.op, v.op)
        lines.append(f'  {n}_op [shape=ellipse label="{symbol}" margin="0.05,0.02"'
                     f' height=0.3];')
        lines.append(f"  {n}_op -> {n};")
        missing = False
        ordered = len(inputs) == 2 and v._op in (ops.SUB, ops.DIV, ops.POW, ops.POWC)
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


def draw(value, path, max_nodes=200, timeout=60):
    """Draw the graph below `value` into `path`, an .svg, .png or .dot file.

    SVG and PNG are rendered by Graphviz's `dot` program (run with a timeout).
    Without it, the DOT text goes to the same path with the suffix .dot, and a
    message says how to render it. Returns the path written (a str)."""
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError("path must be a str or a path, not bytes")
    stem, suffix = os.path.splitext(path)
    suffix = suffix.lower()
    if suffix not in FORMATS:
        raise ValueError(f"cannot tell the picture format from {path!r}: "
                         f"end the path with one of {', '.join(FORMATS)}")
    text = to_dot(value, max_nodes=max_nodes)
    if suffix == ".dot":
        _write(path, text)
        return path
    dot = shutil.which("dot")
    why = "Graphviz's `dot` program was not found"
    if dot is not None:
        try:
            subprocess.run([dot, f"-T{suffix[1:]}", "-o", path], input=text.encode("utf-8"),
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                           timeout=timeout, check=True)
            return path
        except subprocess.TimeoutExpired:
            why = f"`dot` did not finish within {timeout} s"
        except subprocess.CalledProcessError as e:
            err = e.stderr.decode("utf-8", "replace").strip()
            why = f"`dot` failed ({err or 'exit status ' + str(e.returncode)})"
        except OSError as e:
            why = f"`dot` could not be run ({e})"
    dot_path = stem + ".dot"
    _write(dot_path, text)
    print(f"microbp.draw: {why}; wrote {dot_path} instead. Render it with\n"
          f"    dot -T{suffix[1:]} {shlex.quote(dot_path)} -o {shlex.quote(path)}\n"
          "after installing Graphviz (apt-get install graphviz, brew install graphviz,\n"
          "or https://graphviz.org/download/), or paste the file into any online\n"
          "Graphviz viewer.", file=sys.stderr)
    return dot_path


def _write(path, text):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)

"""A page that steps through backpropagation: one self-contained HTML file.

    microbp.draw(loss, "backprop.html")
    microbp.explain(loss).save("backprop.html")

The page shows the graph (microbp's own SVG layout) and lets the learner
step with the Next/Back buttons or the arrow keys (Home and End jump):
first the forward pass, value by value (each value's data appears), then the
backward pass, op by op from the output down: each step shows, for every
input of the op, local x upstream = product, and the gradient that product
is added to. At the end every box shows the engine's own .grad.

Everything is inline (SVG, CSS, a small script); the page loads nothing from
the network. Every number the page shows is computed here, in Python, from
the graph and explain()'s rows: the script only reveals them, step by step.
Each value's box carries data-name, data-data and data-grad attributes (the
exact floats, as Python writes them) for tests.
"""
import html
import json
import os

from .graphwalk import is_const, number
from . import svg

# how an op is written in a formula: infix symbols, else the name as a function
SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/", "pow": "**", "powc": "**"}


def formula(op, args):
    """How `out = op(args)` reads: "a * b", "-a", "tanh(a)"."""
    if op in SYMBOL and len(args) == 2:
        return f"{args[0]} {SYMBOL[op]} {args[1]}"
    if op == "neg" and len(args) == 1:
        return f"-{args[0]}"
    return f"{op}({', '.join(args)})"


def _steps(ex, L):
    """The steps of the page: a list of dicts {phase, title, lines, set,
    focus, op}: `set` holds (k, "data"|"grad", shown text, exact) changes."""
    kept, index = L.kept, L.index
    name = ex.names
    steps = []
    leaves = [k for k, v in enumerate(kept) if not v.inputs]
    steps.append({"phase": "start", "title": "the graph",
                  "lines": ["The inputs and parameters (blue) and constants (grey) are known.",
                            "Next: the forward pass computes every value from its inputs."],
                  "set": [(k, "data", number(kept[k].data), repr(kept[k].data))
                          for k in leaves],
                  "focus": leaves, "op": None})
    for k, v in enumerate(kept):                      # forward, inputs first
        if not v.inputs:
            continue
        args = [name[c] for c in v.inputs]
        vals = [number(c.data) for c in v.inputs]
        hidden = [c for c in v.inputs if c not in index]
        lines = [f"{name[v]} = {formula(v.op, args)}",
                 f"{' ' * len(name[v])} = {formula(v.op, vals)} = {number(v.data)}"]
        if hidden:
            lines.append("(an input of this op is not drawn: the graph was summarised)")
        steps.append({"phase": "forward", "title": f"forward: {name[v]}", "lines": lines,
                      "set": [(k, "data", number(v.data), repr(v.data))],
                      "focus": [k] + [index[c] for c in v.inputs if c in index], "op": k})
    root = index[ex.value]
    steps.append({"phase": "backward", "title": f"backward: start at {name[ex.value]}",
                  "lines": [f"d({name[ex.value]})/d({name[ex.value]}) = "
                            f"{number(ex.value.grad)}: the output's gradient starts the "
                            "backward pass.",
                            "Each op then passes its gradient (upstream) to its inputs, "
                            "times its local derivative."],
                  "set": [(root, "grad", number(ex.value.grad), repr(ex.value.grad))],
                  "focus": [root], "op": None})
    running = {}
    by_node = {}
    for r in ex.rows():
        by_node.setdefault(r.node, []).append(r)
    out = name[ex.value]
    for v in reversed(kept):                          # backward, output first
        rows = by_node.get(v)
        if not v.inputs or not rows:
            continue
        k = index[v]
        lines = [f"{name[v]} = {formula(v.op, [name[c] for c in v.inputs])};  "
                 f"upstream d({out})/d({name[v]}) = {number(v.grad)}"]
        sets, focus = [], [k]
        for r in rows:
            c = r.input
            loc = "?" if r.local is None else number(r.local)
            prod = "?" if r.product is None else number(r.product)
            line = (f"{r.input_name}: local d({name[v]})/d({r.input_name}) = {loc};  "
                    f"{loc} \u00d7 {number(r.upstream)} = {prod}")
            if c in index and r.product is not None:
                before = running.get(c)
                after = r.product if before is None else before + r.product
                running[c] = after
                line += (f";  grad of {r.input_name}: {number(after)}" if before is None else
                         f";  grad of {r.input_name}: {number(before)} + {prod} = "
                         f"{number(after)}")
                sets.append((index[c], "grad", number(after), repr(after)))
                focus.append(index[c])
            elif c not in index:
                line += "  (to an input not drawn)"
            lines.append(line)
        steps.append({"phase": "backward", "title": f"backward: {name[v]} ({v.op})",
                      "lines": lines, "set": sets, "focus": focus, "op": k})
    steps.append({"phase": "end", "title": "done",
                  "lines": ["Every gradient is the sum of the products over the value's "
                            "uses, and equals the engine's .grad.",
                            "Back (\u2190) to step through again."],
                  "set": [], "focus": [], "op": None})
    return steps


PAGE_CSS = """
body{font-family:'DejaVu Sans',Helvetica,Arial,sans-serif;margin:0;background:#fafafa;color:#222}
#panel{position:sticky;top:0;background:#fff;border-bottom:1px solid #ccc;padding:10px 16px;z-index:2}
#panel h1{font-size:16px;margin:0 0 6px 0}
#controls button{font-size:14px;padding:4px 14px;margin-right:8px}
#counter{font-size:13px;color:#555;margin-left:8px}
#title{font-weight:bold;margin:8px 0 4px 0;font-size:14px}
#lines{font-family:'DejaVu Sans Mono',Menlo,Consolas,monospace;font-size:13px;white-space:pre-wrap;min-height:4.5em}
#graph{padding:12px}
.mbp .val.hidden-data .data, .mbp .val.hidden-grad .grad{fill:#bbb}
.mbp .val.focus .box{stroke:#1a5fd0;stroke-width:3}
.mbp .op.focus circle{fill:#ffd24d;stroke:#7a5b00;stroke-width:2}
.mbp .val.changed .grad{font-weight:bold}
.mbp .val.changed.fwd .data{font-weight:bold}
"""

PAGE_JS = """
(function(){
var STEPS = JSON.parse(document.getElementById('steps').textContent);
var N = document.querySelectorAll('#graph g.val').length;
var cur = 0;
function box(k){ return document.querySelector('#graph g.val[data-k="'+k+'"]'); }
function show(i){
  cur = Math.max(0, Math.min(STEPS.length - 1, i));
  var data = {}, grad = {};
  for (var s = 0; s <= cur; s++) STEPS[s].set.forEach(function(c){
    (c[1] === 'data' ? data : grad)[c[0]] = c; });
  for (var k = 0; k < N; k++){
    var g = box(k), d = g.querySelector('text.data'), r = g.querySelector('text.grad');
    var cst = g.querySelector('text.const');
    g.classList.remove('focus', 'changed', 'fwd');
    if (d){ d.textContent = 'data ' + (data[k] ? data[k][2] : '?');
            g.classList.toggle('hidden-data', !data[k]); }
    if (r){ r.textContent = 'grad ' + (grad[k] ? grad[k][2] : '?');
            g.classList.toggle('hidden-grad', !grad[k]); }
    if (data[k]) g.setAttribute('data-shown-data', data[k][3]); else g.removeAttribute('data-shown-data');
    if (grad[k]) g.setAttribute('data-shown-grad', grad[k][3]); else g.removeAttribute('data-shown-grad');
  }
  document.querySelectorAll('#graph g.op').forEach(function(o){ o.classList.remove('focus'); });
  var st = STEPS[cur];
  st.focus.forEach(function(k){ box(k).classList.add('focus'); });
  st.set.forEach(function(c){ var g = box(c[0]); g.classList.add('changed');
    if (c[1] === 'data') g.classList.add('fwd'); });
  if (st.op !== null){ var o = document.querySelector('#graph g.op[data-k="'+st.op+'"]');
    if (o) o.classList.add('focus'); }
  if (st.focus.length){                  // keep the step's op (or value) in view
    var el = st.op !== null ? document.querySelector('#graph g.op[data-k="'+st.op+'"]')
                            : box(st.focus[0]);
    var r = el.getBoundingClientRect();
    var top = document.getElementById('panel').getBoundingClientRect().bottom;
    if (r.top < top || r.bottom > window.innerHeight)
      window.scrollBy(0, r.top - (top + window.innerHeight) / 2);
  }
  document.getElementById('title').textContent = st.title;
  document.getElementById('lines').textContent = st.lines.join('\\n');
  document.getElementById('counter').textContent = 'step ' + (cur + 1) + ' of ' + STEPS.length +
    ' (' + st.phase + ')';
  document.body.setAttribute('data-step', cur);
  document.body.setAttribute('data-phase', st.phase);
  document.getElementById('back').disabled = cur === 0;
  document.getElementById('next').disabled = cur === STEPS.length - 1;
}
document.getElementById('next').addEventListener('click', function(){ show(cur + 1); });
document.getElementById('back').addEventListener('click', function(){ show(cur - 1); });
document.addEventListener('keydown', function(e){
  if (e.key === 'ArrowRight' || e.key === 'ArrowDown' || e.key === ' ') { show(cur + 1); e.preventDefault(); }
  else if (e.key === 'ArrowLeft' || e.key === 'ArrowUp') { show(cur - 1); e.preventDefault(); }
  else if (e.key === 'Home') { show(0); e.preventDefault(); }
  else if (e.key === 'End') { show(STEPS.length - 1); e.preventDefault(); }
});
document.body.setAttribute('data-steps', STEPS.length);
show(0);
})();
"""


def page(ex, max_nodes=60):
    """The step-through page of Explanation `ex` as HTML text."""
    L = svg.fit(ex.value, max_nodes)
    steps = _steps(ex, L)
    # each box names its value and carries the engine's exact floats
    def attrs(k):
        v = L.kept[k]
        return (f' data-name="{svg.xml_text(ex.names[v])}" data-data="{v.data!r}"'
                f' data-grad="{v.grad!r}" data-const="{int(is_const(v))}"')
    picture = svg.render(L, attrs=attrs)
    data = json.dumps(steps).replace("</", "<\\/")
    title = html.escape(f"backpropagation through {ex.names[ex.value]}")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>{title}</title><style>{PAGE_CSS}</style></head><body>"
            "<div id='panel'>"
            f"<h1>{title}</h1>"
            "<div id='controls'><button id='back' type='button'>\u2190 Back</button>"
            "<button id='next' type='button'>Next \u2192</button>"
            "<span id='counter'></span></div>"
            "<div id='title'></div><div id='lines'></div></div>"
            f"<div id='graph'>{picture}</div>"
            f"<script type='application/json' id='steps'>{data}</script>"
            f"<script>{PAGE_JS}</script></body></html>\n")


def save_page(ex, path, max_nodes=60):
    """Write the step-through page of Explanation `ex` to `path` (a str or
    path ending in .html or .htm); returns the path as a str."""
    path = os.fspath(path)
    if not isinstance(path, str):
        raise TypeError("path must be a str or a path, not bytes")
    if not path.lower().endswith((".html", ".htm")):
        raise ValueError(f"the step-through page is HTML: end the path with .html, not {path!r}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"cannot write {path!r}: the directory {folder!r} "
                                "does not exist (create it first)")
    text = page(ex, max_nodes)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path

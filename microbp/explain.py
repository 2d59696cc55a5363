"""explain(): backpropagation, op by op, for any graph.

    y.backward()
    print(microbp.explain(y))       # aligned text
    microbp.explain(y)              # an HTML table in a notebook
    microbp.explain(y).rows()       # the same, as data
    microbp.explain(y).save("backprop.html")   # a page to step through

For every op below the output, from the output down, each input's row shows
the chain rule at work:

    local d(node)/d(input)  x  upstream d(out)/d(node)  =  product

and a value's gradient is the sum of the products on the rows that name it as
input (one row per use). The local derivatives come from the small table
below, computed on the floats of the graph; the upstream gradients are the
engine's own .grad, so the sums check the engine's backward pass by hand.
"""
from __future__ import annotations

import html
from collections import namedtuple
from typing import Any, Optional, TYPE_CHECKING

from . import ops
from .checks import PathLike
from .graphwalk import check_value, topo, names, is_const, number

if TYPE_CHECKING:                # for the hints only: values are read duck-typed
    from .engine import Value



def local_derivatives(op: str, a: float, b: float, out: float) -> Optional[tuple[float, float]]:
    """(d out/d a, d out/d b) for op `op` (a name) at inputs a, b (b = 0.0 for
    a unary op) with result `out`, from the op table (ops.py); None for an op
    without formulas (leaf, const)."""
    row = ops.OPS[ops.CODE[op]] if op in ops.CODE else None
    return None if row is None or row.local is None else row.local(a, b, out)


Row = namedtuple("Row", "node node_name op input input_name position local upstream product")
Row.__doc__ = """One input of one op: `product = local * upstream` is what the
op passes down to `input` (its `position`-th input, 0 or 1). `node` and
`input` are the values themselves; `local` and `product` are None for an op
with no formula in the table."""

Sum = namedtuple("Sum", "value name products total grad")
Sum.__doc__ = """A value's gradient as the sum over its uses: `products` in the
order backward() adds them, `total` their sum, `grad` the engine's .grad."""


class Explanation:
    """The backward pass below a value, op by op (made by explain(), which
    checks the arguments): `value` the output, `constants` whether constant
    inputs get rows, `ran_backward` whether explain() ran value.backward().
    Attributes: value, constants, ran_backward, order (the values below value,
    inputs first) and names ({value: its name in the table})."""

    def __init__(self, value: Value, constants: bool, ran_backward: bool) -> None:
        self.value = value
        self.constants = constants
        self.ran_backward = ran_backward
        self.order = topo(value)
        self.names = names(self.order)
        self._rows = []
        for v in reversed(self.order):
            ins = v.inputs
            if not ins:
                continue
            a = ins[0].data
            b = ins[1].data if len(ins) > 1 else 0.0
            local = local_derivatives(v.op, a, b, v.data)
            for k, c in enumerate(ins):
                if is_const(c) and not constants:
                    continue
                loc = None if local is None else local[k]
                prod = None if loc is None else loc * v.grad
                self._rows.append(Row(v, self.names[v], v.op, c, self.names[c], k,
                                      loc, v.grad, prod))

    def rows(self) -> list[Row]:
        """The table as a list of Row namedtuples, from the output down."""
        return list(self._rows)

    def sums(self) -> list[Sum]:
        """For every value that receives a product, a Sum: its gradient as
        the sum of the products over its uses, beside the engine's .grad."""
        got: dict[Value, list[Any]] = {}         # products: float, or None (no formula)
        for r in self._rows:
            got.setdefault(r.input, []).append(r.product)
        out = []
        for v in reversed(self.order):
            if v in got:
                ps = got[v]
                total = None
                if None not in ps:
                    total = 0.0
                    for p in ps:
                        total += p
                out.append(Sum(v, self.names[v], tuple(ps), total, v.grad))
        return out

    # -- text -----------------------------------------------------------------
    def _header(self):
        out = self.names[self.value]
        lines = [f"backward pass of {out}, op by op from the output down"
                 + (" (explain() ran backward() first)" if self.ran_backward else "")]
        lines.append(f"each row: local d(node)/d(input) x upstream d({out})/d(node) = product")
        return lines, out

    def text(self, max_rows: int = 200) -> str:
        """The table as aligned text (at most `max_rows` rows of each part, an
        int; a last line counts the rest). Also what str() and repr() give."""
        lines, out = self._header()
        rows = self._rows[:max_rows]
        if not rows:
            lines.append(f"(no ops: {out} is a leaf)")
            return "\n".join(lines)
        up = f"x upstream d({out})/d(node)"
        cols = [("node", "<", [r.node_name for r in rows]),
                ("op", "<", [r.op for r in rows]),
                ("input", "<", [r.input_name for r in rows]),
                ("local d(node)/d(input)", ">", [_num(r.local) for r in rows]),
                (up, ">", [number(r.upstream) for r in rows]),
                ("= product", ">", [_num(r.product) for r in rows])]
        widths = [max(len(h), *(len(c) for c in cells)) for h, _, cells in cols]
        lines.append("")
        lines.append("  " + "  ".join(f"{h:{a}{w}}" for (h, a, _), w in zip(cols, widths))
                     .rstrip())
        for k in range(len(rows)):
            lines.append("  " + "  ".join(f"{cells[k]:{a}{w}}"
                                          for (_, a, cells), w in zip(cols, widths)).rstrip())
        if len(self._rows) > max_rows:
            lines.append(f"  ... {len(self._rows) - max_rows} more rows (rows() has them all)")
        lines.append("")
        lines.append("each gradient is the sum of the products over the value's uses")
        sums = self.sums()[:max_rows]
        width = max(len(s.name) for s in sums)
        texts = [_sum_text(s) for s in sums]
        lhs = max(len(t[0]) for t in texts)
        for s, (expr, grad) in zip(sums, texts):
            lines.append(f"  {s.name:<{width}}  {expr:<{lhs}}  {grad}".rstrip())
        if len(self.sums()) > max_rows:
            lines.append(f"  ... {len(self.sums()) - max_rows} more values "
                         "(sums() has them all)")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.text()

    __repr__ = __str__          # at the prompt, explain(y) shows the table too

    # -- notebook -------------------------------------------------------------
    def _repr_html_(self, max_rows=200):
        e = html.escape
        lines, out = self._header()
        parts = ["<div class='microbp-explain'>"]
        parts += [f"<div>{e(t)}</div>" for t in lines]
        head = ("<tr><th>node</th><th>op</th><th>input</th>"
                "<th>local d(node)/d(input)</th>"
                f"<th>&times; upstream d({e(out)})/d(node)</th><th>= product</th></tr>")
        body = []
        for r in self._rows[:max_rows]:
            body.append(f"<tr><td>{e(r.node_name)}</td><td>{e(r.op)}</td>"
                        f"<td>{e(r.input_name)}</td>"
                        f"<td style='text-align:right'>{_num(r.local)}</td>"
                        f"<td style='text-align:right'>{number(r.upstream)}</td>"
                        f"<td style='text-align:right'>{_num(r.product)}</td></tr>")
        if len(self._rows) > max_rows:
            body.append(f"<tr><td colspan='6'>... {len(self._rows) - max_rows} more rows "
                        "(rows() has them all)</td></tr>")
        parts.append(f"<table><thead>{head}</thead><tbody>{''.join(body)}</tbody></table>")
        sums = self.sums()
        if sums:
            parts.append("<div>each gradient is the sum of the products over the "
                         "value's uses</div><table><tbody>")
            for s in sums[:max_rows]:
                expr, grad = _sum_text(s)
                parts.append(f"<tr><td>{e(s.name)}</td><td>{e(expr)}</td>"
                             f"<td>{e(grad)}</td></tr>")
            parts.append("</tbody></table>")
        parts.append("</div>")
        return "".join(parts)

    # -- the step-through page ------------------------------------------------
    def save(self, path: PathLike, max_nodes: int = 60) -> str:
        """Write the step-through page (one self-contained HTML file) to `path`,
        drawing at most `max_nodes` values; returns the path (a str). See
        microbp.stepper for its errors (TypeError/ValueError for bad
        arguments, OSError if the file cannot be written)."""
        from .stepper import save_page
        return save_page(self, path, max_nodes=max_nodes)


def _num(x):
    return "?" if x is None else number(x)


def _sum_text(s):
    """(the sum over uses as text, the engine's .grad as text)."""
    if s.total is None:
        return "(no formula for an op that uses it)", f"(.grad {number(s.grad)})"
    terms = [number(p) for p in s.products]
    if len(terms) > 6:
        terms = terms[:3] + [f"... ({len(terms)} terms)"] + terms[-1:]
    agree = (s.total == s.grad or abs(s.total - s.grad) <= 1e-12 * max(1.0, abs(s.grad))
             or (s.total != s.total and s.grad != s.grad))
    mark = "" if agree else "  DIFFERS: were the gradients zeroed before backward()?"
    expr = " + ".join(terms)
    if len(s.products) > 1:
        expr += f" = {number(s.total)}"
    return expr, f"(.grad {number(s.grad)}){mark}"


def explain(value: Value, constants: bool = False) -> Explanation:
    """The backward pass below `value`, op by op (an Explanation).

    Call it after value.backward(); if value's grad is still 0 (backward has
    not run), explain() runs value.backward() first. Rows for constant inputs
    (the numbers in `2 * x`) are left out unless `constants` is true.

    print() it for aligned text; a notebook shows it as an HTML table;
    .rows() and .sums() give the data; .save(path) writes a page that steps
    through the forward and backward passes. TypeError if value is not a
    Value (lacks .data, .grad, .label, .op or .inputs); errors of backward()
    when it runs."""
    check_value(value, "explain")
    ran = False
    if value.grad == 0.0 and value.inputs:
        value.backward()
        ran = True
    return Explanation(value, bool(constants), ran)

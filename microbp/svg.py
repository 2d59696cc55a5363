"""microbp's own picture of a graph: a small layered SVG layout, no packages.

Values are boxes (label, data, grad), each op a small circle just left of the
box of its result, and the picture reads left to right as the forward pass.
Columns are layers: a value sits one column right of its latest input
(the longest path from the leaves); a leaf or constant sits just left of its
first use. Edges that skip columns pass through invisible waypoints, the
order within each column is chosen to limit crossings (barycenters), and
each box is then pulled level with its neighbours.

A big graph is summarised so that the picture stays readable at its displayed
size (at most MAX_WIDTH x MAX_HEIGHT pixels, text never scaled below
MIN_SCALE): only the values nearest the output are drawn, a note gives the
counts, and a dashed stub marks each op whose inputs are not drawn.
"""
from .graphwalk import check_value, nearest, ranked, is_const, number

MAX_WIDTH = 1200          # the picture's displayed size at most, in pixels
MAX_HEIGHT = 1400
MIN_SCALE = 0.8           # text is 12px; never shown below 12 * MIN_SCALE px

FONT = 12                 # px, monospace: widths are predictable
CHAR = 7.3                # width of one character of FONT px DejaVu Sans Mono (7.22)
ROW = 16                  # height of one line of a box
PAD = 6                   # inside a box, left and right
GAP = 84                  # between columns (holds the op circles and the edges)
VGAP = 60                 # between rows, top to bottom
STUB = 34                 # length of the stub that marks inputs not drawn
R = 13                    # op circle radius
SEP = 14                  # space between the boxes of a layer
MARGIN = 14
NOTE_H = 22               # room for the note above a summarised picture
MAX_LABEL = 24

SYMBOL = {"add": "+", "sub": "\u2212", "mul": "\u00d7", "div": "\u00f7", "pow": "**",
          "powc": "**", "neg": "\u2212x", "exp": "exp", "log": "log", "tanh": "tanh",
          "sigmoid": "\u03c3", "relu": "relu", "abs": "|x|", "sqrt": "\u221a"}
ORDERED = ("sub", "div", "pow", "powc")     # ops whose inputs are marked a and b


def xml_text(text):
    """`text` safe inside SVG/HTML text: markup characters as entities;
    control characters and lone surrogates (which XML cannot carry) as
    visible escapes like \\n."""
    out = []
    for ch in text:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code < 0xA0:
            out.append(ch.encode("unicode_escape").decode("ascii"))
        elif 0xD800 <= code < 0xE000:
            out.append(f"\\u{code:04x}")
        else:
            out.append({"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;"}.get(ch, ch))
    return "".join(out)


def short(label, n=MAX_LABEL):
    return label if len(label) <= n else label[:n - 1] + "\u2026"


class Layout:
    """Positions of the boxes, op circles and edges of a (summarised) graph.

    kept: the values drawn, inputs first; index[v] their number in the picture;
    lines[k]: the (class, text) lines of value k's box; box[k] = (x, y, w, h)
    of value k; op[k] = (cx, cy) of its op circle (None for a leaf); edges:
    (from k, to k, input position, points); stubs: (k, points) for ops with
    inputs not drawn; total: the whole graph's number of values; vertical:
    top to bottom; width, height: natural size in pixels."""


def _lines(v):
    if is_const(v):
        return [("const", number(v.data))]
    out = []
    if v.label:
        out.append(("label", short(v.label)))
    out.append(("data", "data " + number(v.data)))
    out.append(("grad", "grad " + number(v.grad)))
    return out


def _isotonic(targets, seps):
    """y minimising sum (y_i - targets_i)^2 with y_i >= y_{i-1} + seps_i
    (seps[0] unused): pool-adjacent-violators on the shifted targets."""
    off = [0.0]
    for s in seps[1:]:
        off.append(off[-1] + s)
    t = [d - o for d, o in zip(targets, off)]
    blocks = []                                 # [mean, count]
    for x in t:
        blocks.append([x, 1])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, n2 = blocks.pop()
            m1, n1 = blocks.pop()
            blocks.append([(m1 * n1 + m2 * n2) / (n1 + n2), n1 + n2])
    z = []
    for m, n in blocks:
        z.extend([m] * n)
    return [a + o for a, o in zip(z, off)]


def layout(value, max_nodes, vertical=False, ranking=None):
    """The Layout of the graph below `value`, drawing at most `max_nodes`
    values (those nearest the output): left to right, or top to bottom
    when `vertical`. `ranking`: a graphwalk.ranked() result to reuse."""
    kept, order = nearest(value, max_nodes, ranking)
    index = {v: k for k, v in enumerate(kept)}
    n = len(kept)
    ins = [[index.get(c) for c in v.inputs] for v in kept]      # None: not drawn
    # layers: interior values by the longest path from the leaves
    layer = [None] * n
    for k, v in enumerate(kept):
        if ins[k]:
            layer[k] = 1 + max([layer[c] if (c is not None and layer[c] is not None) else 0
                                for c in ins[k]])
    users = [[] for _ in range(n)]
    for k in range(n):
        for c in ins[k]:
            if c is not None:
                users[c].append(k)
    for k in range(n):                          # leaves: just before their first use
        if layer[k] is None:
            layer[k] = min((layer[u] for u in users[k]), default=1) - 1
    low = min(layer)
    layer = [x - low for x in layer]
    depth = max(layer) + 1

    # items of each column: values, then waypoints of edges that skip columns
    col_items = [[] for _ in range(depth)]      # item ids
    item_layer, item_h, item_w = [], [], []

    def new_item(lay, h, w):
        item_layer.append(lay)
        item_h.append(h)
        item_w.append(w)
        col_items[lay].append(len(item_layer) - 1)
        return len(item_layer) - 1

    lines = [_lines(v) for v in kept]
    size = []                                   # (width, height) of each value's box
    for k in range(n):
        size.append((2 * PAD + CHAR * max(len(t) for _, t in lines[k]),
                     ROW * len(lines[k]) + 6))
    # cross: the size of an item across the layers; along: its size along them
    cross = (lambda w, h: w) if vertical else (lambda w, h: h)
    along = (lambda w, h: h) if vertical else (lambda w, h: w)
    for k in range(n):                          # item k is value k
        new_item(layer[k], cross(*size[k]), along(*size[k]))
    chains = []                                 # (from k, to k, position, [items])
    for k in range(n):
        for pos, c in enumerate(ins[k]):
            if c is None:
                continue
            way = [new_item(x, 6, 0) for x in range(layer[c] + 1, layer[k])]
            chains.append((c, k, pos, [c] + way + [k]))
    left = [[] for _ in item_layer]             # neighbours one layer before / after
    right = [[] for _ in item_layer]
    for _, _, _, path in chains:
        for a, b in zip(path, path[1:]):
            right[a].append(b)
            left[b].append(a)

    # order within layers: start from the walk's order, then barycenter sweeps
    pos = {}
    for items in col_items:
        for j, it in enumerate(items):
            pos[it] = j
    for sweep in range(8):
        cols = range(1, depth) if sweep % 2 == 0 else range(depth - 2, -1, -1)
        for lay in cols:
            items = col_items[lay]
            key = {}
            for it in items:
                nb = left[it] if sweep % 2 == 0 else right[it]
                key[it] = sum(pos[x] for x in nb) / len(nb) if nb else pos[it]
            items.sort(key=lambda it: (key[it], pos[it]))
            for j, it in enumerate(items):
                pos[it] = j

    # across the layers: stack, then pull each item level with its neighbours
    cc = [0.0] * len(item_layer)
    for items in col_items:
        y = 0.0
        for it in items:
            cc[it] = y + item_h[it] / 2
            y += item_h[it] + SEP
    for sweep in range(12):
        cols = range(depth) if sweep % 2 == 0 else range(depth - 1, -1, -1)
        for lay in cols:
            items = col_items[lay]
            if not items:
                continue
            targets = []
            for it in items:
                nb = left[it] + right[it]
                targets.append(sum(cc[x] for x in nb) / len(nb) if nb else cc[it])
            seps = [0.0] + [(item_h[a] + item_h[b]) / 2 + SEP
                            for a, b in zip(items, items[1:])]
            for it, y in zip(items, _isotonic(targets, seps)):
                cc[it] = y

    # along the layers
    gap = VGAP if vertical else GAP
    lay_size = [max([item_w[it] for it in items] + [0]) for items in col_items]
    lay_pos = []
    x = STUB if any(None in x for x in ins) else 0.0
    for lay in range(depth):
        lay_pos.append(x)
        x += lay_size[lay] + gap

    def point(a, c):                            # along, across -> (x, y)
        return (c, a) if vertical else (a, c)

    L = Layout()
    L.kept, L.index, L.total, L.value, L.vertical = kept, index, len(order), value, vertical
    L.lines = lines
    L.box, L.op = [], []
    for k in range(n):
        a0 = lay_pos[layer[k]] + (lay_size[layer[k]] - item_w[k]) / 2
        x0, y0 = point(a0, cc[k] - item_h[k] / 2)
        L.box.append((x0, y0, size[k][0], size[k][1]))
        L.op.append(point(a0 - 10 - R, cc[k]) if ins[k] else None)
    L.edges = []
    for c, k, p, path in chains:
        a_end = lay_pos[layer[c]] + (lay_size[layer[c]] + item_w[c]) / 2
        pts = [point(a_end, cc[c])]
        for it in path[1:-1]:
            lay = item_layer[it]
            pts.append(point(lay_pos[lay], cc[it]))
            pts.append(point(lay_pos[lay] + lay_size[lay], cc[it]))
        ox, oy = L.op[k]
        pts.append((ox, oy - R) if vertical else (ox - R, oy))
        L.edges.append((c, k, p, pts))
    # two inputs meet the op circle at two points, each on the side it comes from
    into = {}
    for e in L.edges:
        into.setdefault(e[1], []).append(e)
    for k, es in into.items():
        if len(es) != 2:
            continue
        ox, oy = L.op[k]
        before = [e[3][-2][0 if vertical else 1] for e in es]
        sides = (-1, 1) if before[0] <= before[1] else (1, -1)
        if before[0] == before[1]:
            sides = (-1, 1) if es[0][2] == 0 else (1, -1)
        for e, side in zip(es, sides):
            e[3][-1] = ((ox + side * R * 0.6, oy - R * 0.8) if vertical
                        else (ox - R * 0.8, oy + side * R * 0.6))
    L.stubs = []
    for k in range(n):
        if None in ins[k]:
            ox, oy = L.op[k]
            end = (ox, oy - R) if vertical else (ox - R, oy)
            start = (ox, oy - R - STUB + 4) if vertical else (ox - R - STUB + 4, oy)
            L.stubs.append((k, [start, end]))
    # move everything to the margin (below the note of a summary)
    xs = [b[0] for b in L.box] + [b[0] + b[2] for b in L.box] + \
        [p[0] for s in L.stubs for p in s[1]] + [o[0] - R for o in L.op if o]
    ys = [b[1] for b in L.box] + [b[1] + b[3] for b in L.box] + \
        [p[1] for s in L.stubs for p in s[1]] + [o[1] - R for o in L.op if o]
    dx = MARGIN - min(xs)
    dy = MARGIN + (NOTE_H if L.total > n else 0) - min(ys)
    L.box = [(x + dx, y + dy, w, h) for x, y, w, h in L.box]
    L.op = [None if o is None else (o[0] + dx, o[1] + dy) for o in L.op]
    L.edges = [(c, k, p, [(x + dx, y + dy) for x, y in pts]) for c, k, p, pts in L.edges]
    L.stubs = [(k, [(x + dx, y + dy) for x, y in pts]) for k, pts in L.stubs]
    L.width = max(max(xs) + dx + MARGIN, 560 if L.total > n else 0)
    L.height = max(ys) + dy + MARGIN
    return L


def _path(pts, vertical):
    """An SVG path through pts: straight runs through a waypoint's layer, and
    smooth curves (leaving and arriving along the layers) between layers."""
    (x, y), rest = pts[0], pts[1:]
    d = [f"M{x:.1f},{y:.1f}"]
    for k, (x1, y1) in enumerate(rest):
        if k % 2 == 1 and k < len(rest) - 1:             # through a waypoint's layer
            d.append(f"L{x1:.1f},{y1:.1f}")
        elif vertical:
            dy = (y1 - y) / 2
            d.append(f"C{x:.1f},{y + dy:.1f} {x1:.1f},{y1 - dy:.1f} {x1:.1f},{y1:.1f}")
        else:
            dx = (x1 - x) / 2
            d.append(f"C{x + dx:.1f},{y:.1f} {x1 - dx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        x, y = x1, y1
    return "".join(d)


STYLE = """
.mbp text{font-family:'DejaVu Sans Mono',Menlo,Consolas,'Liberation Mono',monospace;font-size:12px;fill:#222}
.mbp .box{fill:#fff;stroke:#555;stroke-width:1}
.mbp .leaf .box{fill:#eef4ff}
.mbp .const .box{fill:#ececec;stroke:#999}
.mbp .out .box{stroke:#000;stroke-width:2.2}
.mbp .label{font-weight:bold}
.mbp .grad{fill:#b3261e}
.mbp .const text{fill:#555}
.mbp .op circle{fill:#fff4d6;stroke:#a07800}
.mbp .op text{font-size:11px;text-anchor:middle;dominant-baseline:central}
.mbp .edge{fill:none;stroke:#777;stroke-width:1.2}
.mbp .stub{fill:none;stroke:#999;stroke-width:1.2;stroke-dasharray:4 3}
.mbp .pos{font-size:9px;fill:#777}
.mbp .note{fill:#7a5b00}
"""


def render(L, scale=None, attrs=None):
    """SVG text of Layout L. Every value is a <g class="val" data-k=k> with
    <text class="data|grad" data-k=k> lines; every op a <g class="op"
    data-k=k>; every edge a <path class="edge" data-from data-to>. `scale`
    sets the displayed size (default: natural size, capped at MAX_WIDTH x
    MAX_HEIGHT); `attrs(k)`, when given, adds attributes to value k's <g>."""
    if scale is None:
        scale = min(1.0, MAX_WIDTH / L.width, MAX_HEIGHT / L.height)
    w, h = L.width, L.height
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="mbp" '
           f'width="{w * scale:.0f}" height="{h * scale:.0f}" viewBox="0 0 {w:.0f} {h:.0f}">',
           f"<style>{STYLE}</style>",
           f'<rect width="{w:.0f}" height="{h:.0f}" fill="#fff"/>']
    shown = len(L.kept)
    if L.total > shown:
        out.append(f'<text class="note" x="{MARGIN}" y="{MARGIN + 11}">the {shown} values '
                   f'nearest the output of {L.total}; {L.total - shown} more not drawn '
                   f'(dashed: inputs not shown)</text>')
    for c, k, p, pts in L.edges:
        out.append(f'<path class="edge" data-from="{c}" data-to="{k}" d="{_path(pts, L.vertical)}"/>')
        if L.kept[k].op in ORDERED and len(L.kept[k].inputs) == 2:
            x, y = pts[-1]
            ox, oy = L.op[k]
            if L.vertical:
                tx, ty = (x - 9 if x < ox else x + 3), y - 3
            else:
                tx, ty = x - 9, (y - 3 if y < oy else y + 10)
            out.append(f'<text class="pos" x="{tx:.1f}" y="{ty:.1f}">{"ab"[p]}</text>')
    for k, pts in L.stubs:
        (x0, y0), (x1, y1) = pts
        out.append(f'<path class="stub" data-to="{k}" d="M{x0:.1f},{y0:.1f}L{x1:.1f},{y1:.1f}"/>'
                   f'<text class="pos" x="{x0 - 4:.1f}" y="{y0 - 2:.1f}">\u2026</text>')
    for k, v in enumerate(L.kept):
        if L.op[k] is None:
            continue
        ox, oy = L.op[k]
        x, y, _, bh = L.box[k]
        sym = SYMBOL.get(v.op, v.op)
        small = ' style="font-size:8px"' if len(sym) > 2 else ""
        out.append(f'<g class="op" data-k="{k}" data-op="{xml_text(v.op)}">'
                   + (f'<path class="edge" d="M{ox:.1f},{oy + R:.1f}L{ox:.1f},{y:.1f}"/>'
                      if L.vertical else
                      f'<path class="edge" d="M{ox + R:.1f},{oy:.1f}L{x:.1f},{oy:.1f}"/>')
                   + f'<circle cx="{ox:.1f}" cy="{oy:.1f}" r="{R}"/>'
                   f'<text x="{ox:.1f}" y="{oy:.1f}"{small}>{xml_text(short(sym, 4))}</text></g>')
    for k, v in enumerate(L.kept):
        x, y, bw, bh = L.box[k]
        kind = "const" if is_const(v) else ("leaf" if not v.inputs else "node")
        if v is L.value:
            kind += " out"
        extra = attrs(k) if attrs else ""
        out.append(f'<g class="val {kind}" data-k="{k}"{extra}>'
                   f'<rect class="box" x="{x:.1f}" y="{y:.1f}" width="{bw:.1f}" '
                   f'height="{bh:.1f}" rx="3"/>')
        for j, (cls, t) in enumerate(L.lines[k]):
            out.append(f'<text class="{cls}" data-k="{k}" x="{x + PAD:.1f}" '
                       f'y="{y + 3 + ROW * j + 12:.1f}">{xml_text(t)}</text>')
        out.append("</g>")
    out.append("</svg>")
    return "\n".join(out)


def fit(value, max_nodes=None):
    """The Layout of the graph below `value`, summarised until it is
    readable at its displayed size: starting from `max_nodes` values (60 by
    default), fewer are drawn while the picture would have to shrink below
    MIN_SCALE to fit MAX_WIDTH x MAX_HEIGHT. Left to right when that draws
    as many values as top to bottom, else top to bottom."""
    budget = 60 if max_nodes is None else max_nodes
    ranking = ranked(value, budget)             # one walk of the graph for every try
    best = None
    for vertical in (False, True):
        b = budget
        while True:
            L = layout(value, b, vertical, ranking)
            scale = min(1.0, MAX_WIDTH / L.width, MAX_HEIGHT / L.height)
            if scale >= MIN_SCALE or b <= 3:
                break
            b = max(3, min(int(b * 0.8), len(L.kept) - 1))
        if best is None or len(L.kept) > len(best.kept):
            best = L
    return best


def to_svg(value, max_nodes=None):
    """SVG text of the graph below `value` by microbp's own layout (no
    Graphviz), summarised to stay readable (see fit())."""
    check_value(value, "to_svg")
    return render(fit(value, max_nodes))

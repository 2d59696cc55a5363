"""Graph pictures: Value.to_dot(), microbp.draw, the notebook picture
(microbp/draw.py) and microbp's own SVG layout (microbp/svg.py)."""
import html
import json
import os
import re
import xml.etree.ElementTree as ET
import shutil
import subprocess
import sys
import time

import pytest

from microbp import Value
from microbp import svg as own
from microbp.draw import to_dot, draw, repr_svg, repr_mimebundle
from microbp.graphwalk import topo, nearest

from networks import lecture_loss

BOX = re.compile(r"^  (v\d+) \[shape=plaintext label=<(.*)>\];$", re.M)
OPNODE = re.compile(r'^  (v\d+)_op \[shape=ellipse label="([^"]*)"', re.M)
EDGE = re.compile(r"^  (\w+) -> (\w+)( \[[^\]]*\])?;$", re.M)

needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is not installed")


def small():
    x = Value(2.0, label="x")
    w = Value(-3.0, label="w")
    y = (x * w + 1).tanh()
    y.label = "y"
    y.backward()
    return x, w, y


def chain(n):
    """A graph of exactly n values: a leaf, then n - 1 unary nodes."""
    h = Value(0.5, label="x")
    for _ in range(n - 1):
        h = -h
    return h


def cells(box_label):
    return re.findall(r"<TD[^>]*>(.*?)</TD>", box_label)


def test_one_box_per_value_with_label_data_and_grad():
    x, w, y = small()
    text = y.to_dot()
    assert text.startswith("// microbp graph: 6 values\ndigraph microbp {")
    assert text.rstrip().endswith("}")
    boxes = dict(BOX.findall(text))
    nodes = topo(y)
    assert len(boxes) == len(nodes) == 6
    # boxes are named in creation order: v0 is x, v1 is w, v5 is y
    assert cells(boxes["v0"]) == ["<B>x</B>", "data 2", f"grad {x.grad:.6g}"]
    assert cells(boxes["v1"]) == ["<B>w</B>", "data -3", f"grad {w.grad:.6g}"]
    assert cells(boxes["v5"]) == ["<B>y</B>", f"data {y.data:.6g}", "grad 1"]
    assert cells(boxes["v3"]) == ["<I>const</I>", "data 1", f"grad {nodes[3].grad:.6g}"]
    assert cells(boxes["v2"]) == ["data -6", f"grad {nodes[2].grad:.6g}"]   # no label
    assert 'BGCOLOR="#e8e8e8"' in boxes["v3"]           # a constant is grey
    assert 'BORDER="2"' in boxes["v5"] and 'BORDER="2"' not in boxes["v0"]  # the output


def test_one_node_per_op_and_the_edges():
    _, _, y = small()
    text = y.to_dot()
    ops = dict(OPNODE.findall(text))
    assert ops == {"v2": "*", "v4": "+", "v5": "tanh"}
    edges = {(a, b) for a, b, _ in EDGE.findall(text)}
    assert edges == {("v0", "v2_op"), ("v1", "v2_op"), ("v2_op", "v2"),
                     ("v2", "v4_op"), ("v3", "v4_op"), ("v4_op", "v4"),
                     ("v4", "v5_op"), ("v5_op", "v5")}
    assert "omitted" not in text


def test_every_op_has_a_symbol_and_order_is_marked_where_it_matters():
    a, b = Value(3.0, label="a"), Value(2.0, label="b")
    parts = [a + b, a - b, a * b, a / b, a ** b, a ** 2, -a, a.exp(), a.log(), a.tanh(),
             a.sigmoid(), a.relu(), abs(a)]
    out = parts[0]
    for p in parts[1:]:
        out = out + p
    text = out.to_dot()
    symbols = set(dict(OPNODE.findall(text)).values())
    assert {"+", "-", "*", "/", "**", "-x", "exp", "log", "tanh", "sigmoid", "relu",
            "abs"} <= symbols
    # a - b, a / b, a ** b: the arrows say which input is a and which is b
    assert text.count('headlabel="a"') == text.count('headlabel="b"') == 4


def test_a_value_used_twice_is_one_box_with_two_arrows():
    x = Value(3.0, label="x")
    y = x * x
    text = y.to_dot()
    assert len(BOX.findall(text)) == 2
    assert [e[:2] for e in EDGE.findall(text)].count(("v0", "v1_op")) == 2


def test_labels_are_escaped():
    nasty = 'w <&> "q" \\N {|} x\ny\x00\u00e9\ud800'
    x = Value(1.0, label=nasty)
    text = (x * 2).to_dot()
    box = dict(BOX.findall(text))["v0"]
    label = cells(box)[0]
    assert label == ("<B>w &lt;&amp;&gt; &quot;q&quot; \\\\N {|} x\\\\ny\\\\x00"
                     "\u00e9\\\\ud800</B>")
    # the whole label stays on one line, and nothing in it can end the HTML label
    assert "\n" not in box and '"q"' not in box
    assert text.encode("utf-8")                        # no lone surrogate survives


def test_long_labels_are_cut():
    x = Value(1.0, label="a" * 100)
    label = cells(dict(BOX.findall(x.to_dot()))["v0"])[0]
    assert label == "<B>" + "a" * 39 + "\u2026</B>"


def test_nan_and_inf_data():
    x = Value(float("nan"), label="x")
    y = x + float("inf")
    text = y.to_dot()
    assert "data nan" in text and "data inf" in text


def test_value_to_dot_is_draw_to_dot():
    _, _, y = small()
    assert y.to_dot() == to_dot(y)
    assert y.to_dot(max_nodes=2) == to_dot(y, max_nodes=2)


def test_bad_arguments():
    _, _, y = small()
    with pytest.raises(TypeError, match="Value"):
        to_dot(3.0)
    with pytest.raises(TypeError, match="Value"):
        draw("y", "g.svg")
    with pytest.raises(ValueError, match="max_nodes"):
        y.to_dot(max_nodes=0)
    with pytest.raises(TypeError, match="max_nodes"):
        y.to_dot(max_nodes="10")
    with pytest.raises(TypeError, match="max_nodes"):
        y.to_dot(max_nodes=True)


def test_a_big_graph_is_summarised_fast():
    root = chain(10_000)
    t0 = time.perf_counter()
    text = root.to_dot()
    assert time.perf_counter() - t0 < 5.0
    assert len(BOX.findall(text)) == 200
    assert "9800 more values not shown" in text
    assert text.startswith("// microbp graph: 10000 values, the 200 nearest the output drawn")
    # the note leads to the one drawn value whose input is not drawn
    dashed = [e for e in EDGE.findall(text) if e[0] == "omitted"]
    assert len(dashed) == 1 and "dashed" in dashed[0][2]
    assert len(text) < 100_000


def test_the_cap_keeps_the_values_nearest_the_output():
    deep = chain(50)
    deep.label = "deep"
    near = Value(1.0, label="near")
    root = deep + near
    root.label = "root"
    text = root.to_dot(max_nodes=3)
    labels = [cells(b)[0] for _, b in BOX.findall(text)]
    assert sorted(labels) == ["<B>deep</B>", "<B>near</B>", "<B>root</B>"]
    assert "49 more values not shown" in text
    assert "1 more value not shown" in chain(4).to_dot(max_nodes=3)


def test_draw_png_writes_dot_when_graphviz_is_missing(tmp_path, monkeypatch, capsys):
    _, _, y = small()
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    written = draw(y, tmp_path / "g.png")
    assert written == str(tmp_path / "g.dot")
    assert not (tmp_path / "g.png").exists()
    assert (tmp_path / "g.dot").read_text(encoding="utf-8") == y.to_dot()
    err = capsys.readouterr().err
    assert "not found" in err and f"dot -Tpng {tmp_path / 'g.dot'} -o {tmp_path / 'g.png'}" in err


def test_draw_svg_without_graphviz_uses_the_own_layout(tmp_path, monkeypatch):
    _, _, y = small()
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    path = str(tmp_path / "g.svg")
    assert draw(y, path) == path
    text = open(path, encoding="utf-8").read()
    assert text == own.to_svg(y, max_nodes=200)
    assert len(ET.fromstring(text).findall(".//{http://www.w3.org/2000/svg}g[@class]")) > 0
    assert not (tmp_path / "g.dot").exists()


@pytest.mark.parametrize("name", ["g.svg", "g.png", "g.dot", "g.html"])
def test_draw_into_a_missing_directory_is_a_clear_error(tmp_path, name):
    _, _, y = small()
    missing = tmp_path / "no" / "such"
    with pytest.raises(FileNotFoundError, match="no/such"):
        draw(y, missing / name)
    assert not (tmp_path / "no").exists()
    assert os.listdir(tmp_path) == []


def test_draw_html_writes_the_step_through_page(tmp_path):
    _, _, y = small()
    path = str(tmp_path / "backprop.html")
    assert draw(y, path) == path
    text = open(path, encoding="utf-8").read()
    assert text.startswith("<!DOCTYPE html>") and "<svg" in text and "<script>" in text
    # self-contained: nothing is loaded from anywhere (the SVG namespace is a name)
    text = text.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert not re.search(r"""(src|href)\s*=|@import|url\(|https?://|//[a-z]""", text)


def test_draw_to_a_dot_file_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    y = chain(10_000)
    path = str(tmp_path / "big.dot")
    assert draw(y, path, max_nodes=20) == path
    assert "9980 more values not shown" in open(path, encoding="utf-8").read()


def test_draw_needs_a_known_suffix(tmp_path):
    _, _, y = small()
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.dot, \.html"):
        draw(y, tmp_path / "g.jpg")
    with pytest.raises(ValueError):
        draw(y, tmp_path / "g")


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a fake dot")
@pytest.mark.parametrize("script, why", [("echo broken >&2; exit 3", "failed (broken)"),
                                         ("sleep 10", "did not finish within 0.5 s")])
def test_draw_falls_back_when_dot_fails(tmp_path, monkeypatch, capsys, script, why):
    fake = tmp_path / "fakedot"
    fake.write_text("#!/bin/sh\n" + script + "\n")
    fake.chmod(0o755)
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: str(fake))
    _, _, y = small()
    assert draw(y, tmp_path / "g.png", timeout=0.5) == str(tmp_path / "g.dot")
    assert why in capsys.readouterr().err
    assert (tmp_path / "g.dot").exists()


@needs_dot
def test_draw_svg_with_graphviz(tmp_path):
    _, _, y = small()
    y.label = 'y <"odd"> & \\N'
    path = str(tmp_path / "g.svg")
    assert draw(y, path) == path
    svg = open(path, encoding="utf-8").read()
    assert "<svg" in svg
    texts = [html.unescape(t) for t in re.findall(r"<text[^>]*>([^<]*)</text>", svg)]
    assert 'y <"odd"> & \\N' in texts                # shown as written, \N not expanded
    assert "data 2" in texts and "tanh" in texts


@needs_dot
def test_draw_png_with_graphviz(tmp_path):
    _, _, y = small()
    path = str(tmp_path / "g.png")
    assert draw(y, path) == path
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


@needs_dot
def test_graphviz_accepts_the_summary_of_a_big_graph(tmp_path):
    text = chain(10_000).to_dot(max_nodes=30)
    done = subprocess.run(["dot", "-Tsvg"], input=text.encode(), capture_output=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    assert b"9970 more values not shown" in done.stdout


# -- microbp's own SVG layout (microbp/svg.py) and the notebook picture --------

SVGNS = "{http://www.w3.org/2000/svg}"


def parse(svg_text):
    return ET.fromstring(svg_text)


def groups(root, cls):
    return [g for g in root.iter(SVGNS + "g") if cls in g.get("class", "").split()]


def wide(n):
    """sum of n products w_i * x_i: a graph 2 layers deep and n wide."""
    out = Value(0.0, label="acc")
    for i in range(n):
        out = out + Value(0.1 * i, label=f"w{i}") * Value(1.0, label=f"x{i}")
    return out


def test_own_svg_has_a_box_per_value_an_op_per_result_and_the_edges():
    x, w, y = small()
    root = parse(own.to_svg(y))
    vals = groups(root, "val")
    assert len(vals) == len(topo(y)) == 6
    texts = {g.get("data-k"): [t.text for t in g.iter(SVGNS + "text")] for g in vals}
    k = {v: str(i) for i, v in enumerate(topo(y))}
    assert texts[k[x]] == ["x", "data 2", f"grad {x.grad:.6g}"]
    assert texts[k[w]] == ["w", "data -3", f"grad {w.grad:.6g}"]
    assert texts[k[y]] == ["y", f"data {y.data:.6g}", "grad 1"]
    assert "out" in dict((g.get("data-k"), g.get("class")) for g in vals)[k[y]]
    assert sorted(g.get("data-op") for g in groups(root, "op")) == ["add", "mul", "tanh"]
    edges = {(p.get("data-from"), p.get("data-to")) for p in root.iter(SVGNS + "path")
             if p.get("class") == "edge" and p.get("data-from")}
    nodes = topo(y)
    want = {(k[c], k[v]) for v in nodes for c in v.inputs}
    assert edges == want and len(want) == 5
    assert "not drawn" not in own.to_svg(y)


def rects_overlap(a, b):
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


@pytest.mark.parametrize("make", [lambda: small()[2], lecture_loss, lambda: wide(12),
                                  lambda: chain(30)])
@pytest.mark.parametrize("vertical", [False, True])
def test_own_layout_is_layered_and_boxes_do_not_overlap(make, vertical):
    L = own.layout(make(), 100, vertical)
    for c, k, _, pts in L.edges:
        bx, by, bw, bh = L.box[c]
        ox, oy = L.op[k]
        if vertical:                   # every edge goes down, from a box to a later op
            assert by + bh < oy - own.R and pts[0][1] == pytest.approx(by + bh)
        else:                          # every edge goes right
            assert bx + bw < ox - own.R and pts[0][0] == pytest.approx(bx + bw)
    for i in range(len(L.box)):
        assert L.box[i][0] >= 0 and L.box[i][1] >= 0
        assert L.box[i][0] + L.box[i][2] <= L.width and L.box[i][1] + L.box[i][3] <= L.height
        for j in range(i):
            assert not rects_overlap(L.box[i], L.box[j]), (i, j)


def displayed(svg_text):
    root = parse(svg_text)
    w, h = float(root.get("width")), float(root.get("height"))
    vb = [float(x) for x in root.get("viewBox").split()]
    return w, h, w / vb[2]


@pytest.mark.parametrize("make, total", [(lambda: chain(10_000), 10_000),
                                         (lambda: wide(300), 1 + 4 * 300)])
def test_a_big_graph_is_summarised_to_stay_readable(make, total):
    text = own.to_svg(make())
    w, h, scale = displayed(text)
    assert w <= own.MAX_WIDTH and h <= own.MAX_HEIGHT
    assert scale >= own.MIN_SCALE                   # text never shrunk below 12px * 0.8
    drawn = len(groups(parse(text), "val"))
    assert 3 <= drawn < 100
    assert (f"the {drawn} values nearest the output of {total}; "
            f"{total - drawn} more not drawn") in text
    assert 'class="stub"' in text                   # ops whose inputs are not drawn


def test_the_lecture_graph_is_drawn_whole_and_readable():
    text = own.to_svg(lecture_loss())
    assert len(groups(parse(text), "val")) == 26 and "not drawn" not in text
    w, h, scale = displayed(text)
    assert w <= own.MAX_WIDTH and h <= own.MAX_HEIGHT and scale >= own.MIN_SCALE


def test_the_values_kept_include_every_user_of_a_kept_value():
    import random
    rng = random.Random(5)
    xs = [Value(rng.uniform(-1, 1), label=f"x{i}") for i in range(6)]
    pool = list(xs)
    for _ in range(120):
        a, b = rng.choice(pool[-10:]), rng.choice(pool)
        pool.append(rng.choice([a + b, a * b, a - b, (a * b).tanh()]))
    root = pool[-1]
    for n in (1, 5, 20, 60):
        kept, order = nearest(root, n)
        assert len(kept) == min(n, len(order)) and kept[-1] is root
        keep = set(kept)
        for v in order:
            if v not in keep:
                assert not any(c in keep for c in v.inputs)
        assert kept == [v for v in order if v in keep]      # inputs first


def test_own_svg_escapes_labels():
    nasty = 'w <&> "q" \\N x\ny\x00\u00e9\ud800'
    x = Value(1.0, label=nasty)
    text = own.to_svg(x * 2)
    texts = [t.text for t in parse(text).iter(SVGNS + "text")]   # parses as XML
    assert 'w <&> "q" \\N x\\ny\\x00\u00e9\\ud800' in texts
    assert text.encode("utf-8")


def test_repr_mimebundle_without_graphviz_is_the_own_picture(monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    _, _, y = small()
    bundle = repr_mimebundle(y)
    assert set(bundle) == {"image/svg+xml", "text/plain"}
    assert bundle["text/plain"] == repr(y)
    assert bundle["image/svg+xml"] == repr_svg(y) == own.to_svg(y)
    assert repr_mimebundle(y, include=["text/plain"]) == {"text/plain": repr(y)}
    assert set(repr_mimebundle(y, exclude=["text/plain"])) == {"image/svg+xml"}


@pytest.mark.skipif(sys.platform == "win32", reason="uses a shell script as a fake dot")
def test_repr_svg_uses_graphviz_when_it_works_and_never_falls_to_text(tmp_path, monkeypatch):
    _, _, y = small()
    fake = tmp_path / "fakedot"

    def fake_dot(width_pt, height_pt):
        fake.write_text('#!/bin/sh\ncat > /dev/null\necho \'<?xml version="1.0"?>\'\n'
                        f"echo '<svg width=\"{width_pt}pt\" height=\"{height_pt}pt\"'\n"
                        'echo \' viewBox="0 0 1 1" xmlns="http://www.w3.org/2000/svg">fake</svg>\'\n')
        fake.chmod(0o755)

    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: str(fake))
    fake_dot(300, 150)                          # 400 x 200 px: shown as it is
    assert repr_svg(y) == ('<svg width="400px" height="200px"\n viewBox="0 0 1 1" '
                           'xmlns="http://www.w3.org/2000/svg">fake</svg>\n')
    fake_dot(1080, 150)                         # 1440 px wide: shrunk to 1200
    assert repr_svg(y).startswith('<svg width="1200px" height="167px"')
    fake_dot(3000, 150)                         # would shrink below readable: own layout
    assert repr_svg(y) == own.to_svg(y)
    fake.write_text("#!/bin/sh\necho broken >&2\nexit 1\n")
    assert repr_svg(y) == own.to_svg(y)         # dot fails: still a picture


@needs_dot
def test_repr_svg_with_graphviz_is_svg():
    _, _, y = small()
    text = repr_svg(y)
    assert text.startswith("<svg") and "tanh" in text


def test_the_page_of_a_big_graph_is_summarised(tmp_path):
    y = chain(10_000)
    y.backward()
    path = draw(y, tmp_path / "big.html")
    text = open(path, encoding="utf-8").read()
    drawn = len(re.findall(r'<g class="val [^>]*data-name=', text))
    assert 3 <= drawn <= 60 and f"of 10000; {10_000 - drawn} more not drawn" in text
    assert len(text) < 200_000
    steps = re.search(r"<script type='application/json' id='steps'>(.*?)</script>", text,
                      re.S).group(1)
    steps = json.loads(steps)
    # start, a forward step per drawn op (the leaf x is not drawn), the start of
    # backward, a backward step per drawn op, end
    assert len(steps) == 1 + drawn + 1 + drawn + 1
    assert "not drawn" in " ".join(steps[1]["lines"])


def test_the_page_needs_an_html_path(tmp_path):
    from microbp.explain import explain
    _, _, y = small()
    with pytest.raises(ValueError, match=r"\.html"):
        explain(y).save(tmp_path / "page.svg")
    with pytest.raises(FileNotFoundError, match="nowhere"):
        explain(y).save(tmp_path / "nowhere" / "page.html")

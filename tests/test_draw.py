"""Graph pictures: Value.to_dot() and microbp.draw (microbp/draw.py)."""
import html
import re
import shutil
import subprocess
import sys
import time

import pytest

from microbp import Value
from microbp.draw import to_dot, draw
from microbp.graph import topo

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
    return re.findall(r"<TD>(.*?)</TD>", box_label)


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


def test_draw_writes_dot_when_graphviz_is_missing(tmp_path, monkeypatch, capsys):
    _, _, y = small()
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    written = draw(y, tmp_path / "g.svg")
    assert written == str(tmp_path / "g.dot")
    assert not (tmp_path / "g.svg").exists()
    assert (tmp_path / "g.dot").read_text(encoding="utf-8") == y.to_dot()
    err = capsys.readouterr().err
    assert "not found" in err and f"dot -Tsvg {tmp_path / 'g.dot'} -o {tmp_path / 'g.svg'}" in err


def test_draw_to_a_dot_file_needs_no_graphviz(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "which", lambda name, *a, **k: None)
    y = chain(10_000)
    path = str(tmp_path / "big.dot")
    assert draw(y, path, max_nodes=20) == path
    assert "9980 more values not shown" in open(path, encoding="utf-8").read()


def test_draw_needs_a_known_suffix(tmp_path):
    _, _, y = small()
    with pytest.raises(ValueError, match=r"\.svg, \.png, \.dot"):
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

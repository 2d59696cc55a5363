"""The progress line (in place on a terminal, plain lines otherwise) and the
loss curve (a PNG with matplotlib, a text sparkline without)."""
import io
import math
import sys

import pytest

from microbp.progress import Progress, plot, sparkline, BARS, ASCII_BARS


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    p = Progress(25, every=10, stream=out)
    for k in range(1, 26):
        p.update(k, loss=1.0 / k, acc=k / 25)
    lines = out.getvalue().splitlines()
    assert [ln.split()[1] for ln in lines] == ["1/25", "10/25", "20/25", "25/25"]
    assert "\r" not in out.getvalue()
    assert "loss 0.040000" in lines[-1] and "acc 100.0%" in lines[-1] and "steps/s" in lines[-1]


def test_updates_in_place_on_a_terminal():
    out = Terminal()
    p = Progress(3, stream=out)
    for k in range(1, 4):
        p.update(k, loss=0.5)
    text = out.getvalue()
    assert text.count("\r") == 3 and text.endswith("\n") and text.count("\n") == 1


def test_total_must_be_positive():
    with pytest.raises(ValueError):
        Progress(0)


# --- the loss curve ----------------------------------------------------------


def test_sparkline_one_bar_per_value_low_to_high():
    assert sparkline([1, 2, 3, 4, 5, 6, 7, 8]) == BARS
    assert sparkline([8, 1]) == BARS[-1] + BARS[0]
    assert sparkline([3.0, 3.0, 3.0]) == BARS[0] * 3          # flat: all low


def test_sparkline_averages_down_to_width():
    values = [0.0] * 50 + [1.0] * 50
    assert sparkline(values, width=10) == BARS[0] * 5 + BARS[-1] * 5
    pairs = [0, 2, 2, 4, 4, 6, 6, 8, 8, 10, 10, 12, 12, 14, 14, 16]   # means 1, 3, .., 15
    assert sparkline(pairs, width=8) == BARS
    assert sparkline(pairs, width=100) == sparkline(pairs, width=16) != BARS


def test_sparkline_marks_nonfinite_and_scales_by_log_when_asked():
    assert sparkline([1.0, math.nan, 2.0, math.inf]) == BARS[0] + "!" + BARS[-1] + "!"
    falling = [100.0 ** -k for k in range(8)]                 # 1 .. 1e-14
    assert sparkline(falling) == BARS[::-1]                    # auto: log, evenly spaced
    assert sparkline(falling, log=False) == BARS[-1] + BARS[0] * 7


def test_plot_without_a_path_writes_text():
    out = io.StringIO()
    text = plot([4.0, 2.0, 1.0, 3.0], stream=out)
    assert out.getvalue() == text + "\n"
    assert text.startswith("loss 4 ") and "(min 1 at step 3)" in text
    assert sparkline([4.0, 2.0, 1.0, 3.0]) in text


def test_plot_falls_back_to_ascii_where_the_stream_cannot_encode_bars():
    out = io.TextIOWrapper(io.BytesIO(), encoding="ascii")
    text = plot([1.0, 2.0, 3.0], stream=out)
    assert ASCII_BARS[0] in text and ASCII_BARS[-1] in text
    out.flush()


def test_plot_without_matplotlib_says_so_and_writes_no_file(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    out = io.StringIO()
    text = plot([3.0, 1.0], tmp_path / "loss.png", stream=out)
    assert "matplotlib is not installed" in text and "pip install matplotlib" in text
    assert not list(tmp_path.iterdir())


def test_plot_with_matplotlib_writes_a_png(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "loss.png"
    assert plot([3.0, 1.0, 0.5], path) == str(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("values,error", [([], ValueError), ("abc", TypeError),
                                          ([1.0, "x"], TypeError), ([1.0, 1j], TypeError),
                                          (None, TypeError)])
def test_plot_refuses_what_is_not_a_list_of_numbers(values, error):
    with pytest.raises(error):
        plot(values, stream=io.StringIO())
    with pytest.raises(error):
        sparkline(values)


def test_width_must_be_positive():
    with pytest.raises(ValueError, match="width"):
        sparkline([1.0], width=0)


def test_progress_keeps_its_metrics_and_plots_them():
    out = io.StringIO()
    p = Progress(5, stream=out)
    for k in range(1, 6):
        p.update(k, loss=1.0 / k, acc=k / 5)
    assert p.history == {"loss": [1.0, 0.5, 1 / 3, 0.25, 0.2], "acc": [0.2, 0.4, 0.6, 0.8, 1.0]}
    text = p.plot("acc", stream=io.StringIO())
    assert text.startswith("acc 0.2 ") and sparkline(p.history["acc"]) in text
    with pytest.raises(ValueError, match="no metric 'mse'.*loss, acc"):
        p.plot("mse")
    q = Progress(3, stream=io.StringIO(), label="epoch")
    for k in (1, 2, 3):
        q.update(k, loss=[3.0, 1.0, 2.0][k - 1])
    assert q.plot(stream=io.StringIO()).endswith("(min 1 at epoch 2)")


def test_numpy_values():
    np = pytest.importorskip("numpy")
    assert sparkline(np.array([1.0, 2.0])) == BARS[0] + BARS[-1]
    with pytest.raises(ValueError, match="1-D"):
        sparkline(np.ones((2, 2)))

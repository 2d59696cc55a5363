"""The progress line: in place on a terminal, plain lines otherwise."""
import io

import pytest

from microbp.progress import Progress


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

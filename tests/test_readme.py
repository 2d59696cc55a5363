"""README.md's code runs, and prints what the README says it prints.

Every ```python block of README.md runs, in order, in one namespace (as a
reader who pastes them one after another into one session would), in a
temporary working directory (so files the snippets write land there). A
failure names the block's number and its first line.

Output convention: a ```python block followed directly (blank lines aside) by
a ```text block claims that the text block is exactly what the python block
prints to stdout; the test checks it. To regenerate a text block, run its
python block (after the ones before it) and paste the output.

Optional packages: a block that imports torch, numpy or matplotlib is skipped
(with the ones after it still run) when that package is not installed; such a
block must not define names that later blocks need.
"""
import contextlib
import importlib.util
import io
import os
import re
import warnings

import pytest

import microbp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OPTIONAL = ("torch", "numpy", "matplotlib")

FENCE = re.compile(r"^```(\w*)[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)


def blocks(text):
    """[(language, code, the text block that follows it or None)] of every fenced block."""
    found = [(m.group(1), m.group(2), m.start(), m.end()) for m in FENCE.finditer(text)]
    out = []
    for k, (lang, code, _, end) in enumerate(found):
        after = None
        if k + 1 < len(found) and found[k + 1][0] == "text" \
                and not text[end:found[k + 1][2]].strip():
            after = found[k + 1][1]
        out.append((lang, code, after))
    return out


def python_blocks():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return [(code, after) for lang, code, after in blocks(f.read()) if lang == "python"]


def missing_optional(code):
    for name in OPTIONAL:
        if re.search(rf"^\s*(import|from) {name}\b", code, re.M) \
                and importlib.util.find_spec(name) is None:
            return name
    return None


def test_the_fence_parser():
    text = "a\n```python\nx = 1\n```\n\n```text\n1\n```\n```sh\nls\n```\n```python\ny\n```\n"
    assert blocks(text) == [("python", "x = 1\n", "1\n"), ("text", "1\n", None),
                            ("sh", "ls\n", None), ("python", "y\n", None)]


@pytest.fixture
def restore_backend():
    """The README calls set_backend (process-wide): put back the suite's choice."""
    before = microbp.get_backend()
    yield
    microbp.set_backend(before)


def test_every_python_block_runs_and_prints_what_the_readme_shows(tmp_path, monkeypatch,
                                                                  restore_backend):
    monkeypatch.chdir(tmp_path)
    found = python_blocks()
    assert len(found) >= 5
    namespace = {"__name__": "__readme__"}
    skipped = []
    for k, (code, shown) in enumerate(found, 1):
        first = code.strip().splitlines()[0]
        name = missing_optional(code)
        if name is not None:
            skipped.append(f"block {k} ({name} is not installed)")
            continue
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                exec(compile(code, f"README.md python block {k}", "exec"), namespace)
        except Exception as e:
            pytest.fail(f"README.md python block {k} ({first!r}) raised "
                        f"{type(e).__name__}: {e}")
        if shown is not None:
            assert out.getvalue() == shown, (
                f"README.md python block {k} ({first!r}) prints\n{out.getvalue()}"
                f"but the README shows\n{shown}")
    if skipped:
        warnings.warn("README.md: ran every other block; skipped " + ", ".join(skipped))

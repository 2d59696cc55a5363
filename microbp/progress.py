"""Training progress: a line with step, loss, accuracy and steps per second,
and a loss curve at the end.

On a terminal the line updates in place; when output goes to a file or a pipe
it prints plain lines (every `every` steps and the last one). A Progress keeps
every metric it was given, so that afterwards

    prog.plot("loss", "loss.png")    # a PNG with matplotlib, else a text sparkline

draws its curve; `plot(values, path)` and `sparkline(values)` do the same for
any list of numbers.
"""
from __future__ import annotations

import math
import numbers
import sys
import time
from typing import Any, Optional, Sequence, TextIO

from .checks import PathLike

BARS = "\u2581\u2582\u2583\u2584\u2585\u2586\u2587\u2588"   # eight heights, low to high
ASCII_BARS = ".:-=+*#@"   # the same heights where the stream cannot encode BARS
NONFINITE = "!"     # a step whose value is inf or nan


class Progress:
    """A progress line for a loop of `total` steps, and the history of every
    metric reported (Progress.history: {name: [value per update]}).

    Args:
        total: the number of steps (a positive int).
        every: when the output is not a terminal, print a line every `every`
            steps (and at the first and the last); at least 1.
        stream: where to write (default sys.stdout); a terminal gets one line
            updated in place.
        label: the name of a step in the line ("step", "epoch", ...).

    Raises:
        ValueError: total is not a positive int.
        TypeError, ValueError: every is not a number int() takes.
    """

    history: dict[str, list[Any]]

    def __init__(self, total: int, every: int = 10, stream: Optional[TextIO] = None,
                 label: str = "step") -> None:
        if not isinstance(total, int) or total < 1:
            raise ValueError(f"total must be a positive int, got {total!r}")
        self.total, self.every, self.label = total, max(1, int(every)), label
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.last = ""
        self.history = {}    # metric name -> [value at each update]

    def line(self, step: int, **metrics: Any) -> str:
        """The text of the progress line for `step` with `metrics` (name=value;
        floats get 6 decimals, `acc` is a fraction shown as a percentage), and
        the steps per second so far. Writes nothing, records nothing."""
        elapsed = time.perf_counter() - self.start
        rate = step / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label} {step:>{len(str(self.total))}}/{self.total}"]
        for name, value in metrics.items():
            if name == "acc":
                parts.append(f"acc {value * 100:5.1f}%")
            else:
                parts.append(f"{name} {value:.6f}" if isinstance(value, float) else f"{name} {value}")
        parts.append(f"{rate:,.1f} {self.label}s/s")
        return "  ".join(parts)

    def update(self, step: int, **metrics: Any) -> None:
        """Report `step` (1-based) with metrics such as loss=..., acc=... (a
        fraction): writes the line (see Progress) and appends each metric to
        the history. Returns None."""
        text = self.line(step, **metrics)
        self.last = text
        for name, value in metrics.items():
            self.history.setdefault(name, []).append(value)
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
            if step >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif step % self.every == 0 or step >= self.total or step == 1:
            self.stream.write(text + "\n")
            self.stream.flush()

    def plot(self, metric: str = "loss", path: Optional[PathLike] = None,
             stream: Optional[TextIO] = None, width: int = 60) -> str:
        """The curve of `metric` over the updates so far, drawn by the module's
        plot() (a picture at path, or a text line of at most `width` bars to
        `stream`, default this Progress's stream); returns what plot() returns. ValueError if no
        metric of that name was reported; otherwise the errors of plot()."""
        if metric not in self.history:
            known = ", ".join(self.history) or "none yet"
            raise ValueError(f"no metric {metric!r} was reported (reported: {known})")
        return plot(self.history[metric], path, label=metric,
                    stream=self.stream if stream is None else stream, width=width,
                    unit=self.label)


def _values(values: Any, what: str = "values") -> list[float]:
    """values as a non-empty list of floats (a list, tuple or 1-D array of numbers)."""
    if getattr(values, "ndim", 1) != 1:
        raise ValueError(f"{what} must be 1-D, got an array with {values.ndim} dimensions")
    if hasattr(values, "tolist"):
        values = values.tolist()
    if not isinstance(values, (list, tuple)):
        raise TypeError(f"{what} must be a list of numbers, not {type(values).__name__}")
    if not values:
        raise ValueError(f"{what} is empty: nothing to draw")
    out = []
    for k, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, numbers.Real):
            raise TypeError(f"{what}[{k}] must be an int or float, not {type(v).__name__}")
        out.append(float(v))
    return out


def _width(width: int) -> int:
    if isinstance(width, bool) or not isinstance(width, numbers.Integral):
        raise TypeError(f"width must be an int, not {type(width).__name__}")
    if width < 1:
        raise ValueError(f"width must be a positive int, got {width}")
    return int(width)


def _log_scale(values: list[float]) -> bool:
    """Whether a curve reads better on a log scale: every finite value positive,
    spread over at least a factor of 10 (a loss that falls quickly)."""
    finite = [v for v in values if math.isfinite(v)]
    return bool(finite) and min(finite) > 0 and max(finite) >= 10 * min(finite)


def sparkline(values: Sequence[float], width: int = 60, log: Optional[bool] = None,
              bars: str = BARS) -> str:
    """One line of text, one bar per value (eight heights from the smallest
    finite value to the largest): at most `width` bars, each the mean of its
    share of the values when there are more; '!' marks inf or nan. `log`:
    heights by log(value) (None: when every value is positive and they span a
    factor of 10 or more). `bars`: the eight characters, low to high.

    `values` is a non-empty list, tuple or 1-D array of real numbers.
    TypeError if it is not, or width is not an int; ValueError if it is
    empty or not 1-D, or width is below 1."""
    values, width = _values(values), _width(width)
    if log is None:
        log = _log_scale(values)
    if log:
        values = [math.log(v) if v > 0 else math.nan for v in values]
    n = len(values)
    cols = []
    for c in range(min(n, width)):
        part = values[c * n // min(n, width):(c + 1) * n // min(n, width)]
        cols.append(math.fsum(part) / len(part) if all(map(math.isfinite, part)) else math.nan)
    finite = [v for v in cols if math.isfinite(v)]
    lo, hi = (min(finite), max(finite)) if finite else (0.0, 0.0)
    top = len(bars) - 1
    return "".join(NONFINITE if not math.isfinite(v) else
                   bars[0] if hi == lo else bars[round((v - lo) / (hi - lo) * top)]
                   for v in cols)


def _matplotlib():
    """matplotlib's Figure class (drawn without pyplot: no window, no global
    state, the notebook's backend left alone), or None when not installed."""
    try:
        from matplotlib.figure import Figure
    except ImportError:
        return None
    return Figure


def _bars_for(stream):
    encoding = getattr(stream, "encoding", None)
    if not encoding:
        return BARS
    try:
        BARS.encode(encoding)
    except (UnicodeEncodeError, LookupError):
        return ASCII_BARS
    return BARS


def plot(values: Sequence[float], path: Optional[PathLike] = None, label: str = "loss",
         stream: Optional[TextIO] = None, width: int = 60, unit: str = "step") -> str:
    """Draw the curve of `values` (one per step).

    With `path` and matplotlib installed: a picture (PNG, SVG or PDF, from the
    suffix) written to path; returns path. Otherwise (no path, or no
    matplotlib): one line of text written to `stream` (stdout by default) and
    returned, `label first <sparkline> last (min .. at <unit> ..)`; when a path
    was asked for, a note says that matplotlib is missing. Both use a log
    scale when every value is positive and they span a factor of 10 or more.

    TypeError/ValueError for values and width as sparkline(); matplotlib's
    errors (OSError, ValueError for an unknown suffix) when writing path."""
    values, width = _values(values, label), _width(width)
    if path is not None:
        path = str(path)
        Figure = _matplotlib()
        if Figure is not None:
            fig = Figure(figsize=(6, 3.2), dpi=100)
            ax = fig.add_subplot()
            ax.plot(range(1, len(values) + 1), values, color="#1f5fa8", linewidth=1.4)
            ax.set_xlabel(unit)
            ax.set_ylabel(label)
            if _log_scale(values):
                ax.set_yscale("log")
            ax.grid(True, alpha=0.3)
            fig.tight_layout()
            fig.savefig(path)
            return path
    stream = sys.stdout if stream is None else stream
    finite = [(v, k) for k, v in enumerate(values) if math.isfinite(v)]
    low = f"  (min {min(finite)[0]:.4g} at {unit} {min(finite)[1] + 1}" if finite else "  ("
    low += ", log scale)" if _log_scale(values) else ")"
    line = sparkline(values, width, bars=_bars_for(stream))
    text = f"{label} {values[0]:.4g} {line} {values[-1]:.4g}{low}"
    if path is not None:
        text += f"\n(matplotlib is not installed, so no {path}: pip install matplotlib)"
    stream.write(text + "\n")
    return text

"""A small training-progress line: step, loss, accuracy and steps per second.

On a terminal the line updates in place; when output goes to a file or a pipe
it prints plain lines (every `every` steps and the last one)."""
import sys
import time


class Progress:
    def __init__(self, total, every=10, stream=None, label="step"):
        if not isinstance(total, int) or total < 1:
            raise ValueError(f"total must be a positive int, got {total!r}")
        self.total, self.every, self.label = total, max(1, int(every)), label
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = time.perf_counter()
        self.last = ""

    def line(self, step, **metrics):
        elapsed = time.perf_counter() - self.start
        rate = step / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.label} {step:>{len(str(self.total))}}/{self.total}"]
        for name, value in metrics.items():
            if name == "acc":
                parts.append(f"acc {value * 100:5.1f}%")
            else:
                parts.append(f"{name} {value:.6f}" if isinstance(value, float) else f"{name} {value}")
        parts.append(f"{rate:,.1f} steps/s")
        return "  ".join(parts)

    def update(self, step, **metrics):
        """Report `step` (1-based) with metrics such as loss=..., acc=... (a fraction)."""
        text = self.line(step, **metrics)
        self.last = text
        if self.tty:
            self.stream.write("\r" + text + "\033[K")
            if step >= self.total:
                self.stream.write("\n")
            self.stream.flush()
        elif step % self.every == 0 or step >= self.total or step == 1:
            self.stream.write(text + "\n")
            self.stream.flush()

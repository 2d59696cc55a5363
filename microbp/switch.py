"""A per-thread switch: what no_grad() and detect_anomaly() are made of.

`with switch:` turns it on for the current thread until the block ends
(blocks nest); `switch.on()` says whether it is on in this thread, and
`switch.active` counts the blocks open in all threads, so that a hot path
can test one attribute and pay nothing while no thread uses the switch.
"""
import threading


class _Depth(threading.local):
    depth = 0                                 # blocks open in this thread


class ThreadSwitch:
    """On in the threads inside a `with` block of it; off elsewhere. A block
    ends in the thread it began in (a generator suspended inside one and
    closed from another thread would count it in the wrong thread)."""

    __slots__ = ("active", "_lock", "_local")

    def __init__(self) -> None:
        self.active = 0                       # blocks open in all threads
        self._lock = threading.Lock()
        self._local = _Depth()

    def on(self) -> bool:
        """True inside a block of this switch in the current thread."""
        return self.active > 0 and self._local.depth > 0   # active: no thread-local read

    def __enter__(self) -> None:
        with self._lock:
            self.active += 1
        self._local.depth += 1

    def __exit__(self, *exc: object) -> None:
        self._local.depth -= 1
        with self._lock:
            self.active -= 1

"""What every backend provides: the functions of an executor, listed once.

Two implementations exist: pyexec.py (pure Python) and cexec.py (the C core,
csrc/microbp.c, through cffi). backend.executor() returns the one in force.
Arrays follow the tape format (tapeformat.py); every function checks what it
is given and raises TapeError instead of touching memory it was not given. A
Tape runs a Program: its tape checked once per layout, so that a sweep costs
no check proportional to the tape; forward/backward/tangent below are the
same sweeps for a tape given as arrays (checked at each call).
Optimizer kernels (sgd, momentum, adam, fill) are the C core's only; their
Python twins sit beside each optimizer in optim.py.
"""
from typing import Callable, Protocol, Sequence


class Program(Protocol):
    """A tape checked once for value arrays of `nval` doubles (a sealed program):
    made by the executor's Program(op, a, b, vary, off, nr, nval, ext, layers,
    inputs, params), which raises TapeError for an invalid tape. `inputs` are
    the nodes a batch row fills (one per input slot), `params` the parameter
    nodes of one store and their slots in it, (nodes, slots). A run checks only
    that the buffers it gets are large enough."""
    nval: int
    nrows: int

    def forward(self, val, rows=None, src=None) -> None:
        """The rows into the input lanes and the parameters from src (each when
        given), then val[node] = op(val[a], val[b]) for every non-leaf node.
        rows: an array of doubles, or the bytes of doubles (row-major)."""

    def backward(self, adj, val, dst=None) -> None:
        """adj[node] = d(sum over rows of the last node)/d(node), down the tape;
        then the parameters' adjoints added into dst when given."""

    def tangent(self, tan, val) -> None:
        """tan[node] of every varying node from the tangents of the input slots."""


class Executor(Protocol):
    Program: Callable[..., Program]

    def forward(self, val, op, a, b, vary, off, nr: int, ext=()) -> None:
        """val[node] = op(val[a], val[b]) for every non-leaf node, up the tape."""

    def backward(self, adj, val, op, a, b, vary, off, nr: int, ext=()) -> None:
        """adj[node] = d(sum over rows of the last node)/d(node), down the tape."""

    def tangent(self, tan, val, op, a, b, vary, off, nr: int, ext=()) -> None:
        """tan[node] of every varying node from the tangents of the input slots."""

    def backward_scalar(self, op: Sequence[int], a: Sequence[int], b: Sequence[int],
                        val: Sequence[float]) -> Sequence[float]:
        """Adjoints of a one-row graph given as lists (the eager backward)."""

    def gather(self, val, off, nodes, slots, src) -> None:
        """val[off[nodes[j]]] = src[slots[j]]: parameter values into a tape."""

    def scatter_add(self, dst, adj, off, nodes, slots) -> None:
        """dst[slots[j]] += adj[off[nodes[j]]]: parameter gradients out of a tape."""

    def load_rows(self, val, off, nodes, rows, nr: int) -> None:
        """val[off[nodes[j]] + r] = rows[r * len(nodes) + j]: a batch into the input lanes."""

    def first_nonfinite(self, arr, start: int = 0, stop=None) -> int:
        """The index of the first nan or inf in arr[start:stop], or -1."""

"""Threads: cffi releases the GIL during C calls, so two threads can train two
models at once; the results must equal running them one after the other.
Backend choice: set_backend() is process-wide, use_backend() is per thread."""
import threading

import pytest

import microbp
from microbp import Value, Tape, Batch, nn, optim
from microbp.datasets import make_moons


def _train(seed, steps, out):
    X, y = make_moons(60, noise=0.1, seed=seed)
    model = nn.MLP(2, [8, 8, 1], seed=seed)
    x0, x1, label = Value(0.0), Value(0.0), Value(0.0)
    loss = (1 + -label * model([x0, x1])).relu() * (1.0 / len(X))
    tape = Tape(loss, [x0, x1, label])
    opt = optim.Momentum(model.parameters(), lr=0.05, mu=0.9)
    batch = Batch([x + [t] for x, t in zip(X, y)])
    history = []
    for _ in range(steps):
        opt.zero_grad()
        history.append(sum(tape.forward(batch)))
        tape.backward()
        opt.step()
    out[seed] = (history, [p.data for p in model.parameters()])


@pytest.mark.parametrize("name", ["c", "python"])
def test_two_threads_train_like_one_after_the_other(name):
    if name not in microbp.available_backends():
        pytest.skip("the C core is not built")
    steps = 40 if name == "c" else 8
    with microbp.use_backend(name):
        serial = {}
        _train(1, steps, serial)
        _train(2, steps, serial)
    threaded = {}

    def worker(seed):
        with microbp.use_backend(name):
            _train(seed, steps, threaded)

    threads = [threading.Thread(target=worker, args=(s,)) for s in (1, 2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert threaded == serial                       # every float, bit for bit
    assert serial[1] != serial[2]


def test_use_backend_is_per_thread_and_set_backend_is_global():
    if "c" not in microbp.available_backends():
        pytest.skip("the C core is not built")
    start = microbp.get_backend()
    seen = {}
    inside, release = threading.Event(), threading.Event()

    def other():
        seen["before"] = microbp.get_backend()
        inside.set()
        release.wait(5)
        seen["after"] = microbp.get_backend()

    try:
        microbp.set_backend("python")
        t = threading.Thread(target=other)
        with microbp.use_backend("c"):
            t.start()
            inside.wait(5)
            assert microbp.get_backend() == "c"      # this thread's block
            microbp.set_backend("c")                 # process-wide: reaches the other thread
            release.set()
            t.join(5)
        assert seen == {"before": "python", "after": "c"}
        assert microbp.get_backend() == "c"
    finally:
        microbp.set_backend(start)


def test_detect_anomaly_applies_to_its_own_thread():
    from microbp import detect_anomaly
    entered, release, errors = threading.Event(), threading.Event(), []

    def inside():
        with detect_anomaly():
            entered.set()
            release.wait(5)

    t = threading.Thread(target=inside)
    t.start()
    entered.wait(5)
    try:
        y = Value(0.0).log()              # another thread's block: no error here
        assert y.data == float("-inf")
    finally:
        release.set()
        t.join(5)
    with detect_anomaly():
        try:
            Value(0.0).log()
        except FloatingPointError as e:
            errors.append(e)
    assert len(errors) == 1

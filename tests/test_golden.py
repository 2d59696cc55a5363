"""The golden file (tests/golden/golden.json), recorded before the op-table
redesign: the moons training run (20 steps) and the lecture network's
gradients, eager and on a Tape, in each backend, must reproduce every bit."""
import json
import os
import sys

import pytest

import microbp

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "golden"))
import record  # noqa: E402

with open(record.PATH) as _f:
    GOLDEN = json.load(_f)


@pytest.mark.parametrize("name", sorted(record.RUNS))
@pytest.mark.parametrize("backend_name", ["python", "c"])
def test_golden_bits(name, backend_name):
    if backend_name not in microbp.available_backends():
        pytest.skip("the C core is not built")
    got = record.RUNS[name](backend_name)
    want = GOLDEN[f"{name}/{backend_name}"]
    assert len(got) == len(want)
    bad = [i for i, (g, w) in enumerate(zip(got, want)) if g != w]
    assert not bad, f"{len(bad)} of {len(want)} doubles differ, first at {bad[0]}: {got[bad[0]]} != {want[bad[0]]}"


def test_golden_paths_agree():
    """Eager in both backends gives the same bits; so does a tape."""
    for name in record.RUNS:
        assert GOLDEN[f"{name}/python"] == GOLDEN[f"{name}/c"]

#!/usr/bin/env bash
# Install microbp with no working C compiler (CC=false) into a fresh virtual
# environment and check that it installs, says why the C core was skipped,
# and trains in pure Python. The source directory first gets a normal install
# (with the compiler), which leaves a C core in its build/ directory: the
# failed compile must not ship that stale one.
set -euo pipefail
python=${1:-python3}
repo=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir "$tmp/src"
cp -r "$repo"/setup.py "$repo"/pyproject.toml "$repo"/MANIFEST.in "$repo"/README.md \
      "$repo"/LICENSE "$repo"/microbp "$repo"/csrc "$tmp/src"/
rm -rf "$tmp"/src/microbp/_cmicrobp* "$tmp"/src/microbp/_pyread* "$tmp"/src/microbp/__pycache__

"$python" -m venv "$tmp/cc"
"$tmp/cc/bin/python" -m pip install -v "$tmp/src" > "$tmp/cc.log" 2>&1 || {
    tail -40 "$tmp/cc.log"; echo "FAIL: install with a compiler failed"; exit 1; }
ls "$tmp"/src/build/lib*/microbp/_cmicrobp* "$tmp"/src/build/lib*/microbp/_pyread* > /dev/null || {
    echo "FAIL: the install with a compiler left no C core in build/ to go stale"; exit 1; }
(cd "$tmp" && "$tmp/cc/bin/python" -c \
    "import microbp; assert microbp.available_backends() == ['c', 'python']
assert microbp.tape.rows_to_doubles is not None")

"$python" -m venv "$tmp/venv"
CC=false "$tmp/venv/bin/python" -m pip install -v "$tmp/src" > "$tmp/install.log" 2>&1 || {
    tail -40 "$tmp/install.log"; echo "FAIL: install without a compiler failed"; exit 1; }
grep -q "the C core was not built" "$tmp/install.log" || {
    tail -40 "$tmp/install.log"; echo "FAIL: the install did not say why the C core was skipped"; exit 1; }
for stale in "$tmp"/venv/lib/python*/site-packages/microbp/{_cmicrobp,_pyread}*; do
    if [ -e "$stale" ]; then    # an unmatched pattern stays as written: no file
        echo "FAIL: the failed compile installed the stale $stale from build/"; exit 1
    fi
done
cd "$tmp"   # not the repo: import the installed package
"$tmp/venv/bin/python" - <<'PY'
import microbp
from microbp import Value, nn, optim, losses
assert microbp.available_backends() == ["python"], microbp.available_backends()
assert microbp.get_backend() == "python"
assert microbp.tape.rows_to_doubles is None      # lists of rows are read in Python
assert microbp.Batch([[1, 2.5]]).to_list() == [[1.0, 2.5]]
try:
    microbp.set_backend("c")
except ValueError as e:
    assert "not available" in str(e), e
else:
    raise SystemExit("set_backend('c') should fail without the C core")
model = nn.MLP(2, [8, 1], act="tanh", seed=0)
opt = optim.SGD(model.parameters(), lr=0.1)
data = [([0.0, 0.0], -1.0), ([0.0, 1.0], 1.0), ([1.0, 0.0], 1.0), ([1.0, 1.0], -1.0)]
first = None
for step in range(50):
    loss = losses.mse([model(x) for x, _ in data], [y for _, y in data])
    opt.zero_grad(); loss.backward(); opt.step()
    first = loss.data if first is None else first
assert loss.data < first, (first, loss.data)
print("install without a C compiler (after one with): works in pure Python, no stale C core")
PY

# microbp: `make demo` trains the moons classifier, `make test` runs the whole
# suite once per backend (pure Python, then C). Both start from a fresh clone:
# they make a local virtual environment in .venv and install microbp into it.

PYTHON ?= python3
# property tests: examples per hypothesis test (the issue asks for >= 2000 in CI)
export MICROBP_HYPOTHESIS_EXAMPLES ?= 2000
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: demo test test-python test-c test-nocc typecheck bench sanitize ops clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# editable install: builds the C core in place (microbp/_cmicrobp*.so, _pyread*.so)
$(VENV)/.installed: $(PY) setup.py pyproject.toml microbp/_cbuild.py csrc/microbp.c csrc/microbp.h csrc/ops_generated.h csrc/pyread.c
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m microbp demo

# The C twin of the op table: csrc/ops_generated.h, generated from microbp/ops.py
# (checked in; tests/test_ops_table.py fails when it is stale). Rebuild after.
ops: $(PY)
	PYTHONPATH=. $(PY) -m microbp.opsgen

bench: $(VENV)/.installed
	$(PY) -m microbp bench

# The suite must never test only Python by accident: MICROBP_REQUIRE_C=1
# fails the run when the C core did not build.
test: typecheck test-nocc test-python test-c

# the type hints of the package, checked by the pinned mypy (the test extra)
typecheck: $(VENV)/.installed
	$(PY) -m mypy microbp

test-python: $(VENV)/.installed
	MICROBP_REQUIRE_C=1 MICROBP_BACKEND=python $(PY) -m pytest

test-c: $(VENV)/.installed
	MICROBP_REQUIRE_C=1 MICROBP_BACKEND=c $(PY) -m pytest

# An install without a C compiler still gives a working pure-Python microbp.
test-nocc: $(PY)
	bash tests/nocc_install.sh $(PYTHON)

# The C core built with AddressSanitizer and UBSan (any finding aborts), and
# the whole suite run against it in the C backend. Python itself is not
# instrumented, so the ASan runtime is preloaded; leak checks are off because
# the interpreter keeps memory to the end on purpose.
ASAN_DIR := build/asan
SAN_FLAGS := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer -g
sanitize: $(VENV)/.installed
	rm -rf $(ASAN_DIR) && mkdir -p $(ASAN_DIR)
	cp -r microbp csrc $(ASAN_DIR)/
	rm -rf $(ASAN_DIR)/microbp/_cmicrobp* $(ASAN_DIR)/microbp/_pyread* $(ASAN_DIR)/microbp/__pycache__
	cd $(ASAN_DIR) && MICROBP_CFLAGS="$(SAN_FLAGS)" MICROBP_LDFLAGS="-fsanitize=address,undefined" \
		$(abspath $(PY)) microbp/_cbuild.py > build.log 2>&1 || (cat build.log; false)
	cd $(ASAN_DIR) && LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" ASAN_OPTIONS=detect_leaks=0 \
		$(abspath $(PY)) -c "import microbp.cexec as c; assert '-fsanitize=address' in c.build_flags(), c.__file__; print('sanitized C core:', c.__file__)"
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libstdc++.so)" ASAN_OPTIONS=detect_leaks=0 \
		UBSAN_OPTIONS=print_stacktrace=1 PYTHONPATH=$(ASAN_DIR) \
		MICROBP_REQUIRE_C=1 MICROBP_BACKEND=c $(BIN)/pytest -p no:cacheprovider

clean:
	rm -rf $(VENV) build *.egg-info microbp/_cmicrobp* microbp/_pyread* csrc/*.o

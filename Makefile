# microbp: `make demo` trains the moons classifier, `make test` runs the whole
# suite once per backend (pure Python, then C). Both start from a fresh clone:
# they make a local virtual environment in .venv and install microbp into it.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PY     := $(BIN)/python

.PHONY: demo test test-python test-c test-nocc bench sanitize clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# editable install: builds the C core in place (microbp/_cmicrobp*.so)
$(VENV)/.installed: $(PY) setup.py pyproject.toml microbp/_cbuild.py csrc/microbp.c csrc/microbp.h microbp/ops.py
	$(PY) -m pip install -q -e '.[test]'
	touch $@

demo: $(VENV)/.installed
	$(PY) -m microbp demo

bench: $(VENV)/.installed
	$(PY) -m microbp bench

# The suite must never test only Python by accident: MICROBP_REQUIRE_C=1
# fails the run when the C core did not build.
test: test-nocc test-python test-c

test-python: $(VENV)/.installed
	MICROBP_REQUIRE_C=1 MICROBP_BACKEND=python $(PY) -m pytest

test-c: $(VENV)/.installed
	MICROBP_REQUIRE_C=1 MICROBP_BACKEND=c $(PY) -m pytest

# An install without a C compiler still gives a working pure-Python microbp.
test-nocc: $(PY)
	bash tests/nocc_install.sh $(PYTHON)

clean:
	rm -rf $(VENV) build *.egg-info microbp/_cmicrobp* csrc/*.o

# `make demo` and `make test` set everything up on a fresh machine (Python 3.9+),
# and are quick the second time. torch is pinned: an unpinned install pulls a
# multi-GB CUDA build; 2.13.0 is the CPU wheel these machines carry.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
TORCH  ?= torch==2.13.0
EXTRAS ?= all,dev
comma  := ,
STAMP  := $(VENV)/.installed-$(subst ==,-,$(TORCH))-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test test-all lint bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH)"
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" "$(TORCH)"
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/alage-edge demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

test: lint
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pytest benchmarks/ --benchmark-only

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks

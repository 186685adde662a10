# `make demo` and `make test` set everything up on a fresh machine (Python 3.9+),
# and are quick the second time. torch is pinned: an unpinned install pulls a
# multi-GB CUDA build; 2.13.0 is the CPU wheel these machines carry.
# On a Jetson: `make install JETSON=1` makes the venv with --system-site-packages (JetPack's apt-installed
# TensorRT stays visible), installs no torch (TensorRT inference needs none) and the tensorrt-cu12 extra.
PYTHON ?= python3
VENV   ?= .venv
JETSON ?=
PY     := $(VENV)/bin/python
ifeq ($(JETSON),1)
TORCH  ?=
EXTRAS ?= onnxruntime,tensorrt-cu12,dev,docs
VENVFLAGS := --system-site-packages
else
TORCH  ?= torch==2.13.0
EXTRAS ?= all,dev,docs
VENVFLAGS :=
endif
comma  := ,
STAMP  := $(VENV)/.installed-$(subst ==,-,$(or $(TORCH),notorch))-$(subst $(comma),-,$(EXTRAS))

.PHONY: demo test test-all lint docs bench install clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENVFLAGS) $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH),$(PY) -m pip install -q "$(TORCH)")
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" $(if $(TORCH),"$(TORCH)")
	$(PY) -m pip install -q --no-deps nvidia-pytriton==0.7.0 || echo "no tritonserver wheel for this machine: serving tests will skip"
	@touch $@

demo: $(STAMP)
	$(VENV)/bin/alage-edge demo

lint: $(STAMP)
	$(VENV)/bin/ruff check .

docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

test: lint docs
	$(PY) -m pytest -q -m "not slow"

test-all: $(STAMP)
	$(PY) -m pytest -q

bench: $(STAMP)
	$(PY) -m pytest benchmarks/ --benchmark-only

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks build/site

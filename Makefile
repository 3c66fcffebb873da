# epochwatch: `make demo` and `make test` set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU build on the dev/CI machines; override on a GPU host (e.g. TORCH_SPEC='torch>=2.4').
TORCH_SPEC ?= torch==2.13.0
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup test lint demo bench bench-gpu chaos clean

setup: $(STAMP)

$(STAMP): pyproject.toml scripts/system-deps.sh
	scripts/system-deps.sh
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# ruff, then the type checker over watcher/ evaluators/ launcher/ ([tool.mypy] in pyproject.toml)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# The suite runs hermetically (scripts/hermetic.sh): empty git configs, a throwaway HOME,
# an explicit locale, no inherited PYTHONPATH or HF_* variables. CI runs exactly this.
test: setup lint
	scripts/hermetic.sh $(BIN)/python -m pytest -q

demo: setup
	$(BIN)/epochwatch demo

bench: setup
	$(BIN)/python -m bench.run_cpu

bench-gpu: setup
	$(BIN)/python -m bench.run_gpu

# The fault and load suite in its full form (make test runs the short form of the same tests).
chaos: setup
	EPOCHWATCH_CHAOS=full $(BIN)/python -m pytest -q -s -m chaos tests

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info

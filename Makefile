# epochwatch: `make demo` and `make test` set everything up on a fresh machine.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# CPU build on the dev/CI machines; override on a GPU host (e.g. TORCH_SPEC='torch>=2.4').
TORCH_SPEC ?= torch==2.13.0
# The spec torch was installed with: rewritten only when it changes, so that a new
# TORCH_SPEC (the CUDA build after a CPU `make demo`) reinstalls torch.
TORCH_STAMP := $(VENV)/.torch-spec
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup test lint demo demo-replay bench bench-gpu chaos slow clean e2e-kohya FORCE

# Python packages only: the Debian packages the tests need are installed by `make test`.
setup: $(STAMP)

$(STAMP): pyproject.toml $(TORCH_STAMP)
	@command -v git > /dev/null || { echo "setup: git is missing (epochwatch commits its results with it): apt-get install git" >&2; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q '$(TORCH_SPEC)'
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

$(TORCH_STAMP): FORCE
	@mkdir -p $(VENV)
	@test "$$(cat $@ 2> /dev/null)" = '$(TORCH_SPEC)' || echo '$(TORCH_SPEC)' > $@

FORCE:

# ruff, then the type checker in strict mode over watcher/ evaluators/ launcher/ ([tool.mypy] in pyproject.toml)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

# The suite runs hermetically (scripts/hermetic.sh): empty git configs, a throwaway HOME,
# an explicit locale, no inherited PYTHONPATH or HF_* variables. CI runs exactly this.
# Tests marked `slow` are left out (make slow, make chaos run them): make test stays under 15 min.
test: setup lint
	scripts/system-deps.sh
	scripts/hermetic.sh $(BIN)/python -m pytest -q -m 'not slow'

# The long end-to-end tests make test leaves out (docs/chaos.md#test-targets).
slow: setup
	scripts/system-deps.sh
	scripts/hermetic.sh $(BIN)/python -m pytest -q -m slow

demo: setup
	$(BIN)/epochwatch demo

# The continue path: 10 epochs of stand-in images replayed with the plan's rules (no torch).
demo-replay: setup
	$(BIN)/epochwatch demo --replay

bench: setup
	$(BIN)/python -m bench.run_cpu

bench-gpu: setup
	$(BIN)/python -m bench.run_gpu

# The fault and load suite in its full form (make test runs the short form of the same tests,
# except those also marked slow: only here and in make slow).
chaos: setup
	EPOCHWATCH_CHAOS=full $(BIN)/python -m pytest -q -s -m chaos tests

# The real trainer, not part of `make test` (docs/e2e-kohya.md): trains a LoRA with
# kohya-ss/sd-scripts' train_network.py on the CPU while epochwatch watches and stops it at a
# failing rule. Needs a checkout: make e2e-kohya SD_SCRIPTS=/path/to/sd-scripts
# [E2E_SOURCE=render|trainer|both]. kohya's venv and the 3.3 GB test model stay in E2E_DIR.
E2E_DIR ?= $(HOME)/.cache/epochwatch/e2e-kohya
E2E_SOURCE ?= render
e2e-kohya: setup
	@test -f '$(SD_SCRIPTS)/train_network.py' || { echo "usage: make e2e-kohya SD_SCRIPTS=/path/to/sd-scripts (a kohya-ss/sd-scripts checkout)" >&2; exit 2; }
	scripts/e2e_kohya/setup_venv.sh '$(SD_SCRIPTS)' '$(E2E_DIR)/venv'
	nice -n 19 '$(E2E_DIR)/venv/bin/python' scripts/e2e_kohya/build_model.py '$(E2E_DIR)/model' '$(E2E_DIR)/tokenizers'
	nice -n 19 $(BIN)/python scripts/e2e_kohya/run.py --sd-scripts '$(SD_SCRIPTS)' --e2e-dir '$(E2E_DIR)' --source $(E2E_SOURCE)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache build *.egg-info

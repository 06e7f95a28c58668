# The two commands of the README: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-done
export KEDRO_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export RAY_USAGE_STATS_ENABLED := 0
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1

.PHONY: setup run test test-all bench viz clean-data

setup: $(STAMP)

# Installs the pinned lock, then ColossalAI without its own pins (they ask for torch<=2.5.1),
# then this project in editable mode. Re-running is a no-op while the inputs are unchanged.
$(STAMP): requirements/lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements/lock.txt
	$(PY) -m pip install -q --no-deps colossalai==0.5.0
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

run: setup
	$(VENV)/bin/kedro run --env=local

test: setup
	$(PY) -m pytest -q

test-all: setup
	$(PY) -m pytest -q -m "slow or not slow"

bench: setup
	$(PY) benchmarks/corpus_cleaning.py

viz: setup
	$(VENV)/bin/kedro viz run --env=local

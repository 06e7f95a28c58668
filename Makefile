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

DJ_VENV := benchmarks/.venv-dj

.PHONY: setup run repro test test-all bench bench-setup viz app browser

setup: $(STAMP) browser

# Debian's Chromium for the app's real-browser test (Playwright drives it; it never downloads
# a browser of its own) and a CJK font so its screenshots show Chinese. Installed once where
# apt-get can; elsewhere the test says what to do.
CHROMIUM := /usr/bin/chromium
BROWSER_PACKAGES := chromium fonts-wqy-zenhei
browser:
	@dpkg -s $(BROWSER_PACKAGES) >/dev/null 2>&1 || { command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ] && \
	  { apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q $(BROWSER_PACKAGES) >/dev/null; }; } \
	  || echo "note: the browser test needs Debian's $(BROWSER_PACKAGES) (apt-get install $(BROWSER_PACKAGES))"; }

# Installs the pinned lock, then ColossalAI without its own pins (they ask for torch<=2.5.1),
# then this project in editable mode. pip compiles bytecode one file at a time; compileall does
# it on every core afterwards (166 s -> 93 + 40 s on 2 cores). A file that does not compile
# (a project template, a module for a newer Python) is skipped, as pip skips it. Re-running is a
# no-op while the inputs are unchanged.
$(STAMP): requirements/lock.txt pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required (set PYTHON=...)"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q --no-compile -r requirements/lock.txt
	$(PY) -m pip install -q --no-compile --no-deps colossalai==0.5.0
	$(PY) -m pip install -q --no-compile --no-deps -e .
	$(PY) -m compileall -qq -j 0 "$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" || true
	touch $(STAMP)

# CPU_ISA=avx2 runs the math libraries as on an AVX2-only CPU (no AVX-512, no bf16 or AMX
# instructions) on a newer one: the kernels of that kind of machine, not its clock or caches
ifeq ($(CPU_ISA),avx2)
run: export ONEDNN_MAX_CPU_ISA := AVX2
run: export ATEN_CPU_CAPABILITY := avx2
run: export MKL_ENABLE_INSTRUCTIONS := AVX2
endif
# glibc's huge pages for tensor memory: read at process start (src/m6_pipeline/allocator.py)
run: export GLIBC_TUNABLES := glibc.malloc.hugetlb=1
# every stage of dvc.yaml but pretrain_10b (run by name): what `make run` runs in one `kedro run`,
# then records in dvc.lock, so that `dvc status` and `dvc repro` agree with the run
RUN_STAGES := embedded_sources corpus tokenizer features pretrain_base pretrain_100b vqgan finetune_t2i \
	finetune_vqa finetune_caption finetune_itm qa poem evaluate
run: $(STAMP)
	$(VENV)/bin/kedro run --env=local
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc commit --force --quiet $(RUN_STAGES)

# the same stages through DVC, each a `kedro run --tags=<stage>` of its own, only where inputs changed
repro: $(STAMP)
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/dvc repro $(RUN_STAGES)

# the S3 pieces the tests marked `cluster` need (an S3 server, a DVC remote); `make run` does not
STORAGE_STAMP := $(VENV)/.storage-done
$(STORAGE_STAMP): requirements/lock-storage.txt $(STAMP)
	$(PY) -m pip install -q -r requirements/lock-storage.txt
	touch $(STORAGE_STAMP)

# the 25 slowest tests are listed at the end: where the suite's time goes
test: setup $(STORAGE_STAMP)
	$(PY) -m pytest -q --durations=25

test-all: setup $(STORAGE_STAMP)
	$(PY) -m pytest -q -m "slow or not slow"

# The cleaning-speed peer, Data-Juicer 1.6.1, in a venv of its own (in ours it would lift
# huggingface_hub past transformers 4.51.3's pin). torch goes first so nothing pulls a CUDA
# build; ray, torch and ftfy are imported by Data-Juicer at run time (else it self-installs).
bench-setup: $(DJ_VENV)/.setup-done
$(DJ_VENV)/.setup-done:
	test -x $(DJ_VENV)/bin/python || $(PYTHON) -m venv $(DJ_VENV)
	$(DJ_VENV)/bin/pip install -q torch==2.13.0
	$(DJ_VENV)/bin/pip install -q py-data-juicer==1.6.1 aiohttp selectolax opencc ftfy ray==2.60.0
	touch $@

bench: setup bench-setup
	$(PY) benchmarks/corpus_cleaning.py
	$(PY) benchmarks/corpus_memory.py --scales 1 10 20

viz: setup
	$(VENV)/bin/kedro viz run --env=local

# The annotation app and demos (admin commands: python -m m6_pipeline.annotation.admin --help)
app: setup
	$(VENV)/bin/streamlit run app/streamlit_app.py -- --env local

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

.PHONY: setup run test test-all bench bench-setup viz app browser

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

viz: setup
	$(VENV)/bin/kedro viz run --env=local

# The annotation app and demos (admin commands: python -m m6_pipeline.annotation.admin --help)
app: setup
	$(VENV)/bin/streamlit run app/streamlit_app.py -- --env local

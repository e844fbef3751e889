# One-command entry points for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DM     := $(BIN)/python core/daemon_manager.py
DEMO_CONFIGS := config/active/paper_sol_01.json config/active/paper_eth_02.json

.PHONY: setup test test-fast demo stop list bench chromium clean

# Byte-compile the checkout (pip does it for what it installs, not for an editable repo): where
# PYTHONDONTWRITEBYTECODE is set, every `list` would otherwise recompile core/ (13 ms of ~50).
setup: $(STAMP)
	@$(BIN)/python -m compileall -q core exchanges strategies database web dashboard run.py

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# compat: a plain path line in a .pth file; the default editable finder costs every
	# interpreter start ~18 ms (it imports pathlib, re, fnmatch), a third of `list`'s budget.
	$(BIN)/pip install -q -e ".[test]" --config-settings editable_mode=compat
	touch $(STAMP)

# Browser tests drive Debian's Chromium (Playwright cannot download a browser here).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	fi

test: setup chromium
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow"

demo: setup
	@for c in $(DEMO_CONFIGS); do $(DM) start -c $$c -d || exit 1; done
	@$(DM) list
	@echo
	@echo "Pages: http://127.0.0.1:5001 and http://127.0.0.1:5002   Stop with: make stop"

stop: setup
	@for c in $(DEMO_CONFIGS); do $(DM) stop -c $$c; done; true

list: setup
	@$(DM) list --all

bench: setup
	@for b in bench/bench_*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache

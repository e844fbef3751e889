# One-command entry points for a newcomer: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DM     := $(BIN)/python core/daemon_manager.py
DEMO_CONFIGS := config/active/paper_sol_01.json config/active/paper_eth_02.json

.PHONY: setup test test-fast demo stop list bench chromium clean lock
KERNEL := strategies/_grid_kernel.so

# Byte-compile the checkout (pip does it for what it installs, not for an editable repo): where
# PYTHONDONTWRITEBYTECODE is set, every `list` would otherwise recompile core/ (13 ms of ~50).
setup: $(STAMP) $(KERNEL)
	@$(BIN)/python -m compileall -q core bot exchanges strategies database web dashboard run.py

# The backtest kernel (strategies/backtest_kernel.py): without a C compiler backtests run on the
# general path. The flags must match backtest_kernel.CFLAGS (no fused multiply-adds: Python has none).
$(KERNEL): strategies/grid_kernel.c
	@cc -O2 -fPIC -shared -ffp-contract=off -fno-fast-math -o $@ $< -lm \
		|| echo "no C compiler: backtests run without the compiled kernel"

$(STAMP): pyproject.toml requirements.lock
	@$(PYTHON) -c "import ensurepip, venv" 2>/dev/null || { \
		v=$$($(PYTHON) -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null); \
		echo "$(PYTHON) cannot create a virtual environment: the python3-venv package is missing."; \
		echo "On Debian or Ubuntu install it, then run make again:"; \
		echo "    sudo apt install python3-venv    (or python$${v:-3}-venv)"; \
		exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# pyproject's package-dir {"" = "."} makes setuptools' default editable mode write a plain
	# path line in a .pth file (no import hook: that would cost every `list` ~18 ms at start).
	# -c requirements.lock: the exact versions CI tested (ccxt above all), not whatever is newest.
	$(BIN)/pip install -q -e ".[test]" -c requirements.lock
	touch $(STAMP)

# Rewrite requirements.lock from the tested venv (after a dependency change and a green `make test`).
lock: setup
	@{ sed -n '1,3p' requirements.lock; $(BIN)/pip freeze --exclude-editable | grep -v '^#'; } > requirements.lock.new
	@mv requirements.lock.new requirements.lock

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

# A second `make demo` while it runs says so (start would refuse each instance with exit 1).
demo: setup
	@for c in $(DEMO_CONFIGS); do \
		if $(DM) status -c $$c >/dev/null 2>&1; then echo "$$c: the demo is already running (make stop stops it)"; \
		else $(DM) start -c $$c -d || exit 1; fi; \
	done
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
	rm -rf $(VENV) .pytest_cache $(KERNEL)

# Two commands for a newcomer:  make demo   and   make test
# Both install what they need on first use: a Python venv (.venv) and the npm toolchain
# (solc-js compiler, Foundry's anvil and cast, OpenZeppelin contracts) in node_modules/.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
ARGS   ?=

.PHONY: install demo test test-fast lint abi bench clean

install: $(VENV)/.installed node_modules/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

# `npm install --no-save` installs the locked versions; `npm ci` refuses this lock file because npm
# records only this platform's optional binary packages (anvil/cast ship one package per OS/CPU).
node_modules/.installed: package.json package-lock.json
	npm install --no-save --no-audit --no-fund --loglevel=error
	touch $@

demo: install
	$(BIN)/mpc-market demo $(ARGS)

test: install
	$(BIN)/pytest -q

# The unit tier alone (no chain, no processes): seconds.
test-fast: install
	$(BIN)/pytest -q -m unit

lint: install
	$(BIN)/ruff check offchain api tests scripts
	$(BIN)/mypy
	$(BIN)/mypy tests/api tests/helpers/api.py
	node_modules/.bin/solhint --noPrompt --max-warnings 0 'contracts/**/*.sol'
	node_modules/.bin/prettier --check 'contracts/**/*.sol'
	$(BIN)/python -m offchain.devnet.compile --check

# Regenerate the shipped MPCMarket artifact (offchain/chain/abi/MPCMarket.json) from contracts/.
abi: install
	$(BIN)/python -m offchain.devnet.compile --write-abi

bench: install
	$(BIN)/python scripts/bench_demo.py $(ARGS)

clean:
	rm -rf $(VENV) node_modules .cache .mypy_cache .ruff_cache .pytest_cache .hypothesis

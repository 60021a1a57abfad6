# The two commands a fresh clone needs: `make demo` and `make test`.
# Each installs what it uses: a virtualenv in .venv and, for tests, the pinned Node peers.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PEERS := tests/external/node
PEERS_STAMP := $(PEERS)/node_modules/.installed

.PHONY: demo test lint check unit install peers bench clean prereqs

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(STAMP)

$(PEERS_STAMP): $(PEERS)/package.json $(PEERS)/package-lock.json
	cd $(PEERS) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

peers: $(PEERS_STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench examples
	$(BIN)/ruff format --check src tests bench examples
	$(BIN)/mypy

# Before anything is installed: one line per missing tool, and what to install.
prereqs:
	@PYTHON=$(PYTHON) .ci/prereqs

test: prereqs $(STAMP) $(PEERS_STAMP) lint
	$(BIN)/pytest -q

unit: $(STAMP)
	$(BIN)/pytest -q tests/unit

bench: $(STAMP) $(PEERS_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) $(PEERS)/node_modules

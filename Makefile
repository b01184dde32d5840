# The two commands the README opens with: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install run test test-slow lint typecheck bench eval openrpc clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q -e '.[dev,voice]'
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/yamabiko serve

lint: $(STAMP)
	$(BIN)/ruff check yamabiko tests bench evals
	$(BIN)/ruff format --check yamabiko tests bench evals

typecheck: $(STAMP)
	$(BIN)/mypy

test: $(STAMP) lint typecheck
	$(BIN)/python -m pytest
	$(MAKE) test-ts

# Long checks (soaks, storms, conformance suites, browsers): `.ci/run` runs them too.
test-slow: $(STAMP)
	$(BIN)/python -m pytest -m slow -q; rc=$$?; [ $$rc -eq 5 ] || exit $$rc

bench: $(STAMP)
	$(BIN)/python -m bench

# The 15-minute soak alone (memory and CPU drift under a mixed load; bench/soak.py).
bench-soak: $(STAMP)
	$(BIN)/python -m bench --only soak --soak

eval: $(STAMP)
	$(BIN)/python -m evals

openrpc: $(STAMP)
	$(BIN)/python -m yamabiko.schema.openrpc --write
	$(BIN)/python -m yamabiko.schema.reference --write
	node clients/typescript/scripts/generate.mjs

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info

# The TypeScript client's tests run against `yamabiko serve` from the venv.
.PHONY: test-ts
test-ts: $(STAMP)
	cd clients/typescript && npm ci --no-audit --no-fund && npm test

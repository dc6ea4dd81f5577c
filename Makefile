# Every target sets itself up: a fresh clone with python3 and make is enough.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: test test-slow test-all demo lint format bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $@

# The default suite leaves out the tests marked slow (more than a few seconds each, or
# compiling kernels no other test needs); CI runs them too, with test-slow.
test: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow

test-all: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	@bash scripts/demo.sh $(BIN)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Each script prints its table; benchmarks/RESULTS.md records the figures and the machine.
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_load.py --ratings 2000000
	$(BIN)/python benchmarks/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache build *.egg-info

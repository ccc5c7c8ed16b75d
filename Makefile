# Every target bootstraps its own .venv, so a fresh clone needs nothing but python3 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TEST_STAMP := $(VENV)/.installed-test
# The native line-protocol scanner: the editable install compiles it into the source tree, so an edit to
# the C source must reinstall, or a stale binary would keep running.
NATIVE_SRC := lakeflux/lineprotocol/_scanner.c
NATIVE_STAMP := $(VENV)/.installed-native

.PHONY: serve test lint typecheck bench install-check clean influxql-oracle influxql-oracle-record

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e .
	touch $@

$(TEST_STAMP): $(STAMP)
	$(BIN)/pip install -q -e '.[test]'
	touch $@

$(NATIVE_STAMP): $(STAMP) $(NATIVE_SRC)
	$(BIN)/pip install -q --no-deps -e .
	touch $@

serve: $(NATIVE_STAMP)
	$(BIN)/lakeflux serve

test: $(TEST_STAMP) $(NATIVE_STAMP)
	$(BIN)/ruff check lakeflux tests benchmarks
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/pytest -q -p no:cacheprovider

lint: $(TEST_STAMP) $(NATIVE_STAMP)
	$(BIN)/ruff check lakeflux tests benchmarks
	$(BIN)/lint-imports

typecheck: $(TEST_STAMP) $(NATIVE_STAMP)
	$(BIN)/mypy

# pip install -e '.[test]' into a fresh venv with the interpreter's own pip, not upgraded (needs the index).
install-check: $(TEST_STAMP)
	LAKEFLUX_NETWORK_TESTS=1 $(BIN)/pytest -q -p no:cacheprovider tests/install

bench: $(TEST_STAMP) $(NATIVE_STAMP)
	$(BIN)/python benchmarks/run_all.py

# The InfluxQL corpus against a live InfluxDB 1.x (Debian's influxdb package): compare, or re-record the fixtures.
influxql-oracle: $(TEST_STAMP)
	$(BIN)/python tests/influxql/oracle.py

influxql-oracle-record: $(TEST_STAMP)
	$(BIN)/python tests/influxql/oracle.py --record

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache

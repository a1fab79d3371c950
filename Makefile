# Two entry points (README quick start): `make run` and `make test`.
# Both create ./.venv with the pinned dependencies when it is missing or stale.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres lint format openapi bench bench-tools browser clean

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/onecard serve

# The whole suite on SQLite, then on PostgreSQL when ONECARD_TEST_DATABASE_URL is set.
test: $(STAMP) browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	@echo "== SQLite"
	env -u ONECARD_TEST_DATABASE_URL $(BIN)/pytest -q
	@if [ -n "$$ONECARD_TEST_DATABASE_URL" ]; then \
		echo "== PostgreSQL: $$ONECARD_TEST_DATABASE_URL"; \
		$(BIN)/pytest -q; \
	else \
		echo "== PostgreSQL run skipped: set ONECARD_TEST_DATABASE_URL to run it"; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

openapi: $(STAMP)
	$(BIN)/onecard openapi

# The browser tests (tests/interop/test_pages_browser.py) drive Debian's Chromium through
# chromedriver. Installed when missing and possible (root, apt); otherwise those tests are
# skipped, except under CI, where they fail.
browser:
	@command -v chromium >/dev/null && command -v chromedriver >/dev/null || \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			--no-install-recommends chromium chromium-driver >/dev/null) || \
		echo "warning: could not install chromium and chromedriver: browser tests skipped"

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis

# What the benchmarks need beyond the test tools: wrk, the OCSP load generator (Debian).
bench-tools:
	command -v wrk >/dev/null || (apt-get update && apt-get install -y wrk)

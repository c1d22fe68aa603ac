# Two commands on a fresh machine: `make selfcheck` and `make test`. Both set up first.
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: setup selfcheck test lint format clean

setup:
	@bash scripts/setup.sh

selfcheck: setup
	$(BIN)/hil run

# A test command that collected nothing has proven nothing: pytest's exit 5 fails it.
test: setup
	@$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; exit $$rc

lint: setup
	$(BIN)/ruff check hil tests bench examples
	$(BIN)/ruff format --check hil tests bench examples
	$(BIN)/mypy

format: setup
	$(BIN)/ruff format hil tests bench examples
	$(BIN)/ruff check --fix hil tests bench examples

clean:
	rm -rf reports/allure-results reports/html reports/junit.xml reports/summary.json reports/latest reports/runs

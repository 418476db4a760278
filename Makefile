# Two commands from nothing: `make demo` and `make test`. Each sets up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
export PREFECT_SERVER_ANALYTICS_ENABLED := false

.PHONY: setup demo test lint typecheck pytest clean

setup: $(VENV)/.installed

# uv installs ~3x faster than pip; --compile-bytecode matters where PYTHONDONTWRITEBYTECODE=1.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -e '.[test,lint]'
	touch $@

# The sandbox, the runbook on Prefect's embedded server, the IP exchange, a notification.
demo: setup
	$(BIN)/dcs-migrate demo

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest

test: lint typecheck pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis

# The two commands of the README: `make demo` and `make test`. Everything else is what they need.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PACKAGES := farm scheduler workers storage web

.PHONY: install system-deps demo test lint typecheck unit openapi bench clean

# Dependencies from the hashed lock file (scripts/lock.sh refreshes it from pyproject.toml), then the project.
$(STAMP): pyproject.toml requirements-dev.lock
	$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "Python 3.11 is required (bpy 5.0.1)"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements-dev.lock
	PYTHONWARNINGS=ignore $(BIN)/pip install -q --no-deps -e .  # quiet: setuptools warns about editable installs
	touch $(STAMP)

install: $(STAMP)

system-deps:
	./scripts/system-deps.sh

demo: install
	$(BIN)/farm demo --out demo-output

lint: install
	$(BIN)/ruff check $(PACKAGES) tests bench
	$(BIN)/mypy

typecheck: lint

openapi: install
	$(BIN)/python -m web.openapi docs/openapi.json

test: install system-deps lint
	$(BIN)/pytest

unit: install
	$(BIN)/pytest -m "not ray and not blender"

bench: install
	$(BIN)/python bench/render_path.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache .mypy_cache .ruff_cache

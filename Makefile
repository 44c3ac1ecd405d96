# The two commands a new user runs: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install demo test lint typecheck unit bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/pier quickstart

LINTED := $(wildcard src tests benchmarks examples)

lint: install
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture src .vulture-whitelist.py --min-confidence 60  # dead code stays gone

typecheck: install
	$(VENV)/bin/mypy

# The container tests need a Docker Engine and pier's base image: scripts/docker-engine installs
# and starts them (and stops a dockerd it started once the tests end). The console's browser
# tests need Debian's chromium: scripts/browser installs it.
unit: install
	scripts/browser
	scripts/docker-engine run env PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(VENV)/bin/pytest -q -p no:cacheprovider --timeout 900

test: lint typecheck unit

bench: install
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) benchmarks/serving/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

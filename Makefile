# The two commands a new user runs: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install install-dev demo test lint typecheck unit bench clean

# `make demo` installs pier's runtime only (about 120 packages, 1 GB); `make test` adds the
# dev and test tools ([dev]). pip shows each package as it goes: the first install takes
# minutes (README.md says how long).
$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	@echo "Installing pier into $(VENV) (the first time takes a few minutes)..."
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install --progress-bar on -e .
	@rm -f $(VENV)/.installed-*; touch $(STAMP)

$(STAMP)-dev: $(STAMP)
	$(PY) -m pip install --progress-bar on -e '.[dev]'
	@touch $(STAMP)-dev

install: $(STAMP)

install-dev: $(STAMP)-dev

demo: install
	$(VENV)/bin/pier quickstart
	@echo "pier is installed in $(VENV): 'source $(VENV)/bin/activate' puts pier on your PATH"

LINTED := $(wildcard src tests benchmarks examples)

lint: install-dev
	$(VENV)/bin/ruff check $(LINTED)
	$(VENV)/bin/ruff format --check $(LINTED)
	$(VENV)/bin/lint-imports
	$(VENV)/bin/vulture src .vulture-whitelist.py --min-confidence 60  # dead code stays gone

typecheck: install-dev
	$(VENV)/bin/mypy

# The container tests need a Docker Engine and pier's base image: scripts/docker-engine installs
# and starts them (and stops a dockerd it started once the tests end). The console's browser
# tests need Debian's chromium: scripts/browser installs it.
unit: install-dev
	scripts/browser
	scripts/docker-engine run env PATH=$(CURDIR)/$(VENV)/bin:$$PATH \
		$(VENV)/bin/pytest -q -p no:cacheprovider --timeout 900

test: lint typecheck unit

bench: install-dev
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) benchmarks/serving/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The two commands a new user runs: `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)

.PHONY: install install-dev demo test lint typecheck unit unit-pythons bench clean

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

# The unit tests on the other Pythons a fresh machine may have (issue 13): Debian's python3 and
# pyenv's 3.12 and 3.13, each in a venv of its own (.venv-NAME, made with uv). "Unit" is these
# directories without the tests marked slow (real servers) or docker (an engine): the whole
# suite runs on the main Python only. EXTRA_PYTHONS="name:/path/to/python ..." to choose others.
EXTRA_PYTHONS ?= py3112:/usr/bin/python3 py312:/root/.pyenv/versions/3.12.1/bin/python3 \
	py313:/root/.pyenv/versions/3.13.0/bin/python3
UNIT_TESTS := tests/contract tests/control tests/monitor tests/store tests/router tests/serving \
	tests/hosting tests/cli tests/docs/test_blocks.py tests/test_storage.py
# test_environments builds model environments pinning orjson 3.9.15: no wheel for 3.13, and
# uv cannot build its sdist. It runs on the main Python.
UNIT_IGNORE := --ignore=tests/hosting/test_environments.py
unit-pythons: install-dev
	@set -e; for leg in $(EXTRA_PYTHONS); do \
	  name=$${leg%%:*}; python=$${leg#*:}; venv=$(CURDIR)/.venv-$$name; \
	  test -x "$$python" || { echo "unit-pythons: no $$python (set EXTRA_PYTHONS)"; exit 1; }; \
	  test -x $$venv/bin/python || $(VENV)/bin/uv venv -q --python "$$python" $$venv; \
	  VIRTUAL_ENV=$$venv $(VENV)/bin/uv pip install -q -e '.[dev]'; \
	  echo "unit tests on $$($$venv/bin/python --version) ($$venv)"; start=$$(date +%s); \
	  $$venv/bin/pytest -q -p no:cacheprovider --timeout 300 --durations 10 \
	    -m "not slow and not docker" $(UNIT_TESTS) $(UNIT_IGNORE); \
	  echo "unit-pythons: $$name took $$(( $$(date +%s) - start )) s"; \
	done

test: lint typecheck unit unit-pythons

bench: install-dev
	PATH=$(CURDIR)/$(VENV)/bin:$$PATH $(PY) benchmarks/serving/run.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

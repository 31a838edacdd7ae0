# Clinic portal. `make run` starts the portal, `make test` runs the whole suite.
# Both work on a fresh Debian 12 with Python 3.11; see README.md.

SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
VPY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-dev.stamp
PYTEST_ARGS ?=

# Debian packages: WeasyPrint (pango, harfbuzz, DejaVu for Cyrillic), gettext for
# compilemessages; chromium only for the browser tests.
SYSDEPS := libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core gettext
SYSDEPS_TEST := chromium

.PHONY: help venv sysdeps sysdeps-test partners run test lint fmt lock messages compilemessages clean

help:
	@echo "make run           start the portal with an embedded PostgreSQL and Valkey (PORT=8000)"
	@echo "make test          run the test suite (PYTEST_ARGS='-x -k booking' ...)"
	@echo "make lint | fmt    ruff check + format check | apply fixes and formatting"
	@echo "make lock          regenerate requirements.lock and requirements-dev.lock"
	@echo "make messages      extract translatable strings into locale/"
	@echo "make compilemessages  compile locale/*.po"
	@echo "make venv | sysdeps | clean"

# --- environment ---------------------------------------------------------------------

venv: $(STAMP)

$(VPY):
	@test -n "$(PYTHON)" || { echo "Python 3.11 is required (python3.11 not found)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
	  || { echo "$(PYTHON) is not Python 3.11; run: make PYTHON=/path/to/python3.11 ..."; exit 1; }
	@if ! $(PYTHON) -c 'import ensurepip, venv' 2>/dev/null; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing python3.11-venv"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends python3.11-venv </dev/null; \
	  else \
	    echo "The Python venv module is missing. Run: sudo apt-get install python3.11-venv"; exit 1; \
	  fi; \
	fi
	$(PYTHON) -m venv $(VENV)

# Reinstall only when the lock file is newer than the stamp.
$(STAMP): requirements-dev.lock | $(VPY)
	$(VPY) -m pip install --no-input --disable-pip-version-check --require-hashes -r requirements-dev.lock
	@touch $@

# $(1): package list. Installs the missing ones when root, otherwise prints the command.
define check_debs
	@if ! command -v dpkg-query >/dev/null; then \
	  echo "sysdeps: not a Debian system; make sure these are installed: $(1)"; exit 0; \
	fi; \
	missing=""; \
	for pkg in $(1); do \
	  dpkg-query -W -f='$${Status}\n' "$$pkg" 2>/dev/null | grep -q "install ok installed" \
	    || missing="$$missing $$pkg"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian packages:$$missing"; \
	    DEBIAN_FRONTEND=noninteractive apt-get update -q </dev/null; \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends $$missing </dev/null; \
	  else \
	    echo "Missing Debian packages. Run: sudo apt-get install -y$$missing"; exit 1; \
	  fi; \
	fi
endef

sysdeps:
	$(call check_debs,$(SYSDEPS))

sysdeps-test:
	$(call check_debs,$(SYSDEPS) $(SYSDEPS_TEST))

# --- run and test --------------------------------------------------------------------

run: venv sysdeps
	$(VPY) -m clinic.devrun

# tests/conftest.py starts the embedded PostgreSQL and Valkey unless DATABASE_URL /
# REDIS_URL are set.
# Test partners in their own virtualenvs under .local/ (installed once, then instant).
partners: venv
	$(VPY) -m tests.mis.sekmet install
	$(VPY) -m tests.payments.localstripe install

test: venv sysdeps-test partners
	$(VPY) -m pytest $(PYTEST_ARGS)

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: venv
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

UV = $(shell command -v $(VENV)/bin/uv || command -v uv)

lock: venv
	@test -n "$(UV)" || { echo "uv is needed: $(VPY) -m pip install uv"; exit 1; }
	$(UV) pip compile pyproject.toml --python-version 3.11 -o requirements.lock --generate-hashes
	$(UV) pip compile pyproject.toml --group dev --python-version 3.11 -o requirements-dev.lock --generate-hashes

I18N_IGNORE := -i .venv -i .local -i node_modules -i static/vendor -i staticfiles

messages: venv sysdeps
	@mkdir -p locale
	$(VPY) manage.py makemessages -l ru -l en $(I18N_IGNORE)
	$(VPY) manage.py makemessages -d djangojs -l ru -l en $(I18N_IGNORE)

compilemessages: venv sysdeps
	$(VPY) manage.py compilemessages $(I18N_IGNORE)

# Keeps .venv and the embedded databases in .local/ (rm -rf .local resets the data).
clean:
	find . -path ./.venv -prune -o -path ./.local -prune -o -name __pycache__ -type d -print0 \
	  | xargs -0 rm -rf
	rm -rf .pytest_cache .ruff_cache staticfiles test-results

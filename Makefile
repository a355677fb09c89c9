# Developer and CI entry points. `make test` is what CI (.ci/run) runs.
#
#   make venv         .venv with the project and its test extras (re-run when pyproject.toml changes)
#   make stack-start  local Kafka (KRaft) + Redis on 127.0.0.1:9092 / :6379 (deploy/local/stack.sh)
#   make stack-stop   stop what stack-start started
#   make test         venv + stack + ruff + mypy + pytest (not the `faults` marker); stops the stack afterwards
#                     if it was not running before
#   make lint         ruff only
#   make demo         segmenter demo against the local stack

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
STACK := deploy/local/stack.sh
PYTEST_PATHS ?= tests
PYTEST_ARGS ?=

.PHONY: venv stack-start stack-stop stack-status test lint demo

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ needed, $(PYTHON) is " + sys.version)'
	@test -x $(VENV)/bin/python || $(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install -q -e ".[test]"
	@touch $@

venv: $(VENV)/.installed

stack-start:
	@$(STACK) start

stack-stop:
	@$(STACK) stop

stack-status:
	@$(STACK) status

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

# Exit status: non-zero if ruff or pytest fails (pytest's 5, "no tests collected", counts as success).
test: venv
	@was_up=0; $(STACK) status >/dev/null 2>&1 && was_up=1; \
	if ! $(STACK) start; then [ $$was_up -eq 1 ] || $(STACK) stop; echo "make test: the local stack did not start" >&2; exit 1; fi; \
	[ -n "$${SEGMENTER_BROKER:-}" ] || eval "$$($(STACK) env)"; \
	rc=0; \
	echo "+ ruff check ."; $(VENV)/bin/ruff check . || rc=1; \
	echo "+ mypy (strict, segmenter/)"; $(VENV)/bin/mypy || rc=1; \
	echo "+ pytest $(PYTEST_PATHS) -m 'not faults' $(PYTEST_ARGS)"; \
	prc=0; $(VENV)/bin/python -m pytest $(PYTEST_PATHS) -m "not faults" $(PYTEST_ARGS) || prc=$$?; \
	if [ $$prc -eq 5 ]; then echo "pytest: no tests collected (ok)"; prc=0; fi; \
	[ $$prc -eq 0 ] || rc=$$prc; \
	if [ $$was_up -eq 0 ]; then $(STACK) stop || rc=1; fi; \
	exit $$rc

demo: venv stack-start
	$(VENV)/bin/segmenter demo

# echolab: every target here is a command the README documents. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.DEFAULT_GOAL := help

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,bench]'
	@touch $(STAMP)

.PHONY: venv
venv: $(STAMP) ## Create .venv and install echolab with its development tools

# HOST, USER, PORT, CLIENT_HOST, SSH_CONFIG, SERVER_CMD and CLIENT_CMD count only when given on the
# make command line: USER is everyone's login name in the environment, HOST and PORT are often set too.
cli = $(if $(filter command line,$(origin $(1))),$(2) '$(subst ','\'',$($(1)))')

# Your own programs: SERVER_CMD='./server --port {port}' and/or CLIENT_CMD='./client {host} {port}'.
# REPORT=DIR writes the HTML report (DIR/index.html, with every test's pcaps).
under_test = $(call cli,SERVER_CMD,--server-cmd) $(call cli,CLIENT_CMD,--client-cmd) $(call cli,REPORT,--report)

.PHONY: check
check: $(STAMP) ## The main job: the server and client suites, locally, with a verdict (SERVER_CMD=, CLIENT_CMD=, REPORT=)
	$(BIN)/pytest tests/behaviour tests/client -n auto $(under_test) $(PYTEST_ARGS)

# make test asks for the docker backend where an engine answers, and always in CI (CI=true), where
# a missing engine then stops the run in one line instead of being left out.
DOCKER_BACKEND = $(shell { [ -n "$$CI" ] || docker info >/dev/null 2>&1; } && echo ,docker)

# What make test's second docker run puts on the link between the containers (README: --net).
TEST_NET ?= loss=5%,mtu=576
NET_RUN = $(BIN)/pytest tests/behaviour tests/client -n auto $(SHARE) --backend docker --impl python,c --net '$(TEST_NET)' $(PYTEST_ARGS)

# make test's workers share the tests by work stealing: an idle worker takes half of a busy one's
# queue. xdist's default hands out batches in file order, and the slowest files (the self-tests,
# the stand-in Pi) fell to one worker, which ran until 710 s while the other was done at 315 s;
# with work stealing both end at 540 s. Not for a verdict (make check): there xdist's default lets
# the first tests of every file run early on both workers, so a broken behaviour is known before the
# tests that need it wait on it (no-fin's suite took 14 s with work stealing, 7 s without).
SHARE = --dist worksteal

.PHONY: test
test: lint ## Everything: lint, unit tests, harness self-tests, behaviour suite on every backend here, and again on docker under --net
	$(if $(DOCKER_BACKEND),,@echo "make test: no Docker engine answers here: the docker backend is left out (CI=true makes it required)")
	$(BIN)/pytest -n auto $(SHARE) --backend local$(DOCKER_BACKEND) --impl python,c $(PYTEST_ARGS)
	$(if $(DOCKER_BACKEND),$(NET_RUN))

IMPL ?= python
JUNIT ?= reports/pi-test.xml

.PHONY: pi-test
pi-test: $(STAMP) ## The suites against a Raspberry Pi over SSH: make pi-test HOST=raspberrypi.local [USER=pi] [PORT=22]
	$(if $(call cli,HOST),,$(error name the Pi: make pi-test HOST=raspberrypi.local [USER=pi] [PORT=22]))
	$(BIN)/pytest tests/behaviour tests/client --backend ssh --impl '$(IMPL)' $(under_test) $(call cli,HOST,--ssh-host) $(call cli,USER,--ssh-user) \
		$(call cli,PORT,--ssh-port) $(call cli,SSH_CONFIG,--ssh-config) $(call cli,CLIENT_HOST,--ssh-client-host) \
		--junitxml='$(JUNIT)' $(PYTEST_ARGS)

COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)
LAB = $(COMPOSE) -p echolab -f docker/docker-compose.yml

.PHONY: up
up: ## The lab by hand: server and lab client in two containers, the client at your keyboard (Ctrl-D ends it)
	$(LAB) build
	$(LAB) run --rm client; status=$$?; $(LAB) down --remove-orphans --timeout 2; exit $$status

.PHONY: bench
bench: $(STAMP) ## Speed and memory of the echo servers and the harness, against yardsticks (QUICK=1: smoke run)
	$(BIN)/python -m harness.bench --out bench-results $(if $(QUICK),--quick)

.PHONY: lint
lint: $(STAMP) ## ruff and mypy, as CI runs them
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

.PHONY: clean
clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build *.egg-info

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

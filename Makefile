# coffea-wq developer commands. Every target sets up what it needs on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-stamp
# Debian packages the test-suite drives for real (interoperability, CCTools' examples, Slurm, Grid
# Engine, the dashboard in a browser); iproute2 brings up loopback in the examples' network namespaces.
# `make test` sets COFFEA_WQ_REQUIRE_SYSTEM_PACKAGES=1: a test that would skip for want of one of these
# fails instead (tests/support.py, needs_system); `make test-fast` lets such tests skip.
SYSTEM_PACKAGES := python3 coop-computing-tools coop-computing-tools-doc python3-workqueue python3-dill iproute2 slurm-wlm munge gnuplot-nox openssl \
  xrootd-server \
  chromium chromium-driver \
  gridengine-master gridengine-exec gridengine-client
# Grid Engine's packages ask debconf questions. The tests start their own cell
# (tests/factory/sge_cluster.py), so the answer to "configure SGE automatically?" is no: no
# system-wide cell and no daemons at boot; the cell and master answers are there for completeness.
GRIDENGINE_DEBCONF := "gridengine-common shared/gridengineconfig boolean false" \
  "gridengine-common shared/gridenginecell string default" \
  "gridengine-common shared/gridenginemaster string $$(hostname)"
PYTEST_ARGS ?=

.PHONY: venv install demo test test-fast bench lint data clean system-packages

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(STAMP): $(PY) setup.cfg pyproject.toml
	$(PIP) install --quiet -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)
install: $(STAMP)

# Installs the CCTools, Slurm, munge and Grid Engine packages the tests use, only when missing.
system-packages:
	@missing=""; for p in $(SYSTEM_PACKAGES); do \
	  dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  printf '%s\n' $(GRIDENGINE_DEBCONF) | $$SUDO debconf-set-selections && \
	  $$SUDO apt-get update -q && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get -o DPkg::Lock::Timeout=900 install -y -q \
	    --no-install-recommends $$missing; \
	fi

demo: $(STAMP)
	$(PY) analysis_examples/demo.py

test: $(STAMP) system-packages
	$(PY) -m ruff check coffea_wq envtools tests benchmarks analysis_examples
	COFFEA_WQ_REQUIRE_SYSTEM_PACKAGES=1 $(PY) -m pytest -ra $(PYTEST_ARGS)

test-fast: $(STAMP)
	$(PY) -m pytest -ra -m "not slow" $(PYTEST_ARGS)

BENCH_STAMP := $(VENV)/.bench-installed-stamp
$(BENCH_STAMP): $(STAMP) setup.cfg
	$(PIP) install --quiet -e '.[test,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP) system-packages
	$(PY) benchmarks/run_all.py

lint: $(STAMP)
	$(PY) -m ruff check coffea_wq envtools tests benchmarks analysis_examples

EVENTS ?= 1000000
data: $(STAMP)
	$(PY) -m analysis_examples.data.generate --events $(EVENTS) --out analysis_examples/data/generated

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache envs

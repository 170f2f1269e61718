# ebpf-kafka-producer: two commands for a fresh Debian 12 machine, as root.
#   make demo   start a local Kafka broker, run the collector ~20 s while running commands, print the events
#   make test   the whole test suite (lint, types, unit, and real-kernel + real-broker tests)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell sha256sum pyproject.toml | cut -c1-12)

.PHONY: setup tools demo test test-unit test-helm lint typecheck config-export kafka-up kafka-down registry-fetch bench bench-setup clean

# Host packages, kernel headers link and tracefs every time (idempotent, and a
# reboot unmounts tracefs); the virtualenv only when pyproject.toml changed.
setup: $(STAMP)
	@bash scripts/host-setup.sh

$(STAMP): pyproject.toml
	@bash scripts/host-setup.sh
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

# helm for the chart tests, built once from the Go module proxy into ~/.cache (outside git).
tools:
	@bash scripts/install-helm.sh

kafka-up: setup
	@bash scripts/kafka.sh up

kafka-down:
	@bash scripts/kafka.sh down

# The schema registry the tests run (Apicurio, Confluent-compatible API); each test session starts its own.
registry-fetch: setup
	@bash scripts/registry.sh fetch

demo: kafka-up
	@bash scripts/demo.sh

lint: setup
	$(PY) -m ruff check producer bench tests
	$(PY) -m ruff format --check producer bench tests

typecheck: setup
	$(PY) -m mypy

# The chart's values schema (its `config` subtree) and README's defaults block, rewritten from the
# config models in producer/config (tests/unit/test_config_export.py fails when they drift).
config-export: setup
	$(PY) -m producer.config.export

test-unit: setup
	$(PY) -m pytest tests/unit

test-helm: setup tools
	$(PY) -m pytest tests/helm

test: kafka-up registry-fetch tools lint typecheck
	$(PY) -m pytest

# The benchmark's own tools: bpftrace, kcat, gcc (Debian's) and matplotlib (the bench extra).
bench-setup: setup
	@bash scripts/bench-setup.sh
	@$(PY) -c 'import matplotlib' 2>/dev/null || $(PY) -m pip install -q -e '.[test,bench]'

# file_open through the collector, bpftrace | kcat and a naive BCC reader (~45 min, as root);
# results in docs/benchmarks/. It runs a broker of its own (EKP_KAFKA_PORT, default 19092), never
# the shared one on 9092. `make bench BENCH_ARGS=--quick` checks the instrument in ~5 minutes.
bench: bench-setup
	$(PY) -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache

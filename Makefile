# ebpf-kafka-producer: two commands for a fresh Debian 12 machine, as root.
#   make demo   start a local Kafka broker, run the collector ~20 s while running commands, print the events
#   make test   the whole test suite (lint, types, unit, and real-kernel + real-broker tests)
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
# The CRI stubs are generated and the native data plane (producer/native) compiled by the (editable) install,
# so the build hook, the proto and the C sources (with bpf/events.h, which they include) are part of its key.
NATIVE_SRC := $(wildcard producer/native/src/*.c producer/native/src/*.h) bpf/events.h
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml setup.py producer/k8s/proto/api.proto $(NATIVE_SRC) | sha256sum | cut -c1-12)

.PHONY: setup tools image demo test test-unit test-helm test-cri test-image lint typecheck config-export kafka-up kafka-down kafka-fresh registry-fetch cri-images bench bench-setup clean

# Host packages, kernel headers link and tracefs every time (idempotent, and a
# reboot unmounts tracefs); the virtualenv only when pyproject.toml, setup.py, the CRI proto or the C changed.
setup: $(STAMP)
	@bash scripts/host-setup.sh

$(STAMP): pyproject.toml setup.py producer/k8s/proto/api.proto $(NATIVE_SRC)
	@bash scripts/host-setup.sh
	@test -x $(PY) || /usr/bin/python3 -m venv --system-site-packages $(VENV)
	@$(PY) -m pip install -q --upgrade pip
	@$(PY) -m pip install -q -e '.[test]'
	@rm -f $(VENV)/.installed-* && touch $@

# helm for the chart tests, built once from the Go module proxy into ~/.cache (outside git).
tools:
	@bash scripts/install-helm.sh

# The OCI image, built with podman on a Debian 12 base made here (no registry, no Docker engine);
# cached layers make a rebuild take seconds. scripts/image.sh clean removes it all.
image:
	@bash scripts/image.sh build

kafka-up: setup
	@bash scripts/kafka.sh up

kafka-down:
	@bash scripts/kafka.sh down

# The tests start from an empty broker: each makes its own topics, and a broker that kept them from
# run to run grew to gigabytes and took over a minute to come back in the outage tests.
kafka-fresh: setup
	@bash scripts/kafka.sh fresh

# The schema registry the tests run (Apicurio, Confluent-compatible API); each test session starts its own.
registry-fetch: setup
	@bash scripts/registry.sh fetch

# containerd, runc, CNI plugins and the pause/busybox images for the CRI tests (tests/cri), built once into
# ~/.cache; the tests start their own containerd (scripts/containerd.sh up) and stop it after the session.
cri-images: setup
	@bash scripts/containerd.sh images

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

test-cri: cri-images
	$(PY) -m pytest tests/cri

# tests/image builds the image again (from cache) so that it always holds this checkout.
test-image: setup tools image kafka-up
	$(PY) -m pytest tests/image

test: kafka-fresh registry-fetch tools cri-images image lint typecheck
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
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache producer/k8s/cri_v1

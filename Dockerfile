# The collector's image. BCC comes from Debian (python3-bpfcc), as on a host; the
# node supplies tracefs and kernel headers through the Helm chart's host mounts.
#   docker build -t registry.example.com/ebpf-kafka-producer:0.1.0 .
#   scripts/image.sh build        (no registry, no Docker: podman from a locally bootstrapped Debian base)
# BASE_IMAGE is any Debian 12 image; scripts/image.sh passes one it made with mmdebstrap.
ARG BASE_IMAGE=debian:12.13-slim

FROM ${BASE_IMAGE} AS runtime
# On every stage's images, so scripts/image.sh clean finds the build cache too.
LABEL org.opencontainers.image.title="ebpf-kafka-producer"
ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# libbpfcc brings the clang that compiles the BPF code at start; ca-certificates for Kafka TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-bpfcc python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
# --system-site-packages: bcc is not on PyPI, the venv must see Debian's.
RUN python3 -m venv --system-site-packages /opt/venv

# The wheel, built from the sources in a stage of its own: the image gets the wheel, never the source tree.
FROM runtime AS wheel
# The native data plane (producer/native) is C: a compiler, Python's headers and librdkafka's header. The
# extension calls the librdkafka inside the confluent-kafka wheel (producer/native/src/kafka.h), so the
# image needs no librdkafka package at run time, and none of these.
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc libc6-dev python3-dev librdkafka-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# setup.py generates the CRI v1 gRPC stubs from producer/k8s/proto while the wheel is built
COPY pyproject.toml setup.py README.md ./
COPY producer ./producer
COPY bpf ./bpf
COPY schemas ./schemas
# The optional build secret ca-bundle: trust roots for pip when PyPI is reached through a TLS-inspecting
# proxy (scripts/image.sh passes the host's); a secret, so it never stays in a layer.
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && /opt/venv/bin/pip wheel --no-cache-dir --no-deps --wheel-dir /dist .

FROM runtime
# Copied, not bind-mounted with RUN --mount=from=wheel: buildah 1.28 (Debian 12) keeps a cached RUN layer
# when only the mounted stage changed, so the image would keep the previous wheel.
COPY --from=wheel /dist/ /dist/
RUN --mount=type=secret,id=ca-bundle \
    if [ -s /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && /opt/venv/bin/pip install --no-cache-dir /dist/*.whl \
 && rm -rf /dist
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /
# Smoke check: the console script starts, BCC imports, the BPF sources and schemas are package data, and
# the native data plane loads and reaches librdkafka.
RUN ebpf-producer --version \
 && python -c "import bcc, producer" \
 && python -c "from producer import native; print('native data plane, librdkafka', native.probe())" \
 && python -c "from importlib.resources import files; \
assert files('producer.bpf').joinpath('collector.bpf.c').is_file(); \
assert files('producer.schemas').joinpath('drop_report.avsc').is_file()" \
 && ebpf-producer print-bpf > /dev/null

# Root: BPF needs CAP_BPF/CAP_PERFMON, which Kubernetes grants only to uid 0 (no ambient capabilities).
USER 0
ENTRYPOINT ["ebpf-producer", "run", "--config", "/etc/ebpf-kafka-producer/config.yaml"]

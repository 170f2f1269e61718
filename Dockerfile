# The collector's image. BCC comes from Debian (python3-bpfcc), as on a host; the
# node supplies tracefs and kernel headers through the Helm chart's host mounts.
# Build: docker build -t ebpf-kafka-producer:0.1.0 .
FROM debian:12.13-slim

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# libbpfcc brings the clang that compiles bpf/*.c at start; ca-certificates for Kafka TLS.
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3-bpfcc python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /opt/ebpf-kafka-producer
# setup.py generates the CRI v1 gRPC stubs from producer/k8s/proto while the wheel is built
COPY pyproject.toml setup.py README.md ./
COPY producer ./producer
# --system-site-packages: bcc is not on PyPI, the venv must see Debian's.
RUN python3 -m venv --system-site-packages /opt/venv \
 && /opt/venv/bin/pip install --no-cache-dir . \
 && /opt/venv/bin/python -c "import bcc, producer"

# Installed as a package, the code no longer sits next to these; the variables point at them.
COPY bpf ./bpf
COPY schemas ./schemas
ENV EKP_BPF_DIR=/opt/ebpf-kafka-producer/bpf \
    EKP_SCHEMAS_DIR=/opt/ebpf-kafka-producer/schemas \
    PATH=/opt/venv/bin:$PATH

# Root: BPF needs CAP_BPF/CAP_PERFMON, which Kubernetes grants only to uid 0 (no ambient capabilities).
USER 0
ENTRYPOINT ["ebpf-producer", "run", "--config", "/etc/ebpf-kafka-producer/config.yaml"]

"""ebpf-kafka-producer: kernel events from eBPF tracepoints to Kafka as Avro.

Data flow (one module per step)::

    bpf/*.bpf.c --perf buffers--> perfbuf -> reader -> codec -> sink --> Kafka
                                              |                  |
                                              +----> ledger <----+ --> <prefix>.drops, /metrics

The supervisor loads the BPF programs (loader), forks one reader per CPU group
and publishes the ledger.
"""

__version__ = "0.1.0"

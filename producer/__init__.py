"""ebpf-kafka-producer: kernel events from eBPF tracepoints to Kafka as Avro.

Data flow (one subpackage per stage)::

    kernel/ (bpf/collector.bpf.c built, checked, filtered, attached)
      |  perf buffers, per event type and CPU
      v
    reader/ (one process per CPU group) --records/: parse + fast Avro--> kafka/ (sink) --> <prefix>.<type>
      |  every outcome counted in shared memory
      v
    ledger/ (arena -> book -> accounting) --> kafka/ (publisher) --> <prefix>.drops, <prefix>.syscall_counts
      |
      v
    ops/ (supervisor, reader pool, /metrics)

records/catalog.py lists the event types; every per-type table derives from it. The supervisor
(ops/supervisor.py) loads the BPF programs once (kernel/), forks one reader per CPU group
(ops/pool.py) and publishes the ledger (ledger/accounting.py); cli/ is the command line.

Beside the collector, forward/ is the other program (`ebpf-producer forward`): a consumer group
member that POSTs the event topics to an HTTP endpoint. endpoints.py serves /metrics, /healthz
and /readyz for both.
"""

__version__ = "0.1.0"

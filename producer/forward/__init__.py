"""ebpf-producer forward: the event topics, at least once, to an HTTP endpoint."""

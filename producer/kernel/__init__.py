"""The kernel side: build and check the BPF module, its filters and seeds, attach and detach it,
its perf buffers and counters, and what /proc says."""

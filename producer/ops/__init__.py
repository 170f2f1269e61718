"""Running the collector: the supervisor's lifecycle and its rooms (reader pool, exclusion, schema
registration, metrics), and the preflight checks."""

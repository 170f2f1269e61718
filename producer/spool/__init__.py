"""The on-disk spool: where a reader keeps what Kafka cannot take now, replayed in order."""

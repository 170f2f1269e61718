"""A reader process (one per CPU group): its perf rings -> Avro -> Kafka, every record counted."""

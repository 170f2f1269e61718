"""The Kafka boundary: the modules that import confluent_kafka."""

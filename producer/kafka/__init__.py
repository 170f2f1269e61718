"""The Kafka boundary: the only package that imports confluent_kafka (tests/unit/test_kafka_boundary.py).

client (producer settings, error names), sink (a reader's producer), publisher (the supervisor's, and
the forwarder's outbox), framing (prefix + headers of every topic), admin (broker check, topics),
security + secretfiles + tlsprobe (TLS/SASL), consumer (tail, tests, the forwarder's group member),
registry (the schema registry's HTTP API).
"""

"""What a record is: the kernel's record layouts mirrored (abi), the event catalog, one module per
event family (parse, reference decode, fast Avro encode, brief line), Avro framing (codec), and
container attribution."""

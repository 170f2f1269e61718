"""Kubernetes attribution: the node's CRI runtime socket -> pod and container metadata.

cri.py        the CRI v1 client: one socket, short deadlines, gRPC errors translated at this boundary
model.py      what it returns: frozen dataclasses, never protobuf objects
workload.py   workload kind and name from a pod's name, labels and annotations (pure)
cri_v1/       gRPC stubs generated at build time from proto/api.proto (setup.py); not in git
"""

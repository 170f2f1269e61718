"""The `k8s` field of one ring's records: the resolver's pre-encoded bytes, and what a miss costs.

The fast encoders copy `encoded[cgroup_id]` (one dict lookup in the reader's resolver's own dict,
records/avro.py `tail`) and call `missed` only when the cgroup is not there: then the record goes out
with `k8s: null` at once (never waiting for the runtime), and if the cgroup is a pod container's that
the resolver does not know yet, the ring's k8s_unresolved counter counts it (an info row of the
ledger: the record is delivered). A cgroup that is no pod's is remembered as null by the resolver, so
host processes cost one lookup and count nothing.
"""

from __future__ import annotations

from typing import Any

from ..k8s.resolver import PodResolver
from ..records.avro import NULL, ContainerOf


class RingPods:
    """A ring's view of the reader's PodResolver (records/avro.py PodSource)."""

    __slots__ = ("_resolver", "encoded", "index", "words")

    def __init__(self, resolver: PodResolver, words: Any, unresolved_index: int) -> None:
        """`words[unresolved_index]`: the ring's k8s_unresolved counter in the reader's arena block.
        A ring shared by every CPU sets `index` to the block of the CPU its record names."""
        self._resolver = resolver
        self.encoded = resolver.encoded
        self.words = words
        self.index = unresolved_index

    def missed(self, cgroup_id: int, container_of: ContainerOf) -> bytes:
        if self._resolver.unresolved(cgroup_id, container_of(cgroup_id)):
            self.words[self.index] += 1
        return NULL

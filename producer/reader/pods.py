"""The `k8s` field of one ring's records: the resolver's pre-encoded bytes, and what a miss costs.

The fast encoders copy `encoded[cgroup_id]` (one dict lookup, the reader's resolver's own dict) and call
`missed` only when the cgroup is not there: then the record goes out with `k8s: null`, and if the
cgroup is a pod container's that the resolver does not know yet, the ring's k8s_unresolved counter
counts it (an info row of the ledger: the record is delivered). With attribution off every cgroup is
null, remembered per ring after its first record.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..k8s.resolver import PodResolver
from ..records.avro import NULL
from ..records.containers import ContainerInfo

ContainerOf = Callable[[int], "ContainerInfo | None"]

# With attribution off: cgroups remembered as null per ring, all forgotten past this many.
_MAX_OFF = 16384


class RingPods:
    __slots__ = ("_index", "_resolver", "_words", "encoded")

    def __init__(self, resolver: PodResolver | None, words: Any, unresolved_index: int) -> None:
        """`words[unresolved_index]`: the ring's k8s_unresolved counter in the reader's arena block."""
        self._resolver = resolver
        self.encoded: dict[int, bytes] = {} if resolver is None else resolver.encoded
        self._words = words
        self._index = unresolved_index

    def missed(self, cgroup_id: int, container_of: ContainerOf) -> bytes:
        r = self._resolver
        if r is None:
            if len(self.encoded) >= _MAX_OFF:
                self.encoded.clear()
            self.encoded[cgroup_id] = NULL
        elif r.unresolved(cgroup_id, container_of(cgroup_id)):
            self._words[self._index] += 1
        return NULL

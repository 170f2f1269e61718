/* SPDX-License-Identifier: Apache-2.0 */
/*
 * cgroup id -> the record fields that depend only on the cgroup: container_id (after
 * cgroup_id) and k8s (the last field), as Avro bytes Python encoded (the container resolver's
 * and the Kubernetes resolver's `encoded` dict, records/avro.py). Python fills it between
 * polls (producer/native/plane.py): a record whose cgroup is missing makes the engine
 * stop before that record and ask, so even the first record of a new container gets
 * its id, as on the Python path. An entry may expire (a cgroup a resolver did not know
 * yet is asked about again later), and may say that its pod is not known yet: each of its
 * records is then counted as k8s_unresolved, as reader/pods.py counts a miss.
 *
 * Open addressing, linear probing, at most half full; bounded: when EKP_CGROUPS_MAX
 * entries are reached the table starts over (Python simply refills it).
 */
#ifndef EKP_CGROUPS_H
#define EKP_CGROUPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "avro.h"

#define EKP_CGROUPS_MAX 65536
#define EKP_CGROUP_BLOB_MAX 65536 /* a pod's labels are bounded by k8s.labels; this bounds the rest */

struct ekp_cgroup_entry {
	uint64_t id;
	uint64_t expires_ns; /* CLOCK_MONOTONIC; 0 = never */
	uint8_t *blob;       /* container bytes then k8s bytes; NULL: an empty slot */
	size_t n, split;     /* split: the container bytes' length */
	bool unresolved;     /* a pod's cgroup whose pod is not known yet */
};

/* One cgroup's fields, as an encoder writes them. */
struct ekp_cgroup {
	struct ekp_blob container; /* container_id: ["null","string"] */
	struct ekp_blob k8s;       /* k8s: ["null", K8s] */
	bool unresolved;
};

struct ekp_cgroups {
	struct ekp_cgroup_entry *slots;
	size_t cap; /* a power of two, or 0 */
	size_t used;
};

/* The entry's fields, if it is there and not expired. */
bool ekp_cgroups_get(const struct ekp_cgroups *t, uint64_t id, uint64_t now_ns, struct ekp_cgroup *out);
/* Insert or replace; false when out of memory or the bytes are empty or too long. */
bool ekp_cgroups_put(struct ekp_cgroups *t, uint64_t id, const struct ekp_cgroup *fields, uint64_t expires_ns);
void ekp_cgroups_clear(struct ekp_cgroups *t);

#endif /* EKP_CGROUPS_H */

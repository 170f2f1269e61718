/* SPDX-License-Identifier: Apache-2.0 */
#include "cgroups.h"

#include <stdlib.h>
#include <string.h>

static size_t slot_of(uint64_t id, size_t cap)
{
	/* cgroup ids are inode numbers, often consecutive: mix the bits (splitmix64's finaliser) */
	id ^= id >> 30;
	id *= 0xbf58476d1ce4e5b9ULL;
	id ^= id >> 27;
	id *= 0x94d049bb133111ebULL;
	id ^= id >> 31;
	return (size_t)id & (cap - 1);
}

static struct ekp_cgroup_entry *find(const struct ekp_cgroups *t, uint64_t id)
{
	if (t->cap == 0)
		return NULL;
	for (size_t i = slot_of(id, t->cap);; i = (i + 1) & (t->cap - 1)) {
		struct ekp_cgroup_entry *s = &t->slots[i];
		if (s->blob == NULL || s->id == id)
			return s;
	}
}

bool ekp_cgroups_get(const struct ekp_cgroups *t, uint64_t id, uint64_t now_ns, struct ekp_cgroup *out)
{
	const struct ekp_cgroup_entry *s = find(t, id);
	if (s == NULL || s->blob == NULL || (s->expires_ns && now_ns >= s->expires_ns))
		return false;
	out->container = (struct ekp_blob){s->blob, s->split};
	out->k8s = (struct ekp_blob){s->blob + s->split, s->n - s->split};
	out->unresolved = s->unresolved;
	return true;
}

void ekp_cgroups_clear(struct ekp_cgroups *t)
{
	for (size_t i = 0; i < t->cap; i++)
		free(t->slots[i].blob);
	free(t->slots);
	t->slots = NULL;
	t->cap = t->used = 0;
}

static bool grow(struct ekp_cgroups *t)
{
	size_t cap = t->cap ? t->cap * 2 : 64;
	struct ekp_cgroup_entry *slots = calloc(cap, sizeof(*slots));
	if (slots == NULL)
		return false;
	struct ekp_cgroups bigger = {slots, cap, t->used};
	for (size_t i = 0; i < t->cap; i++)
		if (t->slots[i].blob != NULL)
			*find(&bigger, t->slots[i].id) = t->slots[i];
	free(t->slots);
	*t = bigger;
	return true;
}

bool ekp_cgroups_put(struct ekp_cgroups *t, uint64_t id, const struct ekp_cgroup *fields, uint64_t expires_ns)
{
	size_t split = fields->container.n, n = split + fields->k8s.n;
	if (split == 0 || fields->k8s.n == 0 || n > EKP_CGROUP_BLOB_MAX)
		return false;
	if (t->used >= EKP_CGROUPS_MAX)
		ekp_cgroups_clear(t);
	if ((t->used + 1) * 2 > t->cap && !grow(t))
		return false;
	uint8_t *copy = malloc(n);
	if (copy == NULL)
		return false;
	memcpy(copy, fields->container.p, split);
	memcpy(copy + split, fields->k8s.p, fields->k8s.n);
	struct ekp_cgroup_entry *s = find(t, id);
	if (s->blob == NULL)
		t->used++;
	free(s->blob);
	*s = (struct ekp_cgroup_entry){id, expires_ns, copy, n, split, fields->unresolved};
	return true;
}

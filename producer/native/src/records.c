/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The fields every record shares and the table of types; see records.h. Each check of
 * decode_common mirrors one of producer/records/common.py parse_common, each field of the
 * encoders one of avro.py common, tail and opt_id. The families' own decoders and encoders
 * are in records_<family>.c, on the same pattern.
 */
#include "family.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- common fields: struct ekp_header + struct ekp_task ---------------------------------------- */

struct ekp_head_task {
	struct ekp_header hdr;
	struct ekp_task task;
};

int ekp_decode_common(const struct ekp_encoder *e, const uint8_t *raw, size_t len, size_t fixed, uint32_t type_id,
		      uint32_t cpu, bool owner_may_be_unknown, struct ekp_common *c)
{
	struct ekp_head_task ht;
	if (len < fixed || fixed < sizeof(ht))
		return EKP_DECODE_ERROR;
	memcpy(&ht, raw, sizeof(ht)); /* perf raw samples are 4-byte aligned only */
	const struct ekp_task *t = &ht.task;
	if (ht.hdr.type != type_id || ht.hdr.cpu != cpu || (t->flags & ~EKP_TASK_FLAGS_ALL))
		return EKP_DECODE_ERROR;
	if (ht.hdr.boot_ns > EKP_INT64_MAX_U || ht.hdr.seq > EKP_INT64_MAX_U || t->cgroup_id > EKP_INT64_MAX_U)
		return EKP_DECODE_ERROR;
	if (t->flags & EKP_TASK_OWNER_UNKNOWN) {
		if (!owner_may_be_unknown)
			return EKP_DECODE_ERROR;
		/* nothing of the task is read: no pid, comm or identity (common._flagged) */
		*c = (struct ekp_common){
			.boot_ns = ht.hdr.boot_ns,
			.seq = ht.hdr.seq,
			.cgroup_id = t->cgroup_id,
			.cpu = cpu,
		};
		return EKP_OK;
	}
	if (t->pid == 0 || t->pid > e->pid_max || t->tid == 0 || t->tid > e->pid_max || t->ppid > e->pid_max)
		return EKP_DECODE_ERROR;
	long comm_len = ekp_cstr_len((const uint8_t *)t->comm, sizeof(t->comm));
	if (comm_len < 0)
		return EKP_DECODE_ERROR;
	bool proc_known = !(t->flags & EKP_TASK_PROC_UNKNOWN);
	/* an image starts before its records, and its parent's before it */
	if (proc_known && (t->start_ns == 0 || t->start_ns > ht.hdr.boot_ns || t->parent_start_ns > t->start_ns))
		return EKP_DECODE_ERROR;
	*c = (struct ekp_common){
		.boot_ns = ht.hdr.boot_ns,
		.seq = ht.hdr.seq,
		.cgroup_id = t->cgroup_id,
		.start_ns = t->start_ns,
		.parent_start_ns = t->parent_start_ns,
		.cpu = cpu,
		.pid = t->pid,
		.tid = t->tid,
		.ppid = t->ppid,
		.uid = t->uid,
		.gid = t->gid,
		.owner_known = true,
		.ppid_known = !(t->flags & EKP_TASK_PPID_UNKNOWN),
		.start_known = proc_known,
		.parent_start_known = proc_known && !(t->flags & EKP_TASK_PARENT_UNKNOWN),
		.comm_len = (size_t)comm_len,
	};
	memcpy(c->comm, t->comm, sizeof(c->comm));
	c->escaped = !ekp_utf8_clean(c->comm, c->comm_len);
	return EKP_OK;
}

int64_t ekp_micros(uint64_t boot_ns, int64_t offset)
{
	__int128 ns = (__int128)boot_ns + offset;
	__int128 q = ns / 1000;
	if (ns % 1000 < 0)
		q -= 1;
	return (int64_t)q;
}

void ekp_encode_common(const struct ekp_encoder *e, const struct ekp_common *c, const struct ekp_cgroup *cg,
		       bool nullable, struct ekp_out *o)
{
	ekp_long(o, ekp_micros(c->boot_ns, e->boot_to_wall_ns));
	ekp_long(o, (int64_t)c->boot_ns);
	ekp_put_blob(o, e->host_boot);
	ekp_long(o, c->cpu);
	ekp_long(o, (int64_t)c->seq);
	if (nullable) { /* avro.Static.process: each a union with null, all null without an owner */
		bool k = c->owner_known;
		ekp_opt_long(o, k, c->pid);
		ekp_opt_long(o, k, c->tid);
		ekp_opt_long(o, k && c->ppid_known, c->ppid);
		ekp_opt_long(o, k, c->uid);
		ekp_opt_long(o, k, c->gid);
		ekp_byte(o, k ? EKP_BRANCH1 : EKP_NULL);
		if (k)
			ekp_clean_string(o, c->comm, c->comm_len);
	} else {
		ekp_long(o, c->pid);
		ekp_long(o, c->tid);
		ekp_opt_long(o, c->ppid_known, c->ppid);
		ekp_long(o, c->uid);
		ekp_long(o, c->gid);
		ekp_clean_string(o, c->comm, c->comm_len);
	}
	ekp_long(o, (int64_t)c->cgroup_id);
	ekp_put_blob(o, cg->container);
}

/* "<boot>-<start as hex>-<pid>" into id (EKP_BOOT_TAG_MAX + 40 bytes); its length. By hand rather than
 * snprintf: two ids per record, and snprintf's format parsing was ~9% of a reader's samples at 100k/s. */
static size_t format_id(char *id, const char *tag, uint64_t start_ns, uint32_t pid)
{
	static const char hex[] = "0123456789abcdef";
	char digits[20];
	size_t n = strlen(tag), k = 0;
	memcpy(id, tag, n);
	id[n++] = '-';
	do
		digits[k++] = hex[start_ns & 15];
	while (start_ns >>= 4);
	while (k)
		id[n++] = digits[--k];
	id[n++] = '-';
	do
		digits[k++] = (char)('0' + pid % 10);
	while (pid /= 10);
	while (k)
		id[n++] = digits[--k];
	return n;
}

/* avro.opt_id: identity.process_id "<boot>-<start as hex>-<pid>" as an optional string */
void ekp_encode_id(const struct ekp_encoder *e, bool known, uint64_t start_ns, uint32_t pid, struct ekp_out *o)
{
	char id[EKP_BOOT_TAG_MAX + 40];
	if (!known) {
		ekp_byte(o, EKP_NULL);
		return;
	}
	size_t n = format_id(id, e->boot_tag, start_ns, pid);
	ekp_byte(o, EKP_BRANCH1);
	ekp_string(o, (const uint8_t *)id, n);
}

void ekp_encode_tail(const struct ekp_encoder *e, const struct ekp_common *c, const struct ekp_cgroup *cg,
		     struct ekp_out *o)
{
	ekp_encode_id(e, c->start_known, c->start_ns, c->pid, o);
	ekp_encode_id(e, c->parent_start_known && c->ppid_known, c->parent_start_ns, c->ppid, o);
	ekp_put_blob(o, cg->k8s);
}

/* ---- the table ----------------------------------------------------------------------------------- */

static const struct ekp_type *const TYPES[] = {
	&ekp_type_process_exec,
	&ekp_type_process_exit,
	&ekp_type_process_fork,
	&ekp_type_file_open,
	&ekp_type_tcp_connect,
	&ekp_type_tcp_accept,
	&ekp_type_tcp_close,
};

const struct ekp_type *ekp_type_of(uint32_t type_id)
{
	for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
		if (TYPES[i]->type_id == type_id)
			return TYPES[i];
	return NULL;
}

int ekp_encode_record(struct ekp_encoder *e, const struct ekp_type *t, const uint8_t *raw, size_t len,
		      uint32_t cpu, uint64_t now_ns, struct ekp_out *o, unsigned *flags, uint64_t *cgroup_id)
{
	struct ekp_decoded d;
	struct ekp_cgroup cg;
	*flags = 0;
	int rc = t->decode(e, t->type_id, raw, len, cpu, &d);
	if (rc != EKP_OK)
		return rc;
	if (!ekp_cgroups_get(&e->cgroups, d.c.cgroup_id, now_ns, &cg)) {
		*cgroup_id = d.c.cgroup_id;
		return EKP_CGROUP_MISS;
	}
	bool escaped = t->encode(e, &d, &cg, o);
	if (o->overflow)
		return EKP_ENCODE_ERROR;
	*flags = (escaped ? EKP_F_ESCAPED : 0) | (cg.unresolved ? EKP_F_K8S_UNRESOLVED : 0);
	return EKP_OK;
}

bool ekp_peek_seq(const uint8_t *raw, size_t len, uint64_t *seq)
{
	if (len < sizeof(struct ekp_header))
		return false;
	memcpy(seq, raw + offsetof(struct ekp_header, seq), sizeof(*seq));
	return true;
}

/* ---- the encoder's own memory -------------------------------------------------------------------- */

void ekp_encoder_init(struct ekp_encoder *e)
{
	memset(e, 0, sizeof(*e));
}

struct ekp_blob ekp_encoder_keep(struct ekp_encoder *e, const void *p, size_t n)
{
	struct ekp_blob none = {NULL, 0};
	if (e->n_owned == e->cap_owned) {
		size_t cap = e->cap_owned ? e->cap_owned * 2 : 64;
		void **owned = realloc(e->owned, cap * sizeof(*owned));
		if (owned == NULL)
			return none;
		e->owned = owned;
		e->cap_owned = cap;
	}
	uint8_t *copy = malloc(n ? n : 1);
	if (copy == NULL)
		return none;
	memcpy(copy, p, n);
	e->owned[e->n_owned++] = copy;
	return (struct ekp_blob){copy, n};
}

void ekp_encoder_free(struct ekp_encoder *e)
{
	for (size_t i = 0; i < e->n_owned; i++)
		free(e->owned[i]);
	free(e->owned);
	ekp_cgroups_clear(&e->cgroups);
	ekp_encoder_init(e);
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Decoders and encoders of raw records; see records.h. Each check mirrors one of the
 * parse functions of producer/records/ (common.py parse_common, file_open.py parse), each
 * field one of the fast encoders (avro.py common and tail, file_open.py encoder), in
 * schema order.
 */
#include "records.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define INT64_MAX_U ((uint64_t)INT64_MAX)
#define EKP_OPEN_MODE_MAX 07777U
#define EKP_OPEN_RET_MIN (-4095)

/* ---- common fields: struct ekp_header + struct ekp_task ---------------------------------------- */

struct ekp_head_task {
	struct ekp_header hdr;
	struct ekp_task task;
};

/* Length of the C string in a fixed field, or -1 if it has no NUL (events._cstr). */
static long cstr_len(const uint8_t *b, size_t n)
{
	const uint8_t *nul = memchr(b, 0, n);
	return nul ? (long)(nul - b) : -1;
}

static bool utf8_clean(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = ekp_utf8_seq(b + i, n - i);
		if (!len)
			return false;
		i += len;
	}
	return true;
}

/* common.parse_common: `fixed` is the record type's size without its variable tail. */
static int decode_common(const struct ekp_encoder *e, const uint8_t *raw, size_t len, size_t fixed,
			 uint32_t type_id, uint32_t cpu, struct ekp_common *c)
{
	struct ekp_head_task ht;
	if (len < fixed || fixed < sizeof(ht))
		return EKP_DECODE_ERROR;
	memcpy(&ht, raw, sizeof(ht)); /* perf raw samples are 4-byte aligned only */
	const struct ekp_task *t = &ht.task;
	if (ht.hdr.type != type_id || ht.hdr.cpu != cpu || (t->flags & ~EKP_TASK_FLAGS_ALL))
		return EKP_DECODE_ERROR;
	if (ht.hdr.boot_ns > INT64_MAX_U || ht.hdr.seq > INT64_MAX_U || t->cgroup_id > INT64_MAX_U)
		return EKP_DECODE_ERROR;
	/* no type with a native encoder yet may lack its process (tcp_* may: their encoders will
	 * take the nullable process fields of rawavro's _common(nullable=True)) */
	if (t->flags & EKP_TASK_OWNER_UNKNOWN)
		return EKP_DECODE_ERROR;
	if (t->pid == 0 || t->pid > e->pid_max || t->tid == 0 || t->tid > e->pid_max || t->ppid > e->pid_max)
		return EKP_DECODE_ERROR;
	long comm_len = cstr_len((const uint8_t *)t->comm, sizeof(t->comm));
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
		.ppid_known = !(t->flags & EKP_TASK_PPID_UNKNOWN),
		.start_known = proc_known,
		.parent_start_known = proc_known && !(t->flags & EKP_TASK_PARENT_UNKNOWN),
		.comm_len = (size_t)comm_len,
	};
	memcpy(c->comm, t->comm, sizeof(c->comm));
	c->escaped = !utf8_clean(c->comm, c->comm_len);
	return EKP_OK;
}

/* floor((boot_ns + offset) / 1000), as Python's // (the offset may be negative) */
static int64_t micros(uint64_t boot_ns, int64_t offset)
{
	__int128 ns = (__int128)boot_ns + offset;
	__int128 q = ns / 1000;
	if (ns % 1000 < 0)
		q -= 1;
	return (int64_t)q;
}

/* avro.common: timestamp .. cgroup_id, then the cgroup's container_id */
static void encode_common(const struct ekp_encoder *e, const struct ekp_common *c, const struct ekp_cgroup *cg,
			  struct ekp_out *o)
{
	ekp_long(o, micros(c->boot_ns, e->boot_to_wall_ns));
	ekp_long(o, (int64_t)c->boot_ns);
	ekp_put_blob(o, e->host_boot);
	ekp_long(o, c->cpu);
	ekp_long(o, (int64_t)c->seq);
	ekp_long(o, c->pid);
	ekp_long(o, c->tid);
	ekp_opt_long(o, c->ppid_known, c->ppid);
	ekp_long(o, c->uid);
	ekp_long(o, c->gid);
	ekp_clean_string(o, c->comm, c->comm_len);
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
static void encode_id(const struct ekp_encoder *e, bool known, uint64_t start_ns, uint32_t pid, struct ekp_out *o)
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

/* avro.tail: process_id, parent_process_id and k8s, the fields every process record ends with */
static void encode_tail(const struct ekp_encoder *e, const struct ekp_common *c, const struct ekp_cgroup *cg,
			struct ekp_out *o)
{
	encode_id(e, c->start_known, c->start_ns, c->pid, o);
	encode_id(e, c->parent_start_known && c->ppid_known, c->parent_start_ns, c->ppid, o);
	ekp_put_blob(o, cg->k8s);
}

/* ---- file_open ----------------------------------------------------------------------------------- */

#define OPEN_FIXED offsetof(struct ekp_file_open, path)

static int decode_file_open(const struct ekp_encoder *e, const uint8_t *raw, size_t len, uint32_t cpu,
			    struct ekp_decoded *d)
{
	int rc = decode_common(e, raw, len, OPEN_FIXED, EKP_EVENT_FILE_OPEN, cpu, &d->c);
	if (rc != EKP_OK)
		return rc;
	struct ekp_file_open r;
	memcpy(&r, raw, OPEN_FIXED);
	if (r.syscall > EKP_OPEN_OPENAT2 || (r.flags & ~EKP_OPEN_PATH_TRUNCATED))
		return EKP_DECODE_ERROR;
	if (r.open_flags > 0xFFFFFFFFULL || r.mode > EKP_OPEN_MODE_MAX)
		return EKP_DECODE_ERROR;
#ifndef EKP_PLANT_OOB
	if (r.path_size < 1 || r.path_size > EKP_PATH_LEN || OPEN_FIXED + r.path_size > len)
		return EKP_DECODE_ERROR;
#else
	/* tests/unit/test_native_sanitizers.py: a broken bounds check the sanitizer build must catch */
	if (r.path_size < 1 || r.path_size > EKP_PATH_LEN)
		return EKP_DECODE_ERROR;
#endif
	if (r.ret < EKP_OPEN_RET_MIN)
		return EKP_DECODE_ERROR;
	const uint8_t *path = raw + OPEN_FIXED;
	long path_len = cstr_len(path, r.path_size);
	if (path_len < 0)
		return EKP_DECODE_ERROR;
	d->u.open = (struct ekp_file_open_rec){
		.open_flags = r.open_flags,
		.mode = r.mode,
		.ret = r.ret,
		.syscall = r.syscall,
		.path_truncated = r.flags & EKP_OPEN_PATH_TRUNCATED,
		.path = path,
		.path_len = (size_t)path_len,
	};
	return EKP_OK;
}

/* events.open_flag_names as an Avro array: access mode first, composite flags before their parts
 * (the table's order), unknown bits as one hex remainder ("0x40000000"). */
static void encode_open_flag_names(const struct ekp_encoder *e, uint64_t flags, struct ekp_out *o)
{
	size_t idx[EKP_OPEN_FLAG_NAMES_MAX], n = 0;
	uint64_t rest = flags & ~(uint64_t)e->open_accmode;
	for (size_t i = 0; i < e->n_open_flags; i++) {
		uint64_t v = e->open_flags[i].value;
		if (v && (rest & v) == v) {
			idx[n++] = i;
			rest &= ~v;
		}
	}
	ekp_long(o, (int64_t)(1 + n + (rest != 0)));
	ekp_put_blob(o, e->open_accmode_names[flags & e->open_accmode & 3]);
	for (size_t i = 0; i < n; i++)
		ekp_put_blob(o, e->open_flags[idx[i]].name);
	if (rest) {
		char hex[24];
		int k = snprintf(hex, sizeof(hex), "%#llx", (unsigned long long)rest);
		ekp_string(o, (const uint8_t *)hex, (size_t)k);
	}
	ekp_byte(o, 0); /* end of the array */
}

static bool encode_file_open(const struct ekp_encoder *e, const struct ekp_decoded *d, const struct ekp_cgroup *cg,
			     struct ekp_out *o)
{
	const struct ekp_file_open_rec *r = &d->u.open;
	encode_common(e, &d->c, cg, o);
	ekp_put_blob(o, e->open_syscalls[r->syscall]);
	bool escaped = ekp_clean_string(o, r->path, r->path_len) | d->c.escaped;
	ekp_bool(o, r->path_truncated);
	ekp_long(o, (int64_t)r->open_flags);
	encode_open_flag_names(e, r->open_flags, o);
	ekp_opt_long(o, (r->open_flags & e->open_creates) != 0, r->mode);
	if (r->ret >= 0) { /* fd, errno, error */
		ekp_opt_long(o, true, r->ret);
		ekp_byte(o, EKP_NULL);
		ekp_byte(o, EKP_NULL);
	} else {
		ekp_byte(o, EKP_NULL);
		ekp_opt_long(o, true, -(int64_t)r->ret);
		ekp_put_blob(o, e->open_errors[-r->ret]);
	}
	ekp_bool(o, escaped);
	encode_tail(e, &d->c, cg, o);
	return escaped;
}

/* ---- the table ----------------------------------------------------------------------------------- */

static const struct ekp_type TYPES[] = {
	{"file_open", EKP_EVENT_FILE_OPEN, decode_file_open, encode_file_open},
};

const struct ekp_type *ekp_type_of(uint32_t type_id)
{
	for (size_t i = 0; i < sizeof(TYPES) / sizeof(TYPES[0]); i++)
		if (TYPES[i].type_id == type_id)
			return &TYPES[i];
	return NULL;
}

int ekp_encode_record(struct ekp_encoder *e, const struct ekp_type *t, const uint8_t *raw, size_t len,
		      uint32_t cpu, uint64_t now_ns, struct ekp_out *o, unsigned *flags, uint64_t *cgroup_id)
{
	struct ekp_decoded d;
	struct ekp_cgroup cg;
	*flags = 0;
	int rc = t->decode(e, raw, len, cpu, &d);
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

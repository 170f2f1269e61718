/* SPDX-License-Identifier: Apache-2.0 */
/*
 * What the event families' decoders and encoders (records_*.c) share: the common fields
 * (records.c) and small helpers. Internal to the records code; the rest of the native side
 * sees records.h only.
 */
#ifndef EKP_FAMILY_H
#define EKP_FAMILY_H

#include "records.h"

#define EKP_INT64_MAX_U ((uint64_t)INT64_MAX)
/* the fixed part of a record that ends with `member`, as its Python mirror's struct size */
#define EKP_END(type, member) (offsetof(struct type, member) + sizeof(((struct type *)0)->member))

/* Each family's rows of TYPES (records.c). */
extern const struct ekp_type ekp_type_process_exec;
extern const struct ekp_type ekp_type_file_open;
extern const struct ekp_type ekp_type_process_exit;
extern const struct ekp_type ekp_type_process_fork;
extern const struct ekp_type ekp_type_tcp_connect;
extern const struct ekp_type ekp_type_tcp_accept;
extern const struct ekp_type ekp_type_tcp_close;

/*
 * common.parse_common: `fixed` is the record type's size without its variable tail;
 * `owner_may_be_unknown`: the tcp family's, whose socket's process may not have been seen.
 */
int ekp_decode_common(const struct ekp_encoder *e, const uint8_t *raw, size_t len, size_t fixed, uint32_t type_id,
		      uint32_t cpu, bool owner_may_be_unknown, struct ekp_common *c);

/*
 * avro.common: timestamp .. cgroup_id, then the cgroup's container_id. `nullable`: the tcp
 * schemas' process fields, unions with null (avro.common(nullable=True)).
 */
void ekp_encode_common(const struct ekp_encoder *e, const struct ekp_common *c, const struct ekp_cgroup *cg,
		       bool nullable, struct ekp_out *o);

/* avro.tail: process_id, parent_process_id and k8s, the fields every process record ends with */
void ekp_encode_tail(const struct ekp_encoder *e, const struct ekp_common *c, const struct ekp_cgroup *cg,
		     struct ekp_out *o);

/* avro.opt_id: identity.process_id "<boot>-<start as hex>-<pid>" as an optional string */
void ekp_encode_id(const struct ekp_encoder *e, bool known, uint64_t start_ns, uint32_t pid, struct ekp_out *o);

/* floor((boot_ns + offset) / 1000), as Python's // (the offset may be negative) */
int64_t ekp_micros(uint64_t boot_ns, int64_t offset);

/* Length of the C string in a fixed field, or -1 if it has no NUL (common.cstr). */
static inline long ekp_cstr_len(const uint8_t *b, size_t n)
{
	const uint8_t *nul = memchr(b, 0, n);
	return nul ? (long)(nul - b) : -1;
}

/* Whether b is valid UTF-8 (clean_utf8 would leave it as it is). */
static inline bool ekp_utf8_clean(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n;) {
		size_t len = ekp_utf8_seq(b + i, n - i);
		if (!len)
			return false;
		i += len;
	}
	return true;
}

#endif /* EKP_FAMILY_H */

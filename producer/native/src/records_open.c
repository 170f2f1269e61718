/* SPDX-License-Identifier: Apache-2.0 */
/*
 * file_open: the decoder mirrors producer/records/file_open.py parse, the encoder its fast
 * `encoder`, field by field in schema order.
 */
#include "family.h"

#include <stdio.h>
#include <string.h>

#define EKP_OPEN_MODE_MAX 07777U
#define EKP_OPEN_RET_MIN (-4095)

#define OPEN_FIXED offsetof(struct ekp_file_open, path)

static int decode_file_open(const struct ekp_encoder *e, uint32_t type_id, const uint8_t *raw, size_t len,
			    uint32_t cpu, struct ekp_decoded *d)
{
	int rc = ekp_decode_common(e, raw, len, OPEN_FIXED, type_id, cpu, false, &d->c);
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
	long path_len = ekp_cstr_len(path, r.path_size);
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
	ekp_encode_common(e, &d->c, cg, false, o);
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
	ekp_encode_tail(e, &d->c, cg, o);
	return escaped;
}

const struct ekp_type ekp_type_file_open = {"file_open", EKP_EVENT_FILE_OPEN, decode_file_open, encode_file_open};

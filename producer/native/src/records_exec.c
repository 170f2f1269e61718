/* SPDX-License-Identifier: Apache-2.0 */
/*
 * process_exec: the decoder mirrors producer/records/process_exec.py parse_exec, the encoder
 * exec_encoder, field by field in the schema's order. Its bounds (max_args, max_arg_len,
 * include_failed) are the reader's, from the tables: the BPF program was built with them
 * (process_exec.exec_cflags), and parse_exec rejects what lies beyond them. Inline ancestors need the kernel's process table
 * read per record, which stays in Python: the native plane is not chosen with them
 * (producer/native/__init__.py gaps), and the field is always null here, as on the Python path
 * without a process table.
 */
#include "family.h"

#include <string.h>

/* the record without its arguments: process_exec.EXEC's struct size */
#define EXEC_SIZE offsetof(struct ekp_process_exec, args)

/* a field of the record, read from its (4-byte aligned) raw bytes */
#define EXEC_FIELD(raw, member, dst)                                                                        \
	memcpy(&(dst), (raw) + offsetof(struct ekp_process_exec, member),                                  \
	       sizeof(((struct ekp_process_exec *)0)->member))

/*
 * The arguments: args_size bytes of argc strings, each NUL-terminated, each shorter than
 * max_arg_len (parse_exec's split of all but the last NUL). Sets *escaped if one is not UTF-8.
 */
static int check_args(const struct ekp_encoder *e, const uint8_t *args, size_t size, size_t argc, bool *escaped)
{
	size_t n = 0;
	if (size == 0)
		return argc == 0 ? EKP_OK : EKP_DECODE_ERROR;
	if (args[size - 1] != 0)
		return EKP_DECODE_ERROR;
	for (const uint8_t *p = args, *end = args + size; p < end; n++) {
		size_t len = (size_t)((const uint8_t *)memchr(p, 0, (size_t)(end - p)) - p);
		if (len >= e->exec_max_arg_len)
			return EKP_DECODE_ERROR;
		*escaped |= !ekp_utf8_clean(p, len);
		p += len + 1;
	}
	return n == argc ? EKP_OK : EKP_DECODE_ERROR;
}

/* A C string of a fixed field (common.cstr): -1 without its NUL. */
static long exec_cstr(const uint8_t *raw, size_t off, size_t size, bool *escaped)
{
	long n = ekp_cstr_len(raw + off, size);
	if (n > 0)
		*escaped |= !ekp_utf8_clean(raw + off, (size_t)n);
	return n;
}

static int decode_process_exec(const struct ekp_encoder *e, uint32_t type_id, const uint8_t *raw, size_t len,
			       uint32_t cpu, struct ekp_decoded *d)
{
	int rc = ekp_decode_common(e, raw, len, EXEC_SIZE, type_id, cpu, false, &d->c);
	if (rc != EKP_OK)
		return rc;
	__u64 prev;
	__s32 retval;
	__u32 flags;
	__u16 argc, args_size;
	EXEC_FIELD(raw, prev_start_ns, prev);
	EXEC_FIELD(raw, retval, retval);
	EXEC_FIELD(raw, flags, flags);
	EXEC_FIELD(raw, args_count, argc);
	EXEC_FIELD(raw, args_size, args_size);
	bool prev_known = flags & EKP_EXEC_PREV_KNOWN, parent_known = flags & EKP_EXEC_PARENT_KNOWN;
	if (flags & ~EKP_EXEC_FLAGS_ALL)
		return EKP_DECODE_ERROR;
	/* the replaced image started before this one, which needs a known start */
	if (prev_known && (!d->c.start_known || prev == 0 || prev >= d->c.start_ns))
		return EKP_DECODE_ERROR;
	/* a failed exec passes the kernel's filter only with include_failed; none returns > 0 */
	if (retval > 0 || (retval < 0 && !e->exec_include_failed))
		return EKP_DECODE_ERROR;
	if (argc > e->exec_max_args || args_size > (uint64_t)e->exec_max_args * e->exec_max_arg_len)
		return EKP_DECODE_ERROR;
	if (args_size > len - EXEC_SIZE) /* len >= EXEC_SIZE: decode_common checked it */
		return EKP_DECODE_ERROR;
	struct ekp_process_exec_rec *r = &d->u.exec;
	*r = (struct ekp_process_exec_rec){
		.prev_start_ns = prev,
		.retval = retval,
		.argc = argc,
		.argv_truncated = flags & (EKP_EXEC_ARGV_TRUNCATED | EKP_EXEC_ARG_TRUNCATED),
		.filename_truncated = flags & EKP_EXEC_FILENAME_TRUNCATED,
		.argv_missing = flags & EKP_EXEC_ARGV_MISSING,
		.prev_known = prev_known,
		.filename = raw + offsetof(struct ekp_process_exec, filename),
		.args = raw + EXEC_SIZE,
	};
	if (check_args(e, r->args, args_size, argc, &r->escaped) != EKP_OK)
		return EKP_DECODE_ERROR;
	long n = exec_cstr(raw, offsetof(struct ekp_process_exec, filename), EKP_PATH_LEN, &r->escaped);
	if (n < 0)
		return EKP_DECODE_ERROR;
	r->filename_len = (size_t)n;
	/* the parent's names are not read unless known; then "" is null */
	if (parent_known) {
		n = exec_cstr(raw, offsetof(struct ekp_process_exec, parent_filename), EKP_PATH_LEN, &r->escaped);
		long m = exec_cstr(raw, offsetof(struct ekp_process_exec, parent_comm), EKP_COMM_LEN, &r->escaped);
		if (n < 0 || m < 0)
			return EKP_DECODE_ERROR;
		r->parent_filename = raw + offsetof(struct ekp_process_exec, parent_filename);
		r->parent_filename_len = (size_t)n;
		r->parent_comm = raw + offsetof(struct ekp_process_exec, parent_comm);
		r->parent_comm_len = (size_t)m;
	}
	return EKP_OK;
}

/* opt_string of a name that may be "" (not known: null) */
static void encode_name(const uint8_t *b, size_t n, struct ekp_out *o)
{
	if (n == 0) {
		ekp_byte(o, EKP_NULL);
		return;
	}
	ekp_byte(o, EKP_BRANCH1);
	ekp_clean_string(o, b, n);
}

static bool encode_process_exec(const struct ekp_encoder *e, const struct ekp_decoded *d,
				const struct ekp_cgroup *cg, struct ekp_out *o)
{
	const struct ekp_common *c = &d->c;
	const struct ekp_process_exec_rec *r = &d->u.exec;
	/* written before the parent's names: decode found them all */
	bool escaped = c->escaped || r->escaped;
	/* process_exec keeps its v1 field order: not avro.common's; tid and container_id come later */
	ekp_long(o, ekp_micros(c->boot_ns, e->boot_to_wall_ns));
	ekp_long(o, (int64_t)c->boot_ns);
	ekp_put_blob(o, e->host_boot);
	ekp_long(o, c->cpu);
	ekp_long(o, (int64_t)c->seq);
	ekp_long(o, c->pid);
	ekp_opt_long(o, c->ppid_known, c->ppid);
	ekp_long(o, c->uid);
	ekp_long(o, c->gid);
	ekp_clean_string(o, c->comm, c->comm_len);
	ekp_clean_string(o, r->filename, r->filename_len);
	if (r->argc) { /* argv: one block of argc strings, then the end block */
		const uint8_t *p = r->args;
		ekp_long(o, r->argc);
		for (unsigned int i = 0; i < r->argc; i++) {
			size_t len = strlen((const char *)p); /* decode found each one's NUL */
			ekp_clean_string(o, p, len);
			p += len + 1;
		}
	}
	ekp_byte(o, 0); /* argv's end block: all of an empty argv */
	ekp_bool(o, r->argv_truncated);
	ekp_bool(o, r->filename_truncated);
	ekp_bool(o, r->argv_missing);
	ekp_bool(o, escaped);
	ekp_long(o, r->retval);
	ekp_long(o, (int64_t)c->cgroup_id);
	ekp_opt_long(o, true, c->tid);
	ekp_put_blob(o, cg->container);
	ekp_encode_tail(e, c, cg, o);
	ekp_encode_id(e, r->prev_known, r->prev_start_ns, c->pid, o); /* previous_process_id */
	encode_name(r->parent_filename, r->parent_filename_len, o);
	encode_name(r->parent_comm, r->parent_comm_len, o);
	ekp_byte(o, EKP_NULL); /* ancestors: not native (see the top) */
	return escaped;
}

const struct ekp_type ekp_type_process_exec = {"process_exec", EKP_EVENT_PROCESS_EXEC, decode_process_exec,
					       encode_process_exec};

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * process_exit and process_fork: the decoders mirror producer/records/process.py parse_exit
 * and parse_fork, the encoders exit_encoder and fork_encoder, field by field in schema order.
 */
#include "family.h"

#include <string.h>

#define EXIT_SIZE EKP_END(ekp_process_exit, filename)
#define FORK_SIZE EKP_END(ekp_process_fork, filename)
#define EXIT_CODE_MAX 255 /* the status exit_group() keeps: its low 8 bits */

/* ---- process_exit -------------------------------------------------------------------------------- */

static int decode_process_exit(const struct ekp_encoder *e, uint32_t type_id, const uint8_t *raw, size_t len,
			       uint32_t cpu, struct ekp_decoded *d)
{
	int rc = ekp_decode_common(e, raw, len, EXIT_SIZE, type_id, cpu, false, &d->c);
	if (rc != EKP_OK)
		return rc;
	struct ekp_process_exit r;
	memcpy(&r, raw, EXIT_SIZE);
	bool code = r.flags & EKP_EXIT_CODE_KNOWN, sig = r.flags & EKP_EXIT_SIGNALED;
	bool start = r.flags & EKP_EXIT_START_KNOWN;
	/* an exit is either a status or a signal, never both */
	if ((r.flags & ~EKP_EXIT_FLAGS_ALL) || (code && sig))
		return EKP_DECODE_ERROR;
	if (code && (r.exit_code < 0 || r.exit_code > EXIT_CODE_MAX))
		return EKP_DECODE_ERROR;
	if (sig && (r.signal < 1 || r.signal > EKP_SIGNAL_MAX))
		return EKP_DECODE_ERROR;
	if (start && r.fork_ns > d->c.boot_ns) /* it started after it exited */
		return EKP_DECODE_ERROR;
	const uint8_t *filename = raw + offsetof(struct ekp_process_exit, filename);
	long filename_len = ekp_cstr_len(filename, sizeof(r.filename));
	if (filename_len < 0)
		return EKP_DECODE_ERROR;
	d->u.exit = (struct ekp_process_exit_rec){
		.fork_ns = r.fork_ns,
		.exit_code = r.exit_code,
		.signal = r.signal,
		.code_known = code,
		.signaled = sig,
		.start_known = start,
		/* strings_escaped is written before the filename: known here */
		.filename_escaped = !ekp_utf8_clean(filename, (size_t)filename_len),
		.filename = filename,
		.filename_len = (size_t)filename_len,
	};
	return EKP_OK;
}

static bool encode_process_exit(const struct ekp_encoder *e, const struct ekp_decoded *d,
				const struct ekp_cgroup *cg, struct ekp_out *o)
{
	const struct ekp_process_exit_rec *r = &d->u.exit;
	bool escaped = d->c.escaped || r->filename_escaped;
	ekp_encode_common(e, &d->c, cg, false, o);
	ekp_opt_long(o, r->code_known, r->exit_code);
	ekp_opt_long(o, r->signaled, r->signal);
	if (r->signaled) /* signal_name: null for a number without a name, as Python's */
		ekp_put_blob(o, e->signal_names[r->signal]);
	else
		ekp_byte(o, EKP_NULL);
	if (r->start_known) { /* start_time, lifetime_ns */
		ekp_opt_long(o, true, ekp_micros(r->fork_ns, e->boot_to_wall_ns));
		ekp_opt_long(o, true, (int64_t)(d->c.boot_ns - r->fork_ns));
	} else {
		ekp_byte(o, EKP_NULL);
		ekp_byte(o, EKP_NULL);
	}
	ekp_bool(o, escaped);
	ekp_encode_tail(e, &d->c, cg, o);
	/* in the schema, filename follows the tail */
	if (r->filename_len) {
		ekp_byte(o, EKP_BRANCH1);
		ekp_clean_string(o, r->filename, r->filename_len);
	} else {
		ekp_byte(o, EKP_NULL);
	}
	return escaped;
}

/* ---- process_fork -------------------------------------------------------------------------------- */

static int decode_process_fork(const struct ekp_encoder *e, uint32_t type_id, const uint8_t *raw, size_t len,
			       uint32_t cpu, struct ekp_decoded *d)
{
	int rc = ekp_decode_common(e, raw, len, FORK_SIZE, type_id, cpu, false, &d->c);
	if (rc != EKP_OK)
		return rc;
	struct ekp_process_fork r;
	memcpy(&r, raw, FORK_SIZE);
	bool tracked = !(r.flags & EKP_FORK_UNTRACKED);
	if (r.child_pid == 0 || r.child_pid > e->pid_max || (r.flags & ~EKP_FORK_FLAGS_ALL))
		return EKP_DECODE_ERROR;
	/* the child's image starts at its fork, before the record */
	if (tracked && (r.child_start_ns == 0 || r.child_start_ns > d->c.boot_ns))
		return EKP_DECODE_ERROR;
	/* the filename is not in the stream (the processes topic has it), but parse_fork checks it */
	if (ekp_cstr_len((const uint8_t *)r.filename, sizeof(r.filename)) < 0)
		return EKP_DECODE_ERROR;
	d->u.fork = (struct ekp_process_fork_rec){
		.child_start_ns = r.child_start_ns,
		.child_pid = r.child_pid,
		.child_known = tracked,
	};
	return EKP_OK;
}

static bool encode_process_fork(const struct ekp_encoder *e, const struct ekp_decoded *d,
				const struct ekp_cgroup *cg, struct ekp_out *o)
{
	const struct ekp_process_fork_rec *r = &d->u.fork;
	ekp_encode_common(e, &d->c, cg, false, o);
	ekp_long(o, r->child_pid);
	ekp_bool(o, d->c.escaped); /* comm alone: fork_encoder does not write the filename */
	ekp_encode_tail(e, &d->c, cg, o);
	ekp_encode_id(e, r->child_known, r->child_start_ns, r->child_pid, o); /* child_process_id */
	return d->c.escaped;
}

const struct ekp_type ekp_type_process_exit = {"process_exit", EKP_EVENT_PROCESS_EXIT, decode_process_exit,
					       encode_process_exit};
const struct ekp_type ekp_type_process_fork = {"process_fork", EKP_EVENT_PROCESS_FORK, decode_process_fork,
					       encode_process_fork};

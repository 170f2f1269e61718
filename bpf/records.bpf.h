/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Map-free helpers that fill records from user memory and tracepoint
 * arguments, and the filter predicates. Kept out of collector.bpf.c so that
 * file reads as the list of programs; map lookups stay there (BCC rewrites
 * map calls only in the main file).
 */
#ifndef EKP_RECORDS_BPF_H
#define EKP_RECORDS_BPF_H

#include "events.h"

/* A filter list hit `v` (NULL: not listed) excludes the task if it denies, or if an allow list exists and misses. */
static __always_inline int ekp_list_excludes(__u8 *v, __u32 allow_list_active)
{
	if (v)
		return *v == EKP_FILTER_DENY;
	return allow_list_active != 0;
}

static __always_inline int ekp_signal_default_is_fatal(__u32 sig)
{
	/* Default action ignore or stop: CHLD, CONT, STOP, TSTP, TTIN, TTOU, URG, WINCH. */
	switch (sig) {
	case 17: case 18: case 19: case 20: case 21: case 22: case 23: case 28:
		return 0;
	}
	return sig >= 1 && sig <= 64;
}

static __always_inline void ekp_exec_read_argv(struct ekp_process_exec *e, const char *const *argv)
{
	const char *arg = NULL;

	/*
	 * The running offset is kept in the record (map memory), not in a local:
	 * the verifier then sees the same state each iteration and prunes, where
	 * a tracked local makes every iteration distinct and blows its 1M budget.
	 */
	for (int i = 0; i < EKP_MAX_ARGS; i++) {
		if (bpf_probe_read_user(&arg, sizeof(arg), &argv[i]) || !arg)
			return;
		__u32 off = e->args_size;
		if (off > EKP_ARGS_BUF - EKP_MAX_ARG_LEN)
			return;
		int len = bpf_probe_read_user_str(&e->args[off], EKP_MAX_ARG_LEN, arg);
		if (len <= 0)
			return;
		if (len == EKP_MAX_ARG_LEN)
			e->flags |= EKP_EXEC_ARG_TRUNCATED;
		e->args_size = off + len;
		e->args_count++;
	}
	if (!bpf_probe_read_user(&arg, sizeof(arg), &argv[EKP_MAX_ARGS]) && arg)
		e->flags |= EKP_EXEC_ARGV_TRUNCATED;
}

/* Syscall entry: the filename and argv, while they are still the caller's memory. */
static __always_inline void ekp_exec_copy_user(struct ekp_process_exec *e, const char *filename,
					       const char *const *argv)
{
	e->flags = 0;
	e->args_count = 0;
	e->args_size = 0;
	int n = bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename);
	if (n < 0)
		e->filename[0] = 0;
	else if (n == sizeof(e->filename))
		e->flags |= EKP_EXEC_FILENAME_TRUNCATED;
	ekp_exec_read_argv(e, argv);
}

/* An exec whose entry was not seen: everything but what the exit can tell is missing. */
static __always_inline void ekp_exec_missing(struct ekp_process_exec *e)
{
	e->flags = EKP_EXEC_ARGV_MISSING;
	e->args_count = 0;
	e->args_size = 0;
	e->filename[0] = 0;
}

static __always_inline void ekp_copy_path(struct ekp_file_open *e, const char *path)
{
	int n = bpf_probe_read_user_str(e->path, sizeof(e->path), path);

	e->flags = 0;
	if (n <= 0) {
		e->path[0] = 0;
		n = 1;
	} else if (n == sizeof(e->path)) {
		e->flags |= EKP_OPEN_PATH_TRUNCATED;
	}
	e->path_size = n;
}

#endif /* EKP_RECORDS_BPF_H */

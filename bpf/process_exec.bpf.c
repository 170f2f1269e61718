/* SPDX-License-Identifier: Apache-2.0 */
/*
 * process_exec: one record per successful execve/execveat (and per failed one
 * when EKP_EXEC_INCLUDE_FAILED=1). A BPF module of its own: the loader
 * compiles it with -I bpf/ and -D parameters (`ebpf-producer print-bpf`
 * shows the exact flags).
 *
 * Rule for this tree: the kernel headers BCC compiles against are not the
 * running kernel's, so nothing here dereferences a kernel struct. Data comes
 * from tracepoint arguments, BPF helpers and our own maps.
 *
 * argv and the filename live in the caller's memory only until the exec
 * succeeds, so they are copied on syscall entry into a stash keyed by tgid
 * (stable across exec, unlike the tid of a non-leader thread), and the record
 * is completed and submitted on syscall exit, when comm and credentials are
 * the new program's and the return value is known.
 *
 * ppid comes from our own map filled by sched_process_fork (and seeded from
 * /proc by the loader), because reading the parent from the task itself would need the
 * running kernel's struct layout, which these headers do not have.
 */

#include <uapi/linux/ptrace.h>
#include "ledger.bpf.h"

#ifndef EKP_EXEC_INCLUDE_FAILED
#define EKP_EXEC_INCLUDE_FAILED 0
#endif
#ifndef EKP_EXEC_INFLIGHT
#define EKP_EXEC_INFLIGHT 1024
#endif
#ifndef EKP_PARENTS_MAX
#define EKP_PARENTS_MAX 65536
#endif

BPF_PERF_OUTPUT(ekp_events_process_exec);
/* LRU: an exec whose exit is never seen (task killed mid-exec) must not leak. */
BPF_TABLE("lru_hash", __u32, struct ekp_process_exec, ekp_exec_stash, EKP_EXEC_INFLIGHT);
/* Records are bigger than the 512-byte BPF stack. */
BPF_PERCPU_ARRAY(ekp_exec_scratch, struct ekp_process_exec, 1);
BPF_TABLE("lru_hash", __u32, __u32, ekp_parents, EKP_PARENTS_MAX);
/* Never read: gives the loader the compiler's layout of the record. */
BPF_ARRAY(ekp_layout_process_exec, struct ekp_process_exec, 1);

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

static __always_inline int ekp_exec_enter(const char *filename, const char *const *argv)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	struct ekp_process_exec *e = ekp_exec_scratch.lookup(&zero);

	if (!e)
		return 0;
	e->flags = 0;
	e->args_count = 0;
	e->args_size = 0;
	int n = bpf_probe_read_user_str(e->filename, sizeof(e->filename), filename);
	if (n < 0)
		e->filename[0] = 0;
	else if (n == sizeof(e->filename))
		e->flags |= EKP_EXEC_FILENAME_TRUNCATED;
	ekp_exec_read_argv(e, argv);
	ekp_exec_stash.update(&tgid, e);
	return 0;
}

static __always_inline int ekp_exec_exit(void *ctx, long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	__u32 type = EKP_EVENT_PROCESS_EXEC;
	struct ekp_counters *c = ekp_counters.lookup(&type);
	struct ekp_process_exec *e = ekp_exec_stash.lookup(&tgid);

	if (!c)
		return 0;
	if (ret < 0 && !EKP_EXEC_INCLUDE_FAILED) {
		if (e)
			ekp_exec_stash.delete(&tgid);
		ekp_count_filtered(c);
		return 0;
	}
	if (!e) {
		e = ekp_exec_scratch.lookup(&zero);
		if (!e)
			return 0;
		e->flags = EKP_EXEC_ARGV_MISSING;
		e->args_count = 0;
		e->args_size = 0;
		e->filename[0] = 0;
	}

	__u64 ugid = bpf_get_current_uid_gid();
	__u32 *ppid = ekp_parents.lookup(&tgid);

	e->pid = tgid;
	if (ppid) {
		e->ppid = *ppid;
	} else {
		e->ppid = 0;
		e->flags |= EKP_EXEC_PPID_UNKNOWN;
	}
	e->uid = (__u32)ugid;
	e->gid = ugid >> 32;
	e->retval = (__s32)ret;
	e->cgroup_id = bpf_get_current_cgroup_id();
	bpf_get_current_comm(e->comm, sizeof(e->comm));

	ekp_stamp(&e->hdr, c, type);
	__u32 size = offsetof(struct ekp_process_exec, args) + e->args_size;
	if (size > sizeof(*e))
		size = sizeof(*e);
	ekp_count_submit(c, ekp_events_process_exec.perf_submit(ctx, e, size));
	ekp_exec_stash.delete(&tgid);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_execve)
{
	return ekp_exec_enter(args->filename, args->argv);
}

TRACEPOINT_PROBE(syscalls, sys_enter_execveat)
{
	return ekp_exec_enter(args->filename, args->argv);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execve)
{
	return ekp_exec_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_exit_execveat)
{
	return ekp_exec_exit(args, args->ret);
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
	/* Runs in the parent: its tgid is the child's parent process. */
	__u32 parent = bpf_get_current_pid_tgid() >> 32;
	__u32 child = args->child_pid;

	ekp_parents.update(&child, &parent);
	return 0;
}

TRACEPOINT_PROBE(sched, sched_process_exit)
{
	/* Threads get an entry from sched_process_fork too; drop it. Leaders age out of the LRU. */
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;

	if (tid != (__u32)(id >> 32))
		ekp_parents.delete(&tid);
	return 0;
}

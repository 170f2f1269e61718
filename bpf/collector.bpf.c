/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The collector's BPF programs: one module, so that the event families share
 * the ledger counters, the filters and what the process family learns
 * (parents, start times) with the others. The loader compiles it once with
 * -I bpf/ and -D parameters (`ebpf-producer print-bpf` shows them); each
 * event type is compiled in only when enabled (EKP_ENABLE_<TYPE>=1).
 *
 * Why one file: BCC generates tracepoint argument structs and rewrites map
 * calls (map.lookup(...)) only in a module's main file, never in headers or
 * macros. Headers therefore hold the record layouts (events.h) and the
 * map-free helpers (ledger.bpf.h); every map call is here.
 *
 * Rule for this tree: the kernel headers BCC compiles against are not the
 * running kernel's, so nothing here dereferences a kernel struct. Data comes
 * from tracepoint arguments, BPF helpers, user memory and our own maps.
 */
#include <uapi/linux/ptrace.h>
#include "ledger.bpf.h"

#ifndef EKP_PROCS_MAX
#define EKP_PROCS_MAX 32768
#endif
#ifndef EKP_INFLIGHT
#define EKP_INFLIGHT 1024
#endif
#ifndef EKP_SOCKETS_MAX
#define EKP_SOCKETS_MAX 16384
#endif
#ifndef EKP_SYSCALL_KEYS
#define EKP_SYSCALL_KEYS 65536
#endif

#define EKP_CLONE_THREAD 0x00010000ULL
#define EKP_IPPROTO_TCP 6
#define EKP_TCP_ESTABLISHED 1
#define EKP_TCP_SYN_SENT 2
#define EKP_TCP_SYN_RECV 3
#define EKP_TCP_CLOSE 7
#define EKP_TCP_LISTEN 10

/* ---- shared state --------------------------------------------------------------------------- */

/*
 * The process table, tgid -> struct ekp_proc: identity, parent and program of every live process, fed by
 * fork, exec and exit and seeded from /proc by the loader. A plain hash, not an LRU: an LRU would evict
 * the longest-lived processes (init, daemons), whose identities every descendant's lineage needs. When it
 * is full a new process is not tracked, counted as `untracked`, and its records say their identity is
 * unknown (EKP_TASK_PROC_UNKNOWN) rather than guess.
 */
BPF_HASH(ekp_procs, __u32, struct ekp_proc, EKP_PROCS_MAX);
/* Records are bigger than the 512-byte BPF stack: built here, one slot per CPU. */
BPF_PERCPU_ARRAY(ekp_scratch_exec, struct ekp_process_exec, 1);
BPF_PERCPU_ARRAY(ekp_scratch_exit, struct ekp_process_exit, 1);
BPF_PERCPU_ARRAY(ekp_scratch_fork, struct ekp_process_fork, 1);
BPF_PERCPU_ARRAY(ekp_scratch_proc, struct ekp_proc, 1);

BPF_ARRAY(ekp_filter_cfg, struct ekp_filter_config, 1);
BPF_HASH(ekp_filter_comm, struct ekp_comm_key, __u8, EKP_FILTER_COMM_MAX);
BPF_HASH(ekp_filter_uid, __u32, __u8, EKP_FILTER_UID_MAX);
BPF_HASH(ekp_filter_pid, __u32, __u8, EKP_FILTER_PID_MAX);
BPF_HASH(ekp_filter_cgroup, __u64, __u8, EKP_FILTER_CGROUP_MAX);
/* file_open path prefixes: the distinct prefix lengths, and (length, bytes) -> allow/deny. */
BPF_ARRAY(ekp_filter_prefix_len, __u32, EKP_PREFIXES);
BPF_HASH(ekp_filter_prefix, struct ekp_prefix, __u8, EKP_FILTER_PREFIX_MAX);

/* Never read: give the loader the compiler's layout of every record. */
BPF_ARRAY(ekp_layout_process_exec, struct ekp_process_exec, 1);
BPF_ARRAY(ekp_layout_process_exit, struct ekp_process_exit, 1);
BPF_ARRAY(ekp_layout_process_fork, struct ekp_process_fork, 1);
BPF_ARRAY(ekp_layout_file_open, struct ekp_file_open, 1);
BPF_ARRAY(ekp_layout_tcp, struct ekp_tcp, 1);
BPF_ARRAY(ekp_layout_proc, struct ekp_proc, 1);

static __always_inline struct ekp_counters *ekp_counters_of(__u32 type)
{
	return ekp_counters.lookup(&type);
}

/* The current task's common fields, its identity from the process table. */
static __always_inline void ekp_task_current(struct ekp_task *t)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u64 ugid = bpf_get_current_uid_gid();
	__u32 tgid = id >> 32;
	struct ekp_proc *p = ekp_procs.lookup(&tgid);

	t->pid = tgid;
	t->tid = (__u32)id;
	t->uid = (__u32)ugid;
	t->gid = ugid >> 32;
	t->cgroup_id = bpf_get_current_cgroup_id();
	if (p) {
		t->start_ns = p->start_ns;
		t->parent_start_ns = p->parent_start_ns;
		t->ppid = p->ppid;
		t->flags = (p->flags & EKP_PROC_PARENT_UNKNOWN ? EKP_TASK_PARENT_UNKNOWN : 0) |
			   (p->flags & EKP_PROC_PPID_UNKNOWN ? EKP_TASK_PPID_UNKNOWN : 0);
	} else {
		t->start_ns = 0;
		t->parent_start_ns = 0;
		t->ppid = 0;
		t->flags = EKP_TASK_PROC_UNKNOWN | EKP_TASK_PARENT_UNKNOWN | EKP_TASK_PPID_UNKNOWN;
	}
	bpf_get_current_comm(t->comm, sizeof(t->comm));
}

/* ==== processes: a second submission of exec, fork and exit records, keyed by identity =========== */
#ifndef EKP_PROC_RING_PAGES
#define EKP_PROC_RING_PAGES 256
#endif
#if EKP_ENABLE_PROCESSES
/*
 * One ring for every CPU, not a perf buffer per CPU: the entries of one image (fork, exec, exit) must
 * reach Kafka in the order they happened, and they may happen on different CPUs. A BPF ring buffer
 * keeps the kernel's order across CPUs; one reader consumes it.
 */
BPF_RINGBUF_OUTPUT(ekp_events_processes, EKP_PROC_RING_PAGES);
#endif

/* Submit `rec` (whose header is `h`) again as a processes record made from event type `source`. */
static __always_inline void ekp_processes_view(void *ctx, struct ekp_header *h, void *rec, __u32 size,
					       __u32 source)
{
#if EKP_ENABLE_PROCESSES
	struct ekp_counters *c = ekp_counters_of(EKP_EVENT_PROCESSES);

	if (!c)
		return;
	ekp_stamp(h, c, EKP_EVENT_PROCESSES | source << EKP_VIEW_SHIFT);
	ekp_count_submit(c, ekp_events_processes.ringbuf_output(rec, size, 0));
#endif
}

/* A record filtered out: counted as filtered for its event type and for its processes view. */
static __always_inline void ekp_count_filtered_view(struct ekp_counters *c)
{
	ekp_count_filtered(c);
#if EKP_ENABLE_PROCESSES
	struct ekp_counters *pc = ekp_counters_of(EKP_EVENT_PROCESSES);

	if (pc)
		ekp_count_filtered(pc);
#endif
}

static __always_inline void ekp_count_untracked(void)
{
	struct ekp_counters *c = ekp_counters_of(EKP_EVENT_PROCESSES);

	if (c)
		__sync_fetch_and_add(&c->untracked, 1);
}

/* 1 if the task is excluded by the configured filters (deny lists win over allow lists). */
static __always_inline int ekp_filtered(struct ekp_task *t)
{
	__u32 zero = 0;
	struct ekp_filter_config *cfg = ekp_filter_cfg.lookup(&zero);
	struct ekp_comm_key comm = {};
	__u8 *v;

	if (!cfg)
		return 0;
	__builtin_memcpy(comm.comm, t->comm, sizeof(comm.comm));
	v = ekp_filter_comm.lookup(&comm);
	if (ekp_list_excludes(v, cfg->flags & EKP_FILTER_COMM_ALLOW))
		return 1;
	v = ekp_filter_uid.lookup(&t->uid);
	if (ekp_list_excludes(v, cfg->flags & EKP_FILTER_UID_ALLOW))
		return 1;
	v = ekp_filter_pid.lookup(&t->pid);
	if (ekp_list_excludes(v, cfg->flags & EKP_FILTER_PID_ALLOW))
		return 1;
	v = ekp_filter_cgroup.lookup(&t->cgroup_id);
	return ekp_list_excludes(v, cfg->flags & EKP_FILTER_CGROUP_ALLOW);
}

/* ==== process_exec (and identity: every exec starts a new image) ============================ */
#ifndef EKP_EXEC_INCLUDE_FAILED
#define EKP_EXEC_INCLUDE_FAILED 0
#endif

#if EKP_ENABLE_PROCESS_EXEC
BPF_PERF_OUTPUT(ekp_events_process_exec);
#endif
/*
 * argv and the filename live in the caller's memory only until the exec
 * succeeds, so they are copied on syscall entry into a stash keyed by tgid
 * (stable across exec, unlike the tid of a non-leader thread) and the record
 * is completed on syscall exit, when comm and credentials are the new
 * program's. LRU: an exec whose exit is never seen (task killed) must not leak.
 * Always compiled: the process table needs every exec's program, whichever
 * event types are enabled.
 */
BPF_TABLE("lru_hash", __u32, struct ekp_process_exec, ekp_exec_stash, EKP_INFLIGHT);

static __always_inline int ekp_exec_enter(const char *filename, const char *const *argv)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	struct ekp_process_exec *e = ekp_scratch_exec.lookup(&zero);

	if (!e)
		return 0;
	ekp_exec_copy_user(e, filename, argv);
	ekp_exec_stash.update(&tgid, e);
	return 0;
}

/*
 * A successful exec: the process table gets the new image (start, program, comm), and the record the
 * image it replaced and its parent's program, when the parent's image is still the one that forked it.
 */
static __always_inline void ekp_exec_track(__u32 tgid, struct ekp_process_exec *e, __u64 now)
{
	__u32 zero = 0;
	struct ekp_proc *p = ekp_procs.lookup(&tgid);

	if (!p) {
		/* untracked until now (the table was full at its fork): try again, knowing no parent */
		struct ekp_proc *n = ekp_scratch_proc.lookup(&zero);

		if (!n)
			return;
		n->start_ns = now;
		n->parent_start_ns = 0;
		n->fork_ns = 0;
		n->ppid = 0;
		n->flags = EKP_PROC_PARENT_UNKNOWN | EKP_PROC_PPID_UNKNOWN;
		bpf_get_current_comm(n->comm, sizeof(n->comm));
		__builtin_memcpy(n->filename, e->filename, sizeof(n->filename));
		if (ekp_procs.insert(&tgid, n))
			ekp_count_untracked();
		return;
	}
	e->prev_start_ns = p->start_ns;
	e->flags |= EKP_EXEC_PREV_KNOWN;
	p->start_ns = now;
	if (!p->fork_ns)
		p->fork_ns = now; /* the first exec seen is the best start a process from before us has */
	bpf_get_current_comm(p->comm, sizeof(p->comm));
	__builtin_memcpy(p->filename, e->filename, sizeof(p->filename));
	if (p->flags & (EKP_PROC_PARENT_UNKNOWN | EKP_PROC_PPID_UNKNOWN))
		return;
	__u32 ppid = p->ppid;
	struct ekp_proc *pp = ekp_procs.lookup(&ppid);
	if (pp && pp->start_ns == p->parent_start_ns) {
		__builtin_memcpy(e->parent_comm, pp->comm, sizeof(e->parent_comm));
		__builtin_memcpy(e->parent_filename, pp->filename, sizeof(e->parent_filename));
		e->flags |= EKP_EXEC_PARENT_KNOWN;
	}
}

static __always_inline int ekp_exec_exit(void *ctx, long ret)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__u32 zero = 0;
	struct ekp_counters *c = ekp_counters_of(EKP_EVENT_PROCESS_EXEC);
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
		e = ekp_scratch_exec.lookup(&zero);
		if (!e)
			return 0;
		ekp_exec_missing(e);
	}
	e->prev_start_ns = 0;
	e->parent_comm[0] = 0;
	e->parent_filename[0] = 0;
	if (ret == 0)
		ekp_exec_track(tgid, e, bpf_ktime_get_boot_ns());
	ekp_task_current(&e->task);
	if (ekp_filtered(&e->task)) {
		ekp_exec_stash.delete(&tgid);
		if (ret == 0)
			ekp_count_filtered_view(c);
		else
			ekp_count_filtered(c);
		return 0;
	}
	e->retval = (__s32)ret;
	__u32 size = offsetof(struct ekp_process_exec, args) + e->args_size;
	if (size > sizeof(*e))
		size = sizeof(*e);
#if EKP_ENABLE_PROCESS_EXEC
	ekp_stamp(&e->hdr, c, EKP_EVENT_PROCESS_EXEC);
	ekp_count_submit(c, ekp_events_process_exec.perf_submit(ctx, e, size));
#endif
	if (ret == 0 && !(e->task.flags & EKP_TASK_PROC_UNKNOWN))
		ekp_processes_view(ctx, &e->hdr, e, size, EKP_EVENT_PROCESS_EXEC);
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

/* ==== process_fork (and the process table: every child gets its identity here) ============== */
#if EKP_ENABLE_PROCESS_FORK
BPF_PERF_OUTPUT(ekp_events_process_fork);
#endif
/* tid -> clone flags of a clone()/clone3() in progress: tells a new thread from a new process. */
BPF_TABLE("lru_hash", __u32, __u64, ekp_clone_flags, EKP_INFLIGHT);

TRACEPOINT_PROBE(syscalls, sys_enter_clone)
{
	__u32 tid = bpf_get_current_pid_tgid();
	__u64 flags = args->clone_flags;

	ekp_clone_flags.update(&tid, &flags);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_clone3)
{
	__u32 tid = bpf_get_current_pid_tgid();
	__u64 flags = 0;

	/* struct clone_args is user memory and its first member is the u64 flags (uapi, stable). */
	if (bpf_probe_read_user(&flags, sizeof(flags), args->uargs) == 0)
		ekp_clone_flags.update(&tid, &flags);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_clone)
{
	__u32 tid = bpf_get_current_pid_tgid();

	ekp_clone_flags.delete(&tid);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_clone3)
{
	__u32 tid = bpf_get_current_pid_tgid();

	ekp_clone_flags.delete(&tid);
	return 0;
}

TRACEPOINT_PROBE(sched, sched_process_fork)
{
	/* Runs in the parent: its tgid is the child's parent process. */
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = id;
	__u32 parent = id >> 32;
	__u32 child = args->child_pid;
	__u32 zero = 0;
	__u64 *flags = ekp_clone_flags.lookup(&tid);
	struct ekp_proc *n = ekp_scratch_proc.lookup(&zero);

	if (flags && (*flags & EKP_CLONE_THREAD))
		return 0; /* a thread, not a process: it shares its process's identity and parent */
	if (!n)
		return 0;
	__u64 now = bpf_ktime_get_boot_ns();
	struct ekp_proc *pp = ekp_procs.lookup(&parent);
	n->start_ns = now;
	n->fork_ns = now;
	n->ppid = parent;
	if (pp) {
		n->parent_start_ns = pp->start_ns;
		n->flags = 0;
		__builtin_memcpy(n->filename, pp->filename, sizeof(n->filename));
	} else {
		n->parent_start_ns = 0;
		n->flags = EKP_PROC_PARENT_UNKNOWN;
		n->filename[0] = 0;
	}
	bpf_get_current_comm(n->comm, sizeof(n->comm));
	/* update, not insert: an entry left by a process whose exit came before we attached is stale */
	int untracked = ekp_procs.update(&child, n) != 0;
	if (untracked)
		ekp_count_untracked();
#if EKP_ENABLE_PROCESS_FORK || EKP_ENABLE_PROCESSES
	struct ekp_counters *c = ekp_counters_of(EKP_EVENT_PROCESS_FORK);
	struct ekp_process_fork *e = ekp_scratch_fork.lookup(&zero);

	if (!c || !e)
		return 0;
	ekp_task_current(&e->task);
	if (ekp_filtered(&e->task)) {
		ekp_count_filtered_view(c);
		return 0;
	}
	e->child_pid = child;
	e->child_start_ns = now;
	e->flags = untracked ? EKP_FORK_UNTRACKED : 0;
	__builtin_memcpy(e->filename, n->filename, sizeof(e->filename));
#if EKP_ENABLE_PROCESS_FORK
	ekp_stamp(&e->hdr, c, EKP_EVENT_PROCESS_FORK);
	ekp_count_submit(c, ekp_events_process_fork.perf_submit(args, e, sizeof(*e)));
#endif
	if (!untracked)
		ekp_processes_view(args, &e->hdr, e, sizeof(*e), EKP_EVENT_PROCESS_FORK);
#endif
	return 0;
}

/* ==== process_exit ============================================================================ */
#define EKP_TRACK_EXIT (EKP_ENABLE_PROCESS_EXIT || EKP_ENABLE_PROCESSES)
#if EKP_ENABLE_PROCESS_EXIT
BPF_PERF_OUTPUT(ekp_events_process_exit);
#endif
#if EKP_TRACK_EXIT
/* tgid -> the exit_group()/exit() argument, and tgid -> the fatal signal being delivered. */
BPF_TABLE("lru_hash", __u32, __s32, ekp_exit_code, EKP_INFLIGHT);
BPF_TABLE("lru_hash", __u32, __u32, ekp_exit_signal, EKP_INFLIGHT);

TRACEPOINT_PROBE(syscalls, sys_enter_exit_group)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__s32 code = args->error_code & 0xff;

	ekp_exit_code.update(&tgid, &code);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_exit)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;
	__s32 code = args->error_code & 0xff;

	ekp_exit_code.update(&tgid, &code);
	return 0;
}

/*
 * target pid -> the last fatal-by-default signal sent to it. A fatal signal with its default action
 * takes the kernel's fast path (complete_signal): the process is marked for group exit and every thread
 * then passes signal_deliver with SIGKILL, whatever was sent. The signal actually sent is only seen here.
 */
BPF_TABLE("lru_hash", __u32, __u32, ekp_signal_sent, EKP_INFLIGHT);

TRACEPOINT_PROBE(signal, signal_generate)
{
	__u32 target = args->pid;
	__u32 sig = args->sig;

	if (args->result == 0 /* TRACE_SIGNAL_DELIVERED: queued */ && ekp_signal_default_is_fatal(sig))
		ekp_signal_sent.update(&target, &sig);
	return 0;
}

TRACEPOINT_PROBE(signal, signal_deliver)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = id;
	__u32 tgid = id >> 32;
	__u32 sig = args->sig;
	__u32 *sent = ekp_signal_sent.lookup(&tid);

	if (!sent)
		sent = ekp_signal_sent.lookup(&tgid);
	if (sent && sig == 9 /* SIGKILL: the fast path stands for the signal sent */)
		sig = *sent;
	/* Only a signal left to its default action can end the process; of those, only the fatal ones. */
	if (args->sa_handler == 0 && ekp_signal_default_is_fatal(sig))
		ekp_exit_signal.update(&tgid, &sig);
	/* delivered (to a handler too): it no longer stands for what comes next */
	if (sent && *sent == sig) {
		ekp_signal_sent.delete(&tid);
		ekp_signal_sent.delete(&tgid);
	}
	return 0;
}
#endif

TRACEPOINT_PROBE(sched, sched_process_exit)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = id;
	__u32 tgid = id >> 32;

	if (!args->group_dead) {
		if (tid != tgid)
			ekp_procs.delete(&tid); /* defensive: threads get no entry, but an old one must go */
		return 0;
	}
#if EKP_TRACK_EXIT
	__u32 zero = 0;
	struct ekp_counters *c = ekp_counters_of(EKP_EVENT_PROCESS_EXIT);
	struct ekp_process_exit *e = ekp_scratch_exit.lookup(&zero);
	__s32 *code = ekp_exit_code.lookup(&tgid);
	__u32 *sig = ekp_exit_signal.lookup(&tgid);
	struct ekp_proc *p = ekp_procs.lookup(&tgid);

	if (c && e) {
		ekp_task_current(&e->task);
		if (ekp_filtered(&e->task)) {
			ekp_count_filtered_view(c);
		} else {
			e->flags = 0;
			e->exit_code = 0;
			e->signal = 0;
			e->fork_ns = 0;
			if (sig) {
				e->signal = *sig;
				e->flags |= EKP_EXIT_SIGNALED;
			} else if (code) {
				e->exit_code = *code;
				e->flags |= EKP_EXIT_CODE_KNOWN;
			}
			if (p && p->fork_ns) {
				e->fork_ns = p->fork_ns;
				e->flags |= EKP_EXIT_START_KNOWN;
			}
			if (p)
				__builtin_memcpy(e->filename, p->filename, sizeof(e->filename));
			else
				e->filename[0] = 0;
#if EKP_ENABLE_PROCESS_EXIT
			ekp_stamp(&e->hdr, c, EKP_EVENT_PROCESS_EXIT);
			ekp_count_submit(c, ekp_events_process_exit.perf_submit(args, e, sizeof(*e)));
#endif
			if (p)
				ekp_processes_view(args, &e->hdr, e, sizeof(*e), EKP_EVENT_PROCESS_EXIT);
		}
	}
	ekp_exit_code.delete(&tgid);
	ekp_exit_signal.delete(&tgid);
	ekp_signal_sent.delete(&tgid);
#endif
	ekp_procs.delete(&tgid);
	return 0;
}

/* ==== file_open =============================================================================== */
#if EKP_ENABLE_FILE_OPEN
#ifndef EKP_OPEN_INCLUDE_FAILED
#define EKP_OPEN_INCLUDE_FAILED 1
#endif
BPF_PERF_OUTPUT(ekp_events_file_open);
/* tid -> the record begun at syscall entry (the path is user memory, valid only then). */
BPF_TABLE("lru_hash", __u32, struct ekp_file_open, ekp_open_stash, EKP_INFLIGHT);
BPF_PERCPU_ARRAY(ekp_scratch_open, struct ekp_file_open, 1);

/*
 * 1 if the path prefix filters exclude this path. One hash lookup per
 * distinct prefix length (the path cut to that length is the key): a
 * byte-by-byte compare against every prefix is too many branches for the
 * verifier.
 */
static __always_inline int ekp_path_filtered(struct ekp_file_open *e)
{
	__u32 zero = 0;
	struct ekp_filter_config *cfg = ekp_filter_cfg.lookup(&zero);
	int allowed = 0;

	if (!cfg || !cfg->prefixes)
		return 0;
	for (__u32 i = 0; i < EKP_PREFIXES; i++) {
		if (i >= cfg->prefixes)
			break;
		__u32 *len = ekp_filter_prefix_len.lookup(&i);
		if (!len || *len == 0 || *len >= EKP_PREFIX_LEN || *len >= e->path_size)
			continue;
		struct ekp_prefix key = {};
		key.len = *len;
		/* the mask restates the bound for the verifier (it does not track it through the reload) */
		bpf_probe_read_kernel(key.bytes, key.len & (EKP_PREFIX_LEN - 1), e->path);
		__u8 *action = ekp_filter_prefix.lookup(&key);
		if (!action)
			continue;
		if (*action == EKP_FILTER_DENY)
			return 1;
		allowed = 1;
	}
	return (cfg->flags & EKP_FILTER_PATH_ALLOW) && !allowed;
}

static __always_inline int ekp_open_enter(const char *path, __u64 flags, __u32 mode, __u16 syscall)
{
	__u32 tid = bpf_get_current_pid_tgid();
	__u32 zero = 0;
	struct ekp_file_open *e = ekp_scratch_open.lookup(&zero);

	if (!e)
		return 0;
	e->open_flags = flags;
	e->mode = mode;
	e->syscall = syscall;
	ekp_copy_path(e, path);
	ekp_open_stash.update(&tid, e);
	return 0;
}

static __always_inline int ekp_open_exit(void *ctx, long ret)
{
	__u32 tid = bpf_get_current_pid_tgid();
	struct ekp_counters *c = ekp_counters_of(EKP_EVENT_FILE_OPEN);
	struct ekp_file_open *e = ekp_open_stash.lookup(&tid);

	if (!e)
		return 0; /* the entry was not seen: the open began before the collector attached */
	if (!c)
		goto out;
	ekp_task_current(&e->task);
	if ((ret < 0 && !EKP_OPEN_INCLUDE_FAILED) || ekp_filtered(&e->task) || ekp_path_filtered(e)) {
		ekp_count_filtered(c);
		goto out;
	}
	e->ret = (__s32)ret;
	ekp_stamp(&e->hdr, c, EKP_EVENT_FILE_OPEN);
	__u32 size = offsetof(struct ekp_file_open, path) + e->path_size;
	if (size > sizeof(*e))
		size = sizeof(*e);
	ekp_count_submit(c, ekp_events_file_open.perf_submit(ctx, e, size));
out:
	ekp_open_stash.delete(&tid);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
	return ekp_open_enter(args->filename, args->flags, args->mode, EKP_OPEN_OPENAT);
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
	return ekp_open_exit(args, args->ret);
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat2)
{
	/* struct open_how is user memory (uapi): u64 flags, u64 mode, u64 resolve. */
	__u64 how[2] = {};

	bpf_probe_read_user(how, sizeof(how), args->how);
	return ekp_open_enter(args->filename, how[0], (__u32)how[1], EKP_OPEN_OPENAT2);
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat2)
{
	return ekp_open_exit(args, args->ret);
}
#endif /* EKP_ENABLE_FILE_OPEN */

/* ==== tcp_connect, tcp_accept, tcp_close ====================================================== */
#if EKP_ENABLE_TCP_CONNECT || EKP_ENABLE_TCP_ACCEPT || EKP_ENABLE_TCP_CLOSE
BPF_PERF_OUTPUT(ekp_events_tcp_connect);
BPF_PERF_OUTPUT(ekp_events_tcp_accept);
BPF_PERF_OUTPUT(ekp_events_tcp_close);

/*
 * Most state changes run in softirq context, where the current task is
 * whoever happened to be on the CPU. The socket's process is therefore
 * recorded where the kernel is in process context — connect() (CLOSE ->
 * SYN_SENT) and listen() (-> LISTEN) — and looked up later: by socket address
 * for the connecting side, by local port for accepted connections. The socket
 * address is only a key; it is never dereferenced.
 */
struct ekp_sock_state {
	struct ekp_task task;
	__u64 established_ns;
	__u8 direction;
};
BPF_TABLE("lru_hash", __u64, struct ekp_sock_state, ekp_sockets, EKP_SOCKETS_MAX);
/* (family << 16 | port) -> the listening process (seeded from /proc by the loader). */
BPF_TABLE("lru_hash", __u32, struct ekp_task, ekp_listeners, 4096);
BPF_PERCPU_ARRAY(ekp_scratch_sock, struct ekp_sock_state, 1);

/* The addresses of one state change, copied off the tracepoint record. */
struct ekp_tcp_addrs {
	__u16 family;
	__u16 sport;
	__u16 dport;
	__u8 saddr[16];
	__u8 daddr[16];
};

static __always_inline int ekp_tcp_emit(void *ctx, __u32 type, struct ekp_sock_state *s, struct ekp_tcp_addrs *a)
{
	struct ekp_counters *c = ekp_counters_of(type);
	struct ekp_tcp e = {};
	int ret;

	if (!c)
		return 0;
	__builtin_memcpy(&e.task, &s->task, sizeof(e.task));
	if (ekp_filtered(&e.task)) {
		ekp_count_filtered(c);
		return 0;
	}
	e.established_ns = s->established_ns;
	e.direction = s->direction;
	e.family = a->family;
	e.sport = a->sport;
	e.dport = a->dport;
	__builtin_memcpy(e.saddr, a->saddr, 16);
	__builtin_memcpy(e.daddr, a->daddr, 16);
	ekp_stamp(&e.hdr, c, type);
	if (type == EKP_EVENT_TCP_CONNECT)
		ret = ekp_events_tcp_connect.perf_submit(ctx, &e, sizeof(e));
	else if (type == EKP_EVENT_TCP_ACCEPT)
		ret = ekp_events_tcp_accept.perf_submit(ctx, &e, sizeof(e));
	else
		ret = ekp_events_tcp_close.perf_submit(ctx, &e, sizeof(e));
	ekp_count_submit(c, ret);
	return 0;
}

TRACEPOINT_PROBE(sock, inet_sock_set_state)
{
	__u64 sk = (__u64)args->skaddr;
	int old = args->oldstate, new = args->newstate;
	__u16 family = args->family;
	__u32 zero = 0;

	if (args->protocol != EKP_IPPROTO_TCP)
		return 0;
	if (new == EKP_TCP_LISTEN) {
		struct ekp_task t = {};
		__u32 key = (__u32)family << 16 | args->sport;

		ekp_task_current(&t);
		ekp_listeners.update(&key, &t);
		return 0;
	}
	if (old == EKP_TCP_LISTEN && new == EKP_TCP_CLOSE) {
		__u32 key = (__u32)family << 16 | args->sport;

		ekp_listeners.delete(&key);
		return 0;
	}
	if (new == EKP_TCP_SYN_SENT) { /* connect(), in the caller's context */
		struct ekp_sock_state *s = ekp_scratch_sock.lookup(&zero);

		if (!s)
			return 0;
		ekp_task_current(&s->task);
		s->established_ns = 0;
		s->direction = EKP_TCP_OUTBOUND;
		ekp_sockets.update(&sk, s);
		return 0;
	}
	if (new == EKP_TCP_SYN_RECV) { /* a new connection to a listener, in softirq context */
		struct ekp_sock_state *s = ekp_scratch_sock.lookup(&zero);
		__u32 key = (__u32)family << 16 | args->sport;
		struct ekp_task *owner = ekp_listeners.lookup(&key);

		if (!s)
			return 0;
		if (owner) {
			__builtin_memcpy(&s->task, owner, sizeof(s->task));
		} else {
			__builtin_memset(&s->task, 0, sizeof(s->task));
			s->task.flags = EKP_TASK_OWNER_UNKNOWN;
		}
		s->established_ns = 0;
		s->direction = EKP_TCP_INBOUND;
		ekp_sockets.update(&sk, s);
		return 0;
	}

	struct ekp_sock_state *s = ekp_sockets.lookup(&sk);
	if (!s)
		return 0; /* a socket that was set up before the collector attached */
	struct ekp_tcp_addrs a = {};
	a.family = family;
	a.sport = args->sport;
	a.dport = args->dport;
	/* Constant offsets only: the verifier rejects a computed pointer into the tracepoint record. */
	if (family == EKP_AF_INET6) {
		__builtin_memcpy(a.saddr, args->saddr_v6, 16);
		__builtin_memcpy(a.daddr, args->daddr_v6, 16);
	} else {
		__builtin_memcpy(a.saddr, args->saddr, 4);
		__builtin_memcpy(a.daddr, args->daddr, 4);
	}
	if (new == EKP_TCP_ESTABLISHED) {
		s->established_ns = bpf_ktime_get_boot_ns();
#if EKP_ENABLE_TCP_CONNECT
		if (old == EKP_TCP_SYN_SENT)
			ekp_tcp_emit(args, EKP_EVENT_TCP_CONNECT, s, &a);
#endif
#if EKP_ENABLE_TCP_ACCEPT
		if (old == EKP_TCP_SYN_RECV)
			ekp_tcp_emit(args, EKP_EVENT_TCP_ACCEPT, s, &a);
#endif
		return 0;
	}
	if (new == EKP_TCP_CLOSE) {
#if EKP_ENABLE_TCP_CLOSE
		if (s->established_ns)
			ekp_tcp_emit(args, EKP_EVENT_TCP_CLOSE, s, &a);
#endif
		ekp_sockets.delete(&sk);
	}
	return 0;
}
#endif /* tcp */

/* ==== syscall_counts ========================================================================== */
#if EKP_ENABLE_SYSCALL_COUNTS
/* Cumulative per-CPU counts per (cgroup, syscall); user space publishes the deltas. */
BPF_TABLE("percpu_hash", struct ekp_syscall_key, __u64, ekp_syscall_counts, EKP_SYSCALL_KEYS);

TRACEPOINT_PROBE(raw_syscalls, sys_enter)
{
	struct ekp_counters *c = ekp_counters_of(EKP_EVENT_SYSCALL_COUNTS);
	struct ekp_syscall_key key = {};
	struct ekp_task t = {};
	__u64 one = 1;
	__u64 *v;

	if (!c || args->id < 0)
		return 0;
	ekp_task_current(&t);
	if (ekp_filtered(&t)) {
		ekp_count_filtered(c);
		return 0;
	}
	key.cgroup_id = t.cgroup_id;
	key.nr = args->id;
	v = ekp_syscall_counts.lookup(&key);
	if (!v) {
		/* insert, not update: if a preempting program created the key meanwhile, add to it */
		if (ekp_syscall_counts.insert(&key, &one) == 0)
			return 0;
		v = ekp_syscall_counts.lookup(&key);
		if (!v) {
			__sync_fetch_and_add(&c->submit_failed, 1); /* the map is full: this syscall is not counted */
			return 0;
		}
	}
	__sync_fetch_and_add(v, 1);
	return 0;
}
#endif

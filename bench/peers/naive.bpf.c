/*
 * The naive baseline's BPF side: what a first BCC tool for file_open looks
 * like (opensnoop's shape): stash the path at openat() entry, emit one
 * fixed-size record per open at exit. Filtered in the kernel to one task name,
 * like every pipeline of the benchmark, so it carries only the load's events.
 */
#include <uapi/linux/ptrace.h>

#define COMM_LEN 16
#define PATH_LEN 256

struct comm_t {
	char name[COMM_LEN];
};

struct start_t {
	u64 flags;
	char path[PATH_LEN];
};

struct event_t {
	u64 boot_ns;
	u64 flags;
	u32 pid;
	u32 tid;
	u32 uid;
	s32 ret;
	char comm[COMM_LEN];
	char path[PATH_LEN];
};

BPF_ARRAY(target, struct comm_t, 1); /* the one task name to report, set by the reader */
BPF_HASH(starts, u32, struct start_t);
BPF_PERF_OUTPUT(events);

static __always_inline int is_target(void)
{
	struct comm_t comm = {};
	u32 zero = 0;
	struct comm_t *want = target.lookup(&zero);

	if (!want)
		return 0;
	bpf_get_current_comm(&comm.name, sizeof(comm.name));
	/* two 8-byte compares: a byte loop is more than this needs */
	u64 *a = (u64 *)comm.name, *b = (u64 *)want->name;
	return a[0] == b[0] && a[1] == b[1];
}

TRACEPOINT_PROBE(syscalls, sys_enter_openat)
{
	struct start_t start = {};
	u32 tid = bpf_get_current_pid_tgid();

	if (!is_target())
		return 0;
	start.flags = args->flags;
	bpf_probe_read_user_str(start.path, sizeof(start.path), args->filename);
	starts.update(&tid, &start);
	return 0;
}

TRACEPOINT_PROBE(syscalls, sys_exit_openat)
{
	struct event_t ev = {};
	u64 id = bpf_get_current_pid_tgid();
	u32 tid = id;
	struct start_t *start = starts.lookup(&tid);

	if (!start)
		return 0;
	ev.boot_ns = bpf_ktime_get_boot_ns();
	ev.flags = start->flags;
	ev.pid = id >> 32;
	ev.tid = tid;
	ev.uid = bpf_get_current_uid_gid();
	ev.ret = args->ret;
	bpf_get_current_comm(&ev.comm, sizeof(ev.comm));
	bpf_probe_read_kernel(ev.path, sizeof(ev.path), start->path);
	events.perf_submit(args, &ev, sizeof(ev));
	starts.delete(&tid);
	return 0;
}

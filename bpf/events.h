/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Event records written by the BPF programs into perf event arrays, and the
 * ledger counters kept beside them. This header is the single definition of
 * the kernel side; producer/events.py mirrors it for the decoder and the
 * loader compares the two against the compiler's own layout at every start
 * (see producer/loader.py: check_layouts), so they cannot drift silently.
 *
 * Sizes are parameters set with -D by the loader (from the config), never by
 * editing this text.
 */
#ifndef EKP_EVENTS_H
#define EKP_EVENTS_H

/* Event type ids: the index into ekp_counters and the `type` of a header. */
#define EKP_EVENT_PROCESS_EXEC 0
#define EKP_EVENT_TYPES 1

#ifndef EKP_MAX_ARGS
#define EKP_MAX_ARGS 32
#endif
#ifndef EKP_MAX_ARG_LEN
#define EKP_MAX_ARG_LEN 128
#endif
#define EKP_ARGS_BUF (EKP_MAX_ARGS * EKP_MAX_ARG_LEN)
#define EKP_FILENAME_LEN 256
#define EKP_COMM_LEN 16

/* process_exec flags */
#define EKP_EXEC_ARGV_TRUNCATED   (1U << 0) /* more than EKP_MAX_ARGS arguments */
#define EKP_EXEC_ARG_TRUNCATED    (1U << 1) /* an argument reached EKP_MAX_ARG_LEN */
#define EKP_EXEC_FILENAME_TRUNCATED (1U << 2)
#define EKP_EXEC_ARGV_MISSING     (1U << 3) /* the syscall entry was not seen (exec began before attach) */
#define EKP_EXEC_PPID_UNKNOWN     (1U << 4) /* the parent was not tracked */
#define EKP_EXEC_FLAGS_ALL        0x1fU

/* Common header of every record. */
struct ekp_header {
	__u64 boot_ns; /* bpf_ktime_get_boot_ns(): user space adds the boot-to-wall offset */
	__u64 seq;     /* per (type, CPU) sequence: the `seen` counter before this event */
	__u32 type;    /* EKP_EVENT_* */
	__u32 cpu;     /* CPU whose perf buffer receives the record */
};

struct ekp_process_exec {
	struct ekp_header hdr;
	__u64 cgroup_id;
	__u32 pid; /* tgid */
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__s32 retval;
	__u32 flags;        /* EKP_EXEC_* */
	__u16 args_count;   /* strings in args[] */
	__u16 args_size;    /* bytes of args[] in use, NULs included */
	char comm[EKP_COMM_LEN];
	char filename[EKP_FILENAME_LEN];
	char args[EKP_ARGS_BUF]; /* NUL-separated; only args_size bytes are submitted */
};

/* Per-CPU counters per event type: the kernel's half of the drop ledger. */
struct ekp_counters {
	__u64 seen;          /* passed the filters; about to be submitted */
	__u64 submit_failed; /* bpf_perf_event_output() failed (buffer full, no reader) */
	__u64 filtered;      /* excluded by configuration; not a drop */
};

#endif /* EKP_EVENTS_H */

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Event records written by the BPF programs into perf event arrays, and the
 * ledger counters kept beside them. This header is the single definition of
 * the kernel side; producer/records/ mirrors it (abi.py for what every record
 * shares, one module per event family for the rest) and two checks keep them
 * from drifting silently:
 *  - the struct layouts: at every start the loader compares them with the
 *    compiler's own (producer/kernel/build.py: check_layouts);
 *  - every #define EKP_* below: tests/unit/test_abi.py compiles this header
 *    with gcc and compares each value with its Python twin, or finds the name
 *    in abi.C_ONLY.
 *
 * Sizes are parameters set with -D by the loader (from the config), never by
 * editing this text.
 */
#ifndef EKP_EVENTS_H
#define EKP_EVENTS_H

/* Event type ids: the index into ekp_counters and the `type` of a header. */
#define EKP_EVENT_PROCESS_EXEC 0
#define EKP_EVENT_PROCESS_EXIT 1
#define EKP_EVENT_PROCESS_FORK 2
#define EKP_EVENT_FILE_OPEN 3
#define EKP_EVENT_TCP_CONNECT 4
#define EKP_EVENT_TCP_ACCEPT 5
#define EKP_EVENT_TCP_CLOSE 6
#define EKP_EVENT_SYSCALL_COUNTS 7
#define EKP_EVENT_PROCESSES 8
#define EKP_EVENT_TYPES 9
/*
 * A processes record is the bytes of the exec, fork or exit record it was made from, submitted a second
 * time to the processes buffer: its header's type is EKP_EVENT_PROCESSES | source type << EKP_VIEW_SHIFT.
 */
#define EKP_VIEW_SHIFT 8

#ifndef EKP_MAX_ARGS
#define EKP_MAX_ARGS 32
#endif
#ifndef EKP_MAX_ARG_LEN
#define EKP_MAX_ARG_LEN 128
#endif
#define EKP_ARGS_BUF (EKP_MAX_ARGS * EKP_MAX_ARG_LEN)
#define EKP_PATH_LEN 256
#define EKP_COMM_LEN 16

/* ekp_task.flags */
#define EKP_TASK_PPID_UNKNOWN (1U << 0)   /* the parent was not tracked */
#define EKP_TASK_OWNER_UNKNOWN (1U << 1)  /* network: the socket's process was not seen */
#define EKP_TASK_PROC_UNKNOWN (1U << 2)   /* not in the process table (it was full): no identity */
#define EKP_TASK_PARENT_UNKNOWN (1U << 3) /* the parent's image is not known: no parent identity */
#define EKP_TASK_FLAGS_ALL 0xfU

/* ekp_proc.flags */
#define EKP_PROC_SEEDED (1U << 0)         /* from /proc at start: start_ns is /proc's starttime */
#define EKP_PROC_PARENT_UNKNOWN (1U << 1) /* parent_start_ns unknown */
#define EKP_PROC_PPID_UNKNOWN (1U << 2)   /* ppid unknown (added at an exec, untracked before) */

/* process_exec flags */
#define EKP_EXEC_ARGV_TRUNCATED   (1U << 0) /* more than EKP_MAX_ARGS arguments */
#define EKP_EXEC_ARG_TRUNCATED    (1U << 1) /* an argument reached EKP_MAX_ARG_LEN */
#define EKP_EXEC_FILENAME_TRUNCATED (1U << 2)
#define EKP_EXEC_ARGV_MISSING     (1U << 3) /* the syscall entry was not seen (exec began before attach) */
#define EKP_EXEC_PREV_KNOWN       (1U << 4) /* prev_start_ns holds the image this exec replaced */
#define EKP_EXEC_PARENT_KNOWN     (1U << 5) /* parent_comm/parent_filename hold the parent's image */
#define EKP_EXEC_FLAGS_ALL        0x3fU

/* process_exit flags */
#define EKP_EXIT_CODE_KNOWN  (1U << 0) /* exit_code holds the exit_group()/exit() argument */
#define EKP_EXIT_SIGNALED    (1U << 1) /* killed by `signal` (a fatal signal with the default action) */
#define EKP_EXIT_START_KNOWN (1U << 2) /* fork_ns holds the process's start (fork, or /proc) */
#define EKP_EXIT_FLAGS_ALL   0x7U

/* process_fork flags */
#define EKP_FORK_UNTRACKED (1U << 0) /* the child could not be added to the process table (full) */
#define EKP_FORK_FLAGS_ALL 0x1U

/* file_open.syscall */
#define EKP_OPEN_OPENAT 0
#define EKP_OPEN_OPENAT2 1

/* file_open.flags */
#define EKP_OPEN_PATH_TRUNCATED (1U << 0)

/* tcp family (the kernel's AF_* values) and direction */
#define EKP_AF_INET 2
#define EKP_AF_INET6 10
#define EKP_TCP_OUTBOUND 1
#define EKP_TCP_INBOUND 2

/* Common header of every record. */
struct ekp_header {
	__u64 boot_ns; /* bpf_ktime_get_boot_ns(): user space adds the boot-to-wall offset */
	__u64 seq;     /* per (type, CPU) sequence: the `seen` counter before this event */
	__u32 type;    /* EKP_EVENT_* */
	__u32 cpu;     /* CPU whose perf buffer receives the record */
};

/*
 * The process an event belongs to: the common fields of every record. (pid, start_ns) is the identity
 * of the program image that ran, unique on a host across pid reuse: user space adds the boot id.
 */
struct ekp_task {
	__u64 cgroup_id;       /* cgroup v2 id (inode of the cgroup directory) */
	__u64 start_ns;        /* boot_ns when the current image started (its exec, fork, or /proc starttime) */
	__u64 parent_start_ns; /* start_ns of the parent's image that forked this process */
	__u32 pid;             /* tgid */
	__u32 tid;
	__u32 ppid;
	__u32 uid;
	__u32 gid;
	__u32 flags;     /* EKP_TASK_* */
	char comm[EKP_COMM_LEN];
};

struct ekp_process_exec {
	struct ekp_header hdr;
	struct ekp_task task; /* the new image: task.start_ns is this exec's time */
	__u64 prev_start_ns;  /* the image this exec replaced; valid with EKP_EXEC_PREV_KNOWN */
	__s32 retval;
	__u32 flags;        /* EKP_EXEC_* */
	__u16 args_count;   /* strings in args[] */
	__u16 args_size;    /* bytes of args[] in use, NULs included */
	__u32 _pad;
	char filename[EKP_PATH_LEN];
	char parent_comm[EKP_COMM_LEN];     /* the parent's image, valid with EKP_EXEC_PARENT_KNOWN */
	char parent_filename[EKP_PATH_LEN];
	char args[EKP_ARGS_BUF]; /* NUL-separated; only args_size bytes are submitted */
};

struct ekp_process_exit {
	struct ekp_header hdr;
	struct ekp_task task;
	__u64 fork_ns;    /* boot_ns the process started (fork, or /proc); valid with EKP_EXIT_START_KNOWN */
	__s32 exit_code;  /* valid with EKP_EXIT_CODE_KNOWN */
	__u32 signal;     /* valid with EKP_EXIT_SIGNALED */
	__u32 flags;      /* EKP_EXIT_* */
	__u32 _pad;
	char filename[EKP_PATH_LEN]; /* the program image that ended ("" if not known) */
};

struct ekp_process_fork {
	struct ekp_header hdr;
	struct ekp_task task;  /* the parent */
	__u64 child_start_ns;  /* the child's identity time (its image is the parent's until it execs) */
	__u32 child_pid;
	__u32 flags;           /* EKP_FORK_* */
	char filename[EKP_PATH_LEN]; /* the program image parent and child run ("" if not known) */
};

/* The process table: tgid -> what identity, parents and lineage need (seeded from /proc at start). */
struct ekp_proc {
	__u64 start_ns;        /* the current image's start: exec, fork, or /proc's starttime */
	__u64 parent_start_ns; /* the parent's image when it forked this process */
	__u64 fork_ns;         /* the process's own start: lifetimes at exit; 0 if not known */
	__u32 ppid;
	__u32 flags;           /* EKP_PROC_* */
	char comm[EKP_COMM_LEN];
	char filename[EKP_PATH_LEN];
};

struct ekp_file_open {
	struct ekp_header hdr;
	struct ekp_task task;
	__u64 open_flags; /* O_* as passed */
	__u32 mode;
	__s32 ret;        /* the new fd, or -errno */
	__u16 syscall;    /* EKP_OPEN_* */
	__u16 path_size;  /* bytes of path[] in use, NUL included */
	__u32 flags;      /* EKP_OPEN_PATH_TRUNCATED */
	char path[EKP_PATH_LEN]; /* as passed (relative paths stay relative); only path_size bytes are submitted */
};

/* tcp_connect, tcp_accept and tcp_close share one layout. */
struct ekp_tcp {
	struct ekp_header hdr;
	struct ekp_task task; /* the socket's process, recorded at connect()/listen() */
	__u64 established_ns; /* boot_ns when the connection was established (close: lifetime = hdr.boot_ns - this) */
	__u16 family;         /* AF_INET / AF_INET6 */
	__u16 sport;
	__u16 dport;
	__u8 direction;       /* EKP_TCP_* */
	__u8 _pad;
	__u8 saddr[16];       /* IPv4 in the first 4 bytes */
	__u8 daddr[16];
};

/* Per-CPU counters per event type: the kernel's half of the drop ledger. */
struct ekp_counters {
	__u64 seen;          /* passed the filters; about to be submitted */
	__u64 submit_failed; /* bpf_perf_event_output() failed (buffer full, no reader) or a map was full */
	__u64 filtered;      /* excluded by configuration; not a drop */
	__u64 untracked;     /* processes: not added to the full process table (their records have no identity) */
};

/* syscall_counts: per-CPU counts per (cgroup, syscall), read and published by user space. */
struct ekp_syscall_key {
	__u64 cgroup_id;
	__u32 nr;
	__u32 _pad;
};

/* Filters, set by user space from the config. */
#define EKP_FILTER_ALLOW 1
#define EKP_FILTER_DENY 2
#define EKP_FILTER_COMM_ALLOW   (1U << 0) /* an allow list exists: values not in it are filtered */
#define EKP_FILTER_UID_ALLOW    (1U << 1)
#define EKP_FILTER_PID_ALLOW    (1U << 2)
#define EKP_FILTER_CGROUP_ALLOW (1U << 3)
#define EKP_FILTER_PATH_ALLOW   (1U << 4)
#define EKP_PREFIX_LEN 64 /* prefixes are at most EKP_PREFIX_LEN - 1 bytes */
#define EKP_PREFIXES 8    /* distinct prefix lengths */
/* Entries of the filter maps: the config refuses longer lists (producer/config.py). */
#define EKP_FILTER_COMM_MAX 256
#define EKP_FILTER_UID_MAX 256
#define EKP_FILTER_PID_MAX 1024
#define EKP_FILTER_CGROUP_MAX 256
#define EKP_FILTER_PREFIX_MAX 64

struct ekp_filter_config {
	__u32 flags; /* EKP_FILTER_*_ALLOW */
	__u32 prefixes; /* entries in use in ekp_filter_prefix */
};

struct ekp_comm_key {
	char comm[EKP_COMM_LEN];
};

/* Key of the path prefix map: a prefix, zero-padded, with its length. */
struct ekp_prefix {
	__u32 len;
	char bytes[EKP_PREFIX_LEN];
};

#endif /* EKP_EVENTS_H */

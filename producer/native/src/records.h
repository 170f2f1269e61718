/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Raw kernel records (bpf/events.h) -> validated values -> Avro bytes, in C.
 *
 * The C twin of producer/records/ (each family's parse and fast `*_encoder`, avro.py's
 * `common` and `tail`), held byte for byte equal to them by tests/unit/test_native_encode.py.
 * One entry of TYPES (records.c) per event type: decode validates a record into a struct
 * ekp_decoded and never reads past `len`; encode writes the Avro body. Between the two the
 * caller looks up the record's cgroup (struct ekp_cgroups): the cgroup-derived fields
 * (container_id, k8s) are bytes Python encoded, so the native side never calls Python per
 * record.
 *
 * Adding an event type: its fields in struct ekp_decoded's union, a decode and an
 * encode function with its struct ekp_type in its family's records_<family>.c, that
 * struct in TYPES (records.c, declared in family.h), its tables (if any) in struct
 * ekp_encoder. Adding a common field (struct ekp_task): struct ekp_common,
 * ekp_decode_common, ekp_encode_common or ekp_encode_tail (records.c).
 */
#ifndef EKP_RECORDS_H
#define EKP_RECORDS_H

#include <linux/types.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "events.h" /* bpf/events.h: the kernel side's own definition */
#include "avro.h"
#include "cgroups.h"

/* Outcomes of decoding and encoding one record. */
enum ekp_status {
	EKP_OK = 0,
	EKP_DECODE_ERROR = 1, /* malformed bytes: decode_error */
	EKP_ENCODE_ERROR = 2, /* valid, but the encoding did not fit: encode_error */
	EKP_CGROUP_MISS = 3,  /* the record's cgroup is not in the table: ask Python, then retry */
	EKP_UNKNOWN_TYPE = 4, /* no native encoder for this event type */
};

#define EKP_OPEN_FLAG_NAMES_MAX 32
#define EKP_BOOT_TAG_MAX 32

/* What ekp_encode_record says about a record beside its bytes. */
#define EKP_F_ESCAPED 1U        /* a string had bytes that are not UTF-8: counted as escaped */
#define EKP_F_K8S_UNRESOLVED 2U /* its pod is not known yet (k8s null): counted as k8s_unresolved */
#define EKP_ERRNO_MAX 4095
#define EKP_SIGNAL_MAX 64 /* process.EXIT_SIGNAL_MAX: a process_exit's signal is 1..64 */
#define EKP_TCP_NAMES 2    /* tcp.FAMILIES, tcp.DIRECTIONS: two of each */
#define EKP_ADDR_TEXT 46   /* INET6_ADDRSTRLEN: the longest inet_ntop text, NUL included */
/*
 * Room for the largest message a record can make, so that the native plane refuses (encode_error)
 * nothing the Python one produces: an exec's argument bytes (args_size, at most 65535) may each be
 * escaped to four (\xNN), about 256 KiB; its cgroup's fields at most EKP_CGROUP_BLOB_MAX; the
 * other strings, the framing prefix and the fixed fields a few KiB.
 */
#define EKP_MESSAGE_MAX (512 * 1024)

/* A value of a record's field and its name, encoded. */
struct ekp_named {
	uint32_t value;
	struct ekp_blob name;
};

/* What every record of a reader shares, set once from Python (producer/native/tables.py). */
struct ekp_encoder {
	int64_t boot_to_wall_ns; /* re-measured by Python every second */
	struct ekp_blob host_boot; /* host and boot_id, encoded */
	char boot_tag[EKP_BOOT_TAG_MAX + 1]; /* process ids' boot part (records/identity.py boot_tag) */
	uint32_t pid_max;          /* events.PID_MAX_LIMIT */
	/* file_open */
	struct ekp_blob open_syscalls[2]; /* EKP_OPEN_*, encoded strings */
	uint32_t open_accmode;            /* O_ACCMODE */
	struct ekp_blob open_accmode_names[4]; /* encoded, for each value of flags & O_ACCMODE */
	struct {
		uint32_t value;
		struct ekp_blob name; /* encoded string */
	} open_flags[EKP_OPEN_FLAG_NAMES_MAX];
	size_t n_open_flags;
	uint64_t open_creates;                       /* flags that make `mode` meaningful */
	struct ekp_blob open_errors[EKP_ERRNO_MAX + 1]; /* encoded ["null","string"] by errno */
	/* process_exit */
	struct ekp_blob signal_names[EKP_SIGNAL_MAX + 1]; /* encoded ["null","string"] by signal */
	/* tcp_*: the values a record may carry, with their names (encoded strings) */
	struct ekp_named tcp_families[EKP_TCP_NAMES], tcp_directions[EKP_TCP_NAMES];
	/* process_exec: the reader's bounds (process_exec.ExecOptions), which parse_exec checks */
	uint32_t exec_max_args, exec_max_arg_len;
	bool exec_include_failed;
	struct ekp_cgroups cgroups;                  /* cgroup id -> its encoded fields */
	void **owned; /* copies of the tables' bytes, freed with the encoder */
	size_t n_owned, cap_owned;
};

/* struct ekp_header + struct ekp_task, validated. */
struct ekp_common {
	uint64_t boot_ns, seq, cgroup_id;
	uint64_t start_ns, parent_start_ns; /* the identity (records/identity.py), when known */
	uint32_t cpu, pid, tid, ppid, uid, gid;
	bool owner_known; /* tcp_* only may lack it: then no process field is known */
	bool ppid_known, start_known, parent_start_known;
	uint8_t comm[EKP_COMM_LEN];
	size_t comm_len;
	bool escaped; /* comm had bytes that are not UTF-8 */
};

struct ekp_file_open_rec {
	uint64_t open_flags;
	uint32_t mode;
	int32_t ret;
	uint16_t syscall;
	bool path_truncated;
	const uint8_t *path; /* inside the raw record, valid while it is */
	size_t path_len;
};

struct ekp_process_exit_rec {
	uint64_t fork_ns;
	int32_t exit_code;
	uint32_t signal;
	bool code_known, signaled, start_known;
	bool filename_escaped;
	const uint8_t *filename; /* inside the raw record; "" (not known) is null */
	size_t filename_len;
};

struct ekp_process_fork_rec {
	uint64_t child_start_ns;
	uint32_t child_pid;
	bool child_known; /* the child is in the process table: it has an identity */
};

struct ekp_tcp_rec {
	uint64_t established_ns;
	uint16_t sport, dport;
	bool closing; /* tcp_close: with direction and lifetime */
	struct ekp_blob family, direction; /* their names, from the tables */
	char saddr[EKP_ADDR_TEXT], daddr[EKP_ADDR_TEXT]; /* as inet_ntop writes them */
};

struct ekp_process_exec_rec {
	uint64_t prev_start_ns;
	int32_t retval;
	uint16_t argc;
	bool argv_truncated, filename_truncated, argv_missing, prev_known;
	bool escaped; /* the filename, an argument or the parent's names had bytes that are not UTF-8 */
	/* inside the raw record; a parent's name of length 0 is null (not known) */
	const uint8_t *filename, *parent_filename, *parent_comm;
	size_t filename_len, parent_filename_len, parent_comm_len;
	const uint8_t *args; /* argc NUL-terminated strings, one after the other */
};

struct ekp_decoded {
	struct ekp_common c;
	union {
		struct ekp_file_open_rec open;
		struct ekp_process_exit_rec exit;
		struct ekp_process_fork_rec fork;
		struct ekp_tcp_rec tcp;
		struct ekp_process_exec_rec exec;
	} u;
};

struct ekp_type {
	const char *name;
	uint32_t type_id;
	/* type_id: the ring's, which the record's header must say (a family may have several types) */
	int (*decode)(const struct ekp_encoder *e, uint32_t type_id, const uint8_t *raw, size_t len, uint32_t cpu,
		      struct ekp_decoded *d);
	/* Returns whether a string was escaped. */
	bool (*encode)(const struct ekp_encoder *e, const struct ekp_decoded *d, const struct ekp_cgroup *cg,
		       struct ekp_out *o);
};

/* The event type with this id, or NULL if it has no native encoder yet. */
const struct ekp_type *ekp_type_of(uint32_t type_id);

/* Decode, look up the cgroup, encode. *flags: EKP_F_*. On EKP_CGROUP_MISS, *cgroup_id says which one. */
int ekp_encode_record(struct ekp_encoder *e, const struct ekp_type *t, const uint8_t *raw, size_t len,
		      uint32_t cpu, uint64_t now_ns, struct ekp_out *o, unsigned *flags, uint64_t *cgroup_id);

/* The sequence number of a record, if it is long enough to hold one (events.peek_seq). */
bool ekp_peek_seq(const uint8_t *raw, size_t len, uint64_t *seq);

void ekp_encoder_init(struct ekp_encoder *e);
/* A copy of n bytes that lives as long as the encoder ({NULL, 0} when out of memory). */
struct ekp_blob ekp_encoder_keep(struct ekp_encoder *e, const void *p, size_t n);
void ekp_encoder_free(struct ekp_encoder *e);

#endif /* EKP_RECORDS_H */

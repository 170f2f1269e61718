/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The native data plane's decoder and ring reader without Python or Kafka, for a sanitizer
 * build (tests/unit/test_native_sanitizers.py builds it with -fsanitize=address,undefined):
 *
 *   harness selftest                 deterministic checks of the ring reader: a record that
 *                                    wraps, lost records, corrupt sizes, a pause
 *   harness fuzz SEED ITER FILE...   ITER mutations of the seed records in FILEs, each decoded
 *                                    from a heap buffer of exactly its size (a read past it is
 *                                    an AddressSanitizer error), and rings of them with broken
 *                                    positions and sizes
 *
 * Exits 0 when everything held; a sanitizer aborts the process at the first bad access.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "records.h"
#include "ring.h"

static uint64_t rng = 88172645463325252ULL;

static uint64_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

#define CHECK(cond)                                                                                          \
	do {                                                                                                 \
		if (!(cond)) {                                                                               \
			fprintf(stderr, "harness: check failed at line %d: %s\n", __LINE__, #cond);          \
			exit(1);                                                                             \
		}                                                                                            \
	} while (0)

/* ---- an encoder with tables like producer/native/tables.py's --------------------------------------- */

static struct ekp_blob keep_str(struct ekp_encoder *e, const char *s)
{
	uint8_t buf[64];
	size_t n = strlen(s);
	buf[0] = (uint8_t)(n << 1);
	memcpy(buf + 1, s, n);
	return ekp_encoder_keep(e, buf, n + 1);
}

/*
 * process_exec's bounds (the reader's ExecOptions): the defaults, the config's smallest, and
 * none but args_size's own (whose arguments, all escaped, are the largest message there is).
 */
static void set_exec_bounds(struct ekp_encoder *e, unsigned int which)
{
	/* max_args, max_arg_len, include_failed */
	static const uint32_t bounds[][3] = {{32, 128, 0}, {2, 16, 1}, {0xffff, 0x10000, 1}};
	which %= sizeof(bounds) / sizeof(bounds[0]);
	e->exec_max_args = bounds[which][0];
	e->exec_max_arg_len = bounds[which][1];
	e->exec_include_failed = bounds[which][2];
}

static void fill_encoder(struct ekp_encoder *e)
{
	static const struct {
		const char *name;
		uint32_t value;
	} flags[] = {{"O_TMPFILE", O_TMPFILE}, {"O_SYNC", O_SYNC},   {"O_CREAT", O_CREAT},
		     {"O_EXCL", O_EXCL},       {"O_TRUNC", O_TRUNC}, {"O_DIRECTORY", O_DIRECTORY},
		     {"O_LARGEFILE", 0},       {"O_CLOEXEC", O_CLOEXEC}};
	ekp_encoder_init(e);
	e->host_boot = ekp_encoder_keep(e, "\x08node\x08boot", 10);
	snprintf(e->boot_tag, sizeof(e->boot_tag), "b00t");
	e->pid_max = 4194304;
	e->open_syscalls[0] = keep_str(e, "openat");
	e->open_syscalls[1] = keep_str(e, "openat2");
	e->open_accmode = 3;
	const char *acc[] = {"O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE_3"};
	for (int i = 0; i < 4; i++)
		e->open_accmode_names[i] = keep_str(e, acc[i]);
	for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); i++) {
		e->open_flags[i].name = keep_str(e, flags[i].name);
		e->open_flags[i].value = flags[i].value;
	}
	e->n_open_flags = sizeof(flags) / sizeof(flags[0]);
	e->open_creates = O_CREAT | O_TMPFILE;
	for (int i = 0; i <= EKP_ERRNO_MAX; i++)
		e->open_errors[i] = i == 2 ? ekp_encoder_keep(e, "\x02\x0c" "ENOENT", 8) : ekp_encoder_keep(e, "", 1);
	for (int i = 0; i <= EKP_SIGNAL_MAX; i++)
		e->signal_names[i] = i == 9 ? ekp_encoder_keep(e, "\x02\x0e" "SIGKILL", 9) : ekp_encoder_keep(e, "", 1);
	e->tcp_families[0] = (struct ekp_named){EKP_AF_INET, keep_str(e, "inet")};
	e->tcp_families[1] = (struct ekp_named){EKP_AF_INET6, keep_str(e, "inet6")};
	e->tcp_directions[0] = (struct ekp_named){EKP_TCP_OUTBOUND, keep_str(e, "outbound")};
	e->tcp_directions[1] = (struct ekp_named){EKP_TCP_INBOUND, keep_str(e, "inbound")};
	set_exec_bounds(e, 0);
}

/*
 * Decode + encode one record as a record of type_id (its ring's), from a heap copy of exactly
 * its size, into a buffer of out_cap bytes.
 */
static int encode_one(struct ekp_encoder *e, uint32_t type_id, const uint8_t *raw, size_t len, size_t out_cap)
{
	const struct ekp_type *t = ekp_type_of(type_id);
	uint8_t *copy = malloc(len ? len : 1), *out = malloc(out_cap ? out_cap : 1);
	CHECK(t && copy && out);
	memcpy(copy, raw, len);
	unsigned flags;
	uint64_t cgroup;
	int rc;
	for (int round = 0; round < 2; round++) {
		struct ekp_out o = {out, out + out_cap, false};
		rc = ekp_encode_record(e, t, copy, len, 0, 1000, &o, &flags, &cgroup);
		CHECK(o.p >= out && o.p <= out + out_cap);
		if (rc != EKP_CGROUP_MISS)
			break;
		/* container_id: null, or a 64-character id; k8s: null, or a stand-in for a pod's bytes */
		uint8_t container[67] = {0x02, 0x80, 0x01}, k8s[300] = {0x02};
		memset(container + 3, 'a', sizeof(container) - 3);
		memset(k8s + 1, 'k', sizeof(k8s) - 1);
		struct ekp_cgroup fields = {
			{container, (rnd() & 1) ? 1 : sizeof(container)},
			{k8s, (rnd() & 1) ? 1 : (size_t)(1 + rnd() % (sizeof(k8s) - 1))},
			(rnd() & 3) == 0,
		};
		container[0] = fields.container.n == 1 ? 0x00 : 0x02;
		k8s[0] = fields.k8s.n == 1 ? 0x00 : 0x02;
		CHECK(ekp_cgroups_put(&e->cgroups, cgroup, &fields, (rnd() & 3) ? 0 : 1));
	}
	free(copy);
	free(out);
	return rc;
}

/* ---- building rings ---------------------------------------------------------------------------------- */

struct test_ring {
	struct perf_event_mmap_page *hdr;
	uint8_t *data;
	uint64_t size;
};

static void ring_put(struct test_ring *t, const void *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		t->data[(t->hdr->data_head + i) & (t->size - 1)] = ((const uint8_t *)b)[i];
	t->hdr->data_head += n;
}

static void ring_sample(struct test_ring *t, const uint8_t *raw, uint32_t n)
{
	size_t total = (sizeof(struct perf_event_header) + 4 + n + 7) & ~(size_t)7;
	struct perf_event_header eh = {PERF_RECORD_SAMPLE, 0, (uint16_t)total};
	uint8_t pad[8] = {0};
	ring_put(t, &eh, sizeof(eh));
	ring_put(t, &n, 4);
	ring_put(t, raw, n);
	ring_put(t, pad, total - sizeof(eh) - 4 - n);
}

static void ring_lost(struct test_ring *t, uint64_t n)
{
	struct perf_event_header eh = {PERF_RECORD_LOST, 0, 24};
	uint64_t body[2] = {7, n};
	ring_put(t, &eh, sizeof(eh));
	ring_put(t, body, sizeof(body));
}

struct seen {
	uint8_t raws[16][512];
	size_t lens[16], n, corrupt, pause_at;
	uint64_t lost;
	struct ekp_encoder *enc; /* fuzz: decode each sample */
	uint32_t type_id;        /* as a record of this type */
};

static int on_sample(void *ctx, const uint8_t *raw, size_t size)
{
	struct seen *s = ctx;
	if (s->enc != NULL) {
		if ((rnd() & 15) == 0)
			return EKP_RING_PAUSE;
		encode_one(s->enc, s->type_id, raw, size, 4096);
		return EKP_RING_NEXT;
	}
	if (s->n == s->pause_at) {
		s->pause_at = (size_t)-1;
		return EKP_RING_PAUSE;
	}
	CHECK(s->n < 16 && size <= sizeof(s->raws[0]));
	memcpy(s->raws[s->n], raw, size);
	s->lens[s->n++] = size;
	return EKP_RING_NEXT;
}

static void on_lost(void *ctx, uint64_t n)
{
	((struct seen *)ctx)->lost += n;
}

static void on_corrupt(void *ctx)
{
	((struct seen *)ctx)->corrupt++;
}

static int selftest(void)
{
	struct test_ring t = {calloc(1, sizeof(*t.hdr)), malloc(256), 256};
	struct ekp_ring r;
	struct seen s = {.pause_at = (size_t)-1};
	struct ekp_ring_handler h = {on_sample, on_lost, on_corrupt, &s};
	bool paused;
	uint8_t a[100], b[60];
	CHECK(t.hdr && t.data && ekp_ring_attach(&r, t.hdr, t.data, t.size) == 0);
	memset(a, 0xA1, sizeof(a));
	memset(b, 0xB2, sizeof(b));

	/* a record that runs past the end of the ring arrives whole */
	t.hdr->data_head = t.hdr->data_tail = 200;
	ring_sample(&t, a, sizeof(a));
	ring_lost(&t, 5);
	CHECK(ekp_ring_consume(&r, &h, &paused) == 1 && !paused);
	CHECK(s.n == 1 && s.lens[0] == sizeof(a) && memcmp(s.raws[0], a, sizeof(a)) == 0);
	CHECK(s.lost == 5 && t.hdr->data_tail == t.hdr->data_head && s.corrupt == 0);

	/* a pause leaves the record where it is; the next call hands it out again */
	s.pause_at = 2;
	ring_sample(&t, b, sizeof(b));
	ring_sample(&t, a, 10);
	uint64_t second = t.hdr->data_head - 24;
	CHECK(ekp_ring_consume(&r, &h, &paused) == 1 && paused && t.hdr->data_tail == second);
	CHECK(ekp_ring_consume(&r, &h, &paused) == 1 && !paused && s.n == 3 && s.lens[2] == 10);
	CHECK(memcmp(s.raws[1], b, sizeof(b)) == 0);

	/* a sample whose size runs past its record is corrupt; the next one still arrives */
	uint64_t at = t.hdr->data_head;
	ring_sample(&t, b, 8);
	uint32_t too_big = 200;
	memcpy(&t.data[(at + 8) & 255], &too_big, 4);
	ring_sample(&t, a, 16);
	CHECK(ekp_ring_consume(&r, &h, &paused) == 1 && s.corrupt == 1 && s.n == 4);

	/* a header of size 0, and positions further apart than the ring: skipped to the head */
	struct perf_event_header zero = {PERF_RECORD_SAMPLE, 0, 0};
	ring_put(&t, &zero, sizeof(zero));
	ring_sample(&t, a, 16);
	CHECK(ekp_ring_consume(&r, &h, &paused) == 0 && s.corrupt == 2 && t.hdr->data_tail == t.hdr->data_head);
	t.hdr->data_head += 4096;
	CHECK(ekp_ring_consume(&r, &h, &paused) == 0 && s.corrupt == 3 && t.hdr->data_tail == t.hdr->data_head);
	t.hdr->data_head += 4;
	CHECK(ekp_ring_consume(&r, &h, &paused) == 0 && s.corrupt == 4 && t.hdr->data_tail == t.hdr->data_head);

	ekp_ring_unmap(&r);
	free(t.hdr);
	free(t.data);
	puts("selftest: ok");
	return 0;
}

/* ---- fuzz -------------------------------------------------------------------------------------------- */

/* What the mutations know of each type's layout beyond its header and task. */
#define AT(s, m) {offsetof(struct s, m), sizeof(((struct s *)0)->m)}
struct span {
	size_t off, size;
};
#define FIELDS_MAX 5
#define STRINGS_MAX 3
static const struct shape {
	uint32_t type_id;
	struct span fields[FIELDS_MAX];   /* given boundary values (size 0: no more) */
	struct span strings[STRINGS_MAX]; /* its C strings besides comm, if any */
} SHAPES[] = {
	{EKP_EVENT_FILE_OPEN,
	 {AT(ekp_file_open, path_size), AT(ekp_file_open, ret), AT(ekp_file_open, syscall), AT(ekp_file_open, flags)},
	 {{offsetof(struct ekp_file_open, path), EKP_PATH_LEN}}},
	{EKP_EVENT_PROCESS_EXEC,
	 {AT(ekp_process_exec, args_count), AT(ekp_process_exec, args_size), AT(ekp_process_exec, flags),
	  AT(ekp_process_exec, retval), AT(ekp_process_exec, prev_start_ns)},
	 {AT(ekp_process_exec, filename), AT(ekp_process_exec, parent_filename), AT(ekp_process_exec, parent_comm)}},
	{EKP_EVENT_PROCESS_EXIT,
	 {AT(ekp_process_exit, flags), AT(ekp_process_exit, signal), AT(ekp_process_exit, exit_code),
	  AT(ekp_process_exit, fork_ns)},
	 {AT(ekp_process_exit, filename)}},
	{EKP_EVENT_PROCESS_FORK,
	 {AT(ekp_process_fork, child_pid), AT(ekp_process_fork, flags), AT(ekp_process_fork, child_start_ns)},
	 {AT(ekp_process_fork, filename)}},
#define TCP_SHAPE(type_id)                                                                                   \
	{type_id, {AT(ekp_tcp, family), AT(ekp_tcp, direction), AT(ekp_tcp, established_ns), AT(ekp_tcp, task.flags)}}
	TCP_SHAPE(EKP_EVENT_TCP_CONNECT),
	TCP_SHAPE(EKP_EVENT_TCP_ACCEPT),
	TCP_SHAPE(EKP_EVENT_TCP_CLOSE),
};
#define COMM_AT offsetof(struct ekp_file_open, task.comm) /* the same in every record */

static const struct shape *shape_of(uint32_t type_id)
{
	for (size_t i = 0; i < sizeof(SHAPES) / sizeof(SHAPES[0]); i++)
		if (SHAPES[i].type_id == type_id)
			return &SHAPES[i];
	return &SHAPES[0];
}

/* The type of a seed record: its ring's, whatever its mutations make of its header. */
static uint32_t type_of(const uint8_t *seed, size_t n)
{
	struct ekp_header h;
	if (n < sizeof(h))
		return EKP_EVENT_FILE_OPEN;
	memcpy(&h, seed, sizeof(h));
	return h.type;
}

static size_t mutate(const struct shape *sh, const uint8_t *seed, size_t n, uint8_t *out, size_t cap)
{
	/* lengths, flags, pids, signals and times at and beyond their bounds */
	static const uint64_t values[] = {
		0, 1, 2, 7, 8, 64, 65, 255, 256, 257, 0x7fff, 0xffff, 4194304, 4194305, 0xffffffff, 1ULL << 63, ~0ULL,
	};
	size_t len = n < cap ? n : cap;
	memcpy(out, seed, len);
	switch (rnd() % 6) {
	case 0: /* flip a few bytes */
		for (int k = 1 + rnd() % 8; k > 0 && len; k--)
			out[rnd() % len] = (uint8_t)rnd();
		break;
	case 1: /* cut short */
		len = len ? rnd() % (len + 1) : 0;
		break;
	case 2: /* longer, with garbage */
		while (len < cap && (rnd() & 7))
			out[len++] = (uint8_t)rnd();
		break;
	case 3: { /* a boundary value in one of the type's fields (little-endian: its low bytes), then maybe cut */
		size_t k = 0;
		while (k < FIELDS_MAX && sh->fields[k].size)
			k++;
		size_t f = rnd() % k, off = sh->fields[f].off, size = sh->fields[f].size;
		uint64_t v = values[rnd() % (sizeof(values) / sizeof(values[0]))];
		if (len >= off + size)
			memcpy(out + off, &v, size);
		if (rnd() & 1)
			len = len ? rnd() % (len + 1) : 0;
		break;
	}
	case 4: { /* no NUL where one is expected: in comm, or in one of the type's strings */
		struct span str = sh->strings[rnd() % STRINGS_MAX];
		if (str.size == 0 || (rnd() & 1))
			str = (struct span){COMM_AT, EKP_COMM_LEN};
		for (size_t i = str.off; i < len && i < str.off + str.size; i++)
			out[i] = out[i] ? out[i] : 'x';
		break;
	}
	default: /* bytes */
		len = rnd() % cap;
		for (size_t i = 0; i < len; i++)
			out[i] = (uint8_t)rnd();
	}
	return len;
}

static uint8_t *read_file(const char *path, size_t *n)
{
	FILE *f = fopen(path, "rb");
	CHECK(f != NULL);
	uint8_t *buf = malloc(65536);
	CHECK(buf != NULL);
	*n = fread(buf, 1, 65536, f);
	fclose(f);
	return buf;
}

static int fuzz(long iterations, int nseeds, char **paths)
{
	struct ekp_encoder e;
	fill_encoder(&e);
	uint8_t *seeds[64];
	size_t lens[64];
	uint32_t types[64];
	CHECK(nseeds > 0 && nseeds <= 64);
	for (int i = 0; i < nseeds; i++) {
		seeds[i] = read_file(paths[i], &lens[i]);
		types[i] = type_of(seeds[i], lens[i]);
	}
	uint8_t buf[4096]; /* an exec seed with its arguments */
	long ok = 0, ok_by_type[EKP_EVENT_TYPES] = {0};
	bool seeded[EKP_EVENT_TYPES] = {false};
	for (int i = 0; i < nseeds; i++) {
		CHECK(types[i] < EKP_EVENT_TYPES);
		seeded[types[i]] = true;
	}
	for (long it = 0; it < iterations; it++) {
		int k = (int)(rnd() % (uint64_t)nseeds);
		set_exec_bounds(&e, (unsigned int)rnd());
		size_t len = mutate(shape_of(types[k]), seeds[k], lens[k], buf, sizeof(buf));
		/* sometimes an output buffer too small: the encoding must stop at its end */
		bool encoded = encode_one(&e, types[k], buf, len, (rnd() & 7) ? 4096 : rnd() % 200) == EKP_OK;
		ok += encoded;
		ok_by_type[types[k]] += encoded;
		if ((it & 63) == 0) { /* a ring of such records, its positions and sizes broken at times */
			uint64_t size = 256u << (rnd() % 4);
			struct test_ring t = {calloc(1, sizeof(*t.hdr)), malloc(size), size};
			struct ekp_ring r;
			/* a ring holds one type's records: mutations of this iteration's seed's type */
			struct seen s = {.enc = &e, .type_id = types[k]};
			struct ekp_ring_handler h = {on_sample, on_lost, on_corrupt, &s};
			CHECK(t.hdr && t.data && ekp_ring_attach(&r, t.hdr, t.data, size) == 0);
			memset(t.data, 0, size);
			t.hdr->data_head = t.hdr->data_tail = rnd() % (size * 4);
			for (int n = 0; n < 8; n++) {
				int j;
				do /* k's type is there: it ends */
					j = (int)(rnd() % (uint64_t)nseeds);
				while (types[j] != types[k]);
				size_t l = mutate(shape_of(types[j]), seeds[j], lens[j], buf, 200);
				if (t.hdr->data_head - t.hdr->data_tail + l + 24 > size)
					break;
				if (rnd() & 7)
					ring_sample(&t, buf, (uint32_t)l);
				else
					ring_lost(&t, rnd());
			}
			for (int n = (int)(rnd() % 3); n > 0; n--) /* corrupt a byte, a size, the head */
				t.data[rnd() % size] = (uint8_t)rnd();
			if ((rnd() & 7) == 0)
				t.hdr->data_head += rnd() % (2 * size);
			bool paused = true;
			for (int round = 0; paused && round < 64; round++)
				ekp_ring_consume(&r, &h, &paused);
			ekp_ring_unmap(&r);
			free(t.hdr);
			free(t.data);
		}
	}
	for (int i = 0; i < nseeds; i++)
		free(seeds[i]);
	ekp_encoder_free(&e);
	printf("fuzz: %ld iterations, %ld encoded; by type:", iterations, ok);
	for (int t = 0; t < EKP_EVENT_TYPES; t++)
		if (seeded[t])
			printf(" %d=%ld", t, ok_by_type[t]);
	putchar('\n');
	return 0;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "selftest") == 0)
		return selftest();
	if (argc >= 5 && strcmp(argv[1], "fuzz") == 0) {
		rng ^= strtoull(argv[2], NULL, 10) * 0x9E3779B97F4A7C15ULL;
		return fuzz(atol(argv[3]), argc - 4, argv + 4);
	}
	fprintf(stderr, "usage: %s selftest | fuzz SEED ITERATIONS FILE...\n", argv[0]);
	return 2;
}

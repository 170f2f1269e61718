/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The native data plane of one reader: its perf rings -> records.c -> librdkafka, every
 * outcome counted in the shared arena exactly as producer/reader/handler.py counts it.
 *
 * Python (producer/native/plane.py) builds it after the fork, hands it the arena, the
 * tables and the rings, and then calls ekp_engine_run() in a loop: the engine waits on
 * the rings, drains them on the max_latency_ms timer, serves librdkafka's delivery
 * reports, and returns only when Python has something to do (a signal arrived, a
 * record's cgroup is unknown, a second went by, the producer failed fatally). No Python
 * code runs per record or per delivery report.
 */
#ifndef EKP_ENGINE_H
#define EKP_ENGINE_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "kafka.h"
#include "records.h"
#include "ring.h"

/* What ekp_engine_run returns for: EKP_RUN_WATCH, a watched fd is readable (a shared ring Python reads). */
enum ekp_run_status {
	EKP_RUN_TIMEOUT = 0,
	EKP_RUN_SIGNAL = 1,
	EKP_RUN_MISS = 2,
	EKP_RUN_FATAL = 3,
	EKP_RUN_WATCH = 4,
};

#define EKP_DELIVERY_CODES_MAX 32
#define EKP_HEADERS_MAX 8
#define EKP_LOG_LINES 32
/* fds the engine waits on for Python: the shared rings reader 0 reads with the Python handler */
#define EKP_WATCH_MAX 4
/* header lists kept per ring: the messages in flight in a steady stream (linger.ms + a round trip at
 * ~100k/s is a few thousand); what an outage leaves beyond this goes back to the heap */
#define EKP_HEADER_POOL_MAX 8192

/* Arena word offsets of a (reader, type, cpu) block: producer/ledger/arena.py's reason constants. */
struct ekp_reasons {
	uint64_t lost, decode_error, encode_error, queue_full, shutdown, delivered, produced, escaped, k8s_unresolved;
	uint64_t spooled, spool_full;
	uint64_t delivery_failed; /* first of n_codes slots, one per ledger.DELIVERY_CODES name */
	char codes[EKP_DELIVERY_CODES_MAX][40];
	uint64_t n_codes, other; /* `other`: the slot of an error name not in codes */
};

struct ekp_engine;

/*
 * The spool seam (producer/reader/spooling.py): the reader's SpoolOutlet decides, and says so in the
 * arena's SPOOLING word of the reader, whether records go to librdkafka or to the spool. While it is
 * set, and for the record a full queue refuses, the engine hands the framed record to `spill` (the
 * outlet appends it to the spool: true, counted spooled; false, spool_full) instead of producing it. A
 * message librdkafka gives back when it is purged at a stop goes to `purged` (the outlet writes it to
 * the spool, counted respooled, or shutdown when it does not fit) instead of being counted shutdown. Both are rare, so both may cost a
 * call into Python; the steady state, producing, costs one load of the SPOOLING word per record.
 */
struct ekp_spool_seam {
	uint64_t spooling_word; /* the reader's SPOOLING word in the arena */
	bool (*spill)(void *ctx, size_t ring, const uint8_t *value, size_t len, uint64_t seq, bool full);
	bool (*purged)(void *ctx, size_t ring, const uint8_t *value, size_t len); /* false: not kept */
	void *ctx;
};

struct ekp_ring_ctx {
	struct ekp_engine *e;
	size_t index; /* its place in add_ring's order: how the spool seam names it */
	struct ekp_ring ring;
	struct ekp_ring_handler handler;
	int fd;
	uint32_t cpu;
	const struct ekp_type *type;
	uint64_t base;                                     /* reason 0 of this ring's block */
	uint64_t j_done, j_intent, j_slot, j_old, suspect; /* this (type, cpu)'s journal words */
	rd_kafka_topic_t *rkt;
	rd_kafka_headers_t *headers; /* the template of every message's headers */
	/* Header lists back from delivered messages, for the next ones: every message of a ring has the
	 * same headers, and a fresh copy costs five allocations and five frees (profiled: a fifth of the
	 * reader's time went to malloc on cold memory). */
	rd_kafka_headers_t **pool;
	size_t n_pool, cap_pool;
	uint8_t frame[16];           /* C3 01 + fingerprint, or 00 + schema id */
	size_t frame_len;
};

struct ekp_log_line {
	int level;
	char facility[32];
	char message[480];
};

struct ekp_engine {
	struct ekp_rdk k;
	rd_kafka_t *rk;
	struct ekp_encoder enc;
	uint64_t *words; /* the arena (ledger.Arena), one writer per word */
	uint64_t n_words;
	struct ekp_reasons reasons;
	struct ekp_ring_ctx **rings; /* each at a fixed address: it is the opaque of its messages */
	size_t n_rings;
	struct pollfd *pfds; /* one per ring, then the signal wakeup fd, then the watched fds */
	int wakeup_fd;
	int watch_fds[EKP_WATCH_MAX];
	size_t n_watch;
	uint8_t key[256];
	size_t key_len;
	uint64_t max_block_ns, latency_ns, next_drain_ns, give_up_at_ns, now_ns;
	bool saturated; /* the queue stayed full for max_block: later records are counted at once */
	struct ekp_spool_seam *spool; /* NULL: no spool (spool.enabled false, or it could not be opened) */
	uint8_t buf[EKP_MESSAGE_MAX]; /* a message: the framing prefix, then the body */
	uint64_t handled; /* records taken from the rings (the shutdown drain watches it) */
	uint64_t in_flight; /* messages produced, their delivery report not served yet */
	uint64_t missing; /* the cgroup id of the record paused on */
	char fatal[512];
	struct ekp_log_line logs[EKP_LOG_LINES];
	size_t n_logs;
	uint64_t logs_dropped;
};

/* The producer, from librdkafka properties. Returns 0, or -1 with errbuf set. */
int ekp_engine_init(struct ekp_engine *e, const char *cimpl_path, const char *const *keys,
		    const char *const *values, size_t n, char *errbuf, size_t errlen);

struct ekp_ring_spec {
	int fd;
	size_t pages;
	uint32_t cpu, type_id;
	uint64_t base, j_done, j_intent, j_slot, j_old, suspect;
	const char *topic;
	const uint8_t *frame;
	size_t frame_len;
	const char *header_names[EKP_HEADERS_MAX];
	const uint8_t *header_values[EKP_HEADERS_MAX];
	size_t header_lens[EKP_HEADERS_MAX];
	size_t n_headers;
};

int ekp_engine_add_ring(struct ekp_engine *e, const struct ekp_ring_spec *s, char *errbuf, size_t errlen);
/* Produce one framed record (producer.c): the reason slot to count, relative to the ring's block, or
 * EKP_SPILL: the queue is full and there is a spool, which the record goes to instead. */
#define EKP_SPILL UINT64_MAX
uint64_t ekp_produce(struct ekp_ring_ctx *rc, const uint8_t *value, size_t len);
/* Serve librdkafka's callbacks for up to timeout_ms. */
void ekp_engine_poll(struct ekp_engine *e, int timeout_ms);
/* Messages produced and not yet answered (rd_kafka_outq_len counts its queued events and log lines too). */
uint64_t ekp_engine_outstanding(struct ekp_engine *e);
/* Also wait on fd, returning EKP_RUN_WATCH when it is readable. Returns 0, or -1 with errbuf set. */
int ekp_engine_watch(struct ekp_engine *e, int fd, char *errbuf, size_t errlen);
/* The pollfd slots after the rings: the wakeup fd, then the watched fds (pfds has room for them). */
void ekp_engine_place_tail(struct ekp_engine *e);
int ekp_engine_run(struct ekp_engine *e, int timeout_ms);
/* Drain every ring now. Returns records handled; *paused when it stopped at an unknown cgroup. */
long ekp_engine_consume(struct ekp_engine *e, bool *paused);
/* Flush until the deadline, purge the rest, serve its reports; returns messages still unresolved. */
int ekp_engine_close(struct ekp_engine *e, uint64_t deadline_ns);
uint64_t ekp_now_ns(void);

/* One writer per word: a plain increment, kept in program order for the journal's sake. */
static inline void ekp_word_add(struct ekp_engine *e, uint64_t i, uint64_t n)
{
	uint64_t v = __atomic_load_n(&e->words[i], __ATOMIC_RELAXED);
	__atomic_store_n(&e->words[i], v + n, __ATOMIC_RELEASE);
}

static inline void ekp_word_set(struct ekp_engine *e, uint64_t i, uint64_t v)
{
	__atomic_store_n(&e->words[i], v, __ATOMIC_RELEASE);
}


#endif /* EKP_ENGINE_H */

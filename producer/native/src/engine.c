/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The hot loop; see engine.h. What each record becomes, and the order of the arena
 * writes, are those of producer/reader/handler.py (on_sample), ledger/arena.py (Journal) and kafka/sink.py (Sink.produce), so the
 * supervisor's ledger code reads a native reader's arena exactly like a Python one's.
 */
#define _GNU_SOURCE
#include "engine.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

uint64_t ekp_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- the arena ----------------------------------------------------------------------------------- */

/*
 * arena.Journal.count: counter/old -> intent -> counter += 1 -> done, so that after a
 * kill -9 at any instruction the supervisor (Arena.settle_journal) can tell whether this
 * record was counted. Release stores keep that order; on x86 they are plain stores.
 */
static void journal_count(struct ekp_ring_ctx *rc, bool has_seq, uint64_t seq, uint64_t counter)
{
	struct ekp_engine *e = rc->e;
	if (!has_seq) { /* too short to carry a sequence: it cannot come back as a duplicate we could spot */
		ekp_word_add(e, counter, 1);
		return;
	}
	uint64_t old = __atomic_load_n(&e->words[counter], __ATOMIC_RELAXED);
	ekp_word_set(e, rc->j_slot, counter);
	ekp_word_set(e, rc->j_old, old);
	ekp_word_set(e, rc->j_intent, seq + 1);
	ekp_word_set(e, counter, old + 1);
	ekp_word_set(e, rc->j_done, seq + 1);
}

/* ---- the spool seam (engine.h) -------------------------------------------------------------------- */

static inline bool spooling(struct ekp_engine *e)
{
	return e->spool != NULL && __atomic_load_n(&e->words[e->spool->spooling_word], __ATOMIC_ACQUIRE) != 0;
}

/* the record in e->buf to the spool: spooled or spool_full. `full`: a full queue refused it, which
 * turns the reader to its spool (the outlet sets SPOOLING before it appends). */
static uint64_t spill(struct ekp_ring_ctx *rc, size_t len, uint64_t seq, bool full)
{
	struct ekp_engine *e = rc->e;
	bool ok = e->spool->spill(e->spool->ctx, rc->index, e->buf, len, seq, full);
	return ok ? e->reasons.spooled : e->reasons.spool_full;
}

/* ---- ring callbacks: reader.on_sample and on_lost ------------------------------------------------ */

static int on_sample(void *ctx, const uint8_t *raw, size_t size)
{
	struct ekp_ring_ctx *rc = ctx;
	struct ekp_engine *e = rc->e;
	uint64_t seq = 0;
	/* seq + 1 is what the journal keeps; a (garbage) seq whose successor wraps to 0 cannot be kept,
	 * and is counted plainly, as the Python reader's fallback counts it */
	bool has_seq = ekp_peek_seq(raw, size, &seq) && seq != UINT64_MAX;
	if (has_seq && __atomic_load_n(&e->words[rc->suspect], __ATOMIC_RELAXED) == seq + 1) {
		ekp_word_set(e, rc->suspect, 0); /* counted by the reader before us, which died before moving on */
		e->handled++;
		return EKP_RING_NEXT;
	}
	memcpy(e->buf, rc->frame, rc->frame_len);
	struct ekp_out o = {e->buf + rc->frame_len, e->buf + sizeof(e->buf), false};
	unsigned flags = 0;
	uint64_t outcome;
	switch (ekp_encode_record(&e->enc, rc->type, raw, size, rc->cpu, e->now_ns, &o, &flags, &e->missing)) {
	case EKP_CGROUP_MISS:
		return EKP_RING_PAUSE; /* Python looks the cgroup up; the record is read again */
	case EKP_OK:
		/* an info row, counted when the record is built (reader/pods.py counts it in the encoder) */
		if (flags & EKP_F_K8S_UNRESOLVED)
			ekp_word_add(e, rc->base + e->reasons.k8s_unresolved, 1);
		outcome = spooling(e) ? EKP_SPILL : ekp_produce(rc, e->buf, (size_t)(o.p - e->buf));
		if (outcome == EKP_SPILL) /* an encoded record always has its seq: the encoder read it */
			outcome = spill(rc, (size_t)(o.p - e->buf), seq, !spooling(e));
		if (flags & EKP_F_ESCAPED)
			ekp_word_add(e, rc->base + e->reasons.escaped, 1);
		break;
	case EKP_ENCODE_ERROR:
		outcome = e->reasons.encode_error;
		break;
	default:
		outcome = e->reasons.decode_error;
	}
	e->handled++;
	journal_count(rc, has_seq, seq, rc->base + outcome);
	return EKP_RING_NEXT;
}

static void on_lost(void *ctx, uint64_t n)
{
	struct ekp_ring_ctx *rc = ctx;
	ekp_word_add(rc->e, rc->base + rc->e->reasons.lost, n);
}

static void on_corrupt(void *ctx)
{
	struct ekp_ring_ctx *rc = ctx;
	rc->e->handled++;
	ekp_word_add(rc->e, rc->base + rc->e->reasons.decode_error, 1);
}

/* ---- the loop ------------------------------------------------------------------------------------ */

static int consume_ring(struct ekp_engine *e, struct ekp_ring_ctx *rc)
{
	bool paused;
	e->now_ns = ekp_now_ns();
	ekp_ring_consume(&rc->ring, &rc->handler, &paused);
	return paused ? -1 : 0;
}

long ekp_engine_consume(struct ekp_engine *e, bool *paused)
{
	uint64_t before = e->handled;
	*paused = false;
	for (size_t i = 0; i < e->n_rings && !*paused; i++)
		*paused = consume_ring(e, e->rings[i]) < 0;
	e->k.poll(e->rk, 0);
	return (long)(e->handled - before);
}

static void drain_fd(int fd)
{
	char sink[64];
	while (read(fd, sink, sizeof(sink)) > 0)
		;
}

int ekp_engine_run(struct ekp_engine *e, int timeout_ms)
{
	uint64_t deadline = ekp_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	for (;;) {
		uint64_t now = ekp_now_ns();
		if (now >= e->next_drain_ns) {
			/* wakeup_events > 1 leaves a lone record waiting for company: this bounds its wait */
			bool paused;
			ekp_engine_consume(e, &paused);
			if (paused)
				return EKP_RUN_MISS;
			e->next_drain_ns = now + e->latency_ns;
		}
		e->k.poll(e->rk, 0);
		if (e->fatal[0])
			return EKP_RUN_FATAL;
		now = ekp_now_ns();
		uint64_t until = deadline < e->next_drain_ns ? deadline : e->next_drain_ns;
		/* a drain (or a wait on a full queue) can outlast max_latency_ms: then the next one is due now */
		uint64_t wait_ns = until > now ? until - now : 0;
		int n = poll(e->pfds, e->n_rings + 1 + e->n_watch, (int)((wait_ns + 999999) / 1000000));
		if (n < 0)
			return EKP_RUN_SIGNAL; /* EINTR: a signal for Python's handler */
		for (size_t i = 0; i < e->n_rings; i++) {
			short ev = e->pfds[i].revents;
			if (ev & (POLLERR | POLLHUP | POLLNVAL))
				/* a ring that can no longer wake us (its perf event is gone, or in error) would make
				 * poll() return at once forever: it is left to the timer drain */
				e->pfds[i].fd = -1;
			if (ev && consume_ring(e, e->rings[i]) < 0)
				return EKP_RUN_MISS;
		}
		if (e->pfds[e->n_rings].revents) {
			drain_fd(e->wakeup_fd);
			return EKP_RUN_SIGNAL;
		}
		for (size_t i = 0; i < e->n_watch; i++) {
			struct pollfd *p = &e->pfds[e->n_rings + 1 + i];
			if (p->revents & (POLLERR | POLLHUP | POLLNVAL))
				p->fd = -1; /* as a ring's: Python still reads it after every return */
			else if (p->revents)
				return EKP_RUN_WATCH;
		}
		/* checked after the poll: run(0), a loop with replay work, still reads the readable rings */
		if (ekp_now_ns() >= deadline)
			return EKP_RUN_TIMEOUT;
	}
}

void ekp_engine_place_tail(struct ekp_engine *e)
{
	e->pfds[e->n_rings] = (struct pollfd){e->wakeup_fd, POLLIN, 0};
	for (size_t i = 0; i < e->n_watch; i++)
		e->pfds[e->n_rings + 1 + i] = (struct pollfd){e->watch_fds[i], POLLIN, 0};
}

int ekp_engine_watch(struct ekp_engine *e, int fd, char *errbuf, size_t errlen)
{
	if (fd < 0 || e->n_watch == EKP_WATCH_MAX) {
		snprintf(errbuf, errlen, fd < 0 ? "watch: a negative fd" : "watch: at most %d fds", EKP_WATCH_MAX);
		return -1;
	}
	e->watch_fds[e->n_watch++] = fd;
	ekp_engine_place_tail(e);
	return 0;
}

/* ---- set-up -------------------------------------------------------------------------------------- */

static bool index_ok(const struct ekp_engine *e, uint64_t i)
{
	return i < e->n_words;
}

int ekp_engine_add_ring(struct ekp_engine *e, const struct ekp_ring_spec *s, char *errbuf, size_t errlen)
{
	const struct ekp_reasons *r = &e->reasons;
	uint64_t last = r->delivery_failed + r->n_codes - 1;
	if (!index_ok(e, s->base + last) || !index_ok(e, s->j_done) || !index_ok(e, s->j_intent) ||
	    !index_ok(e, s->j_slot) || !index_ok(e, s->j_old) || !index_ok(e, s->suspect)) {
		snprintf(errbuf, errlen, "arena index out of range for cpu %u", s->cpu);
		return -1;
	}
	const struct ekp_type *type = ekp_type_of(s->type_id);
	if (type == NULL || s->frame_len > sizeof(((struct ekp_ring_ctx *)0)->frame) || s->n_headers > EKP_HEADERS_MAX) {
		snprintf(errbuf, errlen, "event type %u has no native encoder", s->type_id);
		return -1;
	}
	struct ekp_ring_ctx **rings = realloc(e->rings, (e->n_rings + 1) * sizeof(*rings));
	struct pollfd *pfds = rings ? realloc(e->pfds, (e->n_rings + 2 + EKP_WATCH_MAX) * sizeof(*pfds)) : NULL;
	struct ekp_ring_ctx *rc = pfds ? calloc(1, sizeof(*rc)) : NULL;
	if (rings)
		e->rings = rings;
	if (pfds)
		e->pfds = pfds;
	if (rc == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		return -1;
	}
	int rc_map = ekp_ring_map(&rc->ring, s->fd, s->pages);
	if (rc_map < 0) {
		snprintf(errbuf, errlen, "mapping the perf buffer of cpu %u failed: %s", s->cpu, strerror(-rc_map));
		free(rc);
		return -1;
	}
	rc->e = e;
	rc->index = e->n_rings;
	rc->fd = s->fd;
	rc->cpu = s->cpu;
	rc->type = type;
	rc->base = s->base;
	rc->j_done = s->j_done;
	rc->j_intent = s->j_intent;
	rc->j_slot = s->j_slot;
	rc->j_old = s->j_old;
	rc->suspect = s->suspect;
	rc->frame_len = s->frame_len;
	memcpy(rc->frame, s->frame, s->frame_len);
	rc->handler = (struct ekp_ring_handler){on_sample, on_lost, on_corrupt, rc};
	rc->rkt = e->k.topic_new(e->rk, s->topic, NULL);
	if (rc->rkt == NULL) {
		snprintf(errbuf, errlen, "topic %s: %s", s->topic, e->k.err2name(RD_KAFKA_RESP_ERR__INVALID_ARG));
		ekp_ring_unmap(&rc->ring);
		free(rc);
		return -1;
	}
	if (s->n_headers) {
		rc->headers = e->k.headers_new(s->n_headers);
		for (size_t i = 0; i < s->n_headers; i++)
			e->k.header_add(rc->headers, s->header_names[i], -1, s->header_values[i],
					(ssize_t)s->header_lens[i]);
	}
	e->rings[e->n_rings] = rc;
	e->pfds[e->n_rings] = (struct pollfd){s->fd, POLLIN, 0};
	e->n_rings++;
	ekp_engine_place_tail(e);
	return 0;
}

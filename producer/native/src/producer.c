/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The engine's producer: librdkafka's callbacks, the produce policy of sink.Sink (a bounded wait on a
 * full queue, then none while it stays full), the header lists reused across messages, and the
 * flush-purge-close of a stop. Every callback is served by rd_kafka_poll/flush in the engine's thread.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"

/* ledger.delivery_slot / sink.classify: an error -> its counter, relative to the block */
static uint64_t failure_slot(struct ekp_engine *e, rd_kafka_resp_err_t err, bool purge_is_shutdown)
{
	if (purge_is_shutdown && (err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT))
		return e->reasons.shutdown;
	const char *name = e->k.err2name(err);
	for (uint64_t i = 0; i < e->reasons.n_codes; i++)
		if (name != NULL && strcmp(name, e->reasons.codes[i]) == 0)
			return e->reasons.delivery_failed + i;
	return e->reasons.delivery_failed + e->reasons.other;
}

/* ---- librdkafka callbacks (served by rd_kafka_poll/flush in this thread) -------------------------- */

/* a header list for a message of this ring: one back from an earlier message, or a new copy */
static rd_kafka_headers_t *take_headers(struct ekp_ring_ctx *rc)
{
	if (rc->headers == NULL)
		return NULL;
	return rc->n_pool ? rc->pool[--rc->n_pool] : rc->e->k.headers_copy(rc->headers);
}

static void give_headers(struct ekp_ring_ctx *rc, rd_kafka_headers_t *h)
{
	if (h == NULL)
		return;
	if (rc->n_pool == rc->cap_pool && rc->cap_pool < EKP_HEADER_POOL_MAX) {
		size_t cap = rc->cap_pool ? rc->cap_pool * 2 : 256;
		rd_kafka_headers_t **pool = realloc(rc->pool, cap * sizeof(*pool));
		if (pool != NULL) {
			rc->pool = pool;
			rc->cap_pool = cap;
		}
	}
	if (rc->n_pool < rc->cap_pool)
		rc->pool[rc->n_pool++] = h;
	else
		rc->e->k.headers_destroy(h);
}

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk;
	struct ekp_engine *e = opaque;
	struct ekp_ring_ctx *rc = m->_private;
	rd_kafka_headers_t *h = NULL;
	/* the message is done with its headers: keep them for the next message instead of freeing them */
	if (e->k.message_detach_headers((rd_kafka_message_t *)m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
		give_headers(rc, h);
	bool purged = m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE || m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT;
	/* to the spool (engine.h): counted there, respooled or shutdown */
	e->in_flight--;
	if (!(purged && e->spool != NULL && e->spool->purged(e->spool->ctx, rc->index, m->payload, m->len)))
		ekp_word_add(e, rc->base + (m->err ? failure_slot(e, m->err, true) : e->reasons.delivered), 1);
}

static void on_error(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
	struct ekp_engine *e = opaque;
	if (err != RD_KAFKA_RESP_ERR__FATAL)
		return; /* librdkafka retries the others itself; they show in its log lines */
	char why[256];
	rd_kafka_resp_err_t orig = e->k.fatal_error(rk, why, sizeof(why));
	snprintf(e->fatal, sizeof(e->fatal), "%s: %s", e->k.err2name(orig), orig ? why : reason);
}

/* the one librdkafka in the process: every engine's rd_kafka_opaque is this function */
static __typeof__(&rd_kafka_opaque) opaque_of;

/* log.queue: served by rd_kafka_poll in this thread; Python takes the lines between runs and
 * rate-limits them like sink.LibrdkafkaLog does for the Python path */
static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
	struct ekp_engine *e = opaque_of(rk);
	if (e == NULL)
		return;
	if (e->n_logs == EKP_LOG_LINES) {
		e->logs_dropped++;
		return;
	}
	struct ekp_log_line *l = &e->logs[e->n_logs++];
	l->level = level;
	snprintf(l->facility, sizeof(l->facility), "%s", fac);
	snprintf(l->message, sizeof(l->message), "%s", buf);
}

/* ---- producing ----------------------------------------------------------------------------------- */

static rd_kafka_resp_err_t try_produce(struct ekp_ring_ctx *rc, const uint8_t *value, size_t len)
{
	struct ekp_engine *e = rc->e;
	rd_kafka_headers_t *hdrs = take_headers(rc);
	rd_kafka_resp_err_t err = e->k.producev(
		e->rk, RD_KAFKA_V_RKT(rc->rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
		RD_KAFKA_V_VALUE((void *)value, len), RD_KAFKA_V_KEY(e->key, e->key_len),
		RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(rc), RD_KAFKA_V_END);
	if (err)
		give_headers(rc, hdrs); /* owned by the message only once it was accepted */
	else
		e->in_flight++;
	return err;
}

/* sink.Sink.produce: the produced slot, queue_full, or a failure slot */
uint64_t ekp_produce(struct ekp_ring_ctx *rc, const uint8_t *value, size_t len)
{
	struct ekp_engine *e = rc->e;
	rd_kafka_resp_err_t err = try_produce(rc, value, len);
	if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
		e->saturated = false;
		return e->reasons.produced;
	}
	if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
		return failure_slot(e, err, false);
	if (e->spool != NULL)
		return EKP_SPILL; /* no wait: the spool takes it, and every record after it until Kafka catches up */
	/* Waiting for room is worth it within the budget only; once the queue stayed full that long,
	 * a record costs no wait, or the reader falls behind its rings and the kernel drops too. */
	uint64_t now = ekp_now_ns();
	bool hurry = e->saturated || now >= e->give_up_at_ns;
	uint64_t deadline = now + (hurry ? 0 : e->max_block_ns);
	for (;;) {
		e->k.poll(e->rk, hurry ? 0 : 5);
		err = try_produce(rc, value, len);
		if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
			e->saturated = false;
			return e->reasons.produced;
		}
		if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
			return failure_slot(e, err, false);
		now = ekp_now_ns();
		if (now >= deadline || now >= e->give_up_at_ns) {
			e->saturated = true;
			return e->reasons.queue_full;
		}
	}
}

void ekp_engine_poll(struct ekp_engine *e, int timeout_ms)
{
	e->k.poll(e->rk, timeout_ms);
}

uint64_t ekp_engine_outstanding(struct ekp_engine *e)
{
	return e->in_flight;
}

int ekp_engine_close(struct ekp_engine *e, uint64_t deadline_ns)
{
	uint64_t now = ekp_now_ns();
	e->k.flush(e->rk, deadline_ns > now ? (int)((deadline_ns - now) / 1000000) : 0);
	if (e->k.outq_len(e->rk) > 0) {
		e->k.purge(e->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT | RD_KAFKA_PURGE_F_NON_BLOCKING);
		uint64_t end = ekp_now_ns() + 1000000000ULL;
		while (e->k.outq_len(e->rk) > 0 && ekp_now_ns() < end)
			e->k.poll(e->rk, 50);
	}
	return e->k.outq_len(e->rk);
}


int ekp_engine_init(struct ekp_engine *e, const char *cimpl_path, const char *const *keys,
		    const char *const *values, size_t n, char *errbuf, size_t errlen)
{
	if (ekp_rdk_resolve(&e->k, cimpl_path, errbuf, errlen) < 0)
		return -1;
	opaque_of = e->k.opaque;
	e->give_up_at_ns = UINT64_MAX;
	rd_kafka_conf_t *conf = e->k.conf_new();
	for (size_t i = 0; i < n; i++)
		if (e->k.conf_set(conf, keys[i], values[i], errbuf, errlen) != RD_KAFKA_CONF_OK) {
			e->k.conf_destroy(conf);
			return -1;
		}
	if (e->k.conf_set(conf, "log.queue", "true", errbuf, errlen) != RD_KAFKA_CONF_OK) {
		e->k.conf_destroy(conf);
		return -1;
	}
	e->k.conf_set_opaque(conf, e);
	e->k.conf_set_dr_msg_cb(conf, on_delivery);
	e->k.conf_set_error_cb(conf, on_error);
	e->k.conf_set_log_cb(conf, on_log);
	e->rk = e->k.new(RD_KAFKA_PRODUCER, conf, errbuf, errlen);
	if (e->rk == NULL) {
		e->k.conf_destroy(conf); /* rd_kafka_new keeps the conf only when it succeeds */
		return -1;
	}
	e->k.set_log_queue(e->rk, NULL); /* the main queue, served by rd_kafka_poll */
	return 0;
}

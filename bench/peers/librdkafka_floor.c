/* SPDX-License-Identifier: Apache-2.0 */
/*
 * librdkafka's own cost per message with the collector's producer settings, and nothing else: no ring,
 * no decode, no encode. It produces N messages of 300 bytes (each different, as each record's seq is),
 * key "node", with the three headers every event carries (event_type, reader, run_id), paced at RATE/s,
 * a delivery report per message, and prints the CPU of the whole process (every librdkafka thread:
 * getrusage) per delivered message. The native data plane cannot cost less than this per event.
 *
 * Build and run against the librdkafka the product uses (confluent-kafka's; the header from
 * librdkafka-dev, which `make setup` installs), under the test lock, with the local broker up:
 *
 *   L=.venv/lib/python3.11/site-packages/confluent_kafka.libs
 *   gcc -O2 -o /tmp/floor bench/peers/librdkafka_floor.c -L$L -l:$(ls $L | grep rdkafka) -Wl,-rpath,$L
 *   /tmp/floor TOPIC lz4 1000000 100000            # headers as the product sends them: a copy each
 *   POOL=1 /tmp/floor TOPIC lz4 1000000 100000     # header lists reused, as the native engine does
 *   NOHDR=1 /tmp/floor TOPIC lz4 1000000 100000    # no headers at all
 *   POOL=1 ONEHDR=1 /tmp/floor TOPIC lz4 1000000 100000   # run_id alone, reused
 *
 * Results and what they mean: docs/benchmarks.md ("librdkafka's own floor").
 */
#define _GNU_SOURCE
#include <librdkafka/rdkafka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#define LEN 300

static long delivered, failed;
static rd_kafka_headers_t *pool[200000]; /* header lists back from delivered messages (POOL=1) */
static long n_pool;
static int reuse;

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
	(void)rk, (void)opaque;
	rd_kafka_headers_t *h = NULL;
	if (reuse && rd_kafka_message_detach_headers((rd_kafka_message_t *)m, &h) == 0 && h && n_pool < 200000)
		pool[n_pool++] = h;
	if (m->err)
		failed++;
	else
		delivered++;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static double cpu(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (double)(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + (double)(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

int main(int argc, char **argv)
{
	if (argc != 5) {
		fprintf(stderr, "usage: %s TOPIC COMPRESSION N RATE\n", argv[0]);
		return 2;
	}
	const char *topic = argv[1], *compression = argv[2];
	long n = atol(argv[3]), rate = atol(argv[4]);
	int headers = getenv("NOHDR") == NULL;
	reuse = getenv("POOL") != NULL;
	char err[512];
	/* kafka/client.py's DEFAULTS and ENFORCED, with a spool (message.timeout.ms 0) */
	const char *conf[][2] = {{"bootstrap.servers", "127.0.0.1:9092"}, {"compression.type", compression},
				 {"linger.ms", "20"}, {"batch.num.messages", "10000"}, {"batch.size", "1000000"},
				 {"queue.buffering.max.messages", "100000"}, {"queue.buffering.max.kbytes", "65536"},
				 {"message.timeout.ms", "0"}, {"enable.idempotence", "true"}, {"acks", "all"}};
	rd_kafka_conf_t *c = rd_kafka_conf_new();
	for (size_t i = 0; i < sizeof(conf) / sizeof(conf[0]); i++)
		if (rd_kafka_conf_set(c, conf[i][0], conf[i][1], err, sizeof(err)) != RD_KAFKA_CONF_OK) {
			fprintf(stderr, "%s\n", err);
			return 1;
		}
	rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
	rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, c, err, sizeof(err));
	if (rk == NULL) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
	rd_kafka_headers_t *h = rd_kafka_headers_new(3);
	if (getenv("ONEHDR") == NULL) {
		rd_kafka_header_add(h, "event_type", -1, "file_open", 9);
		rd_kafka_header_add(h, "reader", -1, "0", 1);
	}
	rd_kafka_header_add(h, "run_id", -1, "0123456789abcdef0123456789abcdef0123", 36);
	unsigned char v[LEN];
	static const char text[] = "/tmp/ekp-bench-x/file-0123";
	for (size_t i = 0; i < LEN; i++) /* a record-like mix: text and small integers, as an Avro body */
		v[i] = i % 3 ? (unsigned char)text[i % 26] : (unsigned char)((i * 7) & 0x7f);
	/* connect and get the idempotent producer's id before measuring */
	rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_VALUE(v, LEN), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
			  RD_KAFKA_V_END);
	rd_kafka_flush(rk, 10000);
	long warm = delivered;
	double c0 = cpu(), t0 = now();
	for (long i = 0; i < n; i++) {
		while ((double)i / (double)rate > now() - t0)
			rd_kafka_poll(rk, 1);
		memcpy(v, &i, sizeof(i));
		rd_kafka_headers_t *mh = !headers ? NULL : n_pool ? pool[--n_pool] : rd_kafka_headers_copy(h);
		while (rd_kafka_producev(rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
					 RD_KAFKA_V_VALUE(v, LEN), RD_KAFKA_V_KEY("node", 4), RD_KAFKA_V_HEADERS(mh),
					 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
			rd_kafka_poll(rk, 1);
		if (i % 64 == 0)
			rd_kafka_poll(rk, 0);
	}
	rd_kafka_flush(rk, 60000);
	double c1 = cpu(), t1 = now();
	printf("compression=%s headers=%s n=%ld rate=%ld delivered=%ld failed=%ld wall=%.2fs cpu=%.2fs -> %.2f us/msg\n",
	       compression, !headers ? "none" : getenv("ONEHDR") ? "run_id" : reuse ? "reused" : "copied", n, rate,
	       delivered - warm, failed,
	       t1 - t0, c1 - c0, (c1 - c0) / (double)n * 1e6);
	return 0;
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Reading one perf ring buffer in place, without libbcc's callbacks.
 *
 * The kernel writes records into the data pages and then publishes data_head; we read
 * data_head with acquire ordering (the records before it are complete), handle each
 * record, and publish data_tail with release ordering after each one (the kernel may
 * reuse the space). data_tail lives in the ring's header page, shared by every mapping
 * of the perf event: a reader that dies mid-record leaves that record for its
 * successor, exactly as libbcc's perf_reader did (producer/kernel/perfbuf.py). A record that
 * runs past the end of the data pages is copied into one contiguous buffer.
 *
 * Nothing in the ring is trusted: a size that does not fit is counted as corrupt,
 * never followed past the bytes that are there.
 */
#ifndef EKP_RING_H
#define EKP_RING_H

#include <linux/perf_event.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ekp_ring {
	struct perf_event_mmap_page *hdr; /* data_head, data_tail */
	const uint8_t *data;              /* the data pages */
	uint64_t size;                    /* bytes of data pages: a power of two */
	uint8_t *copy;                    /* a record that wraps, made contiguous */
	void *map;                        /* what ekp_ring_map mapped (NULL for a ring given by a test) */
	size_t map_len;
	uint64_t corrupt; /* records (or runs of the ring) that could not be parsed */
};

enum { EKP_RING_NEXT = 0, EKP_RING_PAUSE = 1 };

struct ekp_ring_handler {
	/* a raw sample: EKP_RING_NEXT to consume it, EKP_RING_PAUSE to stop before it (it is read again) */
	int (*sample)(void *ctx, const uint8_t *raw, size_t size);
	void (*lost)(void *ctx, uint64_t count); /* PERF_RECORD_LOST */
	void (*corrupt)(void *ctx);              /* a record that cannot be parsed, skipped */
	void *ctx;
};

/* Map a perf event's ring (1 header page + `pages` data pages) read-write. Returns 0 or -errno. */
int ekp_ring_map(struct ekp_ring *r, int fd, size_t pages);
/* A ring in memory the caller owns (tests, fuzzing): `size` must be a power of two. */
int ekp_ring_attach(struct ekp_ring *r, struct perf_event_mmap_page *hdr, const uint8_t *data, uint64_t size);
void ekp_ring_unmap(struct ekp_ring *r);

/* Handle every record up to data_head. Returns the samples handled; *paused when a handler paused. */
long ekp_ring_consume(struct ekp_ring *r, const struct ekp_ring_handler *h, bool *paused);

#endif /* EKP_RING_H */

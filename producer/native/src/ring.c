/* SPDX-License-Identifier: Apache-2.0 */
#include "ring.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* perf_event_header.size is a u16: no record is longer */
#define EKP_RECORD_MAX 65536

int ekp_ring_attach(struct ekp_ring *r, struct perf_event_mmap_page *hdr, const uint8_t *data, uint64_t size)
{
	memset(r, 0, sizeof(*r));
	if (size == 0 || (size & (size - 1)))
		return -EINVAL;
	r->copy = malloc(EKP_RECORD_MAX);
	if (r->copy == NULL)
		return -ENOMEM;
	r->hdr = hdr;
	r->data = data;
	r->size = size;
	return 0;
}

int ekp_ring_map(struct ekp_ring *r, int fd, size_t pages)
{
	long page = sysconf(_SC_PAGESIZE);
	if (page <= 0 || pages == 0 || (pages & (pages - 1)))
		return -EINVAL;
	size_t len = (pages + 1) * (size_t)page;
	void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (map == MAP_FAILED)
		return -errno;
	int rc = ekp_ring_attach(r, map, (const uint8_t *)map + page, pages * (uint64_t)page);
	if (rc < 0) {
		munmap(map, len);
		return rc;
	}
	r->map = map;
	r->map_len = len;
	return 0;
}

void ekp_ring_unmap(struct ekp_ring *r)
{
	if (r->map != NULL)
		munmap(r->map, r->map_len);
	free(r->copy);
	memset(r, 0, sizeof(*r));
}

/* n bytes at ring position pos, wrapping at the end of the data pages (n <= size) */
static void read_at(const struct ekp_ring *r, uint64_t pos, void *dst, size_t n)
{
	uint64_t off = pos & (r->size - 1);
	size_t first = r->size - off < n ? (size_t)(r->size - off) : n;
	memcpy(dst, r->data + off, first);
	memcpy((uint8_t *)dst + first, r->data, n - first);
}

static const uint8_t *record_at(struct ekp_ring *r, uint64_t pos, size_t n)
{
	uint64_t off = pos & (r->size - 1);
	if (off + n <= r->size)
		return r->data + off;
	read_at(r, pos, r->copy, n);
	return r->copy;
}

static void publish_tail(struct ekp_ring *r, uint64_t tail)
{
	__atomic_store_n(&r->hdr->data_tail, tail, __ATOMIC_RELEASE);
}

long ekp_ring_consume(struct ekp_ring *r, const struct ekp_ring_handler *h, bool *paused)
{
	long handled = 0;
	uint64_t tail = __atomic_load_n(&r->hdr->data_tail, __ATOMIC_RELAXED);
	*paused = false;
	for (;;) {
		uint64_t head = __atomic_load_n(&r->hdr->data_head, __ATOMIC_ACQUIRE);
		if (head == tail)
			return handled;
		/* More than the ring holds, or a header cut short: the positions themselves are
		 * broken and nothing between them can be trusted. Skip to the head. */
		if (head - tail > r->size || head - tail < sizeof(struct perf_event_header)) {
			r->corrupt++;
			h->corrupt(h->ctx);
			publish_tail(r, tail = head);
			return handled;
		}
		while (head - tail >= sizeof(struct perf_event_header)) {
			struct perf_event_header eh;
			read_at(r, tail, &eh, sizeof(eh));
			if (eh.size < sizeof(eh) || eh.size > head - tail) {
				r->corrupt++;
				h->corrupt(h->ctx);
				publish_tail(r, tail = head);
				return handled;
			}
			const uint8_t *rec = record_at(r, tail, eh.size);
			size_t body = eh.size - sizeof(eh);
			if (eh.type == PERF_RECORD_SAMPLE) {
				uint32_t raw_size;
				if (body < sizeof(raw_size)) {
					r->corrupt++;
					h->corrupt(h->ctx);
				} else {
					memcpy(&raw_size, rec + sizeof(eh), sizeof(raw_size));
					if (raw_size > body - sizeof(raw_size)) {
						r->corrupt++;
						h->corrupt(h->ctx);
					} else if (h->sample(h->ctx, rec + sizeof(eh) + sizeof(raw_size), raw_size) ==
						   EKP_RING_PAUSE) {
						*paused = true;
						return handled;
					} else {
						handled++;
					}
				}
			} else if (eh.type == PERF_RECORD_LOST) {
				uint64_t lost[2]; /* id, lost */
				if (body < sizeof(lost)) {
					r->corrupt++;
					h->corrupt(h->ctx);
				} else {
					memcpy(lost, rec + sizeof(eh), sizeof(lost));
					h->lost(h->ctx, lost[1]);
				}
			} /* other record types carry nothing for us (libbcc skipped them too) */
			publish_tail(r, tail += eh.size);
		}
		if (head != tail) { /* a few bytes short of a header: broken */
			r->corrupt++;
			h->corrupt(h->ctx);
			publish_tail(r, tail = head);
			return handled;
		}
	}
}

/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Avro binary encoding into a bounded buffer: the C twin of producer/records/avro.py.
 *
 *   long    zigzag, then little-endian base-128 varint
 *   string  long length + bytes (UTF-8; invalid bytes written as \xNN, as Python's backslashreplace)
 *   boolean one byte; union: long branch index + value; array: count + items + 0
 *
 * Every writer checks the room left. A write that does not fit sets `overflow` and
 * writes nothing more: the record is then an encode_error, never a write past the end.
 */
#ifndef EKP_AVRO_H
#define EKP_AVRO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

struct ekp_out {
	uint8_t *p;    /* next byte */
	uint8_t *end;  /* one past the last byte */
	bool overflow; /* something did not fit: the bytes are not to be used */
};

/* Pre-encoded bytes handed over from Python (a string, a union branch, a cgroup's fields). */
struct ekp_blob {
	const uint8_t *p;
	size_t n;
};

static inline bool ekp_room(struct ekp_out *o, size_t n)
{
	if (o->overflow || (size_t)(o->end - o->p) < n) {
		o->overflow = true;
		return false;
	}
	return true;
}

static inline void ekp_put(struct ekp_out *o, const void *b, size_t n)
{
	if (ekp_room(o, n)) {
		memcpy(o->p, b, n);
		o->p += n;
	}
}

static inline void ekp_put_blob(struct ekp_out *o, struct ekp_blob b)
{
	ekp_put(o, b.p, b.n);
}

static inline void ekp_byte(struct ekp_out *o, uint8_t b)
{
	if (ekp_room(o, 1))
		*o->p++ = b;
}

static inline void ekp_long(struct ekp_out *o, int64_t n)
{
	/* zigzag: the sign bit spread over the word (an arithmetic shift) xor the value shifted left */
	uint64_t z = ((uint64_t)n << 1) ^ (uint64_t)(n >> 63);
	if (!ekp_room(o, 10))
		return;
	while (z >= 0x80) {
		*o->p++ = (uint8_t)(z | 0x80);
		z >>= 7;
	}
	*o->p++ = (uint8_t)z;
}

#define EKP_NULL 0x00    /* union branch 0 (null) */
#define EKP_BRANCH1 0x02 /* union branch 1, zigzagged */

static inline void ekp_bool(struct ekp_out *o, bool v)
{
	ekp_byte(o, v ? 1 : 0);
}

static inline void ekp_opt_long(struct ekp_out *o, bool present, int64_t n)
{
	if (!present) {
		ekp_byte(o, EKP_NULL);
		return;
	}
	ekp_byte(o, EKP_BRANCH1);
	ekp_long(o, n);
}

static inline void ekp_string(struct ekp_out *o, const uint8_t *b, size_t n)
{
	ekp_long(o, (int64_t)n);
	ekp_put(o, b, n);
}

/*
 * Length of the valid UTF-8 sequence at s (n bytes available), or 0 if the byte at s
 * does not start one. Strict as Python's decoder: no overlongs (C0, C1, E0 80-9F,
 * F0 80-8F), no surrogates (ED A0-BF), nothing above U+10FFFF (F4 90+, F5-FF).
 */
static inline size_t ekp_utf8_seq(const uint8_t *s, size_t n)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xBF;
	size_t len;
	if (c < 0x80)
		return 1;
	if (c < 0xC2)
		return 0;
	if (c < 0xE0)
		len = 2;
	else if (c < 0xF0) {
		len = 3;
		lo = c == 0xE0 ? 0xA0 : 0x80;
		hi = c == 0xED ? 0x9F : 0xBF;
	} else if (c < 0xF5) {
		len = 4;
		lo = c == 0xF0 ? 0x90 : 0x80;
		hi = c == 0xF4 ? 0x8F : 0xBF;
	} else
		return 0;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if ((s[i] & 0xC0) != 0x80)
			return 0;
	return len;
}

/*
 * A kernel string (bytes, not necessarily UTF-8) as an Avro string, the way
 * producer/records/common.py clean_utf8 does it: valid UTF-8 as is; every byte that is not
 * part of a valid sequence as the four characters \xNN. Escaping byte by byte gives
 * Python's result because backslashreplace escapes each byte of an invalid range on
 * its own, and an invalid range never swallows a byte that could start a valid
 * sequence. Returns whether anything was escaped.
 */
static inline bool ekp_clean_string(struct ekp_out *o, const uint8_t *b, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t out_len = 0, i = 0;
	bool ascii = true;
	for (size_t k = 0; k < n; k++)
		ascii &= b[k] < 0x80;
	if (ascii) {
		ekp_string(o, b, n);
		return false;
	}
	while (i < n) { /* first pass: the length, which comes first in Avro */
		size_t len = ekp_utf8_seq(b + i, n - i);
		out_len += len ? len : 4;
		i += len ? len : 1;
	}
	ekp_long(o, (int64_t)out_len);
	if (!ekp_room(o, out_len))
		return false;
	bool escaped = false;
	for (i = 0; i < n;) {
		size_t len = ekp_utf8_seq(b + i, n - i);
		if (len) {
			memcpy(o->p, b + i, len);
			o->p += len;
			i += len;
			continue;
		}
		*o->p++ = '\\';
		*o->p++ = 'x';
		*o->p++ = (uint8_t)hex[b[i] >> 4];
		*o->p++ = (uint8_t)hex[b[i] & 0xF];
		i++;
		escaped = true;
	}
	return escaped;
}

#endif /* EKP_AVRO_H */

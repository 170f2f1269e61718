/* SPDX-License-Identifier: Apache-2.0 */
/*
 * tcp_connect, tcp_accept and tcp_close: one layout, one decoder mirroring
 * producer/records/tcp.py parse, one encoder mirroring its `_encoder` (close adds direction
 * and lifetime). Their process fields may be unknown (the socket's process was not seen):
 * the schemas have them nullable.
 */
#include "family.h"

#include <arpa/inet.h>
#include <string.h>
#include <sys/socket.h>

#define TCP_SIZE EKP_END(ekp_tcp, daddr)

/* The name of v in a table of tcp.FAMILIES or tcp.DIRECTIONS, or {NULL, 0}: a value it does not know. */
static struct ekp_blob name_of(const struct ekp_named table[EKP_TCP_NAMES], uint32_t v)
{
	for (size_t i = 0; i < EKP_TCP_NAMES; i++)
		if (table[i].value == v)
			return table[i].name;
	return (struct ekp_blob){NULL, 0};
}

/*
 * tcp._address: socket.inet_ntop, which is the C library's, so the text is the same
 * (IPv4-mapped as ::ffff:a.b.c.d); an IPv4 address is the first 4 bytes.
 */
static bool address(uint16_t family, const uint8_t raw[16], char out[EKP_ADDR_TEXT])
{
	int af = family == EKP_AF_INET ? AF_INET : AF_INET6;
	return inet_ntop(af, raw, out, EKP_ADDR_TEXT) != NULL;
}

static int decode_tcp(const struct ekp_encoder *e, uint32_t type_id, const uint8_t *raw, size_t len, uint32_t cpu,
		      struct ekp_decoded *d)
{
	int rc = ekp_decode_common(e, raw, len, TCP_SIZE, type_id, cpu, true, &d->c);
	if (rc != EKP_OK)
		return rc;
	struct ekp_tcp r;
	memcpy(&r, raw, TCP_SIZE);
	struct ekp_blob family = name_of(e->tcp_families, r.family);
	struct ekp_blob direction = name_of(e->tcp_directions, r.direction);
	if (family.p == NULL || direction.p == NULL)
		return EKP_DECODE_ERROR;
	/* established before the event (close: its lifetime) */
	if (r.established_ns == 0 || r.established_ns > d->c.boot_ns)
		return EKP_DECODE_ERROR;
	struct ekp_tcp_rec *t = &d->u.tcp;
	*t = (struct ekp_tcp_rec){
		.established_ns = r.established_ns,
		.sport = r.sport,
		.dport = r.dport,
		.closing = type_id == EKP_EVENT_TCP_CLOSE,
		.family = family,
		.direction = direction,
	};
	if (!address(r.family, r.saddr, t->saddr) || !address(r.family, r.daddr, t->daddr))
		return EKP_DECODE_ERROR; /* not with a buffer of INET6_ADDRSTRLEN */
	return EKP_OK;
}

static bool encode_tcp(const struct ekp_encoder *e, const struct ekp_decoded *d, const struct ekp_cgroup *cg,
		       struct ekp_out *o)
{
	const struct ekp_tcp_rec *t = &d->u.tcp;
	ekp_encode_common(e, &d->c, cg, true, o);
	ekp_put_blob(o, t->family);
	ekp_string(o, (const uint8_t *)t->saddr, strlen(t->saddr));
	ekp_long(o, t->sport);
	ekp_string(o, (const uint8_t *)t->daddr, strlen(t->daddr));
	ekp_long(o, t->dport);
	if (t->closing) {
		ekp_put_blob(o, t->direction);
		ekp_long(o, (int64_t)(d->c.boot_ns - t->established_ns)); /* lifetime_ns */
	}
	ekp_bool(o, d->c.escaped); /* comm alone: an address is never escaped */
	ekp_encode_tail(e, &d->c, cg, o);
	return d->c.escaped;
}

const struct ekp_type ekp_type_tcp_connect = {"tcp_connect", EKP_EVENT_TCP_CONNECT, decode_tcp, encode_tcp};
const struct ekp_type ekp_type_tcp_accept = {"tcp_accept", EKP_EVENT_TCP_ACCEPT, decode_tcp, encode_tcp};
const struct ekp_type ekp_type_tcp_close = {"tcp_close", EKP_EVENT_TCP_CLOSE, decode_tcp, encode_tcp};

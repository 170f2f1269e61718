"""The tcp family: tcp_connect, tcp_accept and tcp_close, three event types of one record layout.

Its layout (the mirror of struct ekp_tcp), parser, reference decoders, fast Avro encoders and
`tail --format brief` lines; the catalog (records/catalog.py) ties them to the event types. The
process fields of these records may be unknown (the socket's process was not seen), so the schemas
have them nullable.
"""

from __future__ import annotations

import socket
from typing import Any, NamedTuple

from ..errors import DecodeError
from .abi import COMMON_SIZE, event_layout
from .avro import BOOLEAN, ContainerOf, Encoder, Static, long_, string_
from .avro import common as encode_common
from .common import Common, DecodeContext, common_dict, new, parse_common

# ekp_tcp.family: the kernel's AF_* values
AF_INET = 2
AF_INET6 = 10
# ekp_tcp.direction
TCP_OUTBOUND = 1
TCP_INBOUND = 2

TCP = event_layout(
    "ekp_tcp",
    ("established_ns", "Q"),
    ("family", "H"),
    ("sport", "H"),
    ("dport", "H"),
    ("direction", "B"),
    ("_pad", "B"),
    ("saddr", "16s"),
    ("daddr", "16s"),
)
_SIZE, _OWN = TCP.struct.size, TCP.own

# (also the native encoder's tables: producer/native/tables.py)
FAMILIES = {AF_INET: "inet", AF_INET6: "inet6"}
DIRECTIONS = {TCP_OUTBOUND: "outbound", TCP_INBOUND: "inbound"}
_ENCODED = {name: string_(name.encode()) for name in (*FAMILIES.values(), *DIRECTIONS.values())}


class Tcp(NamedTuple):
    common: Common
    family: str
    saddr: str
    sport: int
    daddr: str
    dport: int
    direction: str
    established_ns: int


def _address(family: int, raw16: bytes) -> str:
    # inet_ntop: the C library's text form (IPv4-mapped as ::ffff:a.b.c.d), and far faster than ipaddress
    if family == AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw16[:4])
    return socket.inet_ntop(socket.AF_INET6, raw16)


def parse(raw: bytes, cpu: int, type_id: int, _opts: object = None) -> Tcp:
    c = parse_common(raw, cpu, _SIZE, type_id, owner_may_be_unknown=True)
    est, family, sport, dport, direction, _pad, saddr, daddr = _OWN.unpack_from(raw, COMMON_SIZE)
    if family not in FAMILIES or direction not in DIRECTIONS:
        raise DecodeError(f"family {family} / direction {direction} unknown")
    if not 0 < est <= c.boot_ns:
        raise DecodeError("established time missing or after the event")
    return new(
        Tcp,
        (
            c,
            FAMILIES[family],
            _address(family, saddr),
            sport,
            _address(family, daddr),
            dport,
            DIRECTIONS[direction],
            est,
        ),
    )


def _decode(
    raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int
) -> tuple[Tcp, dict[str, Any]]:
    p = parse(raw, cpu, type_id)
    rec = common_dict(p.common, ctx, boot_to_wall_ns)
    rec.update({"family": p.family, "saddr": p.saddr, "sport": p.sport, "daddr": p.daddr, "dport": p.dport})
    return p, rec


def decode(raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int) -> dict[str, Any]:
    """tcp_connect, tcp_accept."""
    return _decode(raw, cpu, type_id, ctx, boot_to_wall_ns)[1]


def decode_close(
    raw: bytes, cpu: int, type_id: int, ctx: DecodeContext, boot_to_wall_ns: int
) -> dict[str, Any]:
    p, rec = _decode(raw, cpu, type_id, ctx, boot_to_wall_ns)
    rec["direction"] = p.direction
    rec["lifetime_ns"] = p.common.boot_ns - p.established_ns
    return rec


def _encoder(static: Static, type_id: int, closing: bool) -> Encoder:
    def encode(raw: bytes, cpu: int, boot_to_wall_ns: int, container_of: ContainerOf) -> tuple[bytes, bool]:
        c, family, saddr, sport, daddr, dport, direction, est = parse(raw, cpu, type_id)
        out, end = encode_common(raw, c, static, boot_to_wall_ns, container_of, nullable=True)
        out += [
            _ENCODED[family],
            string_(saddr.encode()),
            long_(sport),
            string_(daddr.encode()),
            long_(dport),
        ]
        if closing:
            out += [_ENCODED[direction], long_(c.boot_ns - est)]
        out.append(BOOLEAN[c.escaped])
        out.append(end)
        return b"".join(out), c.escaped

    return encode


def encoder(static: Static, type_id: int) -> Encoder:
    """tcp_connect, tcp_accept."""
    return _encoder(static, type_id, closing=False)


def close_encoder(static: Static, type_id: int) -> Encoder:
    return _encoder(static, type_id, closing=True)


def brief_connect(v: dict[str, Any]) -> str:
    return f"{v['saddr']}:{v['sport']} -> {v['daddr']}:{v['dport']}"


def brief_accept(v: dict[str, Any]) -> str:
    return f"{v['saddr']}:{v['sport']} <- {v['daddr']}:{v['dport']}"


def brief_close(v: dict[str, Any]) -> str:
    return (
        f"{v['saddr']}:{v['sport']} x {v['daddr']}:{v['dport']} {v['direction']} "
        f"lifetime={v['lifetime_ns'] / 1e9:.3f}s"
    )

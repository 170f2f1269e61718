"""The spool's bytes: a segment header, then one checksummed frame per record.

A segment file is::

    header := b"EKPSPOOL" | u16 version | u32 json_len | u32 crc32c(json) | json
              json: {"run_id", "host", "boot_id", "reader", "created_us"}
    frame  := head (32 bytes) | body (body_len bytes)
    head   := u32 FRAME_MAGIC | u32 ordinal | u32 body_len | u8 type_id | u8 flags | u16 cpu | u64 seq
              | u32 crc32c(body) | u32 crc32c(head[0:28])
    body   := u16 env_len | envelope | value
    envelope := u16 len topic | u16 len key | u8 n | n x (u8 len name | u16 len value)

The head carries what the ledger needs (catalog type id, cpu, seq) under a checksum of its own, so a
frame whose body is damaged is still counted against the right event type and CPU. `ordinal` numbers
the frames of a segment from 0: the ack file keeps one byte per ordinal, and a reader that skips a
damaged stretch (the next valid head found by its magic) knows from the ordinals how many frames it
lost. The envelope (topic, key, headers) is the same for every record of one ring, so the writer
encodes it and its checksum once per ring; the body checksum is the envelope's continued over the
value (CRC32C chains). The value is the Kafka message as the reader framed it (the Avro framing
prefix included), so a replayed record goes out byte for byte as it would have.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import crc32c as _crc32c

from ..errors import DecodeError

FRAME_MAGIC = 0x46504B45  # b"EKPF"
MAGIC_BYTES = struct.pack("<I", FRAME_MAGIC)
HEAD = struct.Struct("<IIIBBHQI")  # the head without its own checksum
HEAD_CRC = struct.Struct("<I")
HEAD_SIZE = HEAD.size + HEAD_CRC.size  # 32
SEGMENT_MAGIC = b"EKPSPOOL"
SEGMENT_VERSION = 1
_SEGMENT_FIXED = struct.Struct("<8sHII")
UNKNOWN_TYPE = 0xFF  # the type of frames lost with their head: no event type can be named for them
MAX_BODY = 1 << 24  # no record comes close (perf records are < 64 KiB): a larger length is damage

Headers = list[tuple[str, bytes | str | None]]


def crc32c(data: bytes | memoryview, value: int = 0) -> int:
    return int(_crc32c.crc32c(data, value))


@dataclass(frozen=True)
class SegmentHeader:
    run_id: str
    host: str
    boot_id: str
    reader: int
    created_us: int

    def encode(self) -> bytes:
        body = json.dumps(self.__dict__, sort_keys=True).encode()
        return _SEGMENT_FIXED.pack(SEGMENT_MAGIC, SEGMENT_VERSION, len(body), crc32c(body)) + body

    @classmethod
    def decode(cls, data: bytes) -> tuple[SegmentHeader, int]:
        """(header, its size in bytes); raises DecodeError when it is not a valid segment header."""
        if len(data) < _SEGMENT_FIXED.size:
            raise DecodeError("segment header: truncated")
        magic, version, n, crc = _SEGMENT_FIXED.unpack_from(data)
        if magic != SEGMENT_MAGIC or version != SEGMENT_VERSION:
            raise DecodeError(f"segment header: not a spool segment (magic {magic!r}, version {version})")
        body = data[_SEGMENT_FIXED.size : _SEGMENT_FIXED.size + n]
        if len(body) != n or crc32c(body) != crc:
            raise DecodeError("segment header: checksum mismatch")
        try:
            fields: dict[str, Any] = json.loads(body)
            return cls(**fields), _SEGMENT_FIXED.size + n
        except (ValueError, TypeError) as e:
            raise DecodeError(f"segment header: {e}") from None


@dataclass(frozen=True)
class Envelope:
    """Where a record goes: its Kafka topic, key and headers."""

    topic: str
    key: bytes
    headers: Headers

    def encode(self) -> bytes:
        """The body's envelope, with its u16 length in front (what the writer puts before a value)."""
        topic = self.topic.encode()
        parts = [struct.pack("<H", len(topic)), topic, struct.pack("<H", len(self.key)), self.key]
        parts.append(struct.pack("<B", len(self.headers)))
        for name, value in self.headers:
            n = name.encode()
            v = b"" if value is None else value.encode() if isinstance(value, str) else bytes(value)
            parts += [struct.pack("<B", len(n)), n, struct.pack("<H", len(v)), v]
        env = b"".join(parts)
        return struct.pack("<H", len(env)) + env

    @classmethod
    def decode(cls, env: bytes) -> Envelope:
        """Raises DecodeError (the body checksum passed, so only a bug or a foreign writer gets here)."""
        try:
            (n,) = struct.unpack_from("<H", env, 0)
            topic = env[2 : 2 + n].decode()
            at = 2 + n
            (n,) = struct.unpack_from("<H", env, at)
            key = env[at + 2 : at + 2 + n]
            at += 2 + n
            count = env[at]
            at += 1
            headers: Headers = []
            for _ in range(count):
                n = env[at]
                name = env[at + 1 : at + 1 + n].decode()
                at += 1 + n
                (m,) = struct.unpack_from("<H", env, at)
                headers.append((name, env[at + 2 : at + 2 + m]))
                at += 2 + m
        except (struct.error, IndexError, UnicodeDecodeError) as e:
            raise DecodeError(f"envelope: {e}") from None
        return cls(topic, key, headers)


def frame_parts(
    ordinal: int, type_id: int, cpu: int, seq: int, env: bytes, env_crc: int, value: bytes
) -> Sequence[bytes]:
    """One record's frame as the buffers to write in order (os.writev): head, envelope, value.

    `env` is Envelope.encode() and `env_crc` its crc32c, both computed once per ring.
    """
    body_crc = crc32c(value, env_crc)
    head = HEAD.pack(FRAME_MAGIC, ordinal, len(env) + len(value), type_id, 0, cpu, seq, body_crc)
    return (head + HEAD_CRC.pack(crc32c(head)), env, value)


@dataclass(frozen=True)
class Head:
    ordinal: int
    body_len: int
    type_id: int
    cpu: int
    seq: int
    body_crc: int


def parse_head(buf: bytes | memoryview, at: int) -> Head | None:
    """The head at `at`, or None when it is not one (magic, checksum or length wrong)."""
    if len(buf) - at < HEAD_SIZE:
        return None
    magic, ordinal, body_len, type_id, _flags, cpu, seq, body_crc = HEAD.unpack_from(buf, at)
    if magic != FRAME_MAGIC or body_len > MAX_BODY or body_len < 2:
        return None
    if crc32c(buf[at : at + HEAD.size]) != HEAD_CRC.unpack_from(buf, at + HEAD.size)[0]:
        return None
    return Head(ordinal, body_len, type_id, cpu, seq, body_crc)


def split_body(body: bytes) -> tuple[bytes, bytes]:
    """(envelope, value) of a body whose checksum passed; raises DecodeError if the lengths disagree."""
    if len(body) < 2:
        raise DecodeError("frame body: truncated")
    (n,) = struct.unpack_from("<H", body, 0)
    if 2 + n > len(body):
        raise DecodeError("frame body: envelope longer than the body")
    return body[2 : 2 + n], body[2 + n :]

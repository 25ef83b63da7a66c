"""Legacy message sets (magic 0 and 1): decode, encode, and convert to one v2 batch.

Old clients (Produce v0-v2, kafka-python with api_version < 0.11) send these. The broker
accepts them by converting the set into a single magic 2 batch (`convert_to_batch`).

Message layout (big endian)::

    offset int64 | message_size int32 | crc uint32 (CRC32, zlib) | magic int8 | attributes int8
    | timestamp int64 (magic 1 only) | key bytes (int32 length, -1 null) | value bytes

The CRC covers magic..end. Attribute bits 0-2 are the codec (none, gzip, snappy, lz4), bit 3
(magic 1) the timestamp type. A compressed "wrapper" message holds a whole inner message set
in its value. In magic 1 wrappers (KIP-31) the inner offsets are relative (0..n-1) and the
wrapper carries the absolute offset of the last inner message; magic 0 inner offsets are
absolute.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from typing import Iterator, Sequence, Union

from protocol import compression as _compression
from protocol.errors import DecodeError, InvalidRecordError
from protocol.records import LOG_OVERHEAD, Compression

Buffer = Union[bytes, bytearray, memoryview]

CORRUPT_MESSAGE = 2
INVALID_RECORD = 87

_PREFIX = struct.Struct(">qiIbb")  # offset, size, crc, magic, attributes
_I32 = struct.Struct(">i")
_I64 = struct.Struct(">q")
CODEC_MASK = 0x07
TIMESTAMP_TYPE_MASK = 0x08
# crc + magic + attributes + key length + value length (magic 0); magic 1 adds a timestamp.
MIN_MESSAGE_SIZE_V0 = 4 + 1 + 1 + 4 + 4
MIN_MESSAGE_SIZE_V1 = MIN_MESSAGE_SIZE_V0 + 8
NO_TIMESTAMP = -1


@dataclass
class LegacyMessage:
    """One (inner, uncompressed) message of a magic 0/1 message set, with absolute offset."""

    offset: int
    magic: int
    attributes: int
    timestamp: int  # -1 for magic 0
    key: bytes | None
    value: bytes | None

    @property
    def compression(self) -> int:
        """Codec id of this message (non-zero only for wrappers)."""
        return self.attributes & CODEC_MASK

    @property
    def timestamp_type(self) -> int:
        """0 CreateTime, 1 LogAppendTime (magic 1 only)."""
        return 1 if self.magic >= 1 and self.attributes & TIMESTAMP_TYPE_MASK else 0


@dataclass
class _Entry:
    """A top-level entry: one message, or a wrapper and the messages it expands to."""

    magic: int
    compression: int
    messages: list[LegacyMessage]


def _read_bytes(buf: Buffer, pos: int, end: int, what: str) -> tuple[bytes | None, int]:
    if end - pos < 4:
        raise DecodeError(f"message {what} length is truncated")
    (length,) = _I32.unpack_from(buf, pos)
    pos += 4
    if length < 0:
        return None, pos
    if length > end - pos:
        raise DecodeError(f"message {what} length {length} exceeds the message")
    return bytes(buf[pos : pos + length]), pos + length


def _parse_message(buf: Buffer, pos: int, end: int) -> LegacyMessage:
    """Parse the message whose entry starts at `pos` and ends at `end`; checks the CRC."""
    offset, size, crc, magic, attributes = _PREFIX.unpack_from(buf, pos)
    if magic not in (0, 1):
        raise InvalidRecordError(f"message has magic {magic} in a legacy set", CORRUPT_MESSAGE)
    if size < (MIN_MESSAGE_SIZE_V1 if magic else MIN_MESSAGE_SIZE_V0):
        raise InvalidRecordError(f"message size {size} is too small", CORRUPT_MESSAGE)
    computed = zlib.crc32(memoryview(buf)[pos + 16 : end])
    if computed != crc:
        raise InvalidRecordError(
            f"message is corrupt (stored crc = {crc}, computed crc = {computed})", CORRUPT_MESSAGE
        )
    cursor = pos + 18
    timestamp = NO_TIMESTAMP
    if magic == 1:
        (timestamp,) = _I64.unpack_from(buf, cursor)
        cursor += 8
    key, cursor = _read_bytes(buf, cursor, end, "key")
    value, cursor = _read_bytes(buf, cursor, end, "value")
    if cursor != end:
        raise InvalidRecordError(f"message has {end - cursor} trailing bytes", CORRUPT_MESSAGE)
    return LegacyMessage(offset, magic, attributes, timestamp, key, value)


def _iter_raw(buf: Buffer) -> Iterator[tuple[int, int]]:
    """(start, end) of each complete entry; stops at a truncated tail."""
    pos = 0
    total = len(buf)
    while total - pos >= LOG_OVERHEAD:
        (size,) = _I32.unpack_from(buf, pos + 8)
        if size < MIN_MESSAGE_SIZE_V0:
            raise InvalidRecordError(f"message size {size} is too small", CORRUPT_MESSAGE)
        end = pos + LOG_OVERHEAD + size
        if end > total:
            return
        yield pos, end
        pos = end


def _expand_wrapper(wrapper: LegacyMessage, max_size: int | None) -> list[LegacyMessage]:
    """Decompress a wrapper and give its inner messages absolute offsets (and timestamps)."""
    if wrapper.value is None:
        raise InvalidRecordError("compressed wrapper message has a null value", INVALID_RECORD)
    codec = wrapper.compression
    if codec not in (Compression.GZIP, Compression.SNAPPY, Compression.LZ4):
        raise InvalidRecordError(f"codec {codec} is not valid for magic {wrapper.magic}",
                                 INVALID_RECORD)
    inner_set = _compression.decompress(codec, wrapper.value, max_size)
    inner = []
    for start, end in _iter_raw(inner_set):
        message = _parse_message(inner_set, start, end)
        if message.compression:
            raise InvalidRecordError(
                "compressed wrapper holds a compressed message", INVALID_RECORD
            )
        if message.magic != wrapper.magic:
            raise InvalidRecordError("inner message magic differs from its wrapper", INVALID_RECORD)
        inner.append(message)
    if not inner:
        raise InvalidRecordError("compressed wrapper message holds no messages", INVALID_RECORD)
    if wrapper.magic == 1:
        # KIP-31: inner offsets are relative; the wrapper carries the last absolute offset.
        # Producers may leave the wrapper offset at 0, making the base negative; then, as in
        # Kafka's DeepRecordsIterator, the inner offsets are taken as they are.
        base = wrapper.offset - inner[-1].offset
        shift = base if base >= 0 else 0
        for message in inner:
            message.offset += shift
            if wrapper.timestamp_type == 1:
                # LogAppendTime wrappers override their inner timestamps.
                message.timestamp = wrapper.timestamp
                message.attributes |= TIMESTAMP_TYPE_MASK
    return inner


def _decode_entries(blob: Buffer, max_size: int | None = None) -> list[_Entry]:
    entries = []
    for start, end in _iter_raw(blob):
        message = _parse_message(blob, start, end)
        if message.compression:
            inner = _expand_wrapper(message, max_size)
            entries.append(_Entry(message.magic, message.compression, inner))
        else:
            entries.append(_Entry(message.magic, Compression.NONE, [message]))
    return entries


def decode_message_set(
    blob: Buffer, *, max_decompressed_bytes: int | None = None
) -> list[LegacyMessage]:
    """All messages of a magic 0/1 message set, wrappers expanded, absolute offsets.

    CRCs are checked (InvalidRecordError with CORRUPT_MESSAGE); a truncated tail is ignored.
    `max_decompressed_bytes` bounds each wrapper's inner set (DecompressedSizeError).
    """
    entries = _decode_entries(blob, max_decompressed_bytes)
    return [message for entry in entries for message in entry.messages]


def decode_entry_as_batches(blob: Buffer, *, max_decompressed_bytes: int | None = None) -> list:
    """Decode legacy entries as `record_codec.RecordBatch` values (one per top-level entry)."""
    from protocol.record_codec import Record, RecordBatch

    batches = []
    for entry in _decode_entries(blob, max_decompressed_bytes):
        first = entry.messages[0]
        base_timestamp = first.timestamp
        records = [
            Record(
                offset_delta=m.offset - first.offset,
                timestamp_delta=m.timestamp - base_timestamp,
                key=m.key,
                value=m.value,
                headers=[],
            )
            for m in entry.messages
        ]
        attributes = entry.compression | (TIMESTAMP_TYPE_MASK if first.timestamp_type else 0)
        batches.append(
            RecordBatch(
                base_offset=first.offset,
                magic=entry.magic,
                attributes=attributes,
                last_offset_delta=entry.messages[-1].offset - first.offset,
                base_timestamp=base_timestamp,
                max_timestamp=max(m.timestamp for m in entry.messages),
                records_count=len(records),
                records=records,
            )
        )
    return batches


def convert_to_batch(
    blob: Buffer,
    *,
    compression: int | None = None,
    max_decompressed_bytes: int | None = None,
) -> bytes:
    """Convert a magic 0/1 message set into one v2 batch (offsets 0..n-1, timestamps kept).

    `compression` defaults to the codec of the first compressed entry (else none), as Kafka
    keeps the producer's codec. Magic 0 messages have no timestamp: they keep -1.
    Raises InvalidRecordError for an empty set or corrupt messages; for untrusted input pass
    `max_decompressed_bytes` so that a compressed wrapper cannot expand without bound.
    """
    from protocol.record_codec import Record, build_batch

    entries = _decode_entries(blob, max_decompressed_bytes)
    messages = [m for entry in entries for m in entry.messages]
    if not messages:
        raise InvalidRecordError("message set holds no complete message", INVALID_RECORD)
    if compression is None:
        compression = next((e.compression for e in entries if e.compression), Compression.NONE)
    base_timestamp = messages[0].timestamp
    records = [
        Record(index, m.timestamp - base_timestamp, m.key, m.value, [])
        for index, m in enumerate(messages)
    ]
    return build_batch(
        records,
        base_timestamp=base_timestamp,
        max_timestamp=max(m.timestamp for m in messages),
        compression=compression,
    )


# ---------------------------------------------------------------------------------------------
# encoding (tests, and down-conversion for old fetchers)


def encode_message(
    offset: int,
    key: bytes | None,
    value: bytes | None,
    *,
    magic: int = 1,
    attributes: int = 0,
    timestamp: int = NO_TIMESTAMP,
) -> bytes:
    """One legacy message entry (offset, size, crc, body)."""
    if magic not in (0, 1):
        raise ValueError(f"legacy magic must be 0 or 1, not {magic}")
    body = bytearray(struct.pack(">bb", magic, attributes))
    if magic == 1:
        body += _I64.pack(timestamp)
    for part in (key, value):
        if part is None:
            body += _I32.pack(-1)
        else:
            body += _I32.pack(len(part))
            body += part
    crc = zlib.crc32(body)
    return struct.pack(">qiI", offset, len(body) + 4, crc) + bytes(body)


def build_message_set(
    messages: Sequence[tuple[bytes | None, bytes | None]] | Sequence[tuple],
    *,
    magic: int = 1,
    compression: int = Compression.NONE,
    base_offset: int = 0,
    timestamp: int = NO_TIMESTAMP,
) -> bytes:
    """A message set of (key, value[, timestamp]) tuples; compressed into one wrapper if asked."""
    inner = bytearray()
    last_timestamp = timestamp
    for index, item in enumerate(messages):
        key, value, *rest = item
        ts = rest[0] if rest else timestamp
        last_timestamp = max(last_timestamp, ts)
        # Magic 1 wrappers carry relative inner offsets; magic 0 absolute ones.
        offset = index if (compression and magic == 1) else base_offset + index
        inner += encode_message(offset, key, value, magic=magic, timestamp=ts)
    if compression == Compression.NONE:
        return bytes(inner)
    if compression not in (Compression.GZIP, Compression.SNAPPY, Compression.LZ4):
        raise ValueError(f"codec {compression} is not valid for legacy messages")
    payload = _compression.compress(compression, bytes(inner))
    if compression == Compression.LZ4 and magic == 0:
        payload = _compression.break_lz4_header_checksum(payload)
    wrapper_offset = base_offset + len(messages) - 1
    return encode_message(wrapper_offset, None, payload, magic=magic, attributes=compression,
                          timestamp=last_timestamp)

"""Records inside v2 batches: encode, decode, build whole batches, control records.

Only for places that must read or write individual records (tests, compaction, conversion
of old clients' message sets, the coordinators' own batches); the produce and fetch paths
stay on ``protocol.records`` and never parse records.

Record layout (varint = zig-zag signed varint, varlong likewise)::

    length varint | attributes int8 | timestamp_delta varlong | offset_delta varint
    key_length varint (-1 = null) | key | value_length varint (-1 = null) | value
    header_count varint | (key_length varint | key utf-8 | value_length varint | value)*

Control records (transaction markers) carry key = version int16 + type int16 and, for
ABORT/COMMIT, value = version int16 + coordinator_epoch int32.
"""

from __future__ import annotations

import struct
import time
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Iterable, Iterator, Sequence, Union

from protocol import compression as _compression
from protocol.errors import DecodeError
from protocol.records import (
    BATCH_HEADER,
    BATCH_OVERHEAD,
    CONTROL_FLAG_MASK,
    CURRENT_MAGIC,
    LOG_OVERHEAD,
    MAGIC_OFFSET,
    RECORDS_OFFSET,
    TIMESTAMP_TYPE_MASK,
    TRANSACTIONAL_FLAG_MASK,
    Compression,
    compute_crc,
    make_attributes,
    read_batch_header,
)

Buffer = Union[bytes, bytearray, memoryview]

# Kafka caps varints at 5 bytes and varlongs at 10; longer encodings are malformed.
MAX_VARINT_BYTES = 5
MAX_VARLONG_BYTES = 10

_U32 = struct.Struct(">I")
_CONTROL_KEY = struct.Struct(">hh")
_END_TXN_VALUE = struct.Struct(">hi")
CONTROL_RECORD_KEY_VERSION = 0
END_TXN_MARKER_VERSION = 0


class ControlRecordType(IntEnum):
    """Kafka's ControlRecordType ids."""

    ABORT = 0
    COMMIT = 1
    LEADER_CHANGE = 2
    SNAPSHOT_HEADER = 3
    SNAPSHOT_FOOTER = 4
    KRAFT_VERSION = 5
    KRAFT_VOTERS = 6


@dataclass
class Record:
    """One record of a batch, with its deltas relative to the batch base."""

    offset_delta: int
    timestamp_delta: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]] = field(default_factory=list)
    attributes: int = 0


@dataclass
class RecordBatch:
    """A decoded batch: the header fields plus its (decompressed) records.

    Legacy message sets decoded through `decode_records` come back as RecordBatch values too,
    with magic 0 or 1, one per top-level message (a compressed wrapper holds several).
    """

    base_offset: int = 0
    batch_length: int = 0
    partition_leader_epoch: int = -1
    magic: int = CURRENT_MAGIC
    crc: int = 0
    attributes: int = 0
    last_offset_delta: int = -1
    base_timestamp: int = -1
    max_timestamp: int = -1
    producer_id: int = -1
    producer_epoch: int = -1
    base_sequence: int = -1
    records_count: int = 0
    records: list[Record] = field(default_factory=list)

    @property
    def compression(self) -> int:
        """Codec id from the attributes."""
        return self.attributes & 0x07

    @property
    def timestamp_type(self) -> int:
        """0 CreateTime, 1 LogAppendTime."""
        return 1 if self.attributes & TIMESTAMP_TYPE_MASK else 0

    @property
    def is_transactional(self) -> bool:
        """True when the batch belongs to a transaction."""
        return bool(self.attributes & TRANSACTIONAL_FLAG_MASK)

    @property
    def is_control(self) -> bool:
        """True for control batches."""
        return bool(self.attributes & CONTROL_FLAG_MASK)

    @property
    def last_offset(self) -> int:
        """Offset of the last record the batch covers."""
        return self.base_offset + self.last_offset_delta

    @property
    def next_offset(self) -> int:
        """Offset just after this batch."""
        return self.last_offset + 1

    def record_timestamp(self, record: Record) -> int:
        """A record's absolute timestamp (LogAppendTime batches use max_timestamp for all)."""
        if self.timestamp_type == 1:
            return self.max_timestamp
        return self.base_timestamp + record.timestamp_delta

    def iter_absolute(self) -> Iterator[tuple[int, int, Record]]:
        """Yield (offset, timestamp, record) for each record."""
        for record in self.records:
            yield self.base_offset + record.offset_delta, self.record_timestamp(record), record


@dataclass(frozen=True)
class ControlRecord:
    """A decoded control record; coordinator_epoch is set for ABORT/COMMIT markers."""

    version: int
    type: int
    coordinator_epoch: int | None = None


# ---------------------------------------------------------------------------------------------
# varints


def encode_varint(value: int) -> bytes:
    """Zig-zag signed varint (int32 or int64 range)."""
    encoded = (value << 1) ^ (value >> 63)
    return encode_unsigned_varint(encoded & 0xFFFFFFFFFFFFFFFF)


def encode_unsigned_varint(value: int) -> bytes:
    """Unsigned base-128 varint, low groups first."""
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf: Buffer, pos: int, max_bytes: int = MAX_VARLONG_BYTES) -> tuple[int, int]:
    """Read a zig-zag varint at `pos`; returns (value, new position). Bounded in length."""
    result = 0
    shift = 0
    end = len(buf)
    limit = pos + max_bytes
    while True:
        if pos >= end:
            raise DecodeError("varint is truncated")
        if pos >= limit:
            raise DecodeError(f"varint longer than {max_bytes} bytes")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            if result >> (7 * max_bytes - (3 if max_bytes == MAX_VARINT_BYTES else 6)):
                # More significant bits than an int32 (varint) or int64 (varlong) holds.
                raise DecodeError("varint value out of range")
            return (result >> 1) ^ -(result & 1), pos
        shift += 7


# ---------------------------------------------------------------------------------------------
# single records


def _encode_nullable(data: bytes | None, out: bytearray) -> None:
    if data is None:
        out += b"\x01"  # zig-zag -1
    else:
        out += encode_varint(len(data))
        out += data


def encode_record(record: Record) -> bytes:
    """Encode one record, length prefix included."""
    body = bytearray()
    body.append(record.attributes & 0xFF)
    body += encode_varint(record.timestamp_delta)
    body += encode_varint(record.offset_delta)
    _encode_nullable(record.key, body)
    _encode_nullable(record.value, body)
    body += encode_varint(len(record.headers))
    for header_key, header_value in record.headers:
        key_bytes = header_key.encode("utf-8") if isinstance(header_key, str) else bytes(header_key)
        body += encode_varint(len(key_bytes))
        body += key_bytes
        _encode_nullable(header_value, body)
    return encode_varint(len(body)) + bytes(body)


def _read_nullable(buf: Buffer, pos: int, end: int, what: str) -> tuple[bytes | None, int]:
    length, pos = decode_varint(buf, pos, MAX_VARINT_BYTES)
    if length < 0:
        if length != -1:
            raise DecodeError(f"record {what} has negative length {length}")
        return None, pos
    if length > end - pos:
        raise DecodeError(f"record {what} length {length} exceeds the record")
    return bytes(buf[pos : pos + length]), pos + length


def decode_record(buf: Buffer, pos: int = 0) -> tuple[Record, int]:
    """Decode one record at `pos`; returns (record, position after it)."""
    length, pos = decode_varint(buf, pos, MAX_VARINT_BYTES)
    end = pos + length
    if length < 6 or end > len(buf):
        raise DecodeError(f"record length {length} is invalid for the {len(buf) - pos} bytes left")
    attributes = buf[pos]
    pos += 1
    timestamp_delta, pos = decode_varint(buf, pos, MAX_VARLONG_BYTES)
    offset_delta, pos = decode_varint(buf, pos, MAX_VARINT_BYTES)
    key, pos = _read_nullable(buf, pos, end, "key")
    value, pos = _read_nullable(buf, pos, end, "value")
    header_count, pos = decode_varint(buf, pos, MAX_VARINT_BYTES)
    if header_count < 0 or header_count > end - pos:
        raise DecodeError(f"record header count {header_count} is invalid")
    headers: list[tuple[str, bytes | None]] = []
    for _ in range(header_count):
        raw_key, pos = _read_nullable(buf, pos, end, "header key")
        if raw_key is None:
            raise DecodeError("record header key is null")
        try:
            header_key = raw_key.decode("utf-8")
        except UnicodeDecodeError:
            raise DecodeError("record header key is not valid UTF-8") from None
        header_value, pos = _read_nullable(buf, pos, end, "header value")
        headers.append((header_key, header_value))
    if pos != end:
        raise DecodeError(f"record has {end - pos} unexpected trailing bytes")
    return Record(offset_delta, timestamp_delta, key, value, headers, attributes), pos


def decode_record_list(buf: Buffer, count: int) -> list[Record]:
    """Decode exactly `count` records filling `buf`."""
    if count < 0:
        raise DecodeError(f"negative record count {count}")
    view = buf if isinstance(buf, (bytes, bytearray)) else bytes(buf)
    records = []
    pos = 0
    for _ in range(count):
        record, pos = decode_record(view, pos)
        records.append(record)
    if pos != len(view):
        raise DecodeError(f"{len(view) - pos} bytes after the last of {count} records")
    return records


# ---------------------------------------------------------------------------------------------
# whole batches


def _now_ms() -> int:
    return int(time.time() * 1000)


def _as_records(records: Sequence) -> list[Record]:
    """Accept Record values or (key, value[, headers]) tuples (offset delta = index)."""
    out = []
    for index, item in enumerate(records):
        if isinstance(item, Record):
            out.append(item)
        else:
            key, value, *rest = item
            headers = list(rest[0]) if rest else []
            out.append(Record(index, 0, key, value, headers))
    return out


def build_batch(
    records: Sequence[Record] | Sequence[tuple],
    *,
    base_offset: int = 0,
    base_timestamp: int | None = None,
    compression: int = Compression.NONE,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    is_transactional: bool = False,
    is_control: bool = False,
    partition_leader_epoch: int = -1,
    timestamp_type: int = 0,
    max_timestamp: int | None = None,
    last_offset_delta: int | None = None,
) -> bytes:
    """Build one complete v2 batch (CRC included).

    `records` are Record values or (key, value) / (key, value, headers) tuples.
    `base_timestamp` defaults to now; `max_timestamp` to the largest record timestamp;
    `last_offset_delta` to the largest offset delta (-1 for an empty batch).
    """
    items = _as_records(records)
    if base_timestamp is None:
        base_timestamp = _now_ms()
    if max_timestamp is None:
        if items:
            max_timestamp = base_timestamp + max(r.timestamp_delta for r in items)
        else:
            max_timestamp = -1
    if last_offset_delta is None:
        last_offset_delta = max((r.offset_delta for r in items), default=-1)
    attributes = make_attributes(compression, timestamp_type, is_transactional, is_control)
    return _assemble(items, base_offset, partition_leader_epoch, attributes, last_offset_delta,
                     base_timestamp, max_timestamp, producer_id, producer_epoch, base_sequence)


def _assemble(
    items: list[Record],
    base_offset: int,
    partition_leader_epoch: int,
    attributes: int,
    last_offset_delta: int,
    base_timestamp: int,
    max_timestamp: int,
    producer_id: int,
    producer_epoch: int,
    base_sequence: int,
) -> bytes:
    """Encode and compress the records, write the header, compute the CRC."""
    payload = b"".join(encode_record(r) for r in items)
    codec = attributes & 0x07
    if codec != Compression.NONE:
        payload = _compression.compress(codec, payload)
    batch_length = BATCH_OVERHEAD - LOG_OVERHEAD + len(payload)
    out = bytearray(BATCH_OVERHEAD + len(payload))
    BATCH_HEADER.pack_into(
        out, 0, base_offset, batch_length, partition_leader_epoch, CURRENT_MAGIC, 0, attributes,
        last_offset_delta, base_timestamp, max_timestamp, producer_id, producer_epoch,
        base_sequence, len(items),
    )
    out[RECORDS_OFFSET:] = payload
    _U32.pack_into(out, 17, compute_crc(out, 0, len(out)))
    return bytes(out)


def encode_batch(batch: RecordBatch) -> bytes:
    """Re-encode a decoded (or edited) v2 batch, keeping every header field and attribute.

    Meant for compaction: records may have been removed while base offset, last offset
    delta, producer fields and timestamps stay as they were. Count and length are recomputed.
    """
    return _assemble(batch.records, batch.base_offset, batch.partition_leader_epoch,
                     batch.attributes, batch.last_offset_delta, batch.base_timestamp,
                     batch.max_timestamp, batch.producer_id, batch.producer_epoch,
                     batch.base_sequence)


def decode_batch(
    buf: Buffer, pos: int = 0, *, max_decompressed_bytes: int | None = None
) -> RecordBatch:
    """Decode the v2 batch at `pos` including its records (decompressing as needed).

    The CRC is not checked here (use `protocol.records.validate_batch` for that).
    `max_decompressed_bytes` bounds the decompressed payload (DecompressedSizeError).
    """
    header = read_batch_header(buf, pos)
    if header.magic != CURRENT_MAGIC:
        raise DecodeError(f"record batch has magic {header.magic}, expected {CURRENT_MAGIC}")
    size = header.size
    if header.batch_length < BATCH_OVERHEAD - LOG_OVERHEAD or len(buf) - pos < size:
        raise DecodeError(f"record batch of {size} bytes is truncated or malformed")
    view = memoryview(buf)[pos + RECORDS_OFFSET : pos + size]
    codec = header.attributes & 0x07
    payload = (_compression.decompress(codec, view, max_decompressed_bytes) if codec
               else bytes(view))
    records = decode_record_list(payload, header.records_count)
    return RecordBatch(
        base_offset=header.base_offset,
        batch_length=header.batch_length,
        partition_leader_epoch=header.partition_leader_epoch,
        magic=header.magic,
        crc=header.crc,
        attributes=header.attributes,
        last_offset_delta=header.last_offset_delta,
        base_timestamp=header.base_timestamp,
        max_timestamp=header.max_timestamp,
        producer_id=header.producer_id,
        producer_epoch=header.producer_epoch,
        base_sequence=header.base_sequence,
        records_count=header.records_count,
        records=records,
    )


def decode_records(
    blob: Buffer, *, max_decompressed_bytes: int | None = None
) -> list[RecordBatch]:
    """Decode every complete batch in a records blob (magic 2, or magic 0/1 message sets).

    A truncated tail is ignored, as fetch responses may end mid-batch.
    """
    from protocol import legacy  # imported here: legacy builds on this module

    view = memoryview(blob).cast("B") if not isinstance(blob, (bytes, bytearray)) else blob
    batches: list[RecordBatch] = []
    pos = 0
    end = len(view)
    while end - pos >= LOG_OVERHEAD:
        (length,) = struct.unpack_from(">i", view, pos + 8)
        if length < 0:
            raise DecodeError(f"negative batch length {length} at {pos}")
        size = LOG_OVERHEAD + length
        if size > end - pos or end - pos <= MAGIC_OFFSET:
            break
        magic = view[pos + MAGIC_OFFSET]
        if magic == CURRENT_MAGIC:
            batches.append(decode_batch(view, pos, max_decompressed_bytes=max_decompressed_bytes))
        elif magic in (0, 1):
            batches.extend(legacy.decode_entry_as_batches(
                view[pos : pos + size], max_decompressed_bytes=max_decompressed_bytes))
        else:
            raise DecodeError(f"unknown record magic {magic} at {pos}")
        pos += size
    return batches


# ---------------------------------------------------------------------------------------------
# control records


def encode_control_key(control_type: int, version: int = CONTROL_RECORD_KEY_VERSION) -> bytes:
    """Control record key: version int16, type int16."""
    return _CONTROL_KEY.pack(version, control_type)


def encode_end_txn_marker(coordinator_epoch: int, version: int = END_TXN_MARKER_VERSION) -> bytes:
    """EndTransactionMarker value: version int16, coordinator_epoch int32."""
    return _END_TXN_VALUE.pack(version, coordinator_epoch)


def decode_control_record(record: Record) -> ControlRecord:
    """Read a control record's key (and, for ABORT/COMMIT, its coordinator epoch)."""
    key = record.key
    if key is None or len(key) < _CONTROL_KEY.size:
        raise DecodeError("control record key is missing or too short")
    version, control_type = _CONTROL_KEY.unpack_from(key)
    coordinator_epoch = None
    if control_type in (ControlRecordType.ABORT, ControlRecordType.COMMIT):
        value = record.value
        if value is None or len(value) < _END_TXN_VALUE.size:
            raise DecodeError("transaction marker value is missing or too short")
        _, coordinator_epoch = _END_TXN_VALUE.unpack_from(value)
    return ControlRecord(version, control_type, coordinator_epoch)


def build_control_batch(
    commit: bool,
    producer_id: int,
    producer_epoch: int,
    coordinator_epoch: int,
    base_offset: int = 0,
    timestamp: int | None = None,
    *,
    partition_leader_epoch: int = -1,
) -> bytes:
    """A transaction marker batch: one COMMIT or ABORT control record, transactional."""
    control_type = ControlRecordType.COMMIT if commit else ControlRecordType.ABORT
    key = encode_control_key(control_type)
    record = Record(0, 0, key, encode_end_txn_marker(coordinator_epoch))
    return build_batch(
        [record],
        base_offset=base_offset,
        base_timestamp=_now_ms() if timestamp is None else timestamp,
        producer_id=producer_id,
        producer_epoch=producer_epoch,
        base_sequence=-1,
        is_transactional=True,
        is_control=True,
        partition_leader_epoch=partition_leader_epoch,
    )


def iter_records(blob: Buffer) -> Iterable[tuple[int, int, Record, RecordBatch]]:
    """Yield (offset, timestamp, record, batch) for every record in a blob."""
    for batch in decode_records(blob):
        for offset, timestamp, record in batch.iter_absolute():
            yield offset, timestamp, record, batch

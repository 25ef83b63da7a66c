"""Record batches (magic 2) for the metadata log and snapshots.

Metadata records are small and few, so this builds and reads whole batches directly: key
null, value = one framed metadata record, no compression. The layout is Kafka's
DefaultRecordBatch, so the files can be read by any v2 batch reader (and by kbroker's own
protocol.records once the metadata log moves onto PartitionLog).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from protocol import crc32c  # the C function without the package's slow __init__

HEADER = struct.Struct(">qiibIhiqqqhii")  # base_offset .. records_count, 61 bytes
LOG_OVERHEAD = 12  # base_offset + batch_length
CRC_START = 21  # attributes start here; the CRC covers attributes..end
MAX_BATCH_BYTES = 64 * 1024 * 1024  # a metadata batch larger than this is corruption


def _zigzag(out: bytearray, value: int) -> None:
    value = (value << 1) ^ (value >> 63)
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_zigzag(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf) or shift > 63:
            raise ValueError("bad varint in record")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return (value >> 1) ^ -(value & 1), pos
        shift += 7


def build_batch(values: list[bytes], *, base_offset: int, leader_epoch: int, timestamp_ms: int) -> bytes:
    """One uncompressed v2 batch holding `values` as records with null keys."""
    body = bytearray()
    for delta, value in enumerate(values):
        rec = bytearray()
        rec.append(0)  # record attributes
        _zigzag(rec, 0)  # timestamp delta
        _zigzag(rec, delta)  # offset delta
        _zigzag(rec, -1)  # null key
        _zigzag(rec, len(value))
        rec += value
        _zigzag(rec, 0)  # no headers
        _zigzag(body, len(rec))
        body += rec
    length = HEADER.size - LOG_OVERHEAD + len(body)
    header = bytearray(HEADER.pack(base_offset, length, leader_epoch, 2, 0, 0, len(values) - 1,
                                   timestamp_ms, timestamp_ms, -1, -1, -1, len(values)))
    crc = crc32c.crc32c(bytes(header[CRC_START:]) + bytes(body))
    struct.pack_into(">I", header, 17, crc)
    return bytes(header + body)


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch read back: where it sits, its offsets and its record values."""

    position: int
    size: int
    base_offset: int
    leader_epoch: int
    values: list[bytes]

    @property
    def last_offset(self) -> int:
        """Offset of the last record of the batch."""
        return self.base_offset + len(self.values) - 1


def read_batches(buf: bytes) -> tuple[list[Batch], int]:
    """Every valid batch of `buf` in order, and the number of valid bytes.

    Stops at the first incomplete, corrupt (CRC) or non-contiguous batch: everything from
    there is a torn tail that the caller truncates.
    """
    batches: list[Batch] = []
    pos = 0
    expected_offset: int | None = None
    while pos + HEADER.size <= len(buf):
        (base_offset, length, epoch, magic, crc, attributes, last_delta, _ts, _max_ts,
         _pid, _pepoch, _seq, count) = HEADER.unpack_from(buf, pos)
        size = length + LOG_OVERHEAD
        if magic != 2 or length < HEADER.size - LOG_OVERHEAD or size > MAX_BATCH_BYTES:
            break
        if pos + size > len(buf):
            break
        if crc32c.crc32c(buf[pos + CRC_START:pos + size]) != crc:
            break
        if count < 1 or last_delta != count - 1 or attributes & 0x7:
            break
        if expected_offset is not None and base_offset != expected_offset:
            break
        try:
            values = _read_values(buf[pos + HEADER.size:pos + size], count)
        except ValueError:
            break
        batches.append(Batch(pos, size, base_offset, epoch, values))
        expected_offset = base_offset + count
        pos += size
    return batches, pos


def _read_values(body: bytes, count: int) -> list[bytes]:
    values: list[bytes] = []
    pos = 0
    for _ in range(count):
        length, pos = _read_zigzag(body, pos)
        end = pos + length
        if length < 0 or end > len(body):
            raise ValueError("record overruns its batch")
        pos += 1  # attributes
        _, pos = _read_zigzag(body, pos)  # timestamp delta
        _, pos = _read_zigzag(body, pos)  # offset delta
        key_len, pos = _read_zigzag(body, pos)
        pos += max(key_len, 0)
        value_len, pos = _read_zigzag(body, pos)
        if value_len < 0 or pos + value_len > end:
            raise ValueError("bad value length")
        values.append(body[pos:pos + value_len])
        pos = end
    if pos != len(body):
        raise ValueError("bytes after the last record")
    return values

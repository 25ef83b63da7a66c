"""protocol.records: the v2 batch header, iteration, produce validation, in-place patches."""

from __future__ import annotations

import struct

import crc32c
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder

from protocol.errors import DecodeError, InvalidRecordError
from protocol.record_codec import build_batch, decode_batch
from protocol.records import (
    BATCH_HEADER,
    BATCH_OVERHEAD,
    LOG_OVERHEAD,
    Compression,
    iter_batches,
    read_batch_header,
    set_base_offset,
    set_max_timestamp_log_append,
    set_partition_leader_epoch,
    update_crc,
    validate_batch,
)

CORRUPT_MESSAGE = 2
INVALID_RECORD = 87

# One record: key b"k", value b"v", one header ("h", b"x"); length 12 as varint 0x18.
HAND_RECORD = bytes.fromhex("18" "00" "00" "00" "02 6b" "02 76" "02" "02 68" "02 78")


def hand_batch(records: bytes = HAND_RECORD, count: int = 1) -> bytes:
    """A batch laid out field by field, independently of the code under test."""
    after_crc = struct.pack(">hiqqqhii", 0, count - 1, 1_700_000_000_000, 1_700_000_000_000,
                            7, 3, 0, count) + records
    crc = crc32c.crc32c(after_crc)
    batch_length = 4 + 1 + 4 + len(after_crc)  # leader epoch + magic + crc + rest
    return struct.pack(">qiibI", 42, batch_length, 5, 2, crc) + after_crc


def kafka_python_batch(count: int = 3, codec: int = 0, base_offset: int = 0) -> bytes:
    """A batch written by kafka-python's own builder."""
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 22)
    for i in range(count):
        builder.append(i, timestamp=1_700_000_000_000 + i, key=b"key-%d" % i,
                       value=b"value-%d" % i * 10, headers=[("h", b"%d" % i)])
    data = bytearray(builder.build())
    struct.pack_into(">q", data, 0, base_offset)  # base offset is outside the CRC
    return bytes(data)


def test_header_struct_is_61_bytes() -> None:
    assert BATCH_HEADER.size == BATCH_OVERHEAD == 61
    assert LOG_OVERHEAD == 12


def test_hand_made_batch_with_headers() -> None:
    data = hand_batch()
    header = validate_batch(data)
    assert header.base_offset == 42
    assert header.batch_length == len(data) - 12
    assert header.partition_leader_epoch == 5
    assert header.magic == 2
    assert header.producer_id == 7 and header.producer_epoch == 3
    assert header.records_count == 1 and header.last_offset_delta == 0
    assert header.last_offset == 42 and header.next_offset == 43
    assert header.size == len(data)
    assert header.compression == Compression.NONE and header.timestamp_type == 0
    assert not header.is_transactional and not header.is_control
    batch = decode_batch(data)
    [record] = batch.records
    assert (record.key, record.value, record.headers) == (b"k", b"v", [("h", b"x")])


def test_build_batch_is_byte_identical_to_kafka_python() -> None:
    theirs = kafka_python_batch(count=4)
    records = decode_batch(theirs).records
    # kafka-python writes leader epoch 0 where Java writes -1 (the broker overwrites it).
    ours = build_batch(records, base_timestamp=1_700_000_000_000, partition_leader_epoch=0)
    assert ours == theirs


def test_header_properties_from_attributes() -> None:
    data = build_batch([(b"k", b"v")], compression=Compression.ZSTD, is_transactional=True,
                       producer_id=9, producer_epoch=1, base_sequence=0, timestamp_type=1)
    header = read_batch_header(data)
    assert header.compression == Compression.ZSTD
    assert header.timestamp_type == 1
    assert header.is_transactional and not header.is_control


def test_read_batch_header_too_short() -> None:
    with pytest.raises(DecodeError):
        read_batch_header(hand_batch()[:60])
    with pytest.raises(DecodeError):
        read_batch_header(hand_batch(), pos=len(hand_batch()) - 60)


def test_iter_batches_positions_and_truncated_tail() -> None:
    batches = [kafka_python_batch(count=n, base_offset=off) for n, off in ((1, 0), (3, 1), (2, 4))]
    blob = b"".join(batches)
    for tail in (b"", blob[:5], batches[0][:61], batches[0][:-1]):
        found = list(iter_batches(memoryview(blob + tail)))
        assert [pos for pos, _ in found] == [0, len(batches[0]), len(batches[0]) + len(batches[1])]
        assert [h.base_offset for _, h in found] == [0, 1, 4]
        assert [h.records_count for _, h in found] == [1, 3, 2]
    assert list(iter_batches(b"")) == []


def test_iter_batches_rejects_impossible_length() -> None:
    data = bytearray(hand_batch())
    struct.pack_into(">i", data, 8, 10)
    with pytest.raises(DecodeError):
        list(iter_batches(bytes(data)))


def test_validate_accepts_kafka_python_batches_of_every_codec() -> None:
    for codec in (0, 1):  # the others need optional libraries; test_record_codec covers them
        data = kafka_python_batch(count=5, codec=codec)
        assert validate_batch(data).records_count == 5


def test_validate_at_position_in_larger_buffer() -> None:
    first, second = kafka_python_batch(2), kafka_python_batch(3)
    assert validate_batch(first + second, len(first)).records_count == 3


def _code(data, **kwargs) -> int:
    with pytest.raises(InvalidRecordError) as info:
        validate_batch(data, **kwargs)
    return info.value.error_code


@pytest.mark.parametrize("index", [21, 30, 61, -1])
def test_validate_detects_crc_corruption(index: int) -> None:
    data = bytearray(kafka_python_batch(count=3))
    data[index] ^= 0x01
    assert _code(bytes(data)) == CORRUPT_MESSAGE


def test_validate_length_problems_are_corrupt_message() -> None:
    data = kafka_python_batch(count=2)
    assert _code(data[:-1]) == CORRUPT_MESSAGE  # length says more than there is
    assert _code(data[:8]) == CORRUPT_MESSAGE
    short = bytearray(data)
    struct.pack_into(">i", short, 8, 48)
    assert _code(bytes(short)) == CORRUPT_MESSAGE


def test_validate_rejects_other_magic() -> None:
    data = bytearray(kafka_python_batch(count=1))
    data[16] = 1
    assert _code(bytes(data)) == CORRUPT_MESSAGE


def _with_fields(data: bytes, last_offset_delta: int, count: int) -> bytes:
    patched = bytearray(data)
    struct.pack_into(">i", patched, 23, last_offset_delta)
    struct.pack_into(">i", patched, 57, count)
    update_crc(patched)
    return bytes(patched)


def test_validate_count_and_delta_mismatch_is_invalid_record() -> None:
    data = kafka_python_batch(count=3)
    assert _code(_with_fields(data, 1, 3)) == INVALID_RECORD
    assert _code(_with_fields(data, 2, 2)) == INVALID_RECORD
    assert _code(_with_fields(data, 2, -1)) == INVALID_RECORD
    # A count that the payload cannot hold, even with consistent delta.
    assert _code(_with_fields(data, 999_999, 1_000_000)) == INVALID_RECORD


def test_validate_empty_batch() -> None:
    empty = build_batch([], base_timestamp=0)
    assert _code(empty) == INVALID_RECORD  # Kafka refuses produced batches with no records
    assert validate_batch(empty, allow_empty=True).records_count == 0


def test_set_base_offset_and_epoch_keep_crc_valid() -> None:
    first, second = kafka_python_batch(2), kafka_python_batch(3)
    buf = bytearray(first + second)
    set_base_offset(buf, len(first), 1_000)
    set_partition_leader_epoch(buf, len(first), 17)
    header = validate_batch(buf, len(first))
    assert header.base_offset == 1_000 and header.partition_leader_epoch == 17
    assert header.last_offset == 1_002
    assert validate_batch(buf, 0).base_offset == 0  # the neighbour is untouched
    theirs = DefaultRecordBatch(bytearray(buf[len(first):]))
    assert theirs.validate_crc()
    assert [r.offset for r in theirs] == [1_000, 1_001, 1_002]


def test_set_max_timestamp_log_append() -> None:
    buf = bytearray(kafka_python_batch(count=3))
    set_max_timestamp_log_append(memoryview(buf), 0, 1_800_000_000_000)
    header = validate_batch(buf)  # CRC recomputed
    assert header.timestamp_type == 1
    assert header.max_timestamp == 1_800_000_000_000
    theirs = DefaultRecordBatch(bytearray(buf))
    assert theirs.validate_crc()
    assert [r.timestamp for r in theirs] == [1_800_000_000_000] * 3
    batch = decode_batch(buf)
    assert [ts for _, ts, _ in batch.iter_absolute()] == [1_800_000_000_000] * 3


@settings(max_examples=80, deadline=None)
@given(data=st.data())
def test_mutated_batches_raise_only_decode_errors(data) -> None:
    """Header-level functions on damaged input: a result or a DecodeError, nothing else."""
    buf = bytearray(kafka_python_batch(count=3) + kafka_python_batch(count=1))
    for _ in range(data.draw(st.integers(1, 4))):
        index = data.draw(st.integers(0, len(buf) - 1))
        buf[index] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(buf)))
    damaged = bytes(buf[:cut])
    try:
        for pos, header in iter_batches(damaged):
            assert pos + header.size <= len(damaged)
    except DecodeError:
        pass
    try:
        validate_batch(damaged)
    except InvalidRecordError as exc:
        assert exc.error_code in (CORRUPT_MESSAGE, INVALID_RECORD)

"""protocol.legacy: magic 0/1 message sets, compressed wrappers, conversion to a v2 batch."""

from __future__ import annotations

import struct
import zlib

import kafka.codec
import pytest
from kafka.record.legacy_records import LegacyRecordBatchBuilder
from kafka.record.memory_records import MemoryRecords

from protocol.compression import DecompressedSizeError
from protocol.errors import InvalidRecordError
from protocol.legacy import (
    build_message_set,
    convert_to_batch,
    decode_message_set,
    encode_message,
)
from protocol.record_codec import decode_batch, decode_records
from protocol.records import Compression, validate_batch

CORRUPT_MESSAGE = 2
INVALID_RECORD = 87

LEGACY_CODECS = [
    pytest.param(0, id="none"),
    pytest.param(1, id="gzip"),
    pytest.param(2, id="snappy", marks=pytest.mark.skipif(
        not kafka.codec.has_snappy(), reason="python-snappy not installed")),
    pytest.param(3, id="lz4", marks=pytest.mark.skipif(
        not kafka.codec.has_lz4(), reason="lz4 not installed")),
]

MESSAGES = [(b"k0", b"first"), (None, b"no key"), (b"k2", None), (b"k3", b"x" * 3_000)]


def kafka_python_set(magic: int, codec: int, base_offset: int = 0) -> bytes:
    if codec == 3 and magic == 0:
        import xxhash  # noqa: F401  kafka-python's old-Kafka LZ4 framing needs it
    builder = LegacyRecordBatchBuilder(magic=magic, compression_type=codec, batch_size=1 << 20)
    for i, (key, value) in enumerate(MESSAGES):
        timestamp = 1_700_000_000_000 + i if magic else None
        builder.append(base_offset + i, timestamp=timestamp, key=key, value=value)
    return bytes(builder.build())


def kafka_python_read(data: bytes) -> list[tuple]:
    """(offset, timestamp, key, value) of every message, as kafka-python reads the set."""
    records = MemoryRecords(data)
    out = []
    while (batch := records.next_batch()) is not None:
        out += [(r.offset, r.timestamp, r.key, r.value) for r in batch]
    return out


def test_magic0_message_by_hand() -> None:
    body = struct.pack(">bb", 0, 0) + struct.pack(">i", 1) + b"k" + struct.pack(">i", 3) + b"val"
    entry = struct.pack(">qiI", 5, len(body) + 4, zlib.crc32(body)) + body
    [message] = decode_message_set(entry)
    assert (message.offset, message.magic, message.timestamp) == (5, 0, -1)
    assert (message.key, message.value) == (b"k", b"val")
    assert encode_message(5, b"k", b"val", magic=0) == entry


def test_magic1_message_by_hand() -> None:
    body = struct.pack(">bbq", 1, 0, 1_234) + struct.pack(">i", -1) + struct.pack(">i", 2) + b"hi"
    entry = struct.pack(">qiI", 9, len(body) + 4, zlib.crc32(body)) + body
    [message] = decode_message_set(entry)
    assert (message.offset, message.timestamp) == (9, 1_234)
    assert (message.key, message.value) == (None, b"hi")
    assert message.timestamp_type == 0


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", LEGACY_CODECS)
def test_decode_kafka_python_message_sets(magic: int, codec: int) -> None:
    data = kafka_python_set(magic, codec, base_offset=0)
    messages = decode_message_set(data)
    assert [(m.key, m.value) for m in messages] == MESSAGES
    assert all(m.magic == magic for m in messages)
    expected_ts = [1_700_000_000_000 + i if magic else -1 for i in range(len(MESSAGES))]
    assert [m.timestamp for m in messages] == expected_ts
    # Offsets as kafka-python itself reads them (magic 1 wrappers: relative inner offsets).
    assert [m.offset for m in messages] == [r[0] for r in kafka_python_read(data)] == [0, 1, 2, 3]


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", LEGACY_CODECS)
def test_kafka_python_reads_our_message_sets(magic: int, codec: int) -> None:
    data = build_message_set(MESSAGES, magic=magic, compression=codec, base_offset=10,
                             timestamp=1_500 if magic else -1)
    got = [(offset, key, value) for offset, _, key, value in kafka_python_read(data)]
    assert got == [(10 + i, k, v) for i, (k, v) in enumerate(MESSAGES)]
    assert [(m.offset, m.key, m.value) for m in decode_message_set(data)] == got


def test_magic1_wrapper_relative_offsets() -> None:
    data = build_message_set(MESSAGES, magic=1, compression=Compression.GZIP, base_offset=100)
    assert struct.unpack_from(">q", data)[0] == 103  # wrapper carries the last offset
    assert [m.offset for m in decode_message_set(data)] == [100, 101, 102, 103]


def test_magic1_log_append_time_wrapper_overrides_inner_timestamps() -> None:
    inner = b"".join(encode_message(i, b"k", b"v", magic=1, timestamp=10 + i) for i in range(3))
    wrapper = encode_message(2, None, kafka.codec.gzip_encode(inner), magic=1,
                             attributes=Compression.GZIP | 0x08, timestamp=99)
    messages = decode_message_set(wrapper)
    assert [m.timestamp for m in messages] == [99, 99, 99]
    assert all(m.timestamp_type == 1 for m in messages)


@pytest.mark.parametrize("magic", [0, 1])
@pytest.mark.parametrize("codec", LEGACY_CODECS)
def test_convert_to_batch(magic: int, codec: int) -> None:
    data = kafka_python_set(magic, codec)
    converted = convert_to_batch(data)
    header = validate_batch(converted)
    assert header.records_count == len(MESSAGES)
    assert (header.base_offset, header.last_offset_delta) == (0, len(MESSAGES) - 1)
    assert header.compression == codec  # the producer's codec is kept
    batch = decode_batch(converted)
    assert [(r.key, r.value, r.headers) for r in batch.records] == [(k, v, []) for k, v in MESSAGES]
    timestamps = [ts for _, ts, _ in batch.iter_absolute()]
    if magic == 0:
        assert timestamps == [-1] * len(MESSAGES)
        assert header.max_timestamp == -1
    else:
        assert timestamps == [1_700_000_000_000 + i for i in range(len(MESSAGES))]
        assert header.max_timestamp == 1_700_000_000_003


def test_convert_several_entries_and_override_codec() -> None:
    data = (build_message_set(MESSAGES[:2], magic=1, timestamp=5)
            + build_message_set(MESSAGES[2:], magic=1, compression=Compression.GZIP, timestamp=7))
    converted = convert_to_batch(data, compression=Compression.ZSTD)
    assert validate_batch(converted).compression == Compression.ZSTD
    batch = decode_batch(converted)
    assert [r.offset_delta for r in batch.records] == [0, 1, 2, 3]
    assert [ts for _, ts, _ in batch.iter_absolute()] == [5, 5, 7, 7]


def test_decode_records_reads_legacy_sets() -> None:
    data = kafka_python_set(1, 1)
    [batch] = decode_records(data)
    assert batch.magic == 1 and batch.records_count == len(MESSAGES)
    assert [r.key for r in batch.records] == [k for k, _ in MESSAGES]


def test_crc_corruption_detected() -> None:
    for codec in (0, 1):
        data = bytearray(kafka_python_set(1, codec))
        data[-1] ^= 0xFF
        with pytest.raises(InvalidRecordError) as info:
            decode_message_set(bytes(data))
        assert info.value.error_code == CORRUPT_MESSAGE
        with pytest.raises(InvalidRecordError):
            convert_to_batch(bytes(data))


def test_truncated_tail_ignored() -> None:
    data = build_message_set(MESSAGES, magic=1)
    assert len(decode_message_set(data + data[:20])) == len(MESSAGES)
    assert len(decode_message_set(data[:-1])) == len(MESSAGES) - 1
    with pytest.raises(InvalidRecordError) as info:
        convert_to_batch(data[:10])
    assert info.value.error_code == INVALID_RECORD


def test_double_compression_rejected() -> None:
    inner = build_message_set(MESSAGES, magic=1, compression=Compression.GZIP)
    wrapper = encode_message(0, None, kafka.codec.gzip_encode(inner), magic=1,
                             attributes=Compression.GZIP)
    with pytest.raises(InvalidRecordError) as info:
        decode_message_set(wrapper)
    assert info.value.error_code == INVALID_RECORD


def test_zstd_not_allowed_in_legacy_wrapper() -> None:
    wrapper = encode_message(0, None, b"\x28\xb5\x2f\xfd", magic=1, attributes=Compression.ZSTD)
    with pytest.raises(InvalidRecordError):
        decode_message_set(wrapper)


def test_convert_bounds_decompressed_size() -> None:
    """A tiny compressed wrapper must not expand without bound when a limit is given."""
    bomb = build_message_set([(None, b"\x00" * 1_000_000)], magic=1,
                             compression=Compression.GZIP)
    assert len(bomb) < 5_000
    assert len(decode_message_set(bomb)) == 1
    with pytest.raises(DecompressedSizeError):
        convert_to_batch(bomb, max_decompressed_bytes=100_000)
    with pytest.raises(DecompressedSizeError):
        decode_records(bomb, max_decompressed_bytes=100_000)

"""protocol.record_codec: records, whole batches with every codec, control batches."""

from __future__ import annotations

import struct

import kafka.codec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka.record.default_records import DefaultRecordBatch, DefaultRecordBatchBuilder
from kafka.record.legacy_records import LegacyRecordBatchBuilder

from protocol.errors import DecodeError
from protocol.record_codec import (
    ControlRecordType,
    Record,
    build_batch,
    build_control_batch,
    decode_batch,
    decode_control_record,
    decode_record,
    decode_records,
    decode_varint,
    encode_batch,
    encode_record,
    encode_varint,
)
from protocol.records import Compression, read_batch_header, validate_batch

# Which codecs kafka-python can produce/read here depends on optional libraries.
KAFKA_PYTHON_CODECS = [
    pytest.param(0, id="none"),
    pytest.param(1, id="gzip"),
    pytest.param(2, id="snappy", marks=pytest.mark.skipif(
        not kafka.codec.has_snappy(), reason="python-snappy not installed")),
    pytest.param(3, id="lz4", marks=pytest.mark.skipif(
        not kafka.codec.has_lz4(), reason="lz4 not installed")),
    pytest.param(4, id="zstd", marks=pytest.mark.skipif(
        not kafka.codec.has_zstd(), reason="zstandard not installed")),
]

SAMPLE = [
    Record(0, 0, b"key", b"value", [("trace", b"abc"), ("empty", b""), ("null", None)]),
    Record(1, 5, None, b"no key"),
    Record(2, -3, b"no value", None),
    Record(3, 1_000, b"", b"x" * 5_000, [("unicodé", b"\x00\xff")]),
]


@pytest.mark.parametrize(
    ("value", "encoded"),
    [(0, "00"), (-1, "01"), (1, "02"), (63, "7e"), (-64, "7f"), (64, "8001"), (300, "d804"),
     (2**31 - 1, "feffffff0f"), (-(2**31), "ffffffff0f"),
     (2**63 - 1, "feffffffffffffffff01"), (-(2**63), "ffffffffffffffffff01")],
)
def test_varint_edges(value: int, encoded: str) -> None:
    assert encode_varint(value).hex() == encoded
    assert decode_varint(bytes.fromhex(encoded), 0) == (value, len(encoded) // 2)


def test_varint_bounds() -> None:
    with pytest.raises(DecodeError):
        decode_varint(b"\xff" * 20, 0)
    with pytest.raises(DecodeError):
        decode_varint(b"\xff\xff\xff\xff\xff\x01", 0, max_bytes=5)
    with pytest.raises(DecodeError):
        decode_varint(b"\x80\x80", 0)
    with pytest.raises(DecodeError):  # 33 significant bits in an int32 varint
        decode_varint(b"\xff\xff\xff\xff\x1f", 0, max_bytes=5)
    with pytest.raises(DecodeError):  # 65 significant bits in a varlong
        decode_varint(b"\xff" * 9 + b"\x03", 0)


def test_record_bytes_by_hand() -> None:
    record = Record(1, 2, b"k", None, [("h", b"x")])
    # attrs, ts delta 2, offset delta 1, key len 1 'k', value null, 1 header 'h' -> 'x'
    body = bytes.fromhex("00 04 02 02 6b 01 02 02 68 02 78")
    assert encode_record(record) == bytes([len(body) * 2]) + body
    assert decode_record(encode_record(record), 0) == (record, len(body) + 1)


def test_record_decode_rejects_malformed() -> None:
    good = encode_record(SAMPLE[0])
    with pytest.raises(DecodeError):
        decode_record(good[:-1], 0)
    bad_key_len = bytearray(good)
    bad_key_len[4] = 0x7E  # key length 63, more than the record holds
    with pytest.raises(DecodeError):
        decode_record(bytes(bad_key_len), 0)


def kafka_python_build(records: list[Record], codec: int, base_timestamp: int) -> bytes:
    builder = DefaultRecordBatchBuilder(magic=2, compression_type=codec, is_transactional=False,
                                        producer_id=-1, producer_epoch=-1, base_sequence=-1,
                                        batch_size=1 << 22)
    for r in records:
        builder.append(r.offset_delta, timestamp=base_timestamp + r.timestamp_delta, key=r.key,
                       value=r.value, headers=r.headers)
    return bytes(builder.build())


@pytest.mark.parametrize("codec", KAFKA_PYTHON_CODECS)
def test_decode_kafka_python_batches(codec: int) -> None:
    base = 1_700_000_000_000
    data = kafka_python_build(SAMPLE, codec, base)
    assert validate_batch(data).compression == codec
    batch = decode_batch(data)
    assert batch.records == [
        Record(r.offset_delta, r.timestamp_delta - SAMPLE[0].timestamp_delta, r.key, r.value,
               r.headers) for r in SAMPLE
    ]
    assert [ts for _, ts, _ in batch.iter_absolute()] == [base + r.timestamp_delta for r in SAMPLE]
    assert decode_records(data)[0].records == batch.records


@pytest.mark.parametrize("codec", KAFKA_PYTHON_CODECS)
def test_kafka_python_reads_our_batches(codec: int) -> None:
    data = build_batch(SAMPLE, base_timestamp=1_600_000_000_000, compression=codec,
                       base_offset=100)
    theirs = DefaultRecordBatch(bytearray(data))
    assert theirs.validate_crc()
    assert theirs.compression_type == codec
    got = [(r.offset, r.timestamp, r.key, r.value, list(r.headers)) for r in theirs]
    assert got == [(100 + r.offset_delta, 1_600_000_000_000 + r.timestamp_delta, r.key, r.value,
                    r.headers) for r in SAMPLE]


def test_build_from_tuples_and_batch_fields() -> None:
    data = build_batch([(b"a", b"1"), (None, b"2", [("h", None)])], base_offset=7,
                       base_timestamp=123, producer_id=5, producer_epoch=2, base_sequence=9,
                       is_transactional=True, partition_leader_epoch=4)
    header = validate_batch(data)
    assert (header.base_offset, header.last_offset_delta, header.records_count) == (7, 1, 2)
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (5, 2, 9)
    assert header.partition_leader_epoch == 4 and header.is_transactional
    assert header.base_timestamp == header.max_timestamp == 123
    batch = decode_batch(data)
    assert [(r.offset_delta, r.key, r.value, r.headers) for r in batch.records] == [
        (0, b"a", b"1", []), (1, None, b"2", [("h", None)])]


def test_max_timestamp_is_the_largest_record_timestamp() -> None:
    header = read_batch_header(build_batch(SAMPLE, base_timestamp=1_000))
    assert header.max_timestamp == 2_000


@pytest.mark.parametrize("commit", [True, False])
def test_control_batch(commit: bool) -> None:
    data = build_control_batch(commit, producer_id=77, producer_epoch=3, coordinator_epoch=12,
                               base_offset=50, timestamp=1_234)
    header = validate_batch(data)
    assert header.is_control and header.is_transactional
    assert (header.producer_id, header.producer_epoch, header.base_sequence) == (77, 3, -1)
    assert (header.base_offset, header.records_count, header.base_timestamp) == (50, 1, 1_234)
    [record] = decode_batch(data).records
    marker_type = 1 if commit else 0
    assert record.key == struct.pack(">hh", 0, marker_type)
    assert record.value == struct.pack(">hi", 0, 12)
    control = decode_control_record(record)
    assert control.type == (ControlRecordType.COMMIT if commit else ControlRecordType.ABORT)
    assert (control.version, control.coordinator_epoch) == (0, 12)
    theirs = DefaultRecordBatch(bytearray(data))
    assert theirs.is_control_batch and theirs.is_transactional and theirs.validate_crc()


def test_control_record_malformed() -> None:
    with pytest.raises(DecodeError):
        decode_control_record(Record(0, 0, b"\x00", None))
    with pytest.raises(DecodeError):
        decode_control_record(Record(0, 0, b"\x00\x00\x00\x01", b"\x00"))


def test_decode_records_blob_with_truncated_tail_and_legacy() -> None:
    first = build_batch([(b"a", b"1")], base_offset=0, base_timestamp=10)
    second = build_batch([(b"b", b"2"), (b"c", b"3")], base_offset=1, base_timestamp=20,
                         compression=Compression.GZIP)
    legacy_builder = LegacyRecordBatchBuilder(magic=1, compression_type=0, batch_size=1 << 20)
    legacy_builder.append(3, timestamp=30, key=b"d", value=b"4")
    legacy = bytes(legacy_builder.build())
    blob = first + second + legacy + second[:40]
    batches = decode_records(memoryview(blob))
    assert [b.magic for b in batches] == [2, 2, 1]
    got = [(offset, ts, r.key) for b in batches for offset, ts, r in b.iter_absolute()]
    assert got == [(0, 10, b"a"), (1, 20, b"b"), (2, 20, b"c"), (3, 30, b"d")]


def test_decode_batch_errors() -> None:
    data = build_batch(SAMPLE, base_timestamp=0)
    with pytest.raises(DecodeError):
        decode_batch(data[:-3])
    wrong_count = bytearray(data)
    struct.pack_into(">i", wrong_count, 57, 5)
    with pytest.raises(DecodeError):
        decode_batch(bytes(wrong_count))
    bad_codec = bytearray(data)
    struct.pack_into(">h", bad_codec, 21, 6)
    with pytest.raises(DecodeError):
        decode_batch(bytes(bad_codec))
    corrupt_gzip = bytearray(build_batch(SAMPLE, base_timestamp=0, compression=Compression.GZIP))
    corrupt_gzip[70:80] = b"\x00" * 10
    with pytest.raises(DecodeError):
        decode_batch(bytes(corrupt_gzip))


headers_strategy = st.lists(
    st.tuples(st.text(max_size=8), st.one_of(st.none(), st.binary(max_size=16))), max_size=3)
records_strategy = st.lists(
    st.builds(Record,
              offset_delta=st.just(0),
              timestamp_delta=st.integers(-(2**40), 2**40),
              key=st.one_of(st.none(), st.binary(max_size=64)),
              value=st.one_of(st.none(), st.binary(max_size=300)),
              headers=headers_strategy),
    min_size=1, max_size=8,
)


@settings(max_examples=40, deadline=None)
@given(records=records_strategy, codec=st.sampled_from(list(Compression)),
       base_timestamp=st.integers(0, 2**41))
def test_round_trip(records: list[Record], codec: int, base_timestamp: int) -> None:
    for index, record in enumerate(records):
        record.offset_delta = index
    data = build_batch(records, compression=codec, base_timestamp=base_timestamp)
    header = validate_batch(data)
    assert header.records_count == len(records)
    batch = decode_batch(data)
    assert batch.records == records
    assert batch.base_timestamp == base_timestamp
    assert encode_record(records[0]) == encode_record(batch.records[0])


@settings(max_examples=60, deadline=None)
@given(data=st.binary(max_size=200))
def test_decode_garbage_raises_only_decode_error(data: bytes) -> None:
    valid = build_batch(SAMPLE, base_timestamp=0)
    for blob in (data, valid[:61] + data, valid[: len(valid) // 2] + data):
        try:
            decode_records(blob)
        except DecodeError:
            pass


@pytest.mark.parametrize("codec", list(Compression))
def test_encode_batch_keeps_header_fields(codec: int) -> None:
    original = build_batch(SAMPLE, base_offset=1_000, base_timestamp=50, compression=codec,
                           producer_id=3, producer_epoch=1, base_sequence=0,
                           is_transactional=True, partition_leader_epoch=8)
    batch = decode_batch(original)
    assert encode_batch(batch) == original  # the codecs are deterministic
    # Compaction-style edit: drop records but keep the batch's offset range and fields.
    batch.records = [batch.records[1]]
    compacted = encode_batch(batch)
    header = read_batch_header(compacted)
    assert (header.base_offset, header.last_offset_delta, header.records_count) == (1_000, 3, 1)
    assert (header.producer_id, header.base_sequence, header.is_transactional) == (3, 0, True)
    assert header.compression == codec and header.max_timestamp == 1_050
    assert decode_batch(compacted).records == [SAMPLE[1]]


def test_decode_batch_bounds_decompressed_size() -> None:
    data = build_batch([(None, b"\x00" * 500_000)], compression=Compression.ZSTD)
    assert decode_batch(data, max_decompressed_bytes=600_000).records[0].value == b"\x00" * 500_000
    with pytest.raises(DecodeError):
        decode_batch(data, max_decompressed_bytes=100_000)
    with pytest.raises(DecodeError):
        decode_records(data, max_decompressed_bytes=100_000)

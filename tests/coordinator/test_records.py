"""__consumer_offsets record framing and group placement, as Kafka writes them."""

from __future__ import annotations

import struct

import pytest

from kbroker.coordinator.offsets import OffsetAndMetadata
from kbroker.coordinator.records import (GroupMetadataRecord, GroupMetadataSnapshot, MemberRecord,
                                         OffsetCommitRecord, decode_record, encode_record,
                                         java_string_hash, partition_for)


def test_offset_commit_key_and_value_bytes():
    key, value = encode_record(OffsetCommitRecord(
        "g", "t", 3, OffsetAndMetadata(42, 5, "meta", 1000)))
    # key: version 1, group, topic, partition
    assert key == struct.pack(">hh1sh1si", 1, 1, b"g", 1, b"t", 3)
    # value v3: offset, leader epoch, metadata, commit timestamp
    assert value == struct.pack(">hqih4sq", 3, 42, 5, 4, b"meta", 1000)


def test_offset_with_expire_timestamp_uses_value_version_1():
    _, value = encode_record(OffsetCommitRecord("g", "t", 0, OffsetAndMetadata(1, -1, "", 10, 99)))
    assert value == struct.pack(">hqhqq", 1, 1, 0, 10, 99)


@pytest.mark.parametrize("record", [
    OffsetCommitRecord("group", "topic", 7, OffsetAndMetadata(9, 2, "x", 5)),
    OffsetCommitRecord("group", "topic", 7, None),
    GroupMetadataRecord("group", None),
    GroupMetadataRecord("group", GroupMetadataSnapshot(
        "consumer", 4, "range", "m1", 123,
        (MemberRecord("m1", "inst", "client", "/127.0.0.1", 30000, 10000, b"sub", b"asg"),
         MemberRecord("m2", None, "client", "/127.0.0.1", 30000, 10000, b"", b"")))),
])
def test_records_round_trip(record):
    key, value = encode_record(record)
    assert decode_record(key, value) == record
    if record.value is None:
        assert value is None          # tombstones


def test_unknown_key_versions_are_skipped():
    assert decode_record(struct.pack(">h", 11) + b"\x00", b"") is None


@pytest.mark.parametrize("text,expected", [
    ("", 0), ("a", 97), ("hello", 99162322), ("polygenelubricants", -(2**31)),
    ("\u00e9t\u00e9", 227742), ("\U0001f600", 1772899),  # UTF-16 units, surrogates
])
def test_java_string_hash(text, expected):
    assert java_string_hash(text) == expected


def test_partition_matches_kafka_utils_abs():
    assert partition_for("polygenelubricants", 50) == 0      # MIN_VALUE maps to 0
    assert partition_for("hello", 50) == 99162322 % 50
    negative = next(g for g in (f"consumer-group-{i}" for i in range(1000))
                    if java_string_hash(g) < 0)
    assert partition_for(negative, 50) == (-java_string_hash(negative)) % 50

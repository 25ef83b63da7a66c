"""Hand-made byte vectors: varints at their edges, compact types, tagged fields, headers."""

from __future__ import annotations

import struct
import uuid
from io import BytesIO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import protocol
from protocol import ApiKey, DecodeError, EncodeError, UnsupportedVersionError
from protocol.primitives import (
    encode_uvarint,
    k_read_uvarint,
    k_read_varint,
    k_read_varlong,
    k_write_varint,
    k_write_varlong,
)

# ---------------------------------------------------------------------------------------------
# varints


@pytest.mark.parametrize(
    "value, raw",
    [
        (0, "00"),
        (1, "01"),
        (127, "7f"),
        (128, "8001"),
        (300, "ac02"),
        (16383, "ff7f"),
        (16384, "808001"),
        (2**31 - 1, "ffffffff07"),
        (2**32 - 1, "ffffffff0f"),
    ],
)
def test_unsigned_varint(value: int, raw: str) -> None:
    assert encode_uvarint(value).hex() == raw
    io = BytesIO(bytes.fromhex(raw))
    assert k_read_uvarint(io) == value
    assert io.read() == b""


@pytest.mark.parametrize(
    "raw",
    [
        "8080808080",  # 5 bytes, still continued
        "808080808000",  # 6 bytes: over-long
        "ffffffff1f",  # 5 bytes but beyond 32 bits
        "80",  # truncated
        "",
    ],
)
def test_bad_unsigned_varint(raw: str) -> None:
    with pytest.raises(DecodeError):
        k_read_uvarint(BytesIO(bytes.fromhex(raw)))


@pytest.mark.parametrize("value", [-1, 2**32])
def test_unsigned_varint_out_of_range_on_encode(value: int) -> None:
    with pytest.raises(EncodeError):
        encode_uvarint(value)


@pytest.mark.parametrize(
    "value, raw",
    [
        (0, "00"),
        (-1, "01"),
        (1, "02"),
        (-64, "7f"),
        (64, "8001"),
        (2**31 - 1, "feffffff0f"),
        (-(2**31), "ffffffff0f"),
    ],
)
def test_zigzag_varint(value: int, raw: str) -> None:
    out = BytesIO()
    k_write_varint(out, value)
    assert out.getvalue().hex() == raw
    assert k_read_varint(BytesIO(bytes.fromhex(raw))) == value


@pytest.mark.parametrize(
    "value, raw",
    [
        (0, "00"),
        (-1, "01"),
        (2**63 - 1, "feffffffffffffffff01"),
        (-(2**63), "ffffffffffffffffff01"),
        (2**31, "8080808010"),
    ],
)
def test_zigzag_varlong(value: int, raw: str) -> None:
    out = BytesIO()
    k_write_varlong(out, value)
    assert out.getvalue().hex() == raw
    assert k_read_varlong(BytesIO(bytes.fromhex(raw))) == value


@pytest.mark.parametrize("raw", ["ffffffffffffffffff8001", "ffffffffffffffffff03", "ff"])
def test_bad_varlong(raw: str) -> None:
    with pytest.raises(DecodeError):
        k_read_varlong(BytesIO(bytes.fromhex(raw)))


@pytest.mark.parametrize("raw", ["ffffffff1f", "ffffffffff01"])
def test_bad_varint(raw: str) -> None:
    with pytest.raises(DecodeError):
        k_read_varint(BytesIO(bytes.fromhex(raw)))


@settings(max_examples=200, database=None)
@given(value=st.integers(0, 2**32 - 1))
def test_unsigned_varint_round_trip(value: int) -> None:
    raw = encode_uvarint(value)
    assert len(raw) == max(1, (value.bit_length() + 6) // 7)
    io = BytesIO(raw)
    assert k_read_uvarint(io) == value and io.read() == b""


@settings(max_examples=200, database=None)
@given(value=st.integers(-(2**31), 2**31 - 1), wide=st.integers(-(2**63), 2**63 - 1))
def test_zigzag_round_trip(value: int, wide: int) -> None:
    out = BytesIO()
    k_write_varint(out, value)
    assert len(out.getvalue()) <= 5
    assert k_read_varint(BytesIO(out.getvalue())) == value
    out = BytesIO()
    k_write_varlong(out, wide)
    assert len(out.getvalue()) <= 10
    assert k_read_varlong(BytesIO(out.getvalue())) == wide


def test_varint_out_of_range_on_encode() -> None:
    with pytest.raises(EncodeError):
        k_write_varint(BytesIO(), 2**31)
    with pytest.raises(EncodeError):
        k_write_varlong(BytesIO(), -(2**63) - 1)


# ---------------------------------------------------------------------------------------------
# compact and classic types


def test_compact_strings_api_versions_v3_request() -> None:
    value = {"client_software_name": "abc", "client_software_version": "1.0"}
    raw = b"\x04abc" + b"\x041.0" + b"\x00"
    assert protocol.encode_body(ApiKey.API_VERSIONS, 3, False, value) == raw
    assert protocol.decode_body(ApiKey.API_VERSIONS, 3, False, raw) == value


def test_classic_and_compact_null_arrays_metadata() -> None:
    # v1: topics null = all topics -> int32 -1
    assert protocol.encode_body(3, 1, False, {"topics": None}) == b"\xff\xff\xff\xff"
    # v0: topics is not nullable
    with pytest.raises(EncodeError):
        protocol.encode_body(3, 0, False, {"topics": None})
    with pytest.raises(DecodeError):
        protocol.decode_body(3, 0, False, b"\xff\xff\xff\xff")
    # v9 flexible: compact null array is 0, then booleans, then an empty tag section
    raw = protocol.encode_body(3, 9, False, {"topics": None})
    assert raw == b"\x00" + b"\x01" + b"\x00" + b"\x00" + b"\x00"
    assert protocol.decode_body(3, 9, False, raw)["topics"] is None


def test_metadata_v12_topic_with_uuid() -> None:
    topic_id = uuid.UUID("0123456789abcdef0123456789abcdef")
    raw = protocol.encode_body(3, 12, False, {"topics": [{"topic_id": topic_id, "name": None}]})
    assert raw == b"\x02" + topic_id.bytes + b"\x00" + b"\x00" + b"\x01\x00" + b"\x00"
    assert protocol.decode_body(3, 12, False, raw)["topics"] == [{"topic_id": topic_id, "name": None}]


def test_nullable_struct_marker() -> None:
    # DescribeTopicPartitions v0 request: topics, response_partition_limit, cursor (nullable struct)
    base = b"\x01" + b"\x00\x00\x07\xd0"
    assert protocol.encode_body(75, 0, False, {}) == base + b"\xff" + b"\x00"
    raw = protocol.encode_body(
        75, 0, False, {"cursor": {"topic_name": "t", "partition_index": 3}}
    )
    assert raw == base + b"\x01" + b"\x02t" + b"\x00\x00\x00\x03" + b"\x00" + b"\x00"
    assert protocol.decode_body(75, 0, False, raw)["cursor"] == {
        "topic_name": "t",
        "partition_index": 3,
    }


def test_string_defaults_and_int_defaults_on_encode() -> None:
    # JoinGroup v5 request: protocol_type "", rebalance_timeout_ms default -1, group_instance_id null
    value = protocol.decode_body(11, 5, False, protocol.encode_body(11, 5, False, {}))
    assert value["rebalance_timeout_ms"] == -1
    assert value["group_instance_id"] is None
    assert value["protocol_type"] == ""
    assert value["protocols"] == []


# ---------------------------------------------------------------------------------------------
# tagged fields

_API_VERSIONS_V3_HEAD = (
    b"\x00\x00"  # error_code
    + b"\x02"  # compact array, 1 element
    + b"\x00\x00\x00\x00\x00\x0b"  # api_key 0, 0..11
    + b"\x00"  # element's tag section
    + b"\x00\x00\x00\x00"  # throttle_time_ms
)


def test_tagged_fields_decode_known_and_unknown() -> None:
    tags = (
        b"\x03"
        + b"\x01\x08" + struct.pack(">q", 5)  # finalized_features_epoch
        + b"\x03\x01\x01"  # zk_migration_ready
        + b"\x07\x02\xab\xcd"  # unknown tag 7
    )
    raw = _API_VERSIONS_V3_HEAD + tags
    value = protocol.decode_body(18, 3, True, raw)
    assert value["finalized_features_epoch"] == 5
    assert value["zk_migration_ready"] is True
    assert value["supported_features"] == []  # absent tag: default
    assert value["finalized_features"] == []
    assert value["_unknown_tagged_fields"] == {7: b"\xab\xcd"}
    assert protocol.encode_body(18, 3, True, value) == raw


def test_unknown_tags_are_merged_in_tag_order() -> None:
    value = {
        "api_keys": [],
        "zk_migration_ready": True,
        "_unknown_tagged_fields": {2**20: b"z", 1000: b""},
        "finalized_features_epoch": -1,
    }
    raw = protocol.encode_body(18, 3, True, value)
    tail = b"\x03" + b"\x03\x01\x01" + b"\xe8\x07\x00" + b"\x80\x80\x40\x01z"
    assert raw.endswith(tail)


def test_absent_tagged_fields_take_defaults() -> None:
    raw = _API_VERSIONS_V3_HEAD + b"\x00"
    value = protocol.decode_body(18, 3, True, raw)
    assert value["finalized_features_epoch"] == -1
    assert value["zk_migration_ready"] is False
    assert "_unknown_tagged_fields" not in value
    assert protocol.encode_body(18, 3, True, value) == raw


def test_tagged_struct_default_is_not_written() -> None:
    # Fetch v12 response partition: diverging_epoch, current_leader, snapshot_id are tagged
    partition = {"partition_index": 0, "records": b"", "current_leader": {"leader_id": -1, "leader_epoch": -1}}
    value = {"responses": [{"topic": "t", "partitions": [partition]}]}
    raw = protocol.encode_body(1, 12, True, value)
    decoded = protocol.decode_body(1, 12, True, raw)
    part = decoded["responses"][0]["partitions"][0]
    assert part["current_leader"] == {"leader_id": -1, "leader_epoch": -1}
    assert part["diverging_epoch"] == {"epoch": -1, "end_offset": -1}
    assert part["snapshot_id"] == {"end_offset": -1, "epoch": -1}
    # the partition's tag section is empty: its last byte before the topic's tags is 0
    partition["current_leader"] = {"leader_id": 4, "leader_epoch": 9}
    raw2 = protocol.encode_body(1, 12, True, value)
    assert len(raw2) == len(raw) + 1 + 1 + 9  # tag, size, struct (4 + 4 + tag section)
    assert protocol.decode_body(1, 12, True, raw2)["responses"][0]["partitions"][0][
        "current_leader"
    ] == {"leader_id": 4, "leader_epoch": 9}


def test_known_tag_with_wrong_size_is_rejected() -> None:
    raw = _API_VERSIONS_V3_HEAD + b"\x01" + b"\x03\x02\x01\x00"  # bool declared as 2 bytes
    with pytest.raises(DecodeError):
        protocol.decode_body(18, 3, True, raw)


def test_tag_size_beyond_frame_is_rejected() -> None:
    raw = _API_VERSIONS_V3_HEAD + b"\x01" + b"\x09\x7f\x00"
    with pytest.raises(DecodeError):
        protocol.decode_body(18, 3, True, raw)


# ---------------------------------------------------------------------------------------------
# lengths and bounds


@pytest.mark.parametrize(
    "raw",
    [
        b"\x00\x05ab",  # string longer than the bytes left
        b"\xff\xfe",  # negative length other than -1
        b"\xff\xff",  # null in a non-nullable string
        b"\x00\x02\xff\xfe",  # not UTF-8
        b"\x00",  # truncated length
    ],
)
def test_bad_strings(raw: bytes) -> None:
    # DeleteGroups v0 request: groups_names [string]
    with pytest.raises(DecodeError):
        protocol.decode_body(42, 0, False, b"\x00\x00\x00\x01" + raw)


def test_huge_array_count_is_an_error_not_an_allocation() -> None:
    with pytest.raises(DecodeError):
        protocol.decode_body(42, 0, False, b"\x7f\xff\xff\xff")
    with pytest.raises(DecodeError):
        protocol.decode_body(42, 2, False, b"\xff\xff\xff\xff\x0f")


def test_records_length_beyond_frame() -> None:
    value = {"topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": b"abc"}]}]}
    raw = protocol.encode_body(0, 3, False, value)
    with pytest.raises(DecodeError):
        protocol.decode_body(0, 3, False, raw[:-1])
    corrupt = raw[:-7] + struct.pack(">i", 2**31 - 1) + raw[-3:]
    with pytest.raises(DecodeError):
        protocol.decode_body(0, 3, False, corrupt)


def test_body_must_be_consumed_exactly() -> None:
    raw = protocol.encode_body(12, 0, False, {"group_id": "g"})
    with pytest.raises(DecodeError):
        protocol.decode_body(12, 0, False, raw + b"\x00")
    frame = protocol.encode_response(12, 0, 1, {"error_code": 0})
    with pytest.raises(DecodeError):
        protocol.decode_response(12, 0, frame + b"\x00")


def test_encode_rejects_wrong_types_and_ranges() -> None:
    with pytest.raises(EncodeError):
        protocol.encode_body(12, 0, False, {"group_id": "g", "generation_id": 2**31})
    with pytest.raises(EncodeError):
        protocol.encode_body(12, 0, False, {"group_id": 5})
    with pytest.raises(EncodeError):
        protocol.encode_body(12, 0, False, {"group_id": "x" * 40000})


def test_fields_the_version_lacks_are_ignored_on_encode() -> None:
    assert protocol.encode_body(12, 0, False, {"group_id": "g", "group_instance_id": "i"}) == (
        protocol.encode_body(12, 0, False, {"group_id": "g"})
    )
    assert "group_instance_id" not in protocol.decode_body(
        12, 0, False, protocol.encode_body(12, 0, False, {"group_id": "g"})
    )


# ---------------------------------------------------------------------------------------------
# headers and frames


def test_request_header_v1_v2_v0() -> None:
    frame = protocol.encode_request(3, 1, 42, "me", {"topics": []})
    assert frame[:12] == b"\x00\x03\x00\x01\x00\x00\x00\x2a\x00\x02me"
    frame = protocol.encode_request(3, 9, 42, None, {"topics": []})
    assert frame[:11] == b"\x00\x03\x00\x09\x00\x00\x00\x2a\xff\xff\x00"  # v2: tag section
    frame = protocol.encode_request(7, 0, 42, "ignored", {"broker_id": 1})
    assert frame == b"\x00\x07\x00\x00\x00\x00\x00\x2a\x00\x00\x00\x01"  # v0: no client id
    header, body = protocol.decode_request(frame)
    assert header["client_id"] is None and body == {"broker_id": 1}


def test_request_header_tagged_fields_are_skipped() -> None:
    frame = b"\x00\x03\x00\x09\x00\x00\x00\x01\x00\x01c" + b"\x01\x05\x02ab" + b"\x01\x01\x00\x00\x00"
    header, body = protocol.decode_request(frame)
    assert header["client_id"] == "c"
    assert body["topics"] == []


def test_response_header_versions() -> None:
    # ApiVersions v3 is flexible but its response header is always v0
    frame = protocol.encode_response(18, 3, 5, {"api_keys": []})
    assert frame[:4] == b"\x00\x00\x00\x05" and frame[4:6] == b"\x00\x00"
    # Metadata v9 response: header v1 (tag section after the correlation id)
    frame = protocol.encode_response(3, 9, 5, {})
    assert frame[:5] == b"\x00\x00\x00\x05\x00"
    assert protocol.encode_response(3, 8, 5, {})[:8] == b"\x00\x00\x00\x05\x00\x00\x00\x00"


def test_unsupported_versions_keep_the_header() -> None:
    frame = b"\x00\x12\x00\x7f\x00\x00\x00\x09\x00\x03abc" + b"\x00" * 4
    with pytest.raises(UnsupportedVersionError) as info:
        protocol.decode_request(frame)
    assert info.value.header["request_api_key"] == 18
    assert info.value.header["request_api_version"] == 127
    assert info.value.header["correlation_id"] == 9
    assert info.value.header["client_id"] == "abc"
    with pytest.raises(UnsupportedVersionError) as info:
        protocol.decode_request(b"\x27\x0f\x00\x00\x00\x00\x00\x01\xff\xff")
    assert info.value.header["request_api_key"] == 9999
    assert isinstance(info.value, DecodeError)


def test_unsupported_version_with_a_broken_header_still_reports_it() -> None:
    with pytest.raises(UnsupportedVersionError) as info:
        protocol.decode_request(b"\x00\x12\x00\x7f\x00\x00\x00\x09\x00\x30ab")
    assert info.value.header["correlation_id"] == 9
    with pytest.raises(DecodeError) as plain:
        protocol.decode_request(b"\x00\x12\x00\x03\x00\x00\x00\x09\x00\x30ab")
    assert not isinstance(plain.value, UnsupportedVersionError)


def test_stray_bytes_after_a_request_are_accepted() -> None:
    frame = protocol.encode_request(3, 12, 1, "rdkafka", {"topics": None})
    header, body = protocol.decode_request(frame + b"\x00\x00\x00")
    assert body["topics"] is None


def test_records_are_slices_of_the_frame() -> None:
    blob = bytes(range(256)) * 4
    value = {"acks": -1, "timeout_ms": 5, "topic_data": [{"name": "t", "partition_data": [{"index": 1, "records": blob}]}]}
    for version in (3, 9, 11):
        frame = protocol.encode_request(0, version, 1, "c", value)
        _, body = protocol.decode_request(frame)
        records = body["topic_data"][0]["partition_data"][0]["records"]
        assert isinstance(records, memoryview) and records.obj is frame
        assert records == blob
        view = memoryview(bytearray(frame))
        _, body = protocol.decode_request(view)
        assert body["topic_data"][0]["partition_data"][0]["records"].obj is view.obj


def test_encode_response_frame_adds_the_size_prefix() -> None:
    body = {"responses": [{"topic": "t", "partitions": [{"partition_index": 0, "records": b"r" * 1000}]}]}
    for key, version, value in ((1, 12, body), (18, 3, {"api_keys": []}), (12, 0, {})):
        payload = protocol.encode_response(key, version, 77, value)
        framed = protocol.encode_response_frame(key, version, 77, value)
        assert framed == struct.pack(">i", len(payload)) + payload


def test_decoding_leaves_no_reference_cycles() -> None:
    """A cycle would keep a 1 MiB frame alive until the cyclic GC runs (STYLE.md section 3)."""
    import gc

    value = {"topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": b"x" * (1 << 20)}]}]}
    frame = protocol.encode_request(0, 9, 1, "c", value)
    protocol.decode_request(frame)  # compile outside the measurement
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            header, body = protocol.decode_request(frame)
            del header, body
            protocol.encode_response(1, 12, 1, {"responses": []})
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_api_versions_cover_the_spec() -> None:
    versions = protocol.api_versions()
    assert versions[ApiKey.PRODUCE][0] == 0 and versions[ApiKey.PRODUCE][1] >= 11
    assert versions[ApiKey.API_VERSIONS] == (0, 4)
    assert all(isinstance(k, ApiKey) for k in versions)
    assert len(versions) == len(ApiKey)


def test_data_schemas() -> None:
    value = {"assigned_partitions": [{"topic": "t", "partitions": [0, 1]}], "user_data": None}
    raw = protocol.encode_data("ConsumerProtocolAssignment", 0, value)
    assert raw == b"\x00\x00\x00\x01\x00\x01t\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x01\xff\xff\xff\xff"
    assert protocol.decode_data("ConsumerProtocolAssignment", 0, raw) == value
    with pytest.raises(DecodeError):
        protocol.decode_data("NoSuchSchema", 0, b"")
    with pytest.raises(EncodeError):
        protocol.encode_data("ConsumerProtocolAssignment", 99, {})

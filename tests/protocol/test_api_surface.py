"""Enums, header-version choice, the construct interface, and import hygiene of protocol/."""

from __future__ import annotations

import subprocess
import sys
import pytest

import protocol
from protocol import ApiKey, ErrorCode, messages
from protocol.generate import snake_case
from protocol.headers import request_header_version, response_header_version
from protocol.lower import api_spec, lower_struct, message_codec
from protocol.primitives import KArray, KMessage, KString, UVarInt


def test_api_keys_match_the_spec_names() -> None:
    for key, name in messages.API_NAMES.items():
        assert ApiKey(key).name == snake_case(name).upper()
    assert ApiKey.PRODUCE == 0 and ApiKey.API_VERSIONS == 18 and ApiKey.LEADER_AND_ISR == 4
    assert ApiKey.DESCRIBE_TOPIC_PARTITIONS == 75


@pytest.mark.parametrize(
    "name, code",
    [
        ("UNKNOWN_SERVER_ERROR", -1),
        ("NONE", 0),
        ("OFFSET_OUT_OF_RANGE", 1),
        ("CORRUPT_MESSAGE", 2),
        ("UNKNOWN_TOPIC_OR_PARTITION", 3),
        ("NOT_LEADER_OR_FOLLOWER", 6),
        ("MESSAGE_TOO_LARGE", 10),
        ("NOT_COORDINATOR", 16),
        ("INVALID_TOPIC_EXCEPTION", 17),
        ("REBALANCE_IN_PROGRESS", 27),
        ("UNSUPPORTED_VERSION", 35),
        ("TOPIC_ALREADY_EXISTS", 36),
        ("INVALID_REPLICA_ASSIGNMENT", 39),
        ("INVALID_REQUEST", 42),
        ("INVALID_PRODUCER_EPOCH", 47),
        ("MEMBER_ID_REQUIRED", 79),
        ("INVALID_RECORD", 87),
        ("PRODUCER_FENCED", 90),
        ("UNKNOWN_TOPIC_ID", 100),
        ("TRANSACTION_ABORTABLE", 120),
        ("VOTER_NOT_FOUND", 127),
    ],
)
def test_error_codes(name: str, code: int) -> None:
    assert ErrorCode[name] == code


def test_error_codes_agree_with_kafka_python_numbers() -> None:
    """kafka-python spells a few old names differently; every number must still exist."""
    import kafka.errors as errors
    numbers = {
        cls.errno
        for cls in vars(errors).values()
        if isinstance(cls, type) and isinstance(getattr(cls, "errno", None), int)
    }
    assert numbers <= {int(code) for code in ErrorCode}
    assert sorted(int(code) for code in ErrorCode) == list(range(-1, 128))


def test_header_versions_follow_kafka() -> None:
    for key, (low, high) in messages.VALID_VERSIONS.items():
        req_flex, resp_flex = messages.FLEXIBLE_VERSIONS[key]
        for version in range(low, high + 1):
            flexible_req = req_flex is not None and version >= req_flex[0]
            flexible_resp = resp_flex is not None and version >= resp_flex[0]
            expected_req = 0 if (key, version) == (7, 0) else (2 if flexible_req else 1)
            assert request_header_version(key, version) == expected_req
            expected_resp = 0 if key == ApiKey.API_VERSIONS else (1 if flexible_resp else 0)
            assert response_header_version(key, version) == expected_resp


def test_constructs_work_through_the_construct_api() -> None:
    """The lowered schemas are ordinary constructs: parse/build/compile all work."""
    schema = lower_struct(api_spec(12, False).fields, 4, True)
    value = {"group_id": "g", "generation_id": 3, "member_id": "m", "group_instance_id": None}
    raw = schema.build(value)
    assert raw == protocol.encode_body(12, 4, False, value)
    assert schema.parse(raw) == value
    assert KMessage(schema).compile().parse(raw) == value
    assert KArray(KString(True, True), True, False).build(["a", None]) == b"\x03\x02a\x00"
    assert UVarInt().parse(b"\x80\x01") == 128


def test_codecs_are_compiled_once() -> None:
    assert message_codec(3, 12, True) is message_codec(3, 12, True)
    assert "def parse_kstruct_" in message_codec(3, 12, True).source


def test_partial_and_container_values() -> None:
    """Any mapping works as a value; missing keys take defaults."""
    from construct import Container

    value = Container(group_id="g", generation_id=1, member_id="m")
    assert protocol.encode_body(12, 0, False, value) == protocol.encode_body(
        12, 0, False, {"group_id": "g", "generation_id": 1, "member_id": "m"}
    )


def test_protocol_imports_neither_trio_nor_kbroker() -> None:
    code = (
        "import sys, protocol, protocol.generate;"
        "protocol.decode_request(protocol.encode_request(3, 12, 1, 'c', {}));"
        "bad = [m for m in sys.modules if m == 'trio' or m.startswith('kbroker')];"
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_decode_from_bytearray_and_memoryview() -> None:
    frame = protocol.encode_request(18, 3, 1, "c", {"client_software_name": "x"})
    for data in (bytearray(frame), memoryview(frame)):
        header, body = protocol.decode_request(data)
        assert body["client_software_name"] == "x"
    body_bytes = protocol.encode_body(18, 3, False, {"client_software_name": "x"})
    assert frame.endswith(body_bytes)
    assert protocol.decode_body(18, 3, False, memoryview(body_bytes))["client_software_name"] == "x"

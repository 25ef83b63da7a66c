"""Metadata record framing (Kafka's ApiMessageAndVersion) and the two encoders agreeing."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kbroker.metadata import serde
from protocol import DecodeError

TOPIC_ID = uuid.UUID("6d9a3b0e-1f47-4a55-9c0e-7b1f6f9e2a10")

SAMPLES = [
    ("TopicRecord", 0, {"name": "orders", "topic_id": TOPIC_ID}),
    ("PartitionRecord", 0, {"partition_id": 2, "topic_id": TOPIC_ID, "replicas": [1, 2], "isr": [1],
                            "removing_replicas": [], "adding_replicas": [], "leader": 1,
                            "leader_recovery_state": 0, "leader_epoch": 4, "partition_epoch": 7}),
    ("PartitionChangeRecord", 0, {"partition_id": 2, "topic_id": TOPIC_ID, "isr": [1, 2], "leader": 2}),
    ("ConfigRecord", 0, {"resource_type": 2, "resource_name": "orders", "name": "retention.ms", "value": None}),
    ("RemoveTopicRecord", 0, {"topic_id": TOPIC_ID}),
    ("FeatureLevelRecord", 0, {"name": "metadata.version", "feature_level": 21}),
    ("ProducerIdsRecord", 0, {"broker_id": 1, "broker_epoch": 9, "next_producer_id": 5000}),
    ("RegisterBrokerRecord", 1, {"broker_id": 1, "incarnation_id": TOPIC_ID, "broker_epoch": 3,
                                 "end_points": [{"name": "PLAINTEXT", "host": "127.0.0.1", "port": 9092,
                                                 "security_protocol": 0}],
                                 "features": [], "rack": None, "fenced": False, "in_controlled_shutdown": False}),
]


@pytest.mark.parametrize("name,version,value", SAMPLES)
def test_frame_and_round_trip(name, version, value):
    data = serde.encode_record(name, value, version)
    spec = serde.specs()[name]
    assert data[0] == 1 and data[1] == spec.api_key and data[2] == version  # frame version, api key, version
    decoded_name, decoded_version, fields = serde.decode_record(data)
    assert (decoded_name, decoded_version) == (name, version)
    assert {k: fields[k] for k in value} == value
    # the codec's generated tables and the JSON interpreter give the same bytes
    assert serde._encode_local(name, version, value) == data[3:]


def test_topic_record_bytes():
    """TopicRecord v0 laid out by hand: compact string, uuid, empty tagged fields."""
    data = serde.encode_record("TopicRecord", {"name": "ab", "topic_id": TOPIC_ID})
    assert data == bytes([1, 2, 0, 3]) + b"ab" + TOPIC_ID.bytes + bytes([0])


@pytest.mark.parametrize("data", [b"", b"\x02\x02\x00", b"\x01\x7f\x00", b"\x01\x02\x05", b"\x01\x02\x00\x05ab"])
def test_malformed_frames_raise_decode_error(data):
    with pytest.raises(DecodeError):
        serde.decode_record(data)


@settings(max_examples=50, deadline=None)
@given(st.binary(max_size=64))
def test_garbage_only_raises_decode_error(data):
    try:
        serde.decode_record(b"\x01\x03\x00" + data)
    except DecodeError:
        pass

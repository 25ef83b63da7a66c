"""The data-path APIs at the wire level: long poll, sessions, topic ids, errors, offsets."""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from protocol.record_codec import Record, build_batch
from tests.integration.clients import create_topic, kp_produce, Rec, unique_topic
from tests.integration.wire import WireClient

PRODUCE, FETCH, LIST_OFFSETS, METADATA, OFFSET_FOR_LEADER_EPOCH, DESCRIBE_LOG_DIRS = 0, 1, 2, 3, 23, 35


def _produce(client: WireClient, topic: str, partition: int, batch: bytes, version: int = 9,
             acks: int = 1) -> dict:
    body = {"transactional_id": None, "acks": acks, "timeout_ms": 5000,
            "topic_data": [{"name": topic, "partition_data": [{"index": partition, "records": batch}]}]}
    response = client.request(PRODUCE, version, body)
    return response["responses"][0]["partition_responses"][0]


def _fetch_body(topic: str, partition: int, offset: int, *, max_wait_ms: int = 0, topic_id=None,
                session_id: int = 0, epoch: int = -1, min_bytes: int = 1) -> dict:
    part = {"partition": partition, "current_leader_epoch": -1, "fetch_offset": offset,
            "last_fetched_epoch": -1, "log_start_offset": -1, "partition_max_bytes": 1 << 20}
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": min_bytes, "max_bytes": 50 << 20,
            "isolation_level": 0, "session_id": session_id, "session_epoch": epoch,
            "topics": [{"topic": topic, "topic_id": topic_id, "partitions": [part]}],
            "forgotten_topics_data": [], "rack_id": ""}


def _topic_id(client: WireClient, topic: str) -> uuid.UUID:
    body = {"topics": [{"name": topic, "topic_id": uuid.UUID(int=0)}], "allow_auto_topic_creation": False,
            "include_topic_authorized_operations": False}
    response = client.request(METADATA, 12, body)
    return response["topics"][0]["topic_id"]


@pytest.fixture
def topic(broker):
    name = unique_topic("dp")
    create_topic(broker.bootstrap_servers, name, 1)
    return name


def test_empty_fetch_waits_max_wait(broker, topic):
    with WireClient(broker.bootstrap_servers) as client:
        started = time.monotonic()
        response = client.request(FETCH, 11, _fetch_body(topic, 0, 0, max_wait_ms=400))
        elapsed = time.monotonic() - started
    part = response["responses"][0]["partitions"][0]
    assert part["error_code"] == 0 and not part["records"]
    assert elapsed >= 0.35


def test_long_poll_returns_when_a_record_arrives(broker, topic):
    max_wait_ms = 30_000
    with WireClient(broker.bootstrap_servers) as fetcher, WireClient(broker.bootstrap_servers) as producer:
        started = time.monotonic()
        correlation_id = fetcher.send(FETCH, 11, _fetch_body(topic, 0, 0, max_wait_ms=max_wait_ms))
        result = _produce(producer, topic, 0, build_batch([(b"k", b"woken")]))
        assert result["error_code"] == 0
        response = fetcher.receive(FETCH, 11, correlation_id)
        elapsed = time.monotonic() - started
    part = response["responses"][0]["partitions"][0]
    assert part["records"] and b"woken" in bytes(part["records"])
    assert part["high_watermark"] == 1
    # Woken by the append, not by the timeout (the margin absorbs a loaded CI machine).
    assert elapsed < 5.0, f"long poll took {elapsed:.2f}s of max_wait {max_wait_ms} ms"


def test_fetch_session_incremental(broker, topic):
    with WireClient(broker.bootstrap_servers) as client:
        _produce(client, topic, 0, build_batch([(None, b"one")]))
        full = client.request(FETCH, 11, _fetch_body(topic, 0, 0, epoch=0))
        session_id = full["session_id"]
        assert full["error_code"] == 0 and session_id != 0
        assert full["responses"][0]["partitions"][0]["records"]
        # Incremental, offset moved past the data: nothing changed, nothing listed.
        inc = client.request(FETCH, 11, _fetch_body(topic, 0, 1, session_id=session_id, epoch=1))
        assert inc["error_code"] == 0 and inc["session_id"] == session_id
        assert inc["responses"] == []
        # An append changes the high watermark: the partition is back, with the record.
        _produce(client, topic, 0, build_batch([(None, b"two")]))
        empty_request = _fetch_body(topic, 0, 1, session_id=session_id, epoch=2)
        empty_request["topics"] = []
        inc = client.request(FETCH, 11, empty_request)
        part = inc["responses"][0]["partitions"][0]
        assert part["high_watermark"] == 2 and b"two" in bytes(part["records"])
        stale = client.request(FETCH, 11, _fetch_body(topic, 0, 1, session_id=session_id, epoch=2))
        assert stale["error_code"] == 71  # INVALID_FETCH_SESSION_EPOCH
        unknown = client.request(FETCH, 11, _fetch_body(topic, 0, 1, session_id=session_id ^ 0x5A5A, epoch=1))
        assert unknown["error_code"] == 70  # FETCH_SESSION_ID_NOT_FOUND


def test_fetch_by_topic_id(broker, topic):
    with WireClient(broker.bootstrap_servers) as client:
        _produce(client, topic, 0, build_batch([(None, b"by-id")]))
        topic_id = _topic_id(client, topic)
        response = client.request(FETCH, 16, _fetch_body(topic, 0, 0, topic_id=topic_id))
        entry = response["responses"][0]
        assert entry["topic_id"] == topic_id
        assert b"by-id" in bytes(entry["partitions"][0]["records"])
        response = client.request(FETCH, 16, _fetch_body(topic, 0, 0, topic_id=uuid.uuid4()))
        assert response["responses"][0]["partitions"][0]["error_code"] == 100  # UNKNOWN_TOPIC_ID


def test_fetch_errors(broker, topic):
    with WireClient(broker.bootstrap_servers) as client:
        response = client.request(FETCH, 11, _fetch_body(topic, 0, 5))
        assert response["responses"][0]["partitions"][0]["error_code"] == 1  # OFFSET_OUT_OF_RANGE
        response = client.request(FETCH, 11, _fetch_body(topic, 7, 0))
        assert response["responses"][0]["partitions"][0]["error_code"] == 3
        response = client.request(FETCH, 4, _fetch_body("no-such-topic-x", 0, 0))
        assert response["responses"][0]["partitions"][0]["error_code"] == 3


def test_produce_errors(broker, topic):
    good = build_batch([(b"k", b"v")])
    with WireClient(broker.bootstrap_servers) as client:
        assert _produce(client, topic, 3, good)["error_code"] == 3  # UNKNOWN_TOPIC_OR_PARTITION
        corrupt = bytearray(good)
        corrupt[-1] ^= 0xFF  # payload changed, CRC now wrong
        assert _produce(client, topic, 0, bytes(corrupt))["error_code"] == 2  # CORRUPT_MESSAGE
        assert _produce(client, topic, 0, good, acks=2)["error_code"] == 21  # INVALID_REQUIRED_ACKS
        legacy = bytearray(good)
        legacy[16] = 1  # magic 1 is not allowed from v3 on
        assert _produce(client, topic, 0, bytes(legacy))["error_code"] == 87  # INVALID_RECORD
        ok = _produce(client, topic, 0, good)
        assert ok["error_code"] == 0 and ok["base_offset"] == 0 and ok["log_start_offset"] == 0


def test_produce_too_large(broker):
    name = unique_topic("big")
    create_topic(broker.bootstrap_servers, name, 1, {"max.message.bytes": "2000"})
    with WireClient(broker.bootstrap_servers) as client:
        big = build_batch([(None, bytes(5000))])
        assert _produce(client, name, 0, big)["error_code"] == 10  # MESSAGE_TOO_LARGE
        assert _produce(client, name, 0, build_batch([(None, b"small")]))["error_code"] == 0


def test_acks_zero_sends_no_response(broker, topic):
    with WireClient(broker.bootstrap_servers) as client:
        body = {"transactional_id": None, "acks": 0, "timeout_ms": 5000,
                "topic_data": [{"name": topic, "partition_data": [{"index": 0, "records": build_batch([(None, b"z")])}]}]}
        client.send(PRODUCE, 9, body)
        # The next response on the connection belongs to the next request.
        response = client.request(LIST_OFFSETS, 7, {"replica_id": -1, "isolation_level": 0, "topics": [
            {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -1}]}]})
        assert response["topics"][0]["partitions"][0]["offset"] == 1


def test_list_offsets(broker, topic):
    records = [Rec(0, None, b"v%d" % i, (), ts) for i, ts in enumerate([1000, 5000, 3000, 7000])]
    kp_produce(broker.bootstrap_servers, topic, records, linger_ms=0)

    def lookup(timestamp: int, version: int = 7) -> dict:
        with WireClient(broker.bootstrap_servers) as client:
            response = client.request(LIST_OFFSETS, version, {"replica_id": -1, "isolation_level": 0, "topics": [
                {"name": topic, "partitions": [{"partition_index": 0, "current_leader_epoch": -1,
                                                "timestamp": timestamp, "max_num_offsets": 1}]}]})
        return response["topics"][0]["partitions"][0]

    assert lookup(-2)["offset"] == 0
    assert lookup(-1)["offset"] == 4
    assert (lookup(-3)["offset"], lookup(-3)["timestamp"]) == (3, 7000)
    assert (lookup(4000)["offset"], lookup(4000)["timestamp"]) == (1, 5000)  # first ts >= 4000
    assert lookup(6000)["offset"] == 3
    assert lookup(8000)["offset"] == -1
    assert lookup(-1, version=0)["old_style_offsets"] == [4]

    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers, group_id=None)
    try:
        tp = TopicPartition(topic, 0)
        found = consumer.offsets_for_times({tp: 2000})[tp]
        assert (found.offset, found.timestamp) == (1, 5000)
        assert consumer.beginning_offsets([tp])[tp] == 0
        assert consumer.end_offsets([tp])[tp] == 4
    finally:
        consumer.close()


def test_offset_for_leader_epoch_and_describe_log_dirs(broker, topic):
    with WireClient(broker.bootstrap_servers) as client:
        _produce(client, topic, 0, build_batch([(None, b"a"), (None, b"b")]))
        response = client.request(OFFSET_FOR_LEADER_EPOCH, 4, {"replica_id": -1, "topics": [
            {"topic": topic, "partitions": [{"partition": 0, "current_leader_epoch": -1, "leader_epoch": 0}]}]})
        part = response["topics"][0]["partitions"][0]
        assert part["error_code"] == 0 and part["end_offset"] == 2
        response = client.request(DESCRIBE_LOG_DIRS, 4, {"topics": [{"topic": topic, "partitions": [0]}]})
        result = response["results"][0]
        assert result["error_code"] == 0 and result["total_bytes"] > 0
        partitions = result["topics"][0]["partitions"]
        assert result["topics"][0]["name"] == topic and partitions[0]["partition_size"] > 0


def test_old_clients_magic_0_and_1(broker, topic):
    """Produce v2 with magic 0/1 message sets (converted to v2 batches on append); Fetch v0-3
    answers in the old formats (down-converted, as Kafka 3.9)."""
    records = [Rec(0, b"k%d" % i, b"v%d" % i, (), 1_700_000_000_000 + i) for i in range(6)]
    assert kp_produce(broker.bootstrap_servers, topic, records[:3], api_version=(0, 10, 1)) == [0, 1, 2]
    assert kp_produce(broker.bootstrap_servers, topic, records[3:], api_version=(0, 9)) == [3, 4, 5]
    from protocol.legacy import decode_message_set

    with WireClient(broker.bootstrap_servers) as client:
        for version, magic in ((0, 0), (1, 0), (2, 1), (3, 1)):
            response = client.request(FETCH, version, _fetch_body(topic, 0, 0))
            blob = bytes(response["responses"][0]["partitions"][0]["records"])
            assert blob[16] == magic
            messages = decode_message_set(blob)
            assert [(m.offset, m.key, m.value) for m in messages] == [
                (i, b"k%d" % i, b"v%d" % i) for i in range(6)]
            if magic == 1:  # magic 0 producers sent no timestamp
                assert [m.timestamp for m in messages] == [1_700_000_000_000 + i for i in range(3)] + [-1] * 3


def test_acks_all_needs_min_insync_replicas(broker):
    name = unique_topic("minisr")
    create_topic(broker.bootstrap_servers, name, 1, {"min.insync.replicas": "2"})
    batch = build_batch([(None, b"x")])
    with WireClient(broker.bootstrap_servers) as client:
        assert _produce(client, name, 0, batch, acks=-1)["error_code"] == 19  # NOT_ENOUGH_REPLICAS
        assert _produce(client, name, 0, batch, acks=1)["error_code"] == 0    # acks=1 does not care


def test_fetch_size_limits_kip_74(broker):
    name = unique_topic("kip74")
    create_topic(broker.bootstrap_servers, name, 2)
    big = build_batch([(None, bytes(5000))])
    with WireClient(broker.bootstrap_servers) as client:
        for partition in (0, 1):
            assert _produce(client, name, partition, big)["error_code"] == 0
        body = _fetch_body(name, 0, 0)
        body["max_bytes"] = 1000
        second = dict(body["topics"][0]["partitions"][0], partition=1)
        body["topics"][0]["partitions"].append(second)
        for part in body["topics"][0]["partitions"]:
            part["partition_max_bytes"] = 1000
        response = client.request(FETCH, 11, body)
    first, other = response["responses"][0]["partitions"]
    # The first non-empty partition's first batch comes whole, beyond both limits...
    assert len(first["records"]) == len(big) > 1000
    # ...and then the response is full: the next partition gets no records, just its offsets.
    assert not other["records"] and other["high_watermark"] == 1


def test_acks_zero_failure_closes_connection(broker, topic):
    """With acks=0 there is no response to carry an error: Kafka closes the connection."""
    with WireClient(broker.bootstrap_servers) as client:
        body = {"transactional_id": None, "acks": 0, "timeout_ms": 5000,
                "topic_data": [{"name": topic, "partition_data": [{"index": 9, "records": build_batch([(None, b"z")])}]}]}
        client.send(PRODUCE, 9, body)
        assert client.is_closed_by_peer()

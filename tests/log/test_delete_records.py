"""DeleteRecords through confluent-kafka and kafka-python, and what consumers see afterwards:
ListOffsets earliest = the new log start offset, OFFSET_OUT_OF_RANGE below it, beyond the
high watermark, and POLICY_VIOLATION on a compact-only topic."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from kbroker.testing import KafkaBroker
from tests.integration.wire import WireClient

TIMEOUT_S = 15
FETCH, LIST_OFFSETS = 1, 2


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker({"auto.create.topics.enable": "false"}) as b:
        yield b


@pytest.fixture
def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def topic_with_records(broker, admin, count: int, config: dict | None = None) -> str:
    name = f"dr-{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(name, 1, 1, config=config or {})]).values():
        future.result(TIMEOUT_S)
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "linger.ms": 0, "acks": "all"})
    errors = []
    for i in range(count):
        producer.produce(name, b"value-%d-" % i + b"x" * 100, key=b"k%d" % i,
                         on_delivery=lambda err, msg: errors.append(err))
        producer.poll(0)
    assert producer.flush(TIMEOUT_S) == 0
    assert errors == [None] * count
    return name


def delete_records(admin, name: str, offset: int) -> int:
    futures = admin.delete_records([TopicPartition(name, 0, offset)], request_timeout=TIMEOUT_S)
    return next(iter(futures.values())).result(TIMEOUT_S).low_watermark


def earliest(broker, name: str) -> int:
    body = {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": name, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -2}]}]}
    with WireClient(broker.bootstrap_servers) as client:
        result = client.request(LIST_OFFSETS, 5, body)["topics"][0]["partitions"][0]
    assert result["error_code"] == 0
    return result["offset"]


def fetch_error(broker, name: str, offset: int) -> tuple[int, int]:
    body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
            "topics": [{"topic": name, "partitions": [
                {"partition": 0, "fetch_offset": offset, "log_start_offset": -1, "partition_max_bytes": 1 << 20}]}]}
    with WireClient(broker.bootstrap_servers) as client:
        result = client.request(FETCH, 5, body)["responses"][0]["partitions"][0]
    return result["error_code"], result["log_start_offset"]


def test_delete_records_moves_the_log_start(broker, admin):
    name = topic_with_records(broker, admin, 100)
    assert delete_records(admin, name, 37) == 37
    assert earliest(broker, name) == 37
    assert fetch_error(broker, name, 36) == (1, 37)  # OFFSET_OUT_OF_RANGE below the log start
    assert fetch_error(broker, name, 37) == (0, 37)
    # Moving backwards changes nothing; -1 means the high watermark.
    assert delete_records(admin, name, 10) == 37
    assert delete_records(admin, name, -1) == 100
    assert earliest(broker, name) == 100


def test_consumer_resets_to_the_new_log_start(broker, admin):
    from confluent_kafka import Consumer

    name = topic_with_records(broker, admin, 50)
    delete_records(admin, name, 20)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"g-{name}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(name, 0, 5)])  # below the log start: out of range, reset
        import time

        deadline = time.monotonic() + TIMEOUT_S
        message = None
        while time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None
        assert message.offset() == 20 and message.value().startswith(b"value-20-")
    finally:
        consumer.close()


def test_beyond_the_high_watermark_is_out_of_range(broker, admin):
    name = topic_with_records(broker, admin, 10)
    with pytest.raises(KafkaException) as raised:
        delete_records(admin, name, 11)
    assert raised.value.args[0].code() == 1  # OFFSET_OUT_OF_RANGE
    assert earliest(broker, name) == 0


def test_compact_only_topic_refuses(broker, admin):
    name = topic_with_records(broker, admin, 10, {"cleanup.policy": "compact"})
    with pytest.raises(KafkaException) as raised:
        delete_records(admin, name, 5)
    assert raised.value.args[0].code() == 44  # POLICY_VIOLATION


def test_kafka_python_delete_records(broker, admin):
    from kafka import TopicPartition as KPTopicPartition
    from kafka.admin import KafkaAdminClient

    name = topic_with_records(broker, admin, 30)
    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10_000)
    try:
        result = kp.delete_records({KPTopicPartition(name, 0): 12})
    finally:
        kp.close()
    assert "12" in str(result)
    assert earliest(broker, name) == 12

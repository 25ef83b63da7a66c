"""Topics through admin clients, auto-create on/off, restart and kill -9 durability."""

from __future__ import annotations

import threading
import time

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.clients import (Rec, ck_consume, create_topic, kp_consume, kp_produce,
                                       sample_records, unique_topic)


def _wait_for(predicate, timeout_s: float = 15.0, what: str = "condition"):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _partitions(bootstrap: str, topic: str) -> int | None:
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    entry = metadata.topics.get(topic)
    if entry is None or entry.error is not None:
        return None
    return len(entry.partitions)


def test_create_grow_delete_with_confluent_admin(broker):
    from confluent_kafka.admin import AdminClient, NewPartitions, NewTopic

    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    topic = unique_topic("adm")
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(timeout=15)
    assert _partitions(broker.bootstrap_servers, topic) == 2
    admin.create_partitions([NewPartitions(topic, 5)])[topic].result(timeout=15)
    assert _wait_for(lambda: _partitions(broker.bootstrap_servers, topic) == 5, what="5 partitions")
    records = [Rec(p, None, b"p%d" % p, (), 1_700_000_000_000) for p in range(5)]
    kp_produce(broker.bootstrap_servers, topic, records)
    assert len(kp_consume(broker.bootstrap_servers, topic, 5, 5)) == 5
    admin.delete_topics([topic])[topic].result(timeout=15)
    assert _wait_for(lambda: _partitions(broker.bootstrap_servers, topic) is None, what="deletion")
    # The partition directories go too (Kafka renames them *-delete first; either way the
    # live `<topic>-<n>` directories disappear).
    assert _wait_for(lambda: not (broker.log_dir / f"{topic}-0").exists(), what="log dir removal")


def test_create_and_delete_with_kafka_python_admin(broker):
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        topic = unique_topic("kadm")
        admin.create_topics([NewTopic(topic, 3, 1)])
        assert topic in admin.list_topics()
        admin.delete_topics([topic])
        assert _wait_for(lambda: topic not in admin.list_topics(), what="deletion")
    finally:
        admin.close()


def test_auto_create_on_produce(broker):
    topic = unique_topic("auto")
    kp_produce(broker.bootstrap_servers, topic, [Rec(0, b"k", b"v", (), 1_700_000_000_000)])
    assert _partitions(broker.bootstrap_servers, topic) == 1  # num.partitions default
    assert [r.value for r in kp_consume(broker.bootstrap_servers, topic, 1, 1)] == [b"v"]


def test_auto_create_off():
    from confluent_kafka import Producer

    with KafkaBroker({"auto.create.topics.enable": False}) as broker:
        topic = unique_topic("noauto")
        errors = []
        producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "message.timeout.ms": 3000})
        producer.produce(topic, b"v", on_delivery=lambda err, msg: errors.append(err))
        producer.flush(10)
        assert errors and errors[0] is not None  # delivery failed: unknown topic
        assert _partitions(broker.bootstrap_servers, topic) is None


def test_restart_keeps_topics_configs_and_records():
    from confluent_kafka.admin import AdminClient, ConfigResource

    with KafkaBroker() as broker:
        topic = unique_topic("restart")
        create_topic(broker.bootstrap_servers, topic, 3, {"retention.ms": "123456789"})
        records = sample_records(3, 15)
        kp_produce(broker.bootstrap_servers, topic, records)
        broker.restart()
        consumed = ck_consume(broker.bootstrap_servers, topic, 3, len(records))
        assert sorted(map(repr, (r.content() for r in consumed))) == sorted(map(repr, (r.content() for r in records)))
        resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        configs = admin.describe_configs([resource])[resource].result(timeout=15)
        assert configs["retention.ms"].value == "123456789"
        # Appends continue after the last offset.
        more = [Rec(0, None, b"after-restart", (), 1_700_000_000_000)]
        offsets = kp_produce(broker.bootstrap_servers, topic, more)
        assert offsets == [sum(1 for r in records if r.partition == 0)]


def test_kill_9_keeps_every_acknowledged_record():
    """kill -9 during a stream of acks=1 produces: every acked record is there after restart,
    offsets without gaps or duplicates."""
    from confluent_kafka import Producer

    with KafkaBroker() as broker:
        topic = unique_topic("crash")
        create_topic(broker.bootstrap_servers, topic, 2)
        acked: dict[bytes, tuple[int, int]] = {}
        lock = threading.Lock()
        stop = threading.Event()

        def produce_stream() -> None:
            producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "1",
                                 "linger.ms": 1, "message.timeout.ms": 5000, "retries": 0})

            def delivered(err, msg):
                if err is None:
                    with lock:
                        acked[msg.value()] = (msg.partition(), msg.offset())

            i = 0
            while not stop.is_set():
                try:
                    producer.produce(topic, b"m%08d" % i, partition=i % 2, on_delivery=delivered)
                    i += 1
                except BufferError:
                    pass
                producer.poll(0.001)
            producer.flush(6)

        thread = threading.Thread(target=produce_stream, daemon=True)
        thread.start()
        _wait_for(lambda: len(acked) >= 500, timeout_s=30, what="500 acknowledged records")
        broker.kill()
        stop.set()
        thread.join(timeout=20)
        with lock:
            acknowledged = dict(acked)
        broker.start()
        consumed = kp_consume(broker.bootstrap_servers, topic, 2, len(acknowledged), timeout_s=30)
        # Read everything there is (records unacked before the kill may be there too).
        seen = {r.value: (r.partition, r.offset) for r in consumed}
        missing = [v for v in acknowledged if v not in seen]
        assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:3]}"
        for value, position in acknowledged.items():
            assert seen[value] == position
        for partition in (0, 1):
            offsets = [r.offset for r in consumed if r.partition == partition]
            assert offsets == list(range(len(offsets)))


def test_recreated_topic_starts_empty(broker):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient

    topic = unique_topic("again")
    create_topic(broker.bootstrap_servers, topic, 1)
    kp_produce(broker.bootstrap_servers, topic, [Rec(0, None, b"old", (), 1_700_000_000_000)] * 3)
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
    try:
        admin.delete_topics([topic])
        _wait_for(lambda: topic not in admin.list_topics(), what="deletion")
    finally:
        admin.close()
    create_topic(broker.bootstrap_servers, topic, 1)
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    try:
        tp = TopicPartition(topic, 0)
        assert consumer.end_offsets([tp])[tp] == 0
    finally:
        consumer.close()
    assert kp_produce(broker.bootstrap_servers, topic, [Rec(0, None, b"new", (), 1_700_000_000_000)]) == [0]

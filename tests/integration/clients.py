"""Produce and consume with the stock clients (kafka-python, confluent-kafka) for the tests.

Consumers use assign() + seek, never a group: the data path only. Every wait polls with a
deadline.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass


@dataclass(frozen=True)
class Rec:
    """One record as produced or consumed."""

    partition: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp_ms: int = -1
    offset: int = -1

    def content(self) -> tuple:
        """Everything but the offset (what must survive the round trip)."""
        return (self.partition, self.key, self.value, self.headers, self.timestamp_ms)


def unique_topic(prefix: str = "t") -> str:
    """A topic name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def sample_records(partitions: int, per_partition: int, seed: int = 7) -> list[Rec]:
    """Deterministic records with binary keys/values, headers and explicit timestamps."""
    import random

    rng = random.Random(seed)
    base_ms = 1_700_000_000_000
    records = []
    for i in range(partitions * per_partition):
        key = None if i % 5 == 0 else rng.randbytes(rng.randint(1, 20))
        value = rng.randbytes(rng.randint(1, 300))
        headers = tuple((f"h{j}", rng.randbytes(rng.randint(0, 10))) for j in range(i % 3))
        records.append(Rec(i % partitions, key, value, headers, base_ms + i * 1000))
    return records


# --------------------------------------------------------------------- admin

def create_topic(bootstrap: str, name: str, partitions: int = 1, configs: dict | None = None) -> None:
    """Create a topic through kafka-python's admin client and wait until it is usable."""
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        admin.create_topics([NewTopic(name, partitions, 1, topic_configs=configs or {})])
    finally:
        admin.close()


# --------------------------------------------------------------------- kafka-python

def kp_produce(bootstrap: str, topic: str, records: list[Rec], **config) -> list[int]:
    """Produce `records` in order with kafka-python; returns the offsets (acks != 0)."""
    from kafka import KafkaProducer

    # Idempotence (InitProducerId) belongs to the transactions issue; off until it lands.
    config.setdefault("enable_idempotence", False)
    producer = KafkaProducer(bootstrap_servers=bootstrap, **config)
    try:
        futures = [producer.send(topic, key=r.key, value=r.value, partition=r.partition,
                                 headers=list(r.headers), timestamp_ms=r.timestamp_ms)
                   for r in records]
        producer.flush(timeout=30)
        return [f.get(timeout=30).offset for f in futures]
    finally:
        producer.close(timeout=10)


def kp_consume(bootstrap: str, topic: str, partitions: int, count: int, timeout_s: float = 30,
               **config) -> list[Rec]:
    """Read `count` records from the start of every partition with kafka-python."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             **config)
    try:
        assignment = [TopicPartition(topic, p) for p in range(partitions)]
        consumer.assign(assignment)
        consumer.seek_to_beginning(*assignment)
        got: list[Rec] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            for tp, messages in consumer.poll(timeout_ms=500).items():
                for m in messages:
                    got.append(Rec(tp.partition, m.key, m.value,
                                   tuple((k, v) for k, v in (m.headers or [])), m.timestamp, m.offset))
        return got
    finally:
        consumer.close()


# --------------------------------------------------------------------- confluent-kafka

def ck_produce(bootstrap: str, topic: str, records: list[Rec], **config) -> list[int]:
    """Produce with confluent-kafka (librdkafka); returns the offsets in send order."""
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 5, **config})
    offsets: dict[int, int] = {}
    errors: list = []

    def delivered(index):
        def callback(err, msg):
            if err is not None:
                errors.append(err)
            else:
                offsets[index] = msg.offset()
        return callback

    for i, r in enumerate(records):
        producer.produce(topic, value=r.value, key=r.key, partition=r.partition,
                         headers=list(r.headers) or None, timestamp=r.timestamp_ms,
                         on_delivery=delivered(i))
        producer.poll(0)
    remaining = producer.flush(30)
    assert remaining == 0 and not errors, f"undelivered={remaining} errors={errors}"
    return [offsets[i] for i in range(len(records))]


def ck_consume(bootstrap: str, topic: str, partitions: int, count: int, timeout_s: float = 30,
               **config) -> list[Rec]:
    """Read `count` records from the start of every partition with confluent-kafka."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": unique_topic("g"),
                         "enable.auto.commit": False, **config})
    try:
        consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
        got: list[Rec] = []
        deadline = time.monotonic() + timeout_s
        while len(got) < count and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            assert m.error() is None, m.error()
            got.append(Rec(m.partition(), m.key(), m.value(),
                           tuple((k, v) for k, v in (m.headers() or [])), m.timestamp()[1], m.offset()))
        return got
    finally:
        consumer.close()

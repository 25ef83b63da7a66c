"""Retention, compaction, compression.type and log.flush.on.ack in a running broker, driven by
stock clients and the wire protocol, with configs changed live through the admin API."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic, ResourceType

from protocol.record_codec import Record, build_batch, decode_batch
from protocol.records import Compression, iter_batches

from kbroker.testing import KafkaBroker
from tests.integration.wire import WireClient

TIMEOUT_S = 20
PRODUCE, FETCH, LIST_OFFSETS = 0, 1, 2


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker({"auto.create.topics.enable": "false", "log.retention.check.interval.ms": "200",
                      "log.cleaner.backoff.ms": "200", "log.segment.delete.delay.ms": "0"}) as b:
        yield b


@pytest.fixture
def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


def create(admin, config: dict) -> str:
    name = f"rb-{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(name, 1, 1, config=config)]).values():
        future.result(TIMEOUT_S)
    return name


def produce(broker, name: str, pairs, *, timestamp: int | None = None, codec: int = Compression.NONE) -> int:
    """One batch per call through the wire (acks=-1); returns the base offset."""
    records = [Record(i, 0, k, v) for i, (k, v) in enumerate(pairs)]
    batch = build_batch(records, base_timestamp=timestamp or int(time.time() * 1000), compression=codec)
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 5000,
            "topic_data": [{"name": name, "partition_data": [{"index": 0, "records": batch}]}]}
    with WireClient(broker.bootstrap_servers) as client:
        result = client.request(PRODUCE, 7, body)["responses"][0]["partition_responses"][0]
    if result["error_code"]:
        raise AssertionError(f"produce failed: {result}")
    return result["base_offset"]


def fetch_batches(broker, name: str, offset: int = 0):
    """Every batch header and decoded batch from `offset`, via Fetch v4."""
    out = []
    with WireClient(broker.bootstrap_servers) as client:
        while True:
            body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 0, "max_bytes": 1 << 20, "isolation_level": 0,
                    "topics": [{"topic": name, "partitions": [
                        {"partition": 0, "fetch_offset": offset, "partition_max_bytes": 1 << 20}]}]}
            data = client.request(FETCH, 4, body)["responses"][0]["partitions"][0]
            assert data["error_code"] == 0, data
            records = bytes(data["records"] or b"")
            if not records:
                return out
            for pos, header in iter_batches(records):
                out.append((header, decode_batch(records, pos)))
                offset = header.next_offset


def earliest(broker, name: str) -> int:
    body = {"replica_id": -1, "isolation_level": 0, "topics": [
        {"name": name, "partitions": [{"partition_index": 0, "current_leader_epoch": -1, "timestamp": -2}]}]}
    with WireClient(broker.bootstrap_servers) as client:
        return client.request(LIST_OFFSETS, 5, body)["topics"][0]["partitions"][0]["offset"]


def alter(admin, name: str, **configs: str) -> None:
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry(k.replace("_", "."), v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(TIMEOUT_S)


def wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + TIMEOUT_S
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_time_retention_applied_live(broker, admin):
    name = create(admin, {"segment.bytes": "1024"})
    old = int(time.time() * 1000) - 3_600_000
    for i in range(30):
        produce(broker, name, [(b"k%d" % i, b"x" * 100)], timestamp=old)
    assert earliest(broker, name) == 0  # default retention (7 days) keeps hour-old records
    alter(admin, name, retention_ms="60000")
    wait_for(lambda: earliest(broker, name) > 0, "retention.ms to delete old segments")
    start = earliest(broker, name)
    assert start < 30  # the active segment stays
    batches = fetch_batches(broker, name, start)
    assert batches and batches[-1][0].last_offset == 29


def test_size_retention(broker, admin):
    name = create(admin, {"segment.bytes": "1024", "retention.bytes": "2048"})
    for i in range(60):
        produce(broker, name, [(b"k%d" % i, b"y" * 100)])
    wait_for(lambda: earliest(broker, name) > 0, "retention.bytes to delete old segments")
    assert 60 - earliest(broker, name) < 40


def test_compaction_keeps_the_latest_value_per_key(broker, admin):
    name = create(admin, {"cleanup.policy": "compact", "segment.bytes": "1024",
                          "min.cleanable.dirty.ratio": "0.01", "delete.retention.ms": "0"})
    latest = {}
    for i in range(80):
        key = b"key-%d" % (i % 4)
        latest[key] = (i, b"value-%d" % i)
        produce(broker, name, [(key, latest[key][1])], codec=Compression.GZIP if i % 2 else Compression.NONE)
    produce(broker, name, [(b"key-0", None)])  # a tombstone
    produce(broker, name, [(b"filler", b"z" * 900)])  # roll so everything above is cleanable

    def records():
        return [(h.base_offset + r.offset_delta, r.key, r.value, h.compression)
                for h, batch in fetch_batches(broker, name) for r in batch.records]

    wait_for(lambda: len(records()) < 20, "the cleaner to compact the topic")
    survivors = records()
    keys = [k for _, k, _, _ in survivors]
    assert len(keys) == len(set(keys)), "a key survived twice"
    for offset, key, value, codec in survivors:
        if key in latest and key != b"key-0":
            assert (offset, value) == latest[key]
            assert codec == (Compression.GZIP if offset % 2 else Compression.NONE)
    # Consumers read the compacted topic from the start, following the offset gaps.
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"g-{name}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(name, 0, 0)])
        seen = []
        deadline = time.monotonic() + TIMEOUT_S
        while len(seen) < len(survivors) and time.monotonic() < deadline:
            message = consumer.poll(0.5)
            if message is not None and message.error() is None:
                seen.append(message.offset())
        assert seen == [o for o, *_ in survivors]
    finally:
        consumer.close()


def test_compacted_topic_refuses_keyless_records(broker, admin):
    name = create(admin, {"cleanup.policy": "compact"})
    with pytest.raises(AssertionError, match="'error_code': 87"):
        produce(broker, name, [(None, b"no key")])


@pytest.mark.parametrize("topic_codec,expected", [("gzip", Compression.GZIP), ("zstd", Compression.ZSTD),
                                                  ("uncompressed", Compression.NONE),
                                                  ("producer", Compression.LZ4)])
def test_compression_type_recompresses(broker, admin, topic_codec, expected):
    name = create(admin, {"compression.type": topic_codec})
    produce(broker, name, [(b"a", b"1" * 200), (b"b", b"2" * 200)], codec=Compression.LZ4)
    (header, batch), = fetch_batches(broker, name)
    assert header.compression == expected
    assert [(r.key, r.value) for r in batch.records] == [(b"a", b"1" * 200), (b"b", b"2" * 200)]


def test_compression_type_with_confluent_producer(broker, admin):
    name = create(admin, {"compression.type": "snappy"})
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "compression.type": "gzip"})
    producer.produce(name, b"v" * 500, key=b"k")
    assert producer.flush(TIMEOUT_S) == 0
    (header, batch), = fetch_batches(broker, name)
    assert header.compression == Compression.SNAPPY and batch.records[0].value == b"v" * 500


async def test_flush_on_ack_broker_option(tmp_path):
    """log.flush.on.ack=true reaches every partition log, also after a live config change:
    each acknowledged append has been fsynced (the recovery point is at the log end)."""
    import trio

    from kbroker.broker import Broker
    from kbroker.config import build_config

    config = build_config({"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(tmp_path),
                           "log.flush.on.ack": "true"})
    broker = Broker(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(broker.run)
        try:
            topic = await broker.controller.create_topic("durable", 1, 1, None, {"retention.ms": "1000000"})
            log = broker.partition_log(topic, 0)
            assert log.config.flush_on_ack
            log.append(build_batch([(b"k", b"v")]), leader_epoch=0, now_ms=int(time.time() * 1000))
            assert log.recovery_point == log.log_end_offset == 1
            await broker.controller.alter_configs(2, "durable", {"retention.ms": "2000000"})
            assert log.config.retention_ms == 2_000_000 and log.config.flush_on_ack
        finally:
            broker.request_stop()

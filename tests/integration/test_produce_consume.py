"""Records go in and come out byte for byte, with kafka-python and confluent-kafka."""

from __future__ import annotations

import pytest

from tests.integration.clients import (Rec, ck_consume, ck_produce, create_topic, kp_consume,
                                       kp_produce, sample_records, unique_topic)

PARTITIONS = 3
PRODUCERS = {"kafka-python": kp_produce, "confluent": ck_produce}
CONSUMERS = {"kafka-python": kp_consume, "confluent": ck_consume}
CODECS = ["gzip", "snappy", "lz4", "zstd"]


def _by_partition(records: list[Rec]) -> dict[int, list[tuple]]:
    result: dict[int, list[tuple]] = {}
    for r in records:
        result.setdefault(r.partition, []).append(r.content())
    return result


def _check_offsets(consumed: list[Rec]) -> None:
    """Offsets in each partition are 0, 1, 2, ... in delivery order."""
    for partition, records in _by_partition(consumed).items():
        offsets = [r.offset for r in consumed if r.partition == partition]
        assert offsets == list(range(len(offsets))), f"partition {partition}: {offsets}"


@pytest.mark.parametrize("producer", PRODUCERS)
@pytest.mark.parametrize("consumer", CONSUMERS)
def test_round_trip_byte_for_byte(broker, producer, consumer):
    topic = unique_topic()
    create_topic(broker.bootstrap_servers, topic, PARTITIONS)
    records = sample_records(PARTITIONS, 20)
    offsets = PRODUCERS[producer](broker.bootstrap_servers, topic, records)
    consumed = CONSUMERS[consumer](broker.bootstrap_servers, topic, PARTITIONS, len(records))
    assert len(consumed) == len(records)
    assert _by_partition(consumed) == _by_partition(records)  # content and order per partition
    _check_offsets(consumed)
    # The producer was told the offsets the consumer sees.
    assert sorted(zip((r.partition for r in records), offsets)) == sorted((r.partition, r.offset) for r in consumed)


@pytest.mark.parametrize("codec", CODECS)
def test_compression_codecs(broker, codec):
    topic = unique_topic(codec)
    create_topic(broker.bootstrap_servers, topic, PARTITIONS)
    records = sample_records(PARTITIONS, 30, seed=CODECS.index(codec))
    half = len(records) // 2
    kp_produce(broker.bootstrap_servers, topic, records[:half], compression_type=codec, linger_ms=20)
    ck_produce(broker.bootstrap_servers, topic, records[half:], **{"compression.type": codec})
    for consume in (kp_consume, ck_consume):
        consumed = consume(broker.bootstrap_servers, topic, PARTITIONS, len(records))
        assert _by_partition(consumed) == _by_partition(records)
        _check_offsets(consumed)


@pytest.mark.parametrize("acks", [0, 1, "all"])
def test_acks(broker, acks):
    topic = unique_topic(f"acks{acks}")
    create_topic(broker.bootstrap_servers, topic, PARTITIONS)
    records = sample_records(PARTITIONS, 10)
    offsets = kp_produce(broker.bootstrap_servers, topic, records, acks=acks)
    if acks != 0:  # acks=0: the producer is told nothing (offset -1)
        assert sorted(offsets) == sorted([i for i in range(10)] * PARTITIONS)
    consumed = kp_consume(broker.bootstrap_servers, topic, PARTITIONS, len(records))
    assert _by_partition(consumed) == _by_partition(records)


@pytest.mark.parametrize("acks", ["0", "1", "-1"])
def test_acks_confluent(broker, acks):
    topic = unique_topic(f"cacks{acks}")
    create_topic(broker.bootstrap_servers, topic, PARTITIONS)
    records = sample_records(PARTITIONS, 10, seed=3)
    ck_produce(broker.bootstrap_servers, topic, records, acks=acks)
    consumed = ck_consume(broker.bootstrap_servers, topic, PARTITIONS, len(records))
    assert _by_partition(consumed) == _by_partition(records)


def test_order_within_partition_many_batches(broker):
    topic = unique_topic("order")
    create_topic(broker.bootstrap_servers, topic, PARTITIONS)
    records = [Rec(i % PARTITIONS, None, b"%06d" % i, (), 1_700_000_000_000 + i) for i in range(600)]
    ck_produce(broker.bootstrap_servers, topic, records, **{"linger.ms": 0, "batch.num.messages": 7})
    consumed = kp_consume(broker.bootstrap_servers, topic, PARTITIONS, len(records), max_partition_fetch_bytes=2048)
    for partition in range(PARTITIONS):
        values = [r.value for r in consumed if r.partition == partition]
        assert values == [r.value for r in records if r.partition == partition]
    _check_offsets(consumed)

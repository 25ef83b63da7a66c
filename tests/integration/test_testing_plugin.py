"""kbroker.testing: the context manager and the pytest plugin's fixtures."""

from __future__ import annotations

from kbroker.testing import KafkaBroker
from tests.integration.clients import Rec, kp_consume, kp_produce, unique_topic


def test_kafka_broker_fixture(kafka_broker):
    topic = unique_topic("fixture")
    kp_produce(kafka_broker.bootstrap_servers, topic, [Rec(0, b"k", b"v", (), 1_700_000_000_000)])
    assert [r.value for r in kp_consume(kafka_broker.bootstrap_servers, topic, 1, 1)] == [b"v"]


def test_factory_applies_overrides(kafka_broker_factory):
    from kafka import KafkaConsumer

    broker = kafka_broker_factory({"num.partitions": 4})
    topic = unique_topic("factory")
    kp_produce(broker.bootstrap_servers, topic, [Rec(0, None, b"v", (), 1_700_000_000_000)])
    consumer = KafkaConsumer(bootstrap_servers=broker.bootstrap_servers)
    try:
        assert consumer.partitions_for_topic(topic) == {0, 1, 2, 3}
    finally:
        consumer.close()


def test_context_manager_cleans_up():
    with KafkaBroker() as broker:
        data_dir = broker.log_dir
        process = broker.process
        assert data_dir.exists() and process.poll() is None
        assert broker.cluster_id
    assert process.poll() is not None
    assert not data_dir.exists()


def test_restart_keeps_port_and_cluster_id():
    with KafkaBroker() as broker:
        port, cluster_id = broker.port, broker.cluster_id
        broker.restart(kill=True)
        assert (broker.port, broker.cluster_id) == (port, cluster_id)

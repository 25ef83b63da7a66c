"""Admin operations with stock clients against a real kbroker process: kafka-python's
KafkaAdminClient and confluent-kafka's AdminClient (librdkafka)."""

from __future__ import annotations

import uuid

import pytest
from confluent_kafka import TopicCollection
from confluent_kafka.admin import AdminClient, ConfigResource, NewPartitions, NewTopic, ResourceType
from kafka.admin import ConfigResource as KPConfigResource
from kafka.admin import ConfigResourceType, KafkaAdminClient
from kafka.admin import NewPartitions as KPNewPartitions
from kafka.admin import NewTopic as KPNewTopic
from kafka.errors import InvalidPartitionsError, TopicAlreadyExistsError

from kbroker.testing import KafkaBroker

TIMEOUT_S = 15


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker({"num.partitions": "2"}) as b:
        yield b


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def test_kafka_python_admin(broker):
    admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10_000)
    try:
        a, b = unique("kp-a"), unique("kp-b")
        admin.create_topics([KPNewTopic(a, 3, 1), KPNewTopic(b, 1, 1, topic_configs={"retention.ms": "12345"})])
        assert {a, b} <= set(admin.list_topics())
        with pytest.raises(TopicAlreadyExistsError):
            admin.create_topics([KPNewTopic(a, 1, 1)])
        dry = unique("kp-dry")
        admin.create_topics([KPNewTopic(dry, 1, 1)], validate_only=True)
        assert dry not in admin.list_topics()

        admin.create_partitions({a: KPNewPartitions(5)})
        assert len(admin.describe_topics([a])[0]["partitions"]) == 5
        with pytest.raises(InvalidPartitionsError):
            admin.create_partitions({a: KPNewPartitions(2)})

        configs = admin.describe_configs([KPConfigResource(ConfigResourceType.TOPIC, b)])
        assert "12345" in str(configs)

        cluster = admin.describe_cluster()
        assert cluster["cluster_id"] == broker.cluster_id and cluster["controller_id"] == 1
        assert [(x["host"], x["port"]) for x in cluster["brokers"]] == [("127.0.0.1", broker.port)]

        admin.delete_topics([b])
        assert b not in admin.list_topics()
    finally:
        admin.close()


def test_confluent_admin(broker):
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    a, b = unique("ck-a"), unique("ck-b")
    for future in admin.create_topics([NewTopic(a, 3, 1, config={"cleanup.policy": "compact"}),
                                       NewTopic(b, -1, -1)]).values():
        future.result(TIMEOUT_S)
    for future in admin.create_topics([NewTopic(unique("ck-dry"), 1, 1)], validate_only=True).values():
        future.result(TIMEOUT_S)
    errors = {}
    for name, future in admin.create_topics([NewTopic(a, 1, 1), NewTopic("bad name", 1, 1),
                                             NewTopic(unique("ck-rf"), 1, 3)]).items():
        try:
            future.result(TIMEOUT_S)
        except Exception as exc:  # confluent_kafka.KafkaException carrying the broker's error
            errors[name] = exc.args[0].code()
    assert sorted(errors.values()) == [17, 36, 38]  # INVALID_TOPIC, TOPIC_ALREADY_EXISTS, INVALID_REPLICATION_FACTOR

    metadata = admin.list_topics(timeout=TIMEOUT_S)
    assert len(metadata.topics[a].partitions) == 3
    assert len(metadata.topics[b].partitions) == 2  # num.partitions of the broker
    assert metadata.cluster_id == broker.cluster_id

    for future in admin.create_partitions([NewPartitions(b, 4)]).values():
        future.result(TIMEOUT_S)
    description = admin.describe_topics(TopicCollection([b]))[b].result(TIMEOUT_S)
    assert len(description.partitions) == 4

    topic_configs = admin.describe_configs([ConfigResource(ResourceType.TOPIC, a)])
    result = next(iter(topic_configs.values())).result(TIMEOUT_S)
    assert result["cleanup.policy"].value == "compact" and result["cleanup.policy"].source == 1
    assert result["segment.bytes"].source == 5
    broker_configs = admin.describe_configs([ConfigResource(ResourceType.BROKER, "1")])
    result = next(iter(broker_configs.values())).result(TIMEOUT_S)
    assert result["num.partitions"].value == "2" and result["num.partitions"].source == 4  # STATIC_BROKER_CONFIG

    cluster = admin.describe_cluster().result(TIMEOUT_S)
    assert cluster.cluster_id == broker.cluster_id and [n.port for n in cluster.nodes] == [broker.port]

    for future in admin.delete_topics([a]).values():
        future.result(TIMEOUT_S)
    assert a not in admin.list_topics(timeout=TIMEOUT_S).topics


def test_topics_and_configs_survive_restart(tmp_path):
    with KafkaBroker(data_dir=tmp_path / "data") as broker:
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10_000)
        admin.create_topics([KPNewTopic("kept", 4, 1, topic_configs={"retention.ms": "777"}),
                             KPNewTopic("dropped", 1, 1)])
        admin.delete_topics(["dropped"])
        partitions = admin.describe_topics(["kept"])[0]["partitions"]
        cluster_id = broker.cluster_id
        admin.close()
        broker.restart()
        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10_000)
        try:
            assert set(admin.list_topics()) == {"kept"}
            after = admin.describe_topics(["kept"])[0]["partitions"]
            assert len(after) == len(partitions) == 4
            assert "777" in str(admin.describe_configs([KPConfigResource(ConfigResourceType.TOPIC, "kept")]))
            assert admin.describe_cluster()["cluster_id"] == cluster_id
        finally:
            admin.close()


def test_alter_configs_with_both_clients(broker):
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    name = unique("cfg")
    admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
    for future in admin.create_topics([NewTopic(name, 1, 1)]).values():
        future.result(TIMEOUT_S)
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=[
        ConfigEntry("retention.ms", "4242", incremental_operation=AlterConfigOpType.SET),
        ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND)])
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(TIMEOUT_S)
    described = next(iter(admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values()))
    result = described.result(TIMEOUT_S)
    assert result["retention.ms"].value == "4242" and result["cleanup.policy"].value == "delete,compact"

    kp = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10_000)
    try:
        kp.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, name, configs={"segment.bytes": "2000000"})],
                         incremental=False)  # the legacy API: replaces every override
    finally:
        kp.close()
    result = next(iter(admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)]).values())).result(TIMEOUT_S)
    assert result["segment.bytes"].value == "2000000" and result["segment.bytes"].source == 1
    # kafka-python re-sends the other overrides, since AlterConfigs replaces the whole set
    assert result["retention.ms"].value == "4242"

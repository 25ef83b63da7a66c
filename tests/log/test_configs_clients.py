"""Topic and broker configs round-tripped through kafka-python's and confluent-kafka's admin
clients: DescribeConfigs with sources and synonyms, AlterConfigs, IncrementalAlterConfigs
(SET, DELETE, APPEND, SUBTRACT), INVALID_CONFIG for bad names and values, and changes
applied live to the partition logs (seen through produce and fetch)."""

from __future__ import annotations

import time
import uuid

import pytest
from confluent_kafka import KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry, ConfigResource, NewTopic,
                                   ResourceType)
from kafka.admin import AlterConfigOp, KafkaAdminClient
from kafka.admin import ConfigResource as KPConfigResource
from kafka.admin import ConfigResourceType

from kbroker.testing import KafkaBroker

TIMEOUT_S = 15
DEFAULT_CONFIG, DYNAMIC_TOPIC_CONFIG, DYNAMIC_BROKER_CONFIG, STATIC_BROKER_CONFIG = 5, 1, 2, 4
DYNAMIC_DEFAULT_BROKER_CONFIG = 3


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker({"log.retention.hours": "48", "auto.create.topics.enable": "false"}) as b:
        yield b


@pytest.fixture
def admin(broker):
    return AdminClient({"bootstrap.servers": broker.bootstrap_servers})


@pytest.fixture
def kp_admin(broker):
    client = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers, request_timeout_ms=10_000)
    yield client
    client.close()


def new_topic(admin: AdminClient, config: dict | None = None) -> str:
    name = f"cfg-{uuid.uuid4().hex[:8]}"
    for future in admin.create_topics([NewTopic(name, 1, 1, config=config or {})]).values():
        future.result(TIMEOUT_S)
    return name


def describe(admin: AdminClient, name: str) -> dict:
    futures = admin.describe_configs([ConfigResource(ResourceType.TOPIC, name)], request_timeout=TIMEOUT_S)
    return next(iter(futures.values())).result(TIMEOUT_S)


def incremental(admin: AdminClient, name: str, *entries: ConfigEntry) -> None:
    resource = ConfigResource(ResourceType.TOPIC, name, incremental_configs=list(entries))
    for future in admin.incremental_alter_configs([resource]).values():
        future.result(TIMEOUT_S)


def error_code(exc: KafkaException) -> int:
    return exc.args[0].code()


def test_describe_sources_and_synonyms(admin, broker):
    name = new_topic(admin, {"cleanup.policy": "compact", "min.cleanable.dirty.ratio": "0.1"})
    configs = describe(admin, name)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["cleanup.policy"].source == DYNAMIC_TOPIC_CONFIG
    synonyms = configs["min.cleanable.dirty.ratio"].synonyms
    assert [(s.name, s.value, s.source) for s in synonyms.values()] == [
        ("min.cleanable.dirty.ratio", "0.1", DYNAMIC_TOPIC_CONFIG),
        ("log.cleaner.min.cleanable.ratio", "0.5", DEFAULT_CONFIG)]
    # log.retention.hours=48 given to the broker: the topic inherits it as a static broker config
    assert configs["retention.ms"].value == str(48 * 3_600_000)
    assert configs["retention.ms"].source == STATIC_BROKER_CONFIG
    for key, default in [("segment.bytes", "1073741824"), ("delete.retention.ms", "86400000"),
                         ("min.compaction.lag.ms", "0"), ("max.message.bytes", "1048588"),
                         ("message.timestamp.type", "CreateTime"), ("compression.type", "producer"),
                         ("min.insync.replicas", "1"), ("segment.index.bytes", "10485760"),
                         ("flush.messages", str(2**63 - 1)), ("flush.ms", str(2**63 - 1)),
                         ("retention.bytes", "-1"), ("segment.ms", "604800000"),
                         ("message.timestamp.before.max.ms", str(2**63 - 1)),
                         ("message.timestamp.after.max.ms", str(2**63 - 1))]:
        assert (configs[key].value, configs[key].source) == (default, DEFAULT_CONFIG), key


def test_incremental_set_delete_append_subtract(admin):
    name = new_topic(admin)
    incremental(admin, name,
                ConfigEntry("retention.ms", "1234", incremental_operation=AlterConfigOpType.SET),
                ConfigEntry("cleanup.policy", "compact", incremental_operation=AlterConfigOpType.APPEND))
    configs = describe(admin, name)
    assert configs["retention.ms"].value == "1234" and configs["retention.ms"].source == DYNAMIC_TOPIC_CONFIG
    assert configs["cleanup.policy"].value == "delete,compact"
    incremental(admin, name,
                ConfigEntry("cleanup.policy", "delete", incremental_operation=AlterConfigOpType.SUBTRACT),
                ConfigEntry("retention.ms", None, incremental_operation=AlterConfigOpType.DELETE))
    configs = describe(admin, name)
    assert configs["cleanup.policy"].value == "compact"
    assert configs["retention.ms"].source == STATIC_BROKER_CONFIG  # back to the broker's value


@pytest.mark.parametrize("key,value", [
    ("no.such.config", "1"),
    ("retention.ms", "soon"),
    ("cleanup.policy", "shred"),
    ("min.cleanable.dirty.ratio", "1.5"),
    ("message.timestamp.type", "WallTime"),
    ("compression.type", "brotli"),
    ("segment.bytes", "3"),
])
def test_invalid_config_with_confluent(admin, key, value):
    name = new_topic(admin)
    with pytest.raises(KafkaException) as raised:
        incremental(admin, name, ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET))
    assert error_code(raised.value) == 40  # INVALID_CONFIG
    assert key in str(raised.value)
    with pytest.raises(KafkaException) as raised:
        for future in admin.create_topics([NewTopic(f"bad-{uuid.uuid4().hex[:6]}", 1, 1,
                                                    config={key: value})]).values():
            future.result(TIMEOUT_S)
    assert error_code(raised.value) == 40


def test_kafka_python_round_trip(admin, kp_admin):
    name = new_topic(admin)
    result = kp_admin.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, name, configs={
        "retention.bytes": (AlterConfigOp.SET, "100000"),
        "cleanup.policy": (AlterConfigOp.APPEND, "compact")})], incremental=True)
    assert result["topic"][name] == "OK", result
    described = kp_admin.describe_configs([KPConfigResource(ConfigResourceType.TOPIC, name)],
                                          include_synonyms=True, config_filter="all")
    text = str(described)
    assert "100000" in text and "delete,compact" in text
    kp_admin.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, name, configs={
        "retention.bytes": (AlterConfigOp.DELETE, None)})], incremental=True)
    configs = describe(admin, name)
    assert configs["retention.bytes"].value == "-1" and configs["retention.bytes"].source == DEFAULT_CONFIG
    bad = kp_admin.alter_configs([KPConfigResource(ConfigResourceType.TOPIC, name, configs={
        "retention.bytes": (AlterConfigOp.SET, "lots")})], incremental=True, raise_on_unknown=False)
    assert str(bad["topic"][name]).startswith("[Error 40] InvalidConfigurationError")
    assert "retention.bytes" in str(bad["topic"][name])


def test_dynamic_broker_config_applies_to_topics(admin, kp_admin):
    name = new_topic(admin)

    def alter(op, value):  # per-broker (node 1): neither client can name the cluster-wide default
        result = kp_admin.alter_configs([KPConfigResource(ConfigResourceType.BROKER, "1", configs={
            "log.cleaner.delete.retention.ms": (op, value)})], incremental=True, raise_on_unknown=False)
        assert result["broker"]["1"] == "OK", result

    alter(AlterConfigOp.SET, "4444")
    try:
        entry = describe(admin, name)["delete.retention.ms"]
        assert (entry.value, entry.source) == ("4444", DYNAMIC_BROKER_CONFIG)
    finally:
        alter(AlterConfigOp.DELETE, None)
    entry = describe(admin, name)["delete.retention.ms"]
    assert (entry.value, entry.source) == ("86400000", DEFAULT_CONFIG)


# ----------------------------------------------------------------------------- applied live


def produce(broker, name: str, value: bytes, timestamp: int | None = None, **config) -> None:
    producer = Producer({"bootstrap.servers": broker.bootstrap_servers, "acks": "all",
                         "message.send.max.retries": 0, **config})
    errors = []
    kwargs = {"timestamp": timestamp} if timestamp is not None else {}
    producer.produce(name, value, key=b"k", on_delivery=lambda err, msg: errors.append(err), **kwargs)
    producer.flush(TIMEOUT_S)
    assert len(errors) == 1
    if errors[0] is not None:
        raise KafkaException(errors[0])


def test_max_message_bytes_applied_live(admin, broker):
    name = new_topic(admin)
    produce(broker, name, b"x" * 5000)
    incremental(admin, name, ConfigEntry("max.message.bytes", "2000", incremental_operation=AlterConfigOpType.SET))
    with pytest.raises(KafkaException) as raised:
        produce(broker, name, b"x" * 5000)
    assert error_code(raised.value) == 10  # MESSAGE_TOO_LARGE


def test_timestamp_bounds_applied_live(admin, broker):
    name = new_topic(admin)
    old = int(time.time() * 1000) - 3_600_000
    produce(broker, name, b"old is fine", timestamp=old)
    incremental(admin, name, ConfigEntry("message.timestamp.before.max.ms", "60000",
                                         incremental_operation=AlterConfigOpType.SET))
    with pytest.raises(KafkaException) as raised:
        produce(broker, name, b"too old", timestamp=old)
    assert error_code(raised.value) == 32  # INVALID_TIMESTAMP
    produce(broker, name, b"now is fine")


def test_log_append_time_applied_live(admin, broker):
    from confluent_kafka import Consumer

    name = new_topic(admin, {"message.timestamp.type": "LogAppendTime"})
    before = int(time.time() * 1000)
    produce(broker, name, b"stamped", timestamp=1000)
    consumer = Consumer({"bootstrap.servers": broker.bootstrap_servers, "group.id": f"g-{name}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(name, 0, 0)])
        deadline = time.monotonic() + TIMEOUT_S
        message = None
        while message is None and time.monotonic() < deadline:
            message = consumer.poll(0.5)
        assert message is not None and message.error() is None
        kind, timestamp = message.timestamp()
        assert kind == 2 and timestamp >= before  # TIMESTAMP_LOG_APPEND_TIME, the broker's clock
    finally:
        consumer.close()


def test_cluster_wide_dynamic_default_on_the_wire(broker, admin):
    """The cluster-wide default (broker resource "") that neither client can name."""
    from tests.integration.wire import WireClient

    name = new_topic(admin)
    incremental_alter, describe_configs = 44, 32

    def set_default(op: int, value):
        body = {"resources": [{"resource_type": 4, "resource_name": "", "configs": [
            {"name": "log.cleaner.min.compaction.lag.ms", "config_operation": op, "value": value}]}],
            "validate_only": False}
        with WireClient(broker.bootstrap_servers) as client:
            result = client.request(incremental_alter, 1, body)["responses"][0]
        assert result["error_code"] == 0, result

    set_default(0, "777")
    try:
        body = {"resources": [{"resource_type": 2, "resource_name": name,
                               "configuration_keys": ["min.compaction.lag.ms"]}],
                "include_synonyms": True, "include_documentation": False}
        with WireClient(broker.bootstrap_servers) as client:
            entry = client.request(describe_configs, 4, body)["results"][0]["configs"][0]
        assert (entry["value"], entry["config_source"]) == ("777", DYNAMIC_DEFAULT_BROKER_CONFIG)
        assert [(s["name"], s["source"]) for s in entry["synonyms"]] == [
            ("log.cleaner.min.compaction.lag.ms", DYNAMIC_DEFAULT_BROKER_CONFIG),
            ("log.cleaner.min.compaction.lag.ms", DEFAULT_CONFIG)]
    finally:
        set_default(1, None)

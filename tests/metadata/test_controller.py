"""Controller and image: topic lifecycle, configs, validation errors, as Kafka answers them."""

from __future__ import annotations

import uuid

import pytest

from kbroker.errors import KafkaError
from kbroker.metadata.codes import ErrorCode
from kbroker.metadata.image import RESOURCE_BROKER, RESOURCE_TOPIC

from .conftest import running_controller


async def test_create_topic_defaults_and_explicit(data_dir):
    async with running_controller(data_dir, **{"num.partitions": "3"}) as c:
        t = await c.create_topic("orders", -1, -1, None, {})
        assert sorted(t.partitions) == [0, 1, 2]
        assert all(p.replicas == (1,) and p.isr == (1,) and p.leader == 1 for p in t.partitions.values())
        assert all(p.leader_epoch == 0 for p in t.partitions.values())
        assert c.image.topics_by_name["orders"].topic_id == t.topic_id
        assert c.image.topics_by_id[t.topic_id].name == "orders"
        t2 = await c.create_topic("payments", 5, 1, None, {"retention.ms": "1000"})
        assert len(t2.partitions) == 5
        assert c.image.topics_by_name["payments"].configs == {"retention.ms": "1000"}
        assert t2.topic_id != t.topic_id


async def test_validate_only_writes_nothing(data_dir):
    async with running_controller(data_dir) as c:
        before = c.image.offset
        t = await c.create_topic("dry", 4, 1, None, {}, validate_only=True)
        assert len(t.partitions) == 4
        assert "dry" not in c.image.topics_by_name
        assert c.image.offset == before
        await c.create_topic("dry", 4, 1, None, {})  # the name is still free


@pytest.mark.parametrize("name", ["", ".", "..", "a" * 250, "bad name", "sl/ash", "ü"])
async def test_illegal_names(data_dir, name):
    async with running_controller(data_dir) as c:
        with pytest.raises(KafkaError) as info:
            await c.create_topic(name, 1, 1, None, {})
        assert info.value.code == ErrorCode.INVALID_TOPIC_EXCEPTION


async def test_creation_errors(data_dir):
    async with running_controller(data_dir) as c:
        await c.create_topic("a.b", 1, 1, None, {})

        async def code(*args, **kwargs) -> int:
            with pytest.raises(KafkaError) as info:
                await c.create_topic(*args, **kwargs)
            return info.value.code

        assert await code("a.b", 1, 1, None, {}) == ErrorCode.TOPIC_ALREADY_EXISTS
        assert await code("a_b", 1, 1, None, {}) == ErrorCode.INVALID_TOPIC_EXCEPTION  # collision
        assert await code("t", 0, 1, None, {}) == ErrorCode.INVALID_PARTITIONS
        assert await code("t", -5, 1, None, {}) == ErrorCode.INVALID_PARTITIONS
        assert await code("t", 1, 3, None, {}) == ErrorCode.INVALID_REPLICATION_FACTOR
        assert await code("t", 1, 0, None, {}) == ErrorCode.INVALID_REPLICATION_FACTOR
        assert await code("t", 1, 1, None, {"no.such.config": "1"}) == ErrorCode.INVALID_CONFIG
        assert await code("t", 1, -1, {0: [1]}, {}) == ErrorCode.INVALID_REQUEST
        assert await code("t", -1, -1, {0: [7]}, {}) == ErrorCode.INVALID_REPLICA_ASSIGNMENT
        assert await code("t", -1, -1, {0: [1, 1]}, {}) == ErrorCode.INVALID_REPLICA_ASSIGNMENT
        assert await code("t", -1, -1, {1: [1]}, {}) == ErrorCode.INVALID_REPLICA_ASSIGNMENT
        assert "t" not in c.image.topics_by_name


async def test_manual_assignment(data_dir):
    async with running_controller(data_dir) as c:
        t = await c.create_topic("m", -1, -1, {0: [1], 1: [1]}, {})
        assert [p.replicas for _, p in sorted(t.partitions.items())] == [(1,), (1,)]


async def test_delete_by_name_and_id(data_dir):
    async with running_controller(data_dir) as c:
        a = await c.create_topic("a", 1, 1, None, {"cleanup.policy": "compact"})
        b = await c.create_topic("b", 1, 1, None, {})
        await c.delete_topic("a")
        assert "a" not in c.image.topics_by_name and a.topic_id not in c.image.topics_by_id
        await c.delete_topic(b.topic_id)
        assert c.image.topics_by_name == {}
        with pytest.raises(KafkaError) as info:
            await c.delete_topic("a")
        assert info.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        with pytest.raises(KafkaError) as info:
            await c.delete_topic(uuid.uuid4())
        assert info.value.code == ErrorCode.UNKNOWN_TOPIC_ID
        again = await c.create_topic("a", 2, 1, None, {})
        assert again.topic_id != a.topic_id and again.configs == {}  # no config leaks from the old topic


async def test_delete_disabled(data_dir):
    async with running_controller(data_dir, **{"delete.topic.enable": "false"}) as c:
        await c.create_topic("keep", 1, 1, None, {})
        with pytest.raises(KafkaError) as info:
            await c.delete_topic("keep")
        assert info.value.code == ErrorCode.TOPIC_DELETION_DISABLED


async def test_create_partitions(data_dir):
    async with running_controller(data_dir) as c:
        await c.create_topic("g", 2, 1, None, {})
        grown = await c.create_partitions("g", 5, None)
        assert sorted(grown.partitions) == [0, 1, 2, 3, 4]
        assert sorted(c.image.topics_by_name["g"].partitions) == [0, 1, 2, 3, 4]
        for total in (5, 3):
            with pytest.raises(KafkaError) as info:
                await c.create_partitions("g", total, None)
            assert info.value.code == ErrorCode.INVALID_PARTITIONS
        with pytest.raises(KafkaError) as info:
            await c.create_partitions("missing", 3, None)
        assert info.value.code == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        with pytest.raises(KafkaError) as info:
            await c.create_partitions("g", 7, [[1]])
        assert info.value.code == ErrorCode.INVALID_REPLICA_ASSIGNMENT
        dry = await c.create_partitions("g", 6, [[1]], validate_only=True)
        assert len(dry.partitions) == 6 and len(c.image.topics_by_name["g"].partitions) == 5


async def test_alter_configs(data_dir):
    async with running_controller(data_dir) as c:
        await c.create_topic("cfg", 1, 1, None, {"retention.ms": "5", "segment.bytes": "1048576"})
        await c.alter_configs(RESOURCE_TOPIC, "cfg", {"retention.ms": "10", "segment.bytes": None})
        assert c.image.topics_by_name["cfg"].configs == {"retention.ms": "10"}
        await c.alter_configs(RESOURCE_TOPIC, "cfg", {"cleanup.policy": "compact"}, replace_all=True)
        assert c.image.topics_by_name["cfg"].configs == {"cleanup.policy": "compact"}
        await c.alter_configs(RESOURCE_BROKER, "", {"log.retention.ms": "1000"})
        assert c.image.broker_configs == {"log.retention.ms": "1000"}
        with pytest.raises(KafkaError) as info:
            await c.alter_configs(RESOURCE_TOPIC, "cfg", {"bogus": "1"})
        assert info.value.code == ErrorCode.INVALID_CONFIG


async def test_register_broker_and_listeners(data_dir):
    async with running_controller(data_dir) as c:
        seen = []
        c.add_listener(lambda old, new: seen.append((set(old.topics_by_name), set(new.topics_by_name))))
        epoch = await c.register_broker(1, "127.0.0.1", 19092, "PLAINTEXT", "r1")
        b = c.image.brokers[1]
        assert (b.host, b.port, b.rack, b.listener_name, b.epoch, b.fenced) == \
            ("127.0.0.1", 19092, "r1", "PLAINTEXT", epoch, False)
        await c.create_topic("x", 1, 1, None, {})
        assert seen[-1] == (set(), {"x"})
        assert c.image.cluster_id and len(c.image.cluster_id) == 22
        assert c.image.features["metadata.version"] == 21


async def test_producer_id_blocks(data_dir):
    async with running_controller(data_dir) as c:
        first = await c.allocate_producer_ids(1)
        second = await c.allocate_producer_ids(1)
        assert first == (0, 1000) and second == (1000, 1000)
    async with running_controller(data_dir) as c:
        assert (await c.allocate_producer_ids(1))[0] == 2000

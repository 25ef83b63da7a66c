"""Admin: topics, partitions, configs, delete records, list offsets, groups."""

from __future__ import annotations

from compat.clients.base import Client
from compat.scenarios import Context, scenario
from compat.scenarios.checks import expect_equal, numbered, wait_until


@scenario("create_delete_topic", requires=("admin",), timeout_s=60)
def create_delete_topic(client: Client, ctx: Context) -> None:
    """A created topic is listed with its partitions; a deleted one disappears."""
    topic = ctx.topic()
    client.create_topic(topic, 5)
    wait_until(lambda: client.list_topics().get(topic) == 5, 15, f"{topic} listed with 5 partitions")
    client.delete_topic(topic)
    wait_until(lambda: topic not in client.list_topics(), 15, f"{topic} gone after delete")


@scenario("create_partitions", requires=("admin",), timeout_s=60)
def create_partitions(client: Client, ctx: Context) -> None:
    """Growing a topic from 1 to 4 partitions shows 4 and the new ones accept records."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    client.create_partitions(topic, 4)
    wait_until(lambda: client.list_topics().get(topic) == 4, 15, f"{topic} listed with 4 partitions")
    records = numbered(8, partitions=4)
    client.produce(topic, records)
    got = client.consume(topic, count=8, partitions=[0, 1, 2, 3])
    expect_equal(sorted(r["partition"] for r in got), [0, 0, 1, 1, 2, 2, 3, 3], "partitions of records")


@scenario("describe_configs", requires=("configs",), timeout_s=60)
def describe_configs(client: Client, ctx: Context) -> None:
    """Topic configs: the one set at creation and Kafka's defaults for the rest."""
    topic = ctx.topic()
    client.create_topic(topic, 1, {"retention.ms": "12345678"})
    configs = client.describe_topic_config(topic)
    expect_equal(configs.get("retention.ms"), "12345678", "retention.ms set at creation")
    expect_equal(configs.get("cleanup.policy"), "delete", "default cleanup.policy")
    expect_equal(configs.get("max.message.bytes"), "1048588", "default max.message.bytes")
    expect_equal(configs.get("segment.bytes"), "1073741824", "default segment.bytes")


@scenario("alter_configs_incremental", requires=("configs", "incremental_alter"), timeout_s=60)
def alter_configs_incremental(client: Client, ctx: Context) -> None:
    """Incremental alter sets a key, leaves others alone, and delete restores the default."""
    topic = ctx.topic()
    client.create_topic(topic, 1, {"retention.ms": "12345678"})
    client.alter_topic_config(topic, {"cleanup.policy": "compact"})
    configs = client.describe_topic_config(topic)
    expect_equal(configs.get("cleanup.policy"), "compact", "cleanup.policy after set")
    expect_equal(configs.get("retention.ms"), "12345678", "retention.ms untouched by incremental alter")
    client.alter_topic_config(topic, {"retention.ms": None})
    configs = client.describe_topic_config(topic)
    expect_equal(configs.get("retention.ms"), "604800000", "retention.ms after delete (default)")


@scenario("delete_records", requires=("delete_records", "list_offsets"), timeout_s=60)
def delete_records(client: Client, ctx: Context) -> None:
    """Deleting records before offset 4 moves the log start to 4."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    client.produce(topic, numbered(10))
    low = client.delete_records(topic, 0, 4)
    expect_equal(low, 4, "low watermark returned by delete records")
    expect_equal(client.list_offsets(topic, 0, "earliest"), 4, "earliest offset after delete records")
    got = client.consume(topic, count=6, partitions=[0], start="earliest")
    expect_equal([r["offset"] for r in got], list(range(4, 10)), "offsets readable after delete records")


@scenario("list_offsets", requires=("list_offsets",), timeout_s=60)
def list_offsets(client: Client, ctx: Context) -> None:
    """Earliest/latest offsets per partition follow what was produced."""
    topic = ctx.topic()
    client.create_topic(topic, 2)
    expect_equal(client.list_offsets(topic, 0, "latest"), 0, "latest offset of an empty partition")
    client.produce(topic, numbered(7, partitions=1))
    expect_equal(client.list_offsets(topic, 0, "earliest"), 0, "earliest offset")
    expect_equal(client.list_offsets(topic, 0, "latest"), 7, "latest offset of partition 0")
    expect_equal(client.list_offsets(topic, 1, "latest"), 0, "latest offset of partition 1")


@scenario("groups_admin", requires=("groups", "groups_admin"), timeout_s=90)
def groups_admin(client: Client, ctx: Context) -> None:
    """A group that committed is listed, described (Empty once closed), and deleted."""
    topic, group = ctx.topic(), ctx.group()
    client.create_topic(topic, 1)
    client.produce(topic, numbered(5))
    client.group_open("a", group, [topic])
    read: list = []
    wait_until(lambda: read.extend(client.group_poll("a", 1.0)) or len(read) >= 5, 45, "5 records in the group")
    client.group_commit("a")
    client.group_close("a")
    wait_until(lambda: group in client.list_groups(), 15, f"group {group} listed")
    desc = wait_until(lambda: (d := client.describe_group(group))["state"] == "Empty" and d, 30,
                      "group Empty after its member left")
    expect_equal(desc["members"], 0, "members of an empty group")
    if "committed" in client.features:
        expect_equal(client.committed(group, topic, 1), {0: 5}, "committed offsets")
    client.delete_group(group)
    wait_until(lambda: group not in client.list_groups(), 15, f"group {group} gone after delete")

"""Committed offsets and group metadata survive a broker restart and a kill -9."""

from __future__ import annotations

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.groups_support import (GROUP_BROKER_OVERRIDES, KP_POLL_MS, SESSION_MS,
                                              create_topic, produce, unique, wait_until)

pytestmark = pytest.mark.timeout(180)


def _consume_some(bootstrap: str, topic: str, group: str, count: int) -> list[bytes]:
    """Consume at least `count` records with a group consumer and commit what was read."""
    from kafka import KafkaConsumer

    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      enable_auto_commit=False, auto_offset_reset="earliest",
                      session_timeout_ms=SESSION_MS, heartbeat_interval_ms=300,
                      max_poll_records=count)
    got: list[bytes] = []
    try:
        wait_until(lambda: got.extend(
            m.value for ms in c.poll(timeout_ms=KP_POLL_MS).values() for m in ms)
            or len(got) >= count, 30, "records")
        c.commit()
    finally:
        c.close()
    return got


@pytest.mark.parametrize("kill", [False, True], ids=["restart", "kill-9"])
def test_consumer_resumes_after_broker_restart(kill):
    from kafka import TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.structs import OffsetAndMetadata

    topic, group, other = unique("t"), unique("g"), unique("meta")
    values = [b"%d" % i for i in range(30)]
    with KafkaBroker(GROUP_BROKER_OVERRIDES) as broker:
        bootstrap = broker.bootstrap_servers
        create_topic(bootstrap, topic, 1)
        produce(bootstrap, topic, values, 1)
        first = _consume_some(bootstrap, topic, group, 10)
        assert first == values[:len(first)]
        # an admin-style commit with metadata and a leader epoch (simple group)
        from kafka import KafkaConsumer
        simple = KafkaConsumer(bootstrap_servers=bootstrap, group_id=other,
                               enable_auto_commit=False)
        simple.commit({TopicPartition(topic, 0): OffsetAndMetadata(7, "note", 0)})
        simple.close()

        broker.restart(kill=kill)

        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            offsets = admin.list_group_offsets(other)[other]
            o = offsets[TopicPartition(topic, 0)]
            assert (o.offset, o.metadata, o.leader_epoch) == (7, "note", 0)
            listed = {g["group_id"]: g["group_state"] for g in admin.list_groups()}
            assert listed[group] == "Empty"
        finally:
            admin.close()
        rest = _consume_some(broker.bootstrap_servers, topic, group, len(values) - len(first))
        assert first + rest == values, "resumed exactly at the committed offset"


def test_active_group_survives_broker_kill_without_losing_records():
    """Members stay in their group across a broker kill -9: the group is loaded back from
    __consumer_offsets and consumption continues from the committed offsets."""
    from tests.integration.groups_support import KafkaPythonMember

    topic, group = unique("t"), unique("g")
    with KafkaBroker(GROUP_BROKER_OVERRIDES) as broker:
        bootstrap = broker.bootstrap_servers
        create_topic(bootstrap, topic, 4)
        members = [KafkaPythonMember(bootstrap, topic, group) for _ in range(2)]
        try:
            def split() -> bool:
                held = [m.snapshot()[0] for m in members]
                return all(held) and sorted(p for h in held for p in h) == [0, 1, 2, 3]

            wait_until(split, 30, "two members sharing the topic")
            first = [b"a%d" % i for i in range(40)]
            produce(bootstrap, topic, first, 4)
            total = lambda: sorted(v for m in members for v in m.snapshot()[1])  # noqa: E731
            wait_until(lambda: len(total()) >= 40, 30, "the first records")

            broker.restart(kill=True)

            second = [b"b%d" % i for i in range(40)]
            produce(broker.bootstrap_servers, topic, second, 4)
            wait_until(lambda: len(total()) >= 80, 60, "the records produced after the kill")
            assert total() == sorted(first + second), "every record exactly once"
        finally:
            for m in members:
                m.close()

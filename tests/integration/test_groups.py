"""Consumer groups with kafka-python consumers against a real kbroker."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.groups_support import (GROUP_BROKER_OVERRIDES, KP_POLL_MS, SESSION_MS,
                                              KafkaPythonMember, create_topic, produce,
                                              unique, wait_until)

pytestmark = pytest.mark.timeout(180)
PARTITIONS = 6


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker(GROUP_BROKER_OVERRIDES) as running:
        yield running


def split_ok(members: list[KafkaPythonMember]) -> bool:
    """Every partition held by exactly one member."""
    held = [m.snapshot()[0] for m in members]
    flat = [p for h in held for p in h]
    return sorted(flat) == list(range(PARTITIONS)) and all(held)


def consumed(members: list[KafkaPythonMember], retired: list[KafkaPythonMember]) -> list[bytes]:
    return [v for m in members + retired for v in m.snapshot()[1]]


def test_two_then_three_consumers_split_partitions_and_survive_leave_and_death(broker):
    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, PARTITIONS)
    values: list[bytes] = []

    def more(n: int) -> None:
        batch = [f"{len(values) + i}".encode() for i in range(n)]
        values.extend(batch)
        produce(bootstrap, topic, batch, PARTITIONS)

    members = [KafkaPythonMember(bootstrap, topic, group) for _ in range(2)]
    retired: list[KafkaPythonMember] = []
    try:
        wait_until(lambda: split_ok(members), 30, "two consumers to split 6 partitions")
        more(60)
        members.append(KafkaPythonMember(bootstrap, topic, group))
        wait_until(lambda: split_ok(members), 30, "three consumers to split 6 partitions")
        more(60)
        wait_until(lambda: len(consumed(members, retired)) >= len(values), 30, "all records")

        # one member leaves cleanly: the other two take its partitions
        leaving = members.pop(0)
        leaving.close()
        retired.append(leaving)
        wait_until(lambda: split_ok(members), 30, "rebalance after a member left")
        more(60)
        wait_until(lambda: len(consumed(members, retired)) >= len(values), 30, "all records")

        # a member dies without leaving (a killed process): the session timeout removes it
        dying = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
            from kafka import KafkaConsumer
            c = KafkaConsumer({topic!r}, bootstrap_servers={bootstrap!r}, group_id={group!r},
                              session_timeout_ms={SESSION_MS}, heartbeat_interval_ms=300,
                              max_poll_interval_ms=8000, enable_auto_commit=False)
            while True:
                c.poll(timeout_ms={KP_POLL_MS})
                if c.assignment():
                    print("assigned", flush=True)
                    break
            while True:
                c.poll(timeout_ms={KP_POLL_MS})
            """)], stdout=subprocess.PIPE, text=True)
        try:
            assert dying.stdout.readline().strip() == "assigned"
            wait_until(lambda: sum(len(m.snapshot()[0]) for m in members) < PARTITIONS, 30,
                       "the new member to take partitions")
        finally:
            os.kill(dying.pid, signal.SIGKILL)
            dying.wait()
        wait_until(lambda: split_ok(members), 30, "rebalance after the session timeout")
        more(60)
        wait_until(lambda: len(consumed(members, retired)) >= len(values), 30, "all records")
        got = consumed(members, retired)
        assert sorted(got) == sorted(values), "every record consumed exactly once"
        for m in members + retired:
            assert not m.errors, m.errors
    finally:
        for m in members:
            m.close()


def test_restarted_consumer_resumes_from_committed_offset(broker):
    from kafka import KafkaConsumer, TopicPartition

    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, 2)
    produce(bootstrap, topic, [b"%d" % i for i in range(20)], 2)

    def consumer() -> KafkaConsumer:
        return KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                             enable_auto_commit=False, auto_offset_reset="earliest",
                             session_timeout_ms=SESSION_MS, heartbeat_interval_ms=300,
                             max_poll_records=3)

    first = consumer()
    seen: list[bytes] = []
    try:
        while len(seen) < 7:
            batch = first.poll(timeout_ms=KP_POLL_MS)
            seen += [m.value for ms in batch.values() for m in ms]
        first.commit()
        committed = {p: first.committed(TopicPartition(topic, p)) for p in range(2)}
    finally:
        first.close()
    second = consumer()
    rest: list[bytes] = []
    try:
        deadline_values = 20 - len(seen)
        wait_until(lambda: rest.extend(
            m.value for ms in second.poll(timeout_ms=KP_POLL_MS).values() for m in ms)
            or len(rest) >= deadline_values, 30, "the rest of the records")
        assert sorted(seen + rest, key=int) == [b"%d" % i for i in range(20)]
        assert sum(v or 0 for v in committed.values()) == len(seen)
    finally:
        second.close()


def test_admin_list_describe_delete_and_offsets(broker):
    from kafka import KafkaConsumer, TopicPartition
    from kafka.admin import KafkaAdminClient
    from kafka.structs import OffsetAndMetadata

    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, 3)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
                      session_timeout_ms=SESSION_MS, heartbeat_interval_ms=300)
    try:
        wait_until(lambda: c.poll(timeout_ms=KP_POLL_MS) is not None
                   and len(c.assignment()) == 3, 30, "assignment")
        c.commit({TopicPartition(topic, p): OffsetAndMetadata(p + 10, f"meta{p}", -1)
                  for p in range(3)})
        listed = {g["group_id"]: g for g in admin.list_groups()}
        assert listed[group]["group_state"] == "Stable"
        assert listed[group]["protocol_type"] == "consumer"
        described = admin.describe_groups([group])[group]
        assert described["group_state"] == "Stable"
        assert len(described["members"]) == 1
        # a group with members cannot be deleted
        missing = unique("none")
        assert admin.delete_groups([group, missing]) == {
            group: "NonEmptyGroupError", missing: "GroupIdNotFoundError"}
    finally:
        c.close()
    offsets = admin.list_group_offsets(group)[group]
    assert {tp.partition: (o.offset, o.metadata) for tp, o in offsets.items()} == {
        0: (10, "meta0"), 1: (11, "meta1"), 2: (12, "meta2")}
    admin.delete_group_offsets(group, [TopicPartition(topic, 1)])
    offsets = admin.list_group_offsets(group)[group]
    assert sorted(tp.partition for tp in offsets) == [0, 2]
    admin.delete_groups([group])
    assert group not in {g["group_id"] for g in admin.list_groups()}
    assert admin.list_group_offsets(group)[group] == {}
    admin.close()

"""Consumer groups with confluent-kafka (librdkafka), alone and mixed with kafka-python."""

from __future__ import annotations

import threading

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.groups_support import (GROUP_BROKER_OVERRIDES, SESSION_MS,
                                              KafkaPythonMember, create_topic, produce, unique,
                                              wait_until)

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker(GROUP_BROKER_OVERRIDES) as running:
        yield running


class ConfluentMember:
    """A confluent-kafka group consumer polling in its own thread, recording rebalances."""

    def __init__(self, bootstrap: str, topic: str, group: str, **config) -> None:
        from confluent_kafka import Consumer

        conf = {"bootstrap.servers": bootstrap, "group.id": group,
                "auto.offset.reset": "earliest", "enable.auto.commit": False,
                "session.timeout.ms": SESSION_MS, "heartbeat.interval.ms": 300,
                "max.poll.interval.ms": 8000, "topic.metadata.refresh.interval.ms": 1000}
        conf.update(config)
        self.consumer = Consumer(conf)
        self.assignment: set[int] = set()
        self.rebalances = 0
        self.committed: list[bytes] = []
        self.errors: list[BaseException] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.consumer.subscribe([topic], on_assign=self._on_assign, on_revoke=self._on_revoke)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_assign(self, consumer, partitions) -> None:
        with self._lock:
            self.rebalances += 1
            self.assignment |= {p.partition for p in partitions}
        # the client (incrementally) assigns by itself when the callback does not

    def _on_revoke(self, consumer, partitions) -> None:
        with self._lock:
            self.rebalances += 1
            self.assignment -= {p.partition for p in partitions}

    def _run(self) -> None:
        from confluent_kafka import KafkaException

        try:
            while not self._stop.is_set():
                msgs = self.consumer.consume(num_messages=100, timeout=0.1)
                values = [m.value() for m in msgs if m.error() is None]
                if values:
                    try:
                        self.consumer.commit(asynchronous=False)
                    except KafkaException:
                        continue    # partitions moved meanwhile; the new owner re-reads
                    with self._lock:
                        self.committed.extend(values)
        except BaseException as exc:
            self.errors.append(exc)

    def snapshot(self) -> tuple[set[int], list[bytes], int]:
        """(assignment, committed values, number of assign/revoke callbacks)."""
        with self._lock:
            return set(self.assignment), list(self.committed), self.rebalances

    def close(self) -> None:
        """Stop polling, then close (a dynamic member leaves the group; a static one does not)."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.consumer.close()


def _split(assignments: list[set[int]], partitions: int) -> bool:
    flat = [p for a in assignments for p in a]
    return sorted(flat) == list(range(partitions)) and all(assignments)


@pytest.mark.parametrize("strategy", ["range", "cooperative-sticky"])
def test_confluent_consumers_share_partitions_and_consume_everything(broker, strategy):
    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, 6)
    conf = {"partition.assignment.strategy": strategy}
    members = [ConfluentMember(bootstrap, topic, group, **conf) for _ in range(2)]
    try:
        wait_until(lambda: _split([m.snapshot()[0] for m in members], 6), 30, "two-way split")
        values = [b"%d" % i for i in range(120)]
        produce(bootstrap, topic, values[:60], 6)
        members.append(ConfluentMember(bootstrap, topic, group, **conf))
        wait_until(lambda: _split([m.snapshot()[0] for m in members], 6), 30, "three-way split")
        produce(bootstrap, topic, values[60:], 6)
        total = lambda: sorted(v for m in members for v in m.snapshot()[1])  # noqa: E731
        wait_until(lambda: len(total()) >= len(values), 30, "all records")
        assert total() == sorted(values)
        assert not any(m.errors for m in members)
    finally:
        for m in members:
            m.close()


def test_static_member_restart_causes_no_rebalance(broker):
    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, 4)
    # a long session so the restart falls inside it
    conf = {"session.timeout.ms": 20000, "max.poll.interval.ms": 20000}
    a = ConfluentMember(bootstrap, topic, group, **{"group.instance.id": "a", **conf})
    b = ConfluentMember(bootstrap, topic, group, **{"group.instance.id": "b", **conf})
    try:
        wait_until(lambda: _split([a.snapshot()[0], b.snapshot()[0]], 4), 30, "split")
        b_assignment, _, b_rebalances = b.snapshot()
        a_assignment = a.snapshot()[0]
        a.close()                          # static: no LeaveGroup
        a = ConfluentMember(bootstrap, topic, group, **{"group.instance.id": "a", **conf})
        wait_until(lambda: a.snapshot()[0] == a_assignment, 30, "the restarted member's partitions")
        produce(bootstrap, topic, [b"x%d" % i for i in range(8)], 4)
        wait_until(lambda: len(a.snapshot()[1]) + len(b.snapshot()[1]) >= 8, 30, "records")
        assert b.snapshot()[0] == b_assignment
        assert b.snapshot()[2] == b_rebalances, "the other member saw no rebalance"
    finally:
        a.close()
        b.close()


def test_duplicate_static_instance_is_fenced(broker):
    from confluent_kafka import Consumer, KafkaError

    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, 1)
    conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.instance.id": "same",
            "session.timeout.ms": 20000, "heartbeat.interval.ms": 200}
    errors: list = []
    conf1 = dict(conf, error_cb=errors.append)
    first = Consumer(conf1)
    first.subscribe([topic])
    second = Consumer(conf)
    try:
        wait_until(lambda: first.poll(0.1) is None and bool(first.assignment()), 30, "first")
        second.subscribe([topic])
        wait_until(lambda: second.poll(0.1) is None and bool(second.assignment()), 30, "second")
        # the first instance learns it was replaced on its next heartbeat
        # (librdkafka raises FENCED_INSTANCE_ID as a fatal error)
        def fenced() -> bool:
            m = first.poll(0.1)
            if m is not None and m.error() is not None:
                errors.append(m.error())
            return any(e.code() == KafkaError._FATAL and "fenced" in e.str().lower()
                       for e in errors)

        wait_until(fenced, 30, "the first instance to be fenced")
    finally:
        second.close()
        try:
            first.close()
        except Exception:   # a fenced consumer may refuse to close cleanly
            pass


def test_mixed_kafka_python_and_confluent_members(broker):
    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, 6)
    kp = KafkaPythonMember(bootstrap, topic, group)
    ck = ConfluentMember(bootstrap, topic, group)
    try:
        wait_until(lambda: _split([kp.snapshot()[0], ck.snapshot()[0]], 6), 30, "mixed split")
        values = [b"%d" % i for i in range(90)]
        produce(bootstrap, topic, values, 6)
        total = lambda: sorted(kp.snapshot()[1] + ck.snapshot()[1])  # noqa: E731
        wait_until(lambda: len(total()) >= len(values), 30, "all records")
        assert total() == sorted(values)
    finally:
        kp.close()
        ck.close()


def test_confluent_admin_groups(broker):
    from confluent_kafka import ConsumerGroupState, ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, 2)
    produce(bootstrap, topic, [b"a", b"b", b"c", b"d"], 2)
    member = ConfluentMember(bootstrap, topic, group)
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        wait_until(lambda: len(member.snapshot()[1]) == 4, 30, "records consumed")
        stable = admin.list_consumer_groups(states={ConsumerGroupState.STABLE}).result()
        assert group in {g.group_id for g in stable.valid}
        empty = admin.list_consumer_groups(states={ConsumerGroupState.EMPTY}).result()
        assert group not in {g.group_id for g in empty.valid}
        desc = admin.describe_consumer_groups([group])[group].result()
        assert desc.state == ConsumerGroupState.STABLE
        assert desc.partition_assignor == "range"
        assert {tp.partition for m in desc.members for tp in m.assignment.topic_partitions} \
            == {0, 1}
    finally:
        member.close()
    request = [ConsumerGroupTopicPartitions(group)]
    listed = admin.list_consumer_group_offsets(request)[group].result()
    assert sorted((tp.partition, tp.offset) for tp in listed.topic_partitions) == [(0, 2), (1, 2)]
    # an admin commit into the (now Empty) group
    altered = admin.alter_consumer_group_offsets(
        [ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0, 1)])])[group].result()
    assert [(tp.partition, tp.offset) for tp in altered.topic_partitions] == [(0, 1)]
    listed = admin.list_consumer_group_offsets(request)[group].result()
    assert sorted((tp.partition, tp.offset) for tp in listed.topic_partitions) == [(0, 1), (1, 2)]
    admin.delete_consumer_groups([group])[group].result()
    desc = admin.describe_consumer_groups([group])[group].result()
    assert desc.state in (ConsumerGroupState.DEAD, ConsumerGroupState.UNKNOWN)

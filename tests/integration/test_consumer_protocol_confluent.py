"""KIP-848 (group.protocol=consumer) with librdkafka (confluent-kafka) against a broker process.

Each group member is its own Python process running a confluent-kafka Consumer, so that a
member can be closed (SIGTERM: the consumer leaves the group) or killed (SIGKILL: only the
session timeout notices). A member commits every record synchronously before it reports it,
so "every record exactly once" is checked over the whole group, across rebalances and broker
restarts.
"""

from __future__ import annotations

import collections
import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.groups_support import GROUP_BROKER_OVERRIDES, unique, wait_until

pytestmark = pytest.mark.timeout(240)

SESSION_MS = 4000
OVERRIDES = {**GROUP_BROKER_OVERRIDES,
             "group.consumer.heartbeat.interval.ms": 300,
             "group.consumer.session.timeout.ms": SESSION_MS}

# the member process: prints one JSON line per event on stdout
MEMBER = r'''
import json, signal, sys
from confluent_kafka import Consumer, KafkaException
bootstrap, group, subscription, instance = sys.argv[1:5]
conf = {"bootstrap.servers": bootstrap, "group.id": group, "group.protocol": "consumer",
        "auto.offset.reset": "earliest", "enable.auto.commit": False}
if instance:
    conf["group.instance.id"] = instance
stop = []
signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
def say(**kw):
    print(json.dumps(kw), flush=True)
c = Consumer(conf)
last = None
c.subscribe(subscription.split(","))
while not stop:
    m = c.poll(0.2)
    now = sorted(f"{tp.topic}:{tp.partition}" for tp in c.assignment())
    if now != last:
        say(event="assigned", partitions=now)
        last = now
    if m is None:
        continue
    if m.error():
        say(event="error", error=str(m.error()))
        continue
    try:
        c.commit(message=m, asynchronous=False)
    except KafkaException as exc:
        say(event="commit_failed", error=str(exc))
        continue
    say(event="record", topic=m.topic(), partition=m.partition(), value=m.value().decode())
c.close()
say(event="closed")
'''


class Member:
    """One consumer process; its events are collected by a reader thread."""

    def __init__(self, bootstrap: str, group: str, subscription: str,
                 instance: str = "") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", MEMBER, bootstrap, group, subscription, instance],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.assignment: frozenset[str] = frozenset()
        self.assignments: list[frozenset[str]] = []
        self.records: list[str] = []
        self.closed = False
        self._lock = threading.Lock()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                if ev["event"] == "assigned":
                    self.assignment = frozenset(ev["partitions"])
                    self.assignments.append(self.assignment)
                elif ev["event"] == "record":
                    self.records.append(ev["value"])
                elif ev["event"] == "closed":
                    self.closed = True

    def close(self) -> None:
        """SIGTERM: the consumer closes (and leaves the group)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self._reader.join(timeout=5)

    def kill(self) -> None:
        """SIGKILL: the member just vanishes."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._reader.join(timeout=5)


@pytest.fixture
def members():
    started: list[Member] = []

    def start(*args, **kwargs) -> Member:
        m = Member(*args, **kwargs)
        started.append(m)
        return m

    yield start
    for m in started:
        m.kill()


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker(OVERRIDES) as running:
        yield running


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for f in admin.create_topics([NewTopic(name, partitions, 1)]).values():
        f.result(timeout=30)


def produce(bootstrap: str, topic: str, values: list[str], partitions: int) -> None:
    from confluent_kafka import Producer

    p = Producer({"bootstrap.servers": bootstrap})
    for i, v in enumerate(values):
        p.produce(topic, v.encode(), partition=i % partitions)
    assert p.flush(30) == 0


def all_partitions(topic: str, n: int) -> set[str]:
    return {f"{topic}:{p}" for p in range(n)}


def wait_split(group: list[Member], expected: set[str], timeout_s: float = 60) -> None:
    """Until the members hold `expected` between them, none twice, each a fair share."""
    def ok() -> bool:
        held = [m.assignment for m in group]
        flat = [p for a in held for p in a]
        fair = len(expected) // len(group)
        return (set(flat) == expected and len(flat) == len(expected)
                and all(len(a) >= fair for a in held))
    wait_until(ok, timeout_s, f"{len(group)} members to split {sorted(expected)}: "
                              f"{[sorted(m.assignment) for m in group]}", interval_s=0.1)


def consumed(group: list[Member]) -> list[str]:
    return [v for m in group for v in m.records]


def wait_consumed(group: list[Member], values: list[str], timeout_s: float = 60) -> None:
    want = set(values)
    wait_until(lambda: want <= set(consumed(group)), timeout_s,
               f"{len(values)} records ({len(want - set(consumed(group)))} missing)",
               interval_s=0.1)


def assert_once(group: list[Member], values: list[str]) -> None:
    counts = collections.Counter(consumed(group))
    assert sorted(counts) == sorted(values)
    assert [v for v, n in counts.items() if n > 1] == [], "records read twice"


def test_members_split_rebalance_on_close_and_kill_consume_once(broker, members):
    bs = broker.bootstrap_servers
    topic, group = unique("cp"), unique("g")
    create_topic(bs, topic, 6)
    everything = all_partitions(topic, 6)
    first = [f"a{i}" for i in range(60)]
    produce(bs, topic, first, 6)
    a, b = members(bs, group, topic), members(bs, group, topic)
    wait_split([a, b], everything)
    c = members(bs, group, topic)
    wait_split([a, b, c], everything)
    assert all(len(m.assignment) == 2 for m in (a, b, c))
    wait_consumed([a, b, c], first)

    second = [f"b{i}" for i in range(60)]
    produce(bs, topic, second, 6)
    wait_consumed([a, b, c], first + second)
    c.close()                                    # leaves: its partitions move at once
    assert c.closed
    wait_split([a, b], everything, timeout_s=20)
    b.kill()                                     # vanishes: the session timeout moves them
    t0 = time.monotonic()
    wait_split([a], everything, timeout_s=SESSION_MS / 1000 + 30)
    assert time.monotonic() - t0 >= SESSION_MS / 1000 - 1.5, "reassigned before the timeout"
    third = [f"c{i}" for i in range(60)]
    produce(bs, topic, third, 6)
    wait_consumed([a, b, c], first + second + third)
    assert_once([a, b, c], first + second + third)


def test_restarted_consumer_resumes_from_committed_offsets(broker, members):
    bs = broker.bootstrap_servers
    topic, group = unique("cp"), unique("g")
    create_topic(bs, topic, 3)
    old = [f"old{i}" for i in range(30)]
    produce(bs, topic, old, 3)
    a = members(bs, group, topic)
    wait_consumed([a], old)
    a.close()
    new = [f"new{i}" for i in range(30)]
    produce(bs, topic, new, 3)
    a2 = members(bs, group, topic)
    wait_consumed([a2], new)
    assert_once([a2], new)


@pytest.mark.parametrize("how", ["restart", "kill -9"])
def test_broker_restart_keeps_the_group(members, how):
    with KafkaBroker(OVERRIDES) as broker:
        bs = broker.bootstrap_servers
        topic, group = unique("cp"), unique("g")
        create_topic(bs, topic, 4)
        first = [f"a{i}" for i in range(40)]
        produce(bs, topic, first, 4)
        a, b = members(bs, group, topic), members(bs, group, topic)
        wait_split([a, b], all_partitions(topic, 4))
        wait_consumed([a, b], first)
        held = (a.assignment, b.assignment)
        changes = (len(a.assignments), len(b.assignments))
        before = describe(bs, group)
        joins = broker.log_text().count(f"consumer group={group} member=")
        broker.restart(kill=(how == "kill -9"))
        assert "restored" in broker.log_text()
        assert committed(bs, group, topic, 4) == {p: 10 for p in range(4)}
        second = [f"b{i}" for i in range(40)]
        produce(bs, topic, second, 4)
        wait_consumed([a, b], first + second)
        assert_once([a, b], first + second)
        # the same members kept the same partitions: no rebalance happened
        assert (a.assignment, b.assignment) == held
        assert (len(a.assignments), len(b.assignments)) == changes
        assert describe(bs, group) == before
        # nobody left or (re)joined: the members went on with their epochs
        assert broker.log_text().count(f"consumer group={group} member=") == joins


def committed(bs: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    """partition -> committed offset, through AdminClient.list_consumer_group_offsets."""
    from confluent_kafka import ConsumerGroupTopicPartitions, TopicPartition
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bs})
    request = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, p)
                                                   for p in range(partitions)])
    result = admin.list_consumer_group_offsets([request])[group].result(timeout=30)
    return {tp.partition: tp.offset for tp in result.topic_partitions}


def describe(bs: str, group: str) -> dict[str, frozenset]:
    """member id -> assigned partitions, through AdminClient.describe_consumer_groups."""
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bs})     # kept alive until the answer arrives
    d = admin.describe_consumer_groups([group])[group].result(timeout=30)
    return {m.member_id: frozenset(f"{tp.topic}:{tp.partition}"
                                   for tp in m.assignment.topic_partitions) for m in d.members}


def test_regex_subscription_picks_up_a_topic_created_later(broker, members):
    bs = broker.bootstrap_servers
    prefix = unique("topic").replace("-", "")
    create_topic(bs, f"{prefix}-a", 2)
    a = members(bs, unique("g"), f"^{prefix}-.*")
    wait_until(lambda: a.assignment == all_partitions(f"{prefix}-a", 2), 60, "regex assignment")
    create_topic(bs, f"{prefix}-b", 3)
    create_topic(bs, f"x{prefix}-c", 1)          # does not match
    want = all_partitions(f"{prefix}-a", 2) | all_partitions(f"{prefix}-b", 3)
    wait_until(lambda: a.assignment == want, 60, f"the new topic in {sorted(a.assignment)}")
    values = [f"r{i}" for i in range(9)]
    produce(bs, f"{prefix}-b", values, 3)
    wait_consumed([a], values)


def test_static_member_rejoin_keeps_its_assignment(broker, members):
    bs = broker.bootstrap_servers
    topic, group = unique("cp"), unique("g")
    create_topic(bs, topic, 4)
    a = members(bs, group, topic, instance="inst-a")
    b = members(bs, group, topic, instance="inst-b")
    wait_split([a, b], all_partitions(topic, 4))
    held_a, held_b, b_changes = a.assignment, b.assignment, len(b.assignments)
    a.close()                      # a static member's close is a temporary leave (epoch -2)
    a2 = members(bs, group, topic, instance="inst-a")
    wait_until(lambda: a2.assignment == held_a, 30,
               f"the same partitions back: {sorted(a2.assignment)} vs {sorted(held_a)}")
    assert b.assignment == held_b and len(b.assignments) == b_changes, "b saw no rebalance"
    values = [f"s{i}" for i in range(20)]
    produce(bs, topic, values, 4)
    wait_consumed([a2, b], values)
    assert_once([a2, b], values)


def test_describe_consumer_groups_shows_a_consumer_group(broker, members):
    from confluent_kafka import ConsumerGroupState, ConsumerGroupType
    from confluent_kafka.admin import AdminClient

    bs = broker.bootstrap_servers
    topic, group = unique("cp"), unique("g")
    create_topic(bs, topic, 2)
    a, b = members(bs, group, topic), members(bs, group, topic)
    wait_split([a, b], all_partitions(topic, 2))
    admin = AdminClient({"bootstrap.servers": bs})
    wait_until(lambda: admin.describe_consumer_groups([group])[group].result(30).state
               == ConsumerGroupState.STABLE, 30, "a Stable group")
    d = admin.describe_consumer_groups([group])[group].result(timeout=30)
    assert d.type == ConsumerGroupType.CONSUMER
    assert len(d.members) == 2
    assert {f"{tp.topic}:{tp.partition}" for m in d.members
            for tp in m.assignment.topic_partitions} == all_partitions(topic, 2)
    listed = admin.list_consumer_groups().result(timeout=30)
    assert [g.type for g in listed.valid if g.group_id == group] == [ConsumerGroupType.CONSUMER]

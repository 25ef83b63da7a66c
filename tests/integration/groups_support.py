"""Helpers for the consumer-group integration tests: broker settings, producing, waiting."""

from __future__ import annotations

import threading
import time
import uuid
from typing import Callable

# Fast groups for tests: no initial rebalance delay, short sessions allowed, few offsets
# partitions (each is a partition log to create).
GROUP_BROKER_OVERRIDES = {
    "group.initial.rebalance.delay.ms": 0,
    "group.min.session.timeout.ms": 1000,
    "offsets.topic.num.partitions": 5,
}
# kafka-python 3.0.12 loses a JoinGroup/SyncGroup that completes after poll() gave up
# waiting (need_rejoin() turns false, the finished join task is never awaited: no heartbeats,
# no assignment). Long poll timeouts keep the round trip inside one poll; poll still returns
# as soon as records arrive.
KP_POLL_MS = 1000
SESSION_MS = 6000   # short, but safe for heartbeat threads on a loaded 2-core machine
HEARTBEAT_MS = 300
REBALANCE_MS = 8000


def unique(prefix: str) -> str:
    """A name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str,
               interval_s: float = 0.05) -> None:
    """Poll `predicate` until true; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(interval_s)


def create_topic(bootstrap: str, name: str, partitions: int) -> None:
    """Create a topic with kafka-python's admin client and wait until clients see it.

    (A kafka-python group leader that assigns before its metadata knows the topic hands out
    nothing and only recovers on a later metadata change; real applications subscribe to
    topics that already exist.)
    """
    from kafka import KafkaConsumer
    from kafka.admin import KafkaAdminClient, NewTopic

    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15000)
    try:
        admin.create_topics([NewTopic(name, partitions, 1)])
    finally:
        admin.close()
    probe = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        wait_until(lambda: len(probe.partitions_for_topic(name) or ()) == partitions, 30,
                   f"metadata of {name}")
    finally:
        probe.close()


def produce(bootstrap: str, topic: str, values: list[bytes], partitions: int) -> None:
    """Produce `values` round-robin over `partitions` with kafka-python."""
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    try:
        futures = [producer.send(topic, value=v, partition=i % partitions)
                   for i, v in enumerate(values)]
        producer.flush(timeout=30)
        for f in futures:
            f.get(timeout=30)
    finally:
        producer.close(timeout=10)


class KafkaPythonMember:
    """A kafka-python group consumer polling in its own thread.

    Records count as consumed only once the commit covering them succeeded, so the union
    over all members is what the group consumed, whatever rebalances happened.
    """

    def __init__(self, bootstrap: str, topic: str, group: str, **config) -> None:
        from kafka import KafkaConsumer

        config.setdefault("session_timeout_ms", SESSION_MS)
        config.setdefault("heartbeat_interval_ms", HEARTBEAT_MS)
        config.setdefault("max_poll_interval_ms", REBALANCE_MS)
        self.consumer = KafkaConsumer(
            topic, bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False,
            auto_offset_reset="earliest", **config)
        self.committed: list[bytes] = []
        self.assignment: set[int] = set()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        from kafka.errors import CommitFailedError, KafkaError

        try:
            while not self._stop.is_set():
                batch = self.consumer.poll(timeout_ms=KP_POLL_MS)
                values = [m.value for ms in batch.values() for m in ms]
                if values:
                    try:
                        self.consumer.commit()
                    except (CommitFailedError, KafkaError):
                        continue      # a rebalance took the partitions: the new owner re-reads
                with self._lock:
                    self.committed.extend(values)
                    self.assignment = {tp.partition for tp in self.consumer.assignment()}
        except BaseException as exc:  # surfaced by the test through .errors
            self.errors.append(exc)

    def snapshot(self) -> tuple[set[int], list[bytes]]:
        """(current assignment, values consumed and committed so far)."""
        with self._lock:
            return set(self.assignment), list(self.committed)

    def close(self) -> None:
        """Stop polling and close the consumer (sends LeaveGroup)."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.consumer.close()

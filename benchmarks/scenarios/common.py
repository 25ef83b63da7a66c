"""Shared pieces of the scenarios: the run context, topic set-up, and a confluent-kafka
producer loop used by the produce scenarios and to pre-fill topics for the consume ones."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from benchmarks.brokers import BrokerProcess, BrokerSpec
from benchmarks.procstat import Monitor

logger = logging.getLogger(__name__)

TOPIC_READY_TIMEOUT_S = 30.0
FLUSH_GRACE_S = 60.0
WARMUP_TIMEOUT_S = 15.0   # a broker that cannot take one record in this time never will
CLIENT_LOG_LEVEL = 3  # syslog level: librdkafka's errors only, not its connection chatter


@dataclass
class Context:
    """What a scenario needs: which broker, which run, quick or full sizes."""

    spec: BrokerSpec
    run: int = 0
    quick: bool = False
    profile_dir: Path | None = None     # --profile: py-spy each measured window of kbroker

    @contextlib.contextmanager
    def broker(self) -> Iterator[BrokerProcess]:
        """A fresh broker for the duration of the block (stopped and removed afterwards)."""
        broker = self.spec.start()
        try:
            yield broker
        finally:
            broker.stop()

    def monitor(self, broker: BrokerProcess, label: str) -> Monitor:
        """A Monitor for the broker's timed window (profiled with py-spy when asked)."""
        profile = None
        if self.profile_dir is not None and broker.kind == "kbroker":
            name = label.replace(" ", "-")
            profile = self.profile_dir / f"{name}-run{self.run + 1}.txt"
        return Monitor(broker.pid, profile_path=profile)

    def size(self, full: int, quick: int) -> int:
        """Pick a record count (or duration) for full or quick mode."""
        return quick if self.quick else full

    def seconds(self, full: float, quick: float) -> float:
        """Pick a time cap for full or quick mode."""
        return quick if self.quick else full


def fresh_topic(prefix: str) -> str:
    """A topic name no earlier run used (external brokers keep their topics)."""
    return f"bench-{prefix}-{uuid.uuid4().hex[:8]}"


def create_topic(bootstrap: str, topic: str, partitions: int = 1) -> None:
    """Create ``topic`` with CreateTopics and wait until every partition has a leader."""
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions,
                                            replication_factor=1)],
                                  operation_timeout=TOPIC_READY_TIMEOUT_S)
    futures[topic].result(timeout=TOPIC_READY_TIMEOUT_S)
    deadline = time.monotonic() + TOPIC_READY_TIMEOUT_S
    while True:
        metadata = admin.list_topics(topic, timeout=10)
        described = metadata.topics.get(topic)
        if (described is not None and described.error is None
                and len(described.partitions) == partitions
                and all(p.leader >= 0 for p in described.partitions.values())):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topic {topic} has no leader for every partition")
        time.sleep(0.05)


@dataclass
class ProduceOutcome:
    """What one producer loop achieved."""

    sent: int                # records handed to produce() in the timed window
    failed: int              # delivery failures + records still undelivered after the flush
    seconds: float           # first produce -> flush returned
    client_cpu_seconds: float
    rtt_ms: dict[str, float]  # produce request round trips: p50_ms, p99_ms

    @property
    def acknowledged(self) -> int:
        """Records the broker acknowledged."""
        return self.sent - self.failed


class RttStats:
    """Collect librdkafka's per-window broker round-trip times from its statistics callback.

    librdkafka reports, per broker and per statistics interval, percentiles of the request
    round trip (microseconds). The figures kept are, over the windows that saw requests, the
    request-count-weighted median of each window's p50 and of its p99.
    """

    def __init__(self) -> None:
        self.windows: list[tuple[int, float, float]] = []   # (count, p50 us, p99 us)

    def __call__(self, raw: str) -> None:
        stats = json.loads(raw)
        for broker in stats.get("brokers", {}).values():
            rtt = broker.get("rtt") or {}
            if broker.get("nodeid", -1) >= 0 and rtt.get("cnt", 0) > 0:
                self.windows.append((rtt["cnt"], rtt["p50"], rtt["p99"]))

    def summary(self) -> dict[str, float]:
        """{"p50_ms": ..., "p99_ms": ...}, empty when no window saw a request."""
        if not self.windows:
            return {}
        return {"p50_ms": _weighted_median([(c, p50) for c, p50, _ in self.windows]) / 1000,
                "p99_ms": _weighted_median([(c, p99) for c, _, p99 in self.windows]) / 1000}


def _weighted_median(pairs: list[tuple[int, float]]) -> float:
    pairs = sorted(pairs, key=lambda pair: pair[1])
    half = sum(count for count, _ in pairs) / 2
    running = 0
    for count, value in pairs:
        running += count
        if running >= half:
            return value
    return pairs[-1][1]


def produce_confluent(bootstrap: str, topic: str, *, count: int, value_size: int,
                      cap_s: float, config: dict[str, object],
                      stats_interval_ms: int = 1000) -> ProduceOutcome:
    """Produce up to ``count`` records of ``value_size`` random bytes, stopping after ``cap_s``.

    Records carry no key (librdkafka spreads them over partitions). Only failed deliveries
    are reported back (``delivery.report.only.error``), so the Python side does no work per
    acknowledged record; the failures are counted exactly. One record is produced and flushed
    before the clock starts, so connection set-up (and InitProducerId) is not timed.
    """
    from confluent_kafka import KafkaError, Producer

    from benchmarks.procstat import self_cpu_seconds

    errors: list[str] = []
    failed = 0

    def delivered(err: KafkaError | None, msg: object) -> None:
        nonlocal failed
        if err is not None:
            failed += 1
            if len(errors) < 5:
                errors.append(str(err))

    rtt = RttStats()
    producer = Producer({"bootstrap.servers": bootstrap, "error_cb": _log_client_error,
                         "delivery.report.only.error": True, "on_delivery": delivered,
                         "statistics.interval.ms": stats_interval_ms, "stats_cb": rtt,
                         "log_level": CLIENT_LOG_LEVEL, **config})
    try:
        value = os.urandom(value_size)
        producer.produce(topic, value)
        if producer.flush(WARMUP_TIMEOUT_S) or failed:
            raise RuntimeError(f"warm-up record to {topic} not acknowledged within "
                               f"{WARMUP_TIMEOUT_S:.0f} s {errors or ''}")
        producer.poll(0)
        rtt.windows.clear()
        cpu_start = self_cpu_seconds()
        start = time.perf_counter()
        deadline = start + cap_s
        sent = 0
        produce = producer.produce
        while sent < count:
            try:
                produce(topic, value)
            except BufferError:
                producer.poll(0.001)  # local queue full: let librdkafka drain it
                continue
            sent += 1
            if sent % 10_000 == 0:
                producer.poll(0)
                if time.perf_counter() > deadline:
                    break
        remaining = producer.flush(FLUSH_GRACE_S)
        seconds = time.perf_counter() - start
        cpu = self_cpu_seconds() - cpu_start
        producer.poll(0)
    except SystemError as exc:
        # confluent-kafka surfaces a fatal client error (e.g. idempotence unsupported) as an
        # opaque SystemError caused by the real KafkaException: report the real one.
        if exc.__cause__ is not None:
            raise RuntimeError(f"producer failed: {exc.__cause__}") from exc
        raise
    finally:
        close_producer(producer)
    if errors:
        logger.warning("delivery errors on %s: %s", topic, errors)
    return ProduceOutcome(sent, failed + remaining, seconds, cpu, rtt.summary())


def _log_client_error(err: object) -> None:
    logger.debug("client error: %s", err)


def close_producer(producer: object) -> None:
    """Drop anything undelivered and close, so no client thread outlives its broker."""
    producer.purge()   # type: ignore[attr-defined]
    producer.close()   # type: ignore[attr-defined]


"""consume: read the records of a produce-small run back from offset 0 with confluent-kafka."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from benchmarks.measurement import Measurement
from benchmarks.procstat import self_cpu_seconds
from benchmarks.scenarios.common import CLIENT_LOG_LEVEL, Context, create_topic, fresh_topic, \
    produce_confluent
from benchmarks.scenarios.produce import SMALL_CONFIG, fill_row

logger = logging.getLogger(__name__)

VALUE_SIZE = 100
CONSUMER_CONFIG = {"queued.min.messages": 1_000_000, "fetch.queue.backoff.ms": 10,
                   "enable.auto.commit": False, "auto.offset.reset": "earliest"}


def prefill(ctx: Context, bootstrap: str, name: str) -> tuple[str, int]:
    """A fresh topic holding a produce-small run's records (untimed); returns (topic, count)."""
    topic = fresh_topic(name)
    create_topic(bootstrap, topic, 1)
    outcome = produce_confluent(bootstrap, topic, count=ctx.size(5_000_000, 50_000),
                                value_size=VALUE_SIZE, cap_s=ctx.seconds(20, 2),
                                config=SMALL_CONFIG)
    if outcome.failed:
        raise RuntimeError(f"prefill: {outcome.failed} records not acknowledged")
    return topic, outcome.acknowledged + 1  # + the warm-up record


@dataclass
class ConsumeOutcome:
    """What one consumer read achieved."""

    total: int             # records read
    timed: int             # records read after the first batch (the rate window)
    errors: int
    seconds: float         # first batch -> last record
    client_cpu_seconds: float
    first_record_seconds: float   # assign -> first batch (connection and fetch set-up)


def consume_confluent(bootstrap: str, topic: str, count: int, cap_s: float) -> ConsumeOutcome:
    """Read ``count`` records from partition 0, offset 0.

    The rate window starts when the first batch arrives and counts the records after it, so
    connection set-up is not part of the rate (it is reported as ``first_record_seconds``).
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"{topic}-reader",
                         "log_level": CLIENT_LOG_LEVEL, **CONSUMER_CONFIG})
    try:
        start = time.perf_counter()
        consumer.assign([TopicPartition(topic, 0, 0)])
        deadline = start + cap_s
        records = errors = first_batch = 0
        first_at = cpu_start = 0.0
        while records < count and time.perf_counter() < deadline:
            # consume() waits for num_messages or the timeout: never ask for more than is left.
            batch = consumer.consume(num_messages=min(10_000, count - records), timeout=1.0)
            failed = sum(1 for message in batch if message.error() is not None)
            if failed:
                errors += failed
                logger.warning("consume errors: %s",
                               [str(m.error()) for m in batch if m.error()][:3])
            records += len(batch) - failed
            if not first_batch and records:
                first_at, cpu_start, first_batch = time.perf_counter(), self_cpu_seconds(), records
        end = time.perf_counter()
        if not first_batch:
            return ConsumeOutcome(0, 0, errors, end - start, 0.0, end - start)
        return ConsumeOutcome(records, records - first_batch, errors, end - first_at,
                              self_cpu_seconds() - cpu_start, first_at - start)
    finally:
        consumer.close()


def run(ctx: Context) -> list[Measurement]:
    """Consume the 5M records of produce-small (queued.min.messages=1000000,
    fetch.queue.backoff.ms=10)."""
    row = Measurement("consume", ctx.spec.name, ctx.run)
    with ctx.broker() as broker:
        topic, stored = prefill(ctx, broker.bootstrap, "consume")
        with ctx.monitor(broker, row.scenario) as monitor:
            outcome = consume_confluent(broker.bootstrap, topic, stored, ctx.seconds(120, 20))
        fill_row(row, outcome.timed, VALUE_SIZE, outcome.seconds, outcome.client_cpu_seconds)
        row.add_usage(monitor.usage, outcome.total)
        row.metrics.update(errors=outcome.errors, stored=stored,
                           first_record_ms=outcome.first_record_seconds * 1000.0)
        if outcome.errors or outcome.total != stored:
            row.error = f"read {outcome.total} of {stored} records, {outcome.errors} errors"
    return [row]

"""kafka-python-produce: produce-small with kafka-python (acks=1, linger 5 ms, batch 1 MB,
no compression, 5M records or 20 s)."""

from __future__ import annotations

import logging
import os
import time

from benchmarks.measurement import Measurement
from benchmarks.procstat import self_cpu_seconds
from benchmarks.scenarios.common import Context, create_topic, fresh_topic
from benchmarks.scenarios.produce import fill_row

logger = logging.getLogger(__name__)

VALUE_SIZE = 100
FLUSH_TIMEOUT_S = 60.0


def run(ctx: Context) -> list[Measurement]:
    """Send until the count or the cap, flush, then count what the broker stored."""
    from kafka import KafkaProducer

    row = Measurement("kafka-python-produce", ctx.spec.name, ctx.run)
    count = ctx.size(5_000_000, 20_000)
    cap_s = ctx.seconds(20, 2)
    with ctx.broker() as broker:
        topic = fresh_topic("kpy")
        create_topic(broker.bootstrap, topic, 1)
        producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks=1, linger_ms=5,
                                 batch_size=1_000_000, compression_type=None,
                                 enable_idempotence=False)
        failures: list[BaseException] = []
        try:
            value = os.urandom(VALUE_SIZE)
            # Connection and metadata set-up outside the timed window.
            producer.send(topic, value).get(timeout=30)
            send = producer.send
            cpu_start = self_cpu_seconds()
            with ctx.monitor(broker, row.scenario) as monitor:
                start = time.perf_counter()
                deadline = start + cap_s
                sent = 0
                while sent < count:
                    send(topic, value).add_errback(failures.append)
                    sent += 1
                    if sent % 10_000 == 0 and time.perf_counter() > deadline:
                        break
                producer.flush(FLUSH_TIMEOUT_S)
                seconds = time.perf_counter() - start
            cpu = self_cpu_seconds() - cpu_start
        finally:
            producer.close(timeout=10)
        acknowledged = sent - len(failures)
        fill_row(row, acknowledged, VALUE_SIZE, seconds, cpu)
        row.metrics.update(sent=sent, failed=len(failures))
        row.add_usage(monitor.usage, acknowledged)
        if failures:
            row.error = f"{len(failures)} of {sent} not acknowledged: {failures[:3]}"
    return [row]

"""produce-small, produce-large, produce-idempotent: confluent-kafka into one partition."""

from __future__ import annotations

import logging
from typing import Callable

from benchmarks.brokers import BrokerProcess

from benchmarks.measurement import MB, Measurement
from benchmarks.scenarios.common import Context, create_topic, fresh_topic, produce_confluent

logger = logging.getLogger(__name__)

SMALL_CONFIG = {"acks": "1", "linger.ms": 5, "batch.size": 1_000_000,
                "compression.type": "none"}
IDEMPOTENT_CONFIG = {**SMALL_CONFIG, "enable.idempotence": True, "acks": "all"}
LARGE_CONFIG = {**SMALL_CONFIG, "acks": "all"}


def produce_scenario(ctx: Context, name: str, *, config: dict[str, object], count: int,
                     value_size: int, cap_s: float, partitions: int = 1,
                     after: Callable[[BrokerProcess, str, Measurement], None] | None = None
                     ) -> Measurement:
    """Produce into a fresh topic on a fresh broker and measure it.

    Latency figures are librdkafka's produce request round trips (statistics callback).

    ``after(broker, topic, row)`` runs while the broker is still up (many-partitions uses it
    to time a Metadata request).
    """
    row = Measurement(name, ctx.spec.name, ctx.run)
    with ctx.broker() as broker:
        topic = fresh_topic(name)
        create_topic(broker.bootstrap, topic, partitions)
        with ctx.monitor(broker, name) as monitor:
            outcome = produce_confluent(broker.bootstrap, topic, count=count,
                                        value_size=value_size, cap_s=cap_s, config=config,
                                        stats_interval_ms=100 if ctx.quick else 1000)
        acknowledged = outcome.acknowledged
        fill_row(row, acknowledged, value_size, outcome.seconds, outcome.client_cpu_seconds)
        row.metrics["sent"] = outcome.sent
        row.metrics["failed"] = outcome.failed
        row.metrics.update(outcome.rtt_ms)
        row.add_usage(monitor.usage, acknowledged)
        if outcome.failed:
            row.error = f"{outcome.failed} of {outcome.sent} records were not acknowledged"
        if after is not None:
            after(broker, topic, row)
    return row


def fill_row(row: Measurement, records: int, value_size: int, seconds: float,
             client_cpu_seconds: float) -> None:
    """Records, rate, payload MB/s and client CPU % of a throughput scenario."""
    row.metrics["records"] = records
    row.metrics["seconds"] = seconds
    row.metrics["rate"] = records / seconds if seconds > 0 else 0.0
    row.metrics["mb_s"] = records * value_size / MB / seconds if seconds > 0 else 0.0
    row.metrics["client_cpu_pct"] = 100.0 * client_cpu_seconds / seconds if seconds > 0 else 0.0


def run_small(ctx: Context) -> list[Measurement]:
    """100-byte values, acks=1, linger.ms=5, batch.size=1000000, 5M records or 20 s."""
    return [produce_scenario(ctx, "produce-small", config=SMALL_CONFIG,
                             count=ctx.size(5_000_000, 50_000), value_size=100,
                             cap_s=ctx.seconds(20, 2))]


def run_large(ctx: Context) -> list[Measurement]:
    """10 KB values, acks=all, 200k records (2 GB)."""
    return [produce_scenario(ctx, "produce-large", config=LARGE_CONFIG,
                             count=ctx.size(200_000, 2_000), value_size=10_000,
                             cap_s=ctx.seconds(120, 2))]


def run_idempotent(ctx: Context) -> list[Measurement]:
    """As produce-small with enable.idempotence=true and acks=all."""
    return [produce_scenario(ctx, "produce-idempotent", config=IDEMPOTENT_CONFIG,
                             count=ctx.size(5_000_000, 50_000), value_size=100,
                             cap_s=ctx.seconds(20, 2))]

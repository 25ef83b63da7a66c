"""many-partitions: produce-small spread over a 1,000-partition topic, then a Metadata request
for that topic, and the broker's open file descriptors afterwards."""

from __future__ import annotations

import logging
import statistics
import time

from benchmarks.brokers import BrokerProcess
from benchmarks.measurement import Measurement
from benchmarks.procstat import open_fds
from benchmarks.scenarios.common import Context
from benchmarks.scenarios.produce import SMALL_CONFIG, produce_scenario
from benchmarks.wire import WireConnection, metadata_body
from protocol import ApiKey

logger = logging.getLogger(__name__)

METADATA_VERSION = 12
METADATA_REPEATS = 10


def time_metadata(broker: BrokerProcess, topic: str, partitions: int) -> list[float]:
    """Milliseconds per Metadata request for ``topic`` on one warm connection."""
    timings = []
    with WireConnection(broker.host, broker.port) as conn:
        for _ in range(METADATA_REPEATS):
            start = time.perf_counter()
            response = conn.request(ApiKey.METADATA, METADATA_VERSION, metadata_body([topic]))
            timings.append((time.perf_counter() - start) * 1000.0)
        described = response["topics"][0]
        if described["error_code"] != 0 or len(described["partitions"]) != partitions:
            raise AssertionError(f"Metadata for {topic}: error {described['error_code']}, "
                                 f"{len(described['partitions'])} partitions")
    return timings


def run(ctx: Context) -> list[Measurement]:
    """produce-small over all partitions of one topic; then Metadata latency and open fds."""
    partitions = ctx.size(1000, 50)

    def after(broker: BrokerProcess, topic: str, row: Measurement) -> None:
        timings = time_metadata(broker, topic, partitions)
        row.metrics["metadata_ms"] = statistics.median(timings)
        row.metrics["metadata_first_ms"] = timings[0]
        row.metrics["partitions"] = partitions
        if broker.pid is not None:
            row.metrics["open_fds"] = open_fds(broker.pid)

    return [produce_scenario(ctx, "many-partitions", config=SMALL_CONFIG,
                             count=ctx.size(5_000_000, 50_000), value_size=100,
                             cap_s=ctx.seconds(20, 2), partitions=partitions, after=after)]

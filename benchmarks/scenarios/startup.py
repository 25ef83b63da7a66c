"""startup: spawn the broker process until a Metadata request is answered (5 spawns), and the
idle RSS right after."""

from __future__ import annotations

import logging
import statistics
import time

from benchmarks.brokers import free_port
from benchmarks.measurement import MB, Measurement
from benchmarks.procstat import rss_bytes
from benchmarks.scenarios.common import Context
from benchmarks.wire import WireConnection, metadata_body
from protocol import ApiKey

logger = logging.getLogger(__name__)

SPAWNS = 5
METADATA_VERSION = 12
DEADLINE_S = 30.0


def first_metadata(host: str, port: int, started: float) -> float:
    """Poll connect + Metadata until answered; seconds since ``started``."""
    deadline = time.monotonic() + DEADLINE_S
    while True:
        try:
            with WireConnection(host, port, timeout_s=5) as conn:
                conn.request(ApiKey.METADATA, METADATA_VERSION, metadata_body(None))
                return time.perf_counter() - started
        except (ConnectionError, OSError):
            if time.monotonic() > deadline:
                raise
            time.sleep(0.001)


def run(ctx: Context) -> list[Measurement]:
    """Median spawn -> first answered Metadata over 5 spawns, and idle RSS."""
    row = Measurement("startup", ctx.spec.name, ctx.run)
    if not ctx.spec.spawnable:
        row.error = "startup needs a broker the harness can spawn"
        return [row]
    timings_ms = []
    idle_rss = []
    for _ in range(ctx.size(SPAWNS, 2)):
        # A known port, so the clock starts at spawn and the probe needs no ready line.
        port = free_port()
        started = time.perf_counter()
        broker = ctx.spec.start(port=port, wait=False)
        try:
            timings_ms.append(first_metadata(broker.host, broker.port, started) * 1000.0)
            if broker.pid is not None:
                idle_rss.append(rss_bytes(broker.pid))
        finally:
            broker.stop()
    row.metrics["startup_ms"] = statistics.median(timings_ms)
    row.metrics["startup_min_ms"] = min(timings_ms)
    row.metrics["startup_max_ms"] = max(timings_ms)
    if idle_rss:
        row.metrics["rss_idle_mb"] = statistics.median(idle_rss) / MB
    return [row]

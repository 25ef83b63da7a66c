"""The benchmark scenarios, one module per concern, registered by name in ``SCENARIOS``.

Each scenario is ``run(ctx: Context) -> list[Measurement]``; it starts its own fresh
broker(s) through ``ctx`` so that no scenario sees another's data or memory.
"""

from __future__ import annotations

from typing import Callable

from benchmarks.measurement import Measurement
from benchmarks.scenarios import connections, consume, java, kafka_python, latency, \
    partitions, produce, request_rate, startup
from benchmarks.scenarios.common import Context

Scenario = Callable[[Context], list[Measurement]]

# Order matters for "all": cheap, informative scenarios first.
SCENARIOS: dict[str, Scenario] = {
    "startup": startup.run,
    "connections": connections.run,
    "request-rate": request_rate.run,
    "produce-small": produce.run_small,
    "produce-large": produce.run_large,
    "produce-idempotent": produce.run_idempotent,
    "consume": consume.run,
    "e2e-latency": latency.run,
    "many-partitions": partitions.run,
    "kafka-python-produce": kafka_python.run,
    "java-produce": java.run_produce,
    "java-consume": java.run_consume,
}

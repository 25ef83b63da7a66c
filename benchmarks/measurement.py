"""One measured row of a benchmark run, and the percentile helper every scenario uses."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from benchmarks.procstat import Usage

MB = 1_000_000


def percentile(samples: Sequence[float], fraction: float) -> float | None:
    """The nearest-rank percentile (``fraction`` in 0..1) of ``samples``; None when empty."""
    if not samples:
        return None
    ordered = sorted(samples)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Measurement:
    """A row: one scenario (or sub-case such as ``request-rate 1x5``) on one broker, one run.

    ``metrics`` holds plain floats keyed by name; the common keys are ``rate`` (records or
    requests per second), ``mb_s``, ``p50_ms``/``p99_ms``/``p999_ms``, ``broker_cpu_pct``,
    ``broker_cpu_us_per_record``, ``client_cpu_pct``, ``rss_idle_mb``, ``rss_peak_mb``.
    """

    scenario: str
    broker: str
    run: int
    metrics: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def add_usage(self, usage: Usage | None, records: int) -> None:
        """Fold the broker's CPU and RSS over the timed window into the metrics."""
        if usage is None:
            return
        self.metrics["broker_cpu_pct"] = usage.cpu_percent
        if usage.wall_seconds > 0:
            self.metrics["broker_sys_pct"] = 100.0 * usage.system_cpu_seconds / usage.wall_seconds
        if records > 0:
            self.metrics["broker_cpu_us_per_record"] = usage.cpu_seconds * 1e6 / records
        self.metrics["rss_idle_mb"] = usage.rss_start_bytes / MB
        self.metrics["rss_peak_mb"] = usage.rss_peak_bytes / MB

    def add_latencies(self, latencies_ms: Sequence[float]) -> None:
        """Add p50, p99 and p99.9 of the given latencies (milliseconds)."""
        for key, fraction in (("p50_ms", 0.5), ("p99_ms", 0.99), ("p999_ms", 0.999)):
            value = percentile(latencies_ms, fraction)
            if value is not None:
                self.metrics[key] = value

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict."""
        return asdict(self)

"""Turn measurements into text: one line per run, medians with min-max side by side with the
ratio, and JSON."""

from __future__ import annotations

import argparse
import json
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

from benchmarks.measurement import Measurement

# Lower is better for these; for everything else (rates, MB/s, counts) higher is better.
LOWER_IS_BETTER_SUFFIXES = ("_ms", "_pct", "_us_per_record", "_mb", "_kb_per_conn", "open_fds")

THROUGHPUT = ["rate", "mb_s", "p50_ms", "p99_ms", "broker_cpu_us_per_record", "broker_cpu_pct",
              "broker_sys_pct", "client_cpu_pct", "rss_idle_mb", "rss_peak_mb"]
TABLE_METRICS: dict[str, list[str]] = {
    "startup": ["startup_ms", "rss_idle_mb"],
    "connections": ["records", "rss_kb_per_conn", "rss_peak_mb"],
    "request-rate": ["rate", "p50_ms", "p99_ms", "broker_cpu_us_per_record", "broker_cpu_pct",
                     "broker_sys_pct", "client_cpu_pct"],
    "e2e-latency": ["p50_ms", "p99_ms", "p999_ms", "records", "broker_cpu_pct"],
    "many-partitions": THROUGHPUT + ["metadata_ms", "open_fds"],
}
# The one figure per scenario that the chart and the headline ratio use.
PRIMARY: dict[str, str] = {"startup": "startup_ms", "connections": "rss_kb_per_conn",
                           "e2e-latency": "p50_ms"}

LABELS = {"rate": "rate /s", "mb_s": "MB/s", "p50_ms": "p50 ms", "p99_ms": "p99 ms",
          "p999_ms": "p99.9 ms", "broker_cpu_us_per_record": "broker us/record",
          "broker_cpu_pct": "broker CPU %", "broker_sys_pct": "of which kernel %",
          "client_cpu_pct": "client CPU %",
          "rss_idle_mb": "RSS idle MB", "rss_peak_mb": "RSS peak MB",
          "startup_ms": "startup ms", "rss_kb_per_conn": "RSS KB/conn",
          "records": "records", "metadata_ms": "Metadata ms", "open_fds": "open fds"}


def family(scenario: str) -> str:
    """``request-rate 1x5`` -> ``request-rate``."""
    return scenario.split(" ", 1)[0]


def metrics_for(scenario: str) -> list[str]:
    """The metrics shown for a scenario in the side-by-side table."""
    return TABLE_METRICS.get(family(scenario), THROUGHPUT)


def primary_metric(scenario: str) -> str:
    """The headline metric of a scenario."""
    return PRIMARY.get(family(scenario), "rate")


def lower_is_better(metric: str) -> bool:
    """True for latencies, CPU and memory figures."""
    return metric.endswith(LOWER_IS_BETTER_SUFFIXES)


def fmt(value: float | None) -> str:
    """Compact human formatting: thousands separators for big numbers, 3 significant digits."""
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def line(row: Measurement) -> str:
    """One line for one run of one scenario."""
    m = row.metrics
    parts = [f"{row.scenario:<22} {row.broker:<8} run {row.run + 1}:"]
    if "rate" in m:
        parts.append(f"{fmt(m['rate'])} rec/s")
    if "mb_s" in m:
        parts.append(f"{fmt(m['mb_s'])} MB/s")
    if "p50_ms" in m:
        parts.append(f"p50/p99/p99.9 {fmt(m.get('p50_ms'))}/{fmt(m.get('p99_ms'))}/"
                     f"{fmt(m.get('p999_ms'))} ms")
    if "broker_cpu_pct" in m:
        parts.append(f"broker CPU {fmt(m['broker_cpu_pct'])}% (sys {fmt(m.get('broker_sys_pct'))}%)"
                     f" {fmt(m.get('broker_cpu_us_per_record'))} us/rec")
    if "client_cpu_pct" in m:
        parts.append(f"client CPU {fmt(m['client_cpu_pct'])}%")
    if "rss_idle_mb" in m:
        parts.append(f"RSS idle {fmt(m['rss_idle_mb'])} MB peak {fmt(m.get('rss_peak_mb'))} MB")
    shown = {"rate", "mb_s", "p50_ms", "p99_ms", "p999_ms", "broker_cpu_pct", "broker_sys_pct",
             "broker_cpu_us_per_record", "client_cpu_pct", "rss_idle_mb", "rss_peak_mb",
             "seconds", "sent", "failed", "errors"}
    extra = [f"{key}={fmt(value)}" for key, value in m.items() if key not in shown]
    if extra:
        parts.append(" ".join(extra))
    if row.error:
        parts.append(f"ERROR: {row.error}")
    return "  ".join(parts)


@dataclass(frozen=True)
class Stat:
    """Median, min and max of one metric over the runs."""

    median: float
    low: float
    high: float
    runs: int

    def __str__(self) -> str:
        if self.runs == 1 or self.low == self.high:
            return fmt(self.median)
        return f"{fmt(self.median)} ({fmt(self.low)}-{fmt(self.high)})"


def summarise(rows: Iterable[Measurement]) -> dict[tuple[str, str], dict[str, Stat]]:
    """(scenario, broker) -> metric -> Stat over runs that finished without error."""
    values: dict[tuple[str, str], dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        if row.error is not None:
            continue
        for key, value in row.metrics.items():
            values[(row.scenario, row.broker)][key].append(value)
    return {group: {key: Stat(statistics.median(v), min(v), max(v), len(v))
                    for key, v in metrics.items()}
            for group, metrics in values.items()}


def ratio(ours: float | None, theirs: float | None) -> float | None:
    """ours / theirs, or None when undefined."""
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


def side_by_side(rows: Sequence[Measurement], brokers: Sequence[str]) -> str:
    """A Markdown table: scenario, metric, median (min-max) per broker, first/second ratio."""
    stats = summarise(rows)
    scenarios = list(dict.fromkeys(row.scenario for row in rows))
    header = ["scenario", "metric", *brokers]
    if len(brokers) == 2:
        header.append(f"{brokers[0]}/{brokers[1]}")
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for scenario in scenarios:
        for metric in metrics_for(scenario):
            cells = []
            medians = []
            for broker in brokers:
                stat = stats.get((scenario, broker), {}).get(metric)
                cells.append(str(stat) if stat else "-")
                medians.append(stat.median if stat else None)
            if all(cell == "-" for cell in cells):
                continue
            if len(brokers) == 2:
                r = ratio(medians[0], medians[1])
                cells.append("-" if r is None else f"{r:.2f}x" if r >= 0.1 else f"{r:.3f}x")
            out.append(f"| {scenario} | {LABELS.get(metric, metric)} | " + " | ".join(cells) + " |")
    errors = [row for row in rows if row.error]
    for row in errors:
        out.append(f"\n{row.scenario} on {row.broker} run {row.run + 1} failed: {row.error}")
    notes = own_ratio_notes(stats, brokers)
    if notes:
        out.append("")
        out.extend(notes)
    return "\n".join(out)


def own_ratio_notes(stats: dict[tuple[str, str], dict[str, Stat]],
                    brokers: Sequence[str]) -> list[str]:
    """Ratios a broker is judged against itself on (many-partitions vs produce-small)."""
    notes = []
    for broker in brokers:
        many = stats.get(("many-partitions", broker), {}).get("rate")
        one = stats.get(("produce-small", broker), {}).get("rate")
        if many and one and one.median > 0:
            notes.append(f"{broker}: many-partitions rate is {many.median / one.median:.2f}x "
                         f"its produce-small rate")
    return notes


def advantages(rows: Sequence[Measurement], ours: str, theirs: str
               ) -> list[tuple[str, str, float]]:
    """(scenario, metric, advantage) on each primary metric; > 1 means ``ours`` is better."""
    stats = summarise(rows)
    result = []
    for scenario in dict.fromkeys(row.scenario for row in rows):
        metric = primary_metric(scenario)
        a = stats.get((scenario, ours), {}).get(metric)
        b = stats.get((scenario, theirs), {}).get(metric)
        if a is None or b is None or a.median == 0 or b.median == 0:
            continue
        value = b.median / a.median if lower_is_better(metric) else a.median / b.median
        result.append((scenario, metric, value))
    return result


def to_json(rows: Sequence[Measurement], meta: dict[str, Any]) -> dict[str, Any]:
    """Everything measured, plus the environment, as one JSON document."""
    stats = summarise(rows)
    return {
        "meta": meta,
        "runs": [row.to_json() for row in rows],
        "medians": [{"scenario": scenario, "broker": broker,
                     "metrics": {k: {"median": s.median, "min": s.low, "max": s.high,
                                     "runs": s.runs} for k, s in metrics.items()}}
                    for (scenario, broker), metrics in stats.items()],
    }


def load(path: str | Path) -> tuple[list[Measurement], dict[str, Any]]:
    """Rows and meta back from a ``--json`` file."""
    data = json.loads(Path(path).read_text())
    return [Measurement(**row) for row in data["runs"]], data.get("meta", {})


def main(argv: list[str] | None = None) -> None:
    """``python -m benchmarks.report FILE.json [--chart PNG]``: the table (and chart) again."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report")
    parser.add_argument("file", type=Path)
    parser.add_argument("--chart", type=Path, default=None)
    args = parser.parse_args(argv)
    rows, meta = load(args.file)
    brokers = list(dict.fromkeys(row.broker for row in rows))
    print(json.dumps(meta, indent=1))
    print(side_by_side(rows, brokers))
    if len(brokers) == 2:
        from benchmarks.targets import target_table
        print()
        print(target_table(rows, brokers[0], brokers[1]))
    if args.chart and len(brokers) == 2:
        from benchmarks.chart import write_chart
        write_chart(rows, brokers[0], brokers[1], args.chart)


if __name__ == "__main__":
    main()

"""Issue 8's targets, checked against measured medians: one Markdown row per target with the
figure measured and whether it is met."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

from benchmarks.measurement import Measurement
from benchmarks.report import Stat, fmt, summarise

Stats = dict[tuple[str, str], dict[str, Stat]]


@dataclass(frozen=True)
class Target:
    """One line of the issue's target table."""

    scenario: str
    text: str
    # (stats, ours, theirs) -> (measured text, met) or None when not measured
    check: Callable[[Stats, str, str], tuple[str, bool] | None]


def _median(stats: Stats, scenario: str, broker: str, metric: str) -> float | None:
    stat = stats.get((scenario, broker), {}).get(metric)
    return stat.median if stat else None


def _ratio_and_cpu(scenario: str, minimum: float, cpu_us: float | None) -> Target:
    def check(stats: Stats, ours: str, theirs: str) -> tuple[str, bool] | None:
        a, b = _median(stats, scenario, ours, "rate"), _median(stats, scenario, theirs, "rate")
        if a is None or b is None or b == 0:
            return None
        text, met = f"{a / b:.2f}x ({fmt(a)} vs {fmt(b)} /s)", a / b >= minimum
        cpu = _median(stats, scenario, ours, "broker_cpu_us_per_record")
        if cpu_us is not None and cpu is not None:
            text += f", {cpu:.2f} us/record"
            met = met and cpu <= cpu_us
        return text, met
    wording = f">= {minimum}x {{theirs}}"
    if cpu_us is not None:
        wording += f", broker CPU <= {cpu_us} us/record"
    return Target(scenario, wording, check)


def _at_most(scenario: str, metric: str, limit: float, unit: str) -> Target:
    def check(stats: Stats, ours: str, theirs: str) -> tuple[str, bool] | None:
        value = _median(stats, scenario, ours, metric)
        return None if value is None else (f"{fmt(value)} {unit}", value <= limit)
    return Target(scenario, f"{metric} <= {fmt(limit)} {unit}", check)


def _large(stats: Stats, ours: str, theirs: str) -> tuple[str, bool] | None:
    a, b = (_median(stats, "produce-large", broker, "mb_s") for broker in (ours, theirs))
    peak = _median(stats, "produce-large", ours, "rss_peak_mb")
    if a is None or b is None or b == 0 or peak is None:
        return None
    return (f"{a / b:.2f}x ({fmt(a)} vs {fmt(b)} MB/s), RSS peak {fmt(peak)} MB",
            a / b >= 1.5 and peak <= 250)


def _many(stats: Stats, ours: str, theirs: str) -> tuple[str, bool] | None:
    many = _median(stats, "many-partitions", ours, "rate")
    one = _median(stats, "produce-small", ours, "rate")
    metadata = _median(stats, "many-partitions", ours, "metadata_ms")
    fds = _median(stats, "many-partitions", ours, "open_fds")
    partitions = _median(stats, "many-partitions", ours, "partitions")
    if many is None or one is None or metadata is None:
        return None
    # "Bounded": fewer descriptors than partitions, i.e. segments are not all held open.
    bounded = fds is not None and partitions is not None and fds < partitions
    return (f"{many / one:.2f}x own produce-small, Metadata {fmt(metadata)} ms, "
            f"{fmt(fds)} open fds", many / one >= 0.7 and metadata < 20 and bounded)


def _connections(stats: Stats, ours: str, theirs: str) -> tuple[str, bool] | None:
    answered = _median(stats, "connections", ours, "records")
    wanted = _median(stats, "connections", ours, "connections")
    per_conn = _median(stats, "connections", ours, "rss_kb_per_conn")
    if answered is None or per_conn is None:
        return None
    return (f"{fmt(answered)} of {fmt(wanted)} answered, {per_conn:.1f} KB/conn",
            answered == wanted and per_conn <= 30)


def _startup(stats: Stats, ours: str, theirs: str) -> tuple[str, bool] | None:
    ms = _median(stats, "startup", ours, "startup_ms")
    rss = _median(stats, "startup", ours, "rss_idle_mb")
    if ms is None or rss is None:
        return None
    return f"{fmt(ms)} ms, idle RSS {fmt(rss)} MB", ms <= 250 and rss <= 60


def _e2e(stats: Stats, ours: str, theirs: str) -> tuple[str, bool] | None:
    p50 = _median(stats, "e2e-latency", ours, "p50_ms")
    p99 = _median(stats, "e2e-latency", ours, "p99_ms")
    if p50 is None or p99 is None:
        return None
    return f"p50 {fmt(p50)} ms, p99 {fmt(p99)} ms", p50 <= 2 and p99 <= 10


TARGETS: list[Target] = [
    _ratio_and_cpu("produce-small", 1.0, 0.3),
    _ratio_and_cpu("produce-idempotent", 1.0, 0.3),
    _ratio_and_cpu("consume", 1.0, 0.3),
    _ratio_and_cpu("java-produce", 1.0, 0.3),
    _ratio_and_cpu("java-consume", 1.0, 0.3),
    _ratio_and_cpu("kafka-python-produce", 1.0, 0.3),
    Target("produce-large", ">= 1.5x {theirs} MB/s, RSS peak <= 250 MB", _large),
    Target("e2e-latency", "p50 <= 2 ms, p99 <= 10 ms", _e2e),
    _ratio_and_cpu("request-rate 1x1", 1.0, None),
    _ratio_and_cpu("request-rate 1x5", 1.0, None),
    _ratio_and_cpu("request-rate 4x5", 0.8, None),
    Target("many-partitions", ">= 0.7x own produce-small, Metadata < 20 ms, fds bounded",
           _many),
    Target("connections", "all answered, <= 30 KB RSS per idle connection", _connections),
    Target("startup", "<= 250 ms to first Metadata, idle RSS <= 60 MB", _startup),
]


def target_table(rows: Sequence[Measurement], ours: str, theirs: str) -> str:
    """A Markdown table: scenario, target, measured (medians), met / MISSED / not measured."""
    stats = summarise(rows)
    scenarios = {row.scenario for row in rows}
    out = ["| scenario | target | measured | |", "|---|---|---|---|"]
    for target in TARGETS:
        if target.scenario not in scenarios:
            continue
        result = target.check(stats, ours, theirs)
        measured, verdict = ("-", "not measured") if result is None else (
            result[0], "met" if result[1] else "MISSED")
        out.append(f"| {target.scenario} | {target.text.format(theirs=theirs)} | {measured} "
                   f"| {verdict} |")
    return "\n".join(out)

"""A PNG bar chart of kbroker's advantage over the peer on each scenario's headline metric."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from benchmarks.measurement import Measurement
from benchmarks.report import LABELS, advantages

logger = logging.getLogger(__name__)


def write_chart(rows: Sequence[Measurement], ours: str, theirs: str, path: Path) -> bool:
    """Draw one bar per scenario (advantage > 1: ``ours`` better); False if nothing to draw."""
    import matplotlib
    matplotlib.use("Agg")  # no display on the benchmark machine
    import matplotlib.pyplot as plt

    data = advantages(rows, ours, theirs)
    if not data:
        return False
    labels = [f"{scenario} ({LABELS.get(metric, metric)})" for scenario, metric, _ in data]
    values = [value for _, _, value in data]
    fig, ax = plt.subplots(figsize=(8, 0.4 * len(data) + 1.5))
    colors = ["tab:green" if value >= 1 else "tab:red" for value in values]
    # Bars grow from 1.0 (parity) towards the ratio, on a log axis so 2x and 0.5x look alike.
    ax.barh(labels, [value - 1.0 for value in values], left=1.0, color=colors)
    ax.axvline(1.0, color="black", linewidth=1)
    ax.set_xscale("log")
    low, high = min(values + [1.0]) / 1.6, max(values + [1.0]) * 1.6
    ax.set_xlim(low, high)
    ticks = [t for t in (0.05, 0.1, 0.25, 0.5, 1, 2, 4, 10, 20, 50) if low <= t <= high]
    ax.set_xticks(ticks, [f"{t:g}x" for t in ticks])
    ax.minorticks_off()
    ax.invert_yaxis()
    ax.set_xlabel(f"{ours} vs {theirs} (>1: {ours} better; medians; log scale)")
    for index, value in enumerate(values):
        ax.text(value, index, f" {value:.2f}x ", va="center", fontsize=8,
                ha="left" if value >= 1 else "right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    logger.info("chart written to %s", path)
    return True

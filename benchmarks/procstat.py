"""Broker process figures from /proc: CPU time, resident memory, open file descriptors.

A broker may fork helpers later (the issue suggests a second process as one way to scale),
so every figure here covers the process and all its descendants.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from benchmarks.profile import PySpy

logger = logging.getLogger(__name__)

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def descendants(pid: int) -> list[int]:
    """Return ``pid`` and every live descendant (via /proc/<pid>/task/*/children)."""
    found = [pid]
    index = 0
    while index < len(found):
        current = found[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{current}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{current}/task/{task}/children") as handle:
                    found.extend(int(child) for child in handle.read().split())
            except OSError:
                continue
    return found


def cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of one process (fields 14 and 15 of /proc/<pid>/stat)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            raw = handle.read()
    except OSError:
        return 0.0, 0.0
    # The command name (field 2) may contain spaces and parentheses: split after the last ")".
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of one process."""
    return sum(cpu_split(pid))


def tree_cpu_split(pid: int) -> tuple[float, float]:
    """(user, system) CPU seconds of ``pid`` and its live descendants."""
    splits = [cpu_split(each) for each in descendants(pid)]
    return sum(user for user, _ in splits), sum(system for _, system in splits)


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of ``pid`` and its live descendants."""
    return sum(tree_cpu_split(pid))


def _status_kb(pid: int, key: str) -> int:
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_bytes(pid: int) -> int:
    """Resident set size (VmRSS) of ``pid`` and its live descendants, in bytes."""
    return 1024 * sum(_status_kb(each, "VmRSS:") for each in descendants(pid))


def peak_rss_bytes(pid: int) -> int:
    """High-water resident size (VmHWM) of the main process since it started, in bytes."""
    return 1024 * _status_kb(pid, "VmHWM:")


def open_fds(pid: int) -> int:
    """Number of open file descriptors of ``pid`` and its live descendants."""
    total = 0
    for each in descendants(pid):
        try:
            total += len(os.listdir(f"/proc/{each}/fd"))
        except OSError:
            continue
    return total


def self_cpu_seconds() -> float:
    """CPU seconds of this (client) process, all threads: librdkafka's included."""
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class Usage:
    """What a process used over a measured window."""

    wall_seconds: float
    cpu_seconds: float
    rss_start_bytes: int
    rss_peak_bytes: int
    system_cpu_seconds: float = 0.0   # the kernel's share of cpu_seconds (syscalls, copies)

    @property
    def cpu_percent(self) -> float:
        """CPU time over wall time, in percent of one core."""
        return 100.0 * self.cpu_seconds / self.wall_seconds if self.wall_seconds > 0 else 0.0


class Monitor:
    """Measure a broker's CPU and peak RSS over a window, sampling RSS in a thread.

    Use as a context manager around the timed part of a scenario; ``usage`` is set on exit.
    With ``pid=None`` (a broker given as HOST:PORT) nothing is measured and ``usage`` is None.
    """

    def __init__(self, pid: int | None, interval_s: float = 0.02,
                 profile_path: Path | None = None) -> None:
        self.pid = pid
        self.profile_path = profile_path
        self._profiler: "PySpy | None" = None
        self.interval_s = interval_s
        self.usage: Usage | None = None
        self._stop = threading.Event()
        self._peak = 0
        self._thread: threading.Thread | None = None

    def _sample(self) -> None:
        assert self.pid is not None
        while not self._stop.wait(self.interval_s):
            self._peak = max(self._peak, rss_bytes(self.pid))

    def __enter__(self) -> "Monitor":
        if self.pid is not None:
            self._rss_start = rss_bytes(self.pid)
            self._peak = self._rss_start
            self._cpu_start = tree_cpu_split(self.pid)
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
            if self.profile_path is not None:
                from benchmarks.profile import PySpy
                self._profiler = PySpy(self.pid, self.profile_path)
        self._wall_start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        wall = time.perf_counter() - self._wall_start
        if self.pid is None:
            return
        if self._profiler is not None:
            self._profiler.stop()
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        # Sampling can miss a short spike; VmHWM cannot, and a fresh broker is started per
        # scenario, so its lifetime high-water mark is the scenario's peak.
        peak = max(self._peak, rss_bytes(self.pid), peak_rss_bytes(self.pid))
        user, system = tree_cpu_split(self.pid)
        self.usage = Usage(wall, user + system - sum(self._cpu_start), self._rss_start, peak,
                           system - self._cpu_start[1])

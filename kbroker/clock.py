"""Injectable clocks: wall time for timestamps, monotonic time for deadlines.

Production code asks a `Clock` instead of calling `time` directly so that tests can drive
time (`ManualClock`) and trio code can run under `trio.testing.MockClock` (the monotonic
side follows `trio.current_time()` when called inside a trio run).
"""

from __future__ import annotations

import time


class Clock:
    """Real time: wall clock from `time.time()`, monotonic from trio's clock when in a run."""

    def now_ms(self) -> int:
        """Wall-clock time in milliseconds since the epoch (record and log-append timestamps)."""
        return time.time_ns() // 1_000_000

    def monotonic(self) -> float:
        """Seconds on trio's clock when inside trio (MockClock in tests), else `time.monotonic()`."""
        try:
            import trio  # local: keeps the clock usable (and importable) outside trio

            return trio.current_time()
        except RuntimeError:
            return time.monotonic()

    def monotonic_ms(self) -> int:
        """`monotonic()` in whole milliseconds."""
        return int(self.monotonic() * 1000)


class ManualClock(Clock):
    """A clock that only moves when told to (unit tests of time-dependent state)."""

    def __init__(self, now_ms: int = 1_700_000_000_000, monotonic: float = 0.0) -> None:
        self._now_ms = now_ms
        self._monotonic = monotonic

    def now_ms(self) -> int:
        return self._now_ms

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Move both clocks forward by `seconds`."""
        if seconds < 0:
            raise ValueError("clocks do not go backwards")
        self._monotonic += seconds
        self._now_ms += int(seconds * 1000)

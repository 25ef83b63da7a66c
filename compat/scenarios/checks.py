"""Helpers shared by scenarios: expectations, record generation, polling with a deadline."""

from __future__ import annotations

import time
from typing import Any, Callable, Iterable

from compat.clients.base import Record
from compat.errors import Mismatch


def expect(condition: bool, message: str) -> None:
    """Raise Mismatch(message) unless condition holds."""
    if not condition:
        raise Mismatch(message)


def expect_equal(actual: Any, expected: Any, what: str) -> None:
    """Raise Mismatch naming ``what`` when actual != expected."""
    if actual != expected:
        raise Mismatch(f"{what}: got {_short(actual)}, expected {_short(expected)}")


def _short(value: Any, limit: int = 160) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def numbered(count: int, *, partitions: int = 1, prefix: str = "v", value_size: int = 0) -> list[Record]:
    """``count`` records with key str(i), value prefix+i (padded), partition i % partitions."""
    out = []
    for i in range(count):
        value = f"{prefix}{i}".encode()
        if value_size > len(value):
            value = value.ljust(value_size, b".")
        out.append({"partition": i % partitions, "key": str(i).encode(), "value": value,
                    "headers": []})
    return out


def by_partition(records: Iterable[Record]) -> dict[int, list[Record]]:
    """Group records by partition keeping their order."""
    out: dict[int, list[Record]] = {}
    for r in records:
        out.setdefault(r["partition"], []).append(r)
    return out


def check_exactly_once_in_order(produced: list[Record], consumed: list[Record]) -> None:
    """Every produced record consumed once, same partition, per-partition order kept,
    offsets strictly increasing."""
    seen: set[tuple[int, int]] = set()
    for r in consumed:
        tp = (r["partition"], r["offset"])
        expect(tp not in seen, f"record at partition {tp[0]} offset {tp[1]} delivered twice")
        seen.add(tp)
    expect_equal(len(consumed), len(produced), "number of records consumed")
    want = by_partition(produced)
    got = by_partition(consumed)
    expect_equal(sorted(got), sorted(want), "partitions holding records")
    for p, records in want.items():
        values = [r["value"] for r in got[p]]
        expect(values == [r["value"] for r in records],
               f"partition {p}: values differ or out of order (first consumed {values[:3]!r})")
        offsets = [r["offset"] for r in got[p]]
        expect(offsets == sorted(offsets) and len(set(offsets)) == len(offsets),
               f"partition {p}: offsets not increasing")


def wait_until(predicate: Callable[[], Any], timeout_s: float, what: str, interval_s: float = 0.2) -> Any:
    """Poll ``predicate`` until it returns a truthy value; Mismatch after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    last = None
    while True:
        last = predicate()
        if last:
            return last
        if time.monotonic() >= deadline:
            raise Mismatch(f"timed out after {timeout_s:.0f}s waiting for {what}")
        time.sleep(interval_s)  # polling interval against a deadline, not synchronisation

"""Helpers for log tests: produced-style batches and a log opener with small segments."""

from __future__ import annotations

from pathlib import Path

from protocol.record_codec import Record, build_batch
from protocol.records import iter_batches

from kbroker.log.log_config import LogConfig
from kbroker.log.partition_log import PartitionLog

NOW_MS = 1_700_000_000_000


def make_batch(count: int = 1, *, value_size: int = 10, timestamp: int = NOW_MS, tag: int = 0,
               timestamps: list[int] | None = None) -> bytes:
    """A produced batch (base offset 0) of `count` records; `tag` makes the payloads distinct."""
    deltas = [ts - timestamp for ts in timestamps] if timestamps else [0] * count
    records = [
        Record(i, deltas[i], f"k{tag}-{i}".encode(), (f"v{tag}-{i}-".encode() + b"x" * value_size)[:max(value_size, 1)] + bytes([tag % 256]))
        for i in range(count)
    ]
    return build_batch(records, base_timestamp=timestamp)


def small_config(**overrides) -> LogConfig:
    """A config with tiny segments and a dense index, so tests exercise rolls and index hits."""
    values = dict(segment_bytes=2048, index_interval_bytes=128, segment_index_bytes=4096)
    values.update(overrides)
    return LogConfig(**values)


def open_log(directory: Path, config: LogConfig | None = None, **kwargs) -> PartitionLog:
    """Open `directory` (a `<topic>-<partition>` path) standalone."""
    return PartitionLog.open(directory, config or small_config(), now_ms=NOW_MS, **kwargs)


def read_all(log: PartitionLog, start: int | None = None, max_bytes: int = 1 << 20) -> list[tuple[int, int, bytes]]:
    """(base offset, last offset, bytes) of every batch from `start` to the LEO, via read()."""
    offset = log.log_start_offset if start is None else start
    out = []
    while offset < log.log_end_offset:
        data = log.read(offset, max_bytes).records
        assert data, f"empty read at {offset} below LEO {log.log_end_offset}"
        before = offset
        for pos, header in iter_batches(data):
            out.append((header.base_offset, header.last_offset, bytes(data[pos:pos + header.size])))
            offset = header.next_offset
        assert offset > before, f"read at {before} returned no whole batch at or after it"
    return out

"""Metadata snapshots: the whole image as records, in a file of v2 batches.

File name `<end offset, 20 digits>-<epoch, 10 digits>.checkpoint` in the metadata log
directory, as Kafka names them; the end offset is exclusive (the snapshot holds the state
after applying every record below it). Written to `<name>.tmp`, fsynced, renamed, then the
directory is fsynced, so a snapshot file is either complete or absent. A damaged snapshot
(which a crash cannot produce, but a disk can) is skipped in favour of an older one.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from kbroker.raft.batch import build_batch, read_batches

logger = logging.getLogger(__name__)

SUFFIX = ".checkpoint"
RECORDS_PER_BATCH = 1000
SNAPSHOTS_KEPT = 2


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A loaded snapshot: the offset it covers up to (exclusive), its epoch, its records."""

    end_offset: int
    epoch: int
    values: list[bytes]


def snapshot_name(end_offset: int, epoch: int) -> str:
    """Kafka's snapshot file name for (end offset, epoch)."""
    return f"{end_offset:020d}-{epoch:010d}{SUFFIX}"


def _parse_name(name: str) -> tuple[int, int] | None:
    if not name.endswith(SUFFIX):
        return None
    stem = name[: -len(SUFFIX)]
    offset, sep, epoch = stem.partition("-")
    if not sep or not offset.isdigit() or not epoch.isdigit():
        return None
    return int(offset), int(epoch)


def write_snapshot(directory: Path, end_offset: int, epoch: int, values: list[bytes], *, now_ms: int) -> Path:
    """Atomically write a snapshot and prune older ones; returns its path."""
    final = directory / snapshot_name(end_offset, epoch)
    tmp = final.with_name(final.name + ".tmp")
    with open(tmp, "wb") as f:
        for start in range(0, len(values), RECORDS_PER_BATCH):
            chunk = values[start:start + RECORDS_PER_BATCH]
            f.write(build_batch(chunk, base_offset=start, leader_epoch=epoch, timestamp_ms=now_ms))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    _fsync_dir(directory)
    _prune(directory)
    logger.info("metadata snapshot written path=%s records=%d", final, len(values))
    return final


def load_latest_snapshot(directory: Path) -> Snapshot | None:
    """The newest intact snapshot in `directory`, or None."""
    found = sorted((p for p in (_parse_name(n.name) for n in _entries(directory)) if p), reverse=True)
    for end_offset, epoch in found:
        path = directory / snapshot_name(end_offset, epoch)
        data = path.read_bytes()
        batches, valid = read_batches(data)
        if valid != len(data):
            logger.warning("metadata snapshot damaged, skipping path=%s", path)
            continue
        return Snapshot(end_offset, epoch, [v for b in batches for v in b.values])
    return None


def _entries(directory: Path) -> list[Path]:
    if not directory.exists():
        return []
    for stale in directory.glob(f"*{SUFFIX}.tmp"):  # an interrupted write
        stale.unlink(missing_ok=True)
    return list(directory.iterdir())


def _prune(directory: Path) -> None:
    found = sorted((p for p in (_parse_name(n.name) for n in directory.iterdir()) if p), reverse=True)
    for end_offset, epoch in found[SNAPSHOTS_KEPT:]:
        (directory / snapshot_name(end_offset, epoch)).unlink(missing_ok=True)


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

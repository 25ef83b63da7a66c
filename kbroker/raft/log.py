"""The metadata log on disk: one append-only file of v2 batches in `__cluster_metadata-0/`.

Synchronous file I/O. Appends are written at once and become durable at the next `flush()`
(fsync); the quorum counts a record as committed only after that. Opening the log validates
every batch (length, CRC32C, contiguous offsets) and truncates a torn or corrupt tail, so a
crash in the middle of a write loses only records that were never acknowledged.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Iterator

from kbroker.raft.batch import build_batch, read_batches

logger = logging.getLogger(__name__)

METADATA_TOPIC = "__cluster_metadata"
METADATA_DIR_NAME = f"{METADATA_TOPIC}-0"
SEGMENT_NAME = "00000000000000000000.log"


class MetadataLog:
    """Append-only metadata log file; `end_offset` is the offset the next record gets."""

    def __init__(self, directory: Path, fd: int, end_offset: int, size_bytes: int) -> None:
        self.directory = directory
        self._fd = fd
        self.end_offset = end_offset
        self.size_bytes = size_bytes
        self.flushed_offset = end_offset  # records below this offset are on disk (fsynced)

    @classmethod
    def open(cls, directory: Path) -> "MetadataLog":
        """Open (creating if needed) the log in `directory`, truncating any torn tail."""
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / SEGMENT_NAME
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            data = _read_all(fd)
            batches, valid = read_batches(data)
            if valid != len(data):
                logger.warning("metadata log: truncating torn tail path=%s valid_bytes=%d file_bytes=%d",
                               path, valid, len(data))
                os.ftruncate(fd, valid)
                os.fsync(fd)
            end = batches[-1].last_offset + 1 if batches else 0
            os.lseek(fd, valid, os.SEEK_SET)
        except BaseException:
            os.close(fd)
            raise
        return cls(directory, fd, end, valid)

    def append(self, values: list[bytes], *, leader_epoch: int, now_ms: int) -> tuple[int, int]:
        """Write one batch holding `values`; returns (base_offset, last_offset). Not yet durable."""
        assert values, "empty metadata batch"
        base = self.end_offset
        data = build_batch(values, base_offset=base, leader_epoch=leader_epoch, timestamp_ms=now_ms)
        written = os.write(self._fd, data)
        if written != len(data):
            raise OSError(f"short write to metadata log: {written} of {len(data)} bytes")
        self.size_bytes += len(data)
        self.end_offset = base + len(values)
        return base, self.end_offset - 1

    def flush(self) -> int:
        """fsync everything written so far; returns the new flushed (exclusive) offset."""
        target = self.end_offset
        os.fsync(self._fd)
        self.flushed_offset = max(self.flushed_offset, target)
        return target

    def read_from(self, offset: int) -> Iterator[tuple[int, bytes]]:
        """(offset, value) of every record at or after `offset`."""
        data = os.pread(self._fd, self.size_bytes, 0)
        batches, _ = read_batches(data)
        for batch in batches:
            if batch.last_offset < offset:
                continue
            for i, value in enumerate(batch.values):
                if batch.base_offset + i >= offset:
                    yield batch.base_offset + i, value

    def close(self) -> None:
        """Flush and close the file."""
        if self._fd >= 0:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = -1


def _read_all(fd: int) -> bytes:
    size = os.fstat(fd).st_size
    return os.pread(fd, size, 0) if size else b""

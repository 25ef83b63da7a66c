"""Sparse segment indexes: OffsetIndex (offset -> file position) and TimeIndex (timestamp -> offset).

Kafka's OffsetIndex / TimeIndex, kept as arrays in memory instead of memory-mapped files:

* ``.index``: 8-byte entries ``relative offset int32 | position int32``, one per
  ``index.interval.bytes`` of appended data; the offset is the last offset of the batch that
  starts at ``position`` (as Kafka does).
* ``.timeindex``: 12-byte entries ``timestamp int64 | relative offset int32``; an entry is
  added only when the segment's largest timestamp grew, so timestamps strictly increase. The
  offset is the last offset of the first batch that reached that timestamp.

New entries are written to the file with plain appends when the segment is flushed, rolled or
closed; truncation rewrites the file's tail. An index that fails its sanity check on load
(size not a multiple of the entry size, entries not increasing, positions past the log) is
reported as damaged and the segment rebuilds it from the log. Files are only opened while
being written, so an index costs no file descriptor.
"""

from __future__ import annotations

import logging
import os
import struct
from array import array
from bisect import bisect_right
from pathlib import Path

logger = logging.getLogger(__name__)

OFFSET_ENTRY = struct.Struct(">ii")
TIME_ENTRY = struct.Struct(">qi")
_INT32_MAX = 2**31 - 1


class CorruptIndexError(Exception):
    """An index file failed its sanity check; the caller rebuilds it from the log."""


class _IndexFile:
    """Append-only persistence shared by both index kinds: tracks how many entries are on disk."""

    entry: struct.Struct

    def __init__(self, path: Path, base_offset: int, max_entries: int) -> None:
        self.path = path
        self.base_offset = base_offset
        self.max_entries = max(1, max_entries)
        self._persisted = 0  # entries already in the file

    def __len__(self) -> int:  # pragma: no cover - overridden
        raise NotImplementedError

    def _pack(self, i: int) -> bytes:  # pragma: no cover - overridden
        raise NotImplementedError

    @property
    def is_full(self) -> bool:
        """True when no more entries fit in ``segment.index.bytes`` (the segment must roll)."""
        return len(self) >= self.max_entries

    def relative(self, offset: int) -> int:
        """Offset relative to the segment's base; must fit in the int32 of an entry."""
        rel = offset - self.base_offset
        if not 0 <= rel <= _INT32_MAX:
            raise ValueError(f"offset {offset} out of range for segment {self.base_offset}")
        return rel

    def flush(self, fsync: bool = False) -> None:
        """Write entries not yet in the file (an append), optionally fsync."""
        count = len(self)
        if self._persisted > count:  # pragma: no cover - truncate_to keeps the file in step
            self._rewrite()
            return
        if self._persisted == count and not fsync:
            return
        data = b"".join(self._pack(i) for i in range(self._persisted, count))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            # A file longer than what we think is persisted (e.g. rebuilt index) is cut first.
            if os.fstat(fd).st_size != self._persisted * self.entry.size:
                os.ftruncate(fd, self._persisted * self.entry.size)
            _write_all(fd, data)
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self._persisted = count

    def _rewrite(self) -> None:
        """Write the whole index (after a rebuild)."""
        data = b"".join(self._pack(i) for i in range(len(self)))
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)
        self._persisted = len(self)

    def _cut_file(self, count: int) -> None:
        """Shorten the file to `count` entries if more than that were persisted."""
        if self._persisted > count:
            try:
                os.truncate(self.path, count * self.entry.size)
            except FileNotFoundError:
                pass
            self._persisted = count

    def rewrite(self) -> None:
        """Replace the file with the in-memory entries (used after rebuilding from the log)."""
        self._rewrite()

    def delete_file(self) -> None:
        """Remove the index file (segment deletion)."""
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self._persisted = 0


class OffsetIndex(_IndexFile):
    """Sparse map from (last) offsets of batches to their byte positions in the segment."""

    entry = OFFSET_ENTRY

    def __init__(self, path: Path, base_offset: int, max_entries: int) -> None:
        super().__init__(path, base_offset, max_entries)
        self._offsets = array("i")  # relative offsets, strictly increasing
        self._positions = array("i")  # byte positions, strictly increasing

    def __len__(self) -> int:
        return len(self._offsets)

    def _pack(self, i: int) -> bytes:
        return OFFSET_ENTRY.pack(self._offsets[i], self._positions[i])

    @classmethod
    def load(cls, path: Path, base_offset: int, max_entries: int, log_size: int) -> "OffsetIndex":
        """Read and sanity-check an index file; raises CorruptIndexError (or FileNotFoundError)."""
        data = path.read_bytes()
        if len(data) % OFFSET_ENTRY.size:
            raise CorruptIndexError(f"{path}: size {len(data)} is not a multiple of 8")
        index = cls(path, base_offset, max_entries)
        last_offset = -1
        last_position = -1
        for rel, position in OFFSET_ENTRY.iter_unpack(data):
            if rel <= last_offset or position <= last_position or position >= log_size:
                raise CorruptIndexError(
                    f"{path}: entry ({rel}, {position}) out of order or past the log end {log_size}"
                )
            index._offsets.append(rel)
            index._positions.append(position)
            last_offset, last_position = rel, position
        index._persisted = len(index._offsets)
        return index

    @property
    def last_offset(self) -> int:
        """Largest indexed offset, or the base offset when empty."""
        return self.base_offset + self._offsets[-1] if self._offsets else self.base_offset

    def append(self, offset: int, position: int) -> None:
        """Add an entry; offsets and positions must increase."""
        rel = self.relative(offset)
        if self._offsets and (rel <= self._offsets[-1] or position <= self._positions[-1]):
            raise ValueError(f"index entry ({offset}, {position}) does not increase")
        self._offsets.append(rel)
        self._positions.append(position)

    def lookup(self, offset: int) -> tuple[int, int]:
        """(offset, position) of the largest entry with offset <= `offset`; (base, 0) if none."""
        i = bisect_right(self._offsets, offset - self.base_offset) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._offsets[i], self._positions[i]

    def floor_position(self, position: int) -> int:
        """Largest indexed batch position <= `position` (0 when none): a batch boundary."""
        return self.floor_entry(position)[1]

    def floor_entry(self, position: int) -> tuple[int, int]:
        """(offset, position) of the entry with the largest position <= `position`; (base, 0) if none."""
        i = bisect_right(self._positions, position) - 1
        if i < 0:
            return self.base_offset, 0
        return self.base_offset + self._offsets[i], self._positions[i]

    def truncate_to(self, offset: int) -> None:
        """Drop entries whose offset is >= `offset` (in memory and in the file)."""
        keep = bisect_right(self._offsets, offset - self.base_offset - 1)
        del self._offsets[keep:]
        del self._positions[keep:]
        self._cut_file(keep)

    def truncate_to_position(self, position: int) -> None:
        """Drop entries pointing at or beyond `position` (log truncated there)."""
        keep = bisect_right(self._positions, position - 1)
        del self._offsets[keep:]
        del self._positions[keep:]
        self._cut_file(keep)

    def clear(self) -> None:
        """Drop every entry (before a rebuild)."""
        self.truncate_to_position(0)


class TimeIndex(_IndexFile):
    """Sparse map from a segment's growing max timestamp to the offset that reached it."""

    entry = TIME_ENTRY

    def __init__(self, path: Path, base_offset: int, max_entries: int) -> None:
        super().__init__(path, base_offset, max_entries)
        self._timestamps = array("q")  # strictly increasing
        self._offsets = array("i")  # relative offsets, non-decreasing

    def __len__(self) -> int:
        return len(self._timestamps)

    def _pack(self, i: int) -> bytes:
        return TIME_ENTRY.pack(self._timestamps[i], self._offsets[i])

    @classmethod
    def load(cls, path: Path, base_offset: int, max_entries: int) -> "TimeIndex":
        """Read and sanity-check a time index; raises CorruptIndexError (or FileNotFoundError)."""
        data = path.read_bytes()
        if len(data) % TIME_ENTRY.size:
            raise CorruptIndexError(f"{path}: size {len(data)} is not a multiple of 12")
        index = cls(path, base_offset, max_entries)
        last_ts = None
        last_rel = -1
        for timestamp, rel in TIME_ENTRY.iter_unpack(data):
            if (last_ts is not None and timestamp <= last_ts) or rel < last_rel or rel < 0:
                raise CorruptIndexError(f"{path}: entry ({timestamp}, {rel}) out of order")
            index._timestamps.append(timestamp)
            index._offsets.append(rel)
            last_ts, last_rel = timestamp, rel
        index._persisted = len(index._timestamps)
        return index

    @property
    def last_entry(self) -> tuple[int, int] | None:
        """(timestamp, offset) of the newest entry: the segment's largest timestamp so far."""
        if not self._timestamps:
            return None
        return self._timestamps[-1], self.base_offset + self._offsets[-1]

    def maybe_append(self, timestamp: int, offset: int) -> None:
        """Add an entry if `timestamp` exceeds the last one (Kafka's TimeIndex.maybeAppend)."""
        if self._timestamps and timestamp <= self._timestamps[-1]:
            return
        rel = self.relative(offset)
        if self._offsets and rel < self._offsets[-1]:
            raise ValueError(f"time index offset {offset} goes backwards")
        self._timestamps.append(timestamp)
        self._offsets.append(rel)

    def lookup(self, timestamp: int) -> tuple[int, int]:
        """(timestamp, offset) of the largest entry with timestamp <= `timestamp`; (-1, base) if none."""
        i = bisect_right(self._timestamps, timestamp) - 1
        if i < 0:
            return -1, self.base_offset
        return self._timestamps[i], self.base_offset + self._offsets[i]

    def truncate_to(self, offset: int) -> None:
        """Drop entries whose offset is >= `offset`."""
        keep = bisect_right(self._offsets, offset - self.base_offset - 1)
        del self._timestamps[keep:]
        del self._offsets[keep:]
        self._cut_file(keep)

    def clear(self) -> None:
        """Drop every entry (before a rebuild)."""
        del self._timestamps[:]
        del self._offsets[:]
        self._cut_file(0)


def _write_all(fd: int, data: bytes | bytearray | memoryview) -> None:
    """os.write until everything is written (regular files may take partial writes)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]

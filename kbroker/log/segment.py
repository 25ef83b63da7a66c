"""LogSegment: one ``.log`` file of whole record batches plus its sparse indexes.

Kafka's LogSegment in plain file I/O. Appends are ``os.write`` calls on the segment's own
descriptor (O_APPEND); reads are ``os.pread`` slices, located through the offset index and a
header-only scan that never touches record payloads. `recover` re-reads every batch with its
CRC32C, truncates the file at the first torn or corrupt batch and rebuilds both indexes.

No segment owns a descriptor: reads and appends borrow one from the broker-wide
`FileHandleCache` (an O_APPEND one for the active segment), which opens files on first use and
closes them beyond its cap or when idle, so open descriptors stay bounded however many
partitions there are. Indexes are loaded (and sanity-checked, rebuilt when damaged) on first
use and hold no descriptor.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from protocol.records import (
    ATTRIBUTES_OFFSET,
    BATCH_HEADER,
    BATCH_OVERHEAD,
    CURRENT_MAGIC,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    BatchHeader,
)

from protocol import crc32c as _crc32c  # the C function without the package's slow __init__

from kbroker.log import files
from kbroker.log.handles import FileHandleCache
from kbroker.log.index import CorruptIndexError, OffsetIndex, TimeIndex

logger = logging.getLogger(__name__)

_INT32_MAX = 2**31 - 1
# Read sizes: small for header walks (one header per read when batches are large), large for
# the CRC-checking recovery scan.
_HEADER_READ_BYTES = 8192
_RECOVERY_READ_BYTES = 1 << 20


@dataclass
class RecoveryResult:
    """What a full scan of a segment found."""

    truncated_bytes: int = 0
    # (epoch, base offset) of each batch whose partition leader epoch differs from the previous
    epochs: list[tuple[int, int]] = field(default_factory=list)
    reason: str | None = None


class LogSegment:
    """A segment file of whole v2 batches starting at `base_offset`, with its two indexes."""

    def __init__(
        self,
        directory: Path,
        base_offset: int,
        *,
        size: int,
        index_interval_bytes: int,
        segment_index_bytes: int,
        handles: FileHandleCache,
        created_ms: int,
    ) -> None:
        self.directory = directory
        self.base_offset = base_offset
        self.log_path = files.log_file(directory, base_offset)
        self.size = size
        self.index_interval_bytes = index_interval_bytes
        self.segment_index_bytes = segment_index_bytes
        self.created_ms = created_ms
        self._handles = handles
        self._active = False  # receives appends (its cached descriptor is an O_APPEND one)
        self._offset_index: OffsetIndex | None = None
        self._time_index: TimeIndex | None = None
        self._next_offset: int | None = base_offset if size == 0 else None
        self._max_timestamp = -1
        self._offset_of_max_timestamp = base_offset
        self._stats_known = size == 0
        self._rolling_timestamp: int | None = None  # max timestamp of the first batch
        self._bytes_since_last_index_entry = 0
        # Read-path memory, dropped whenever the file or its index is rebuilt or cut (`_forget`):
        # index positions already checked against the log (each costs a pread), and
        # (next offset, position) where the last read ended: a consumer's next fetch starts
        # there, so it needs neither the index nor a header walk.
        self._verified: set[int] = set()
        self._read_hint: tuple[int, int] | None = None

    # ----------------------------------------------------------------- construction

    @classmethod
    def create(
        cls,
        directory: Path,
        base_offset: int,
        *,
        index_interval_bytes: int,
        segment_index_bytes: int,
        handles: FileHandleCache,
        now_ms: int,
    ) -> "LogSegment":
        """A new, empty, active segment (creates the ``.log`` file; stale indexes removed)."""
        segment = cls(
            directory,
            base_offset,
            size=0,
            index_interval_bytes=index_interval_bytes,
            segment_index_bytes=segment_index_bytes,
            handles=handles,
            created_ms=now_ms,
        )
        for path in (segment.index_path, segment.time_index_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        segment._offset_index = OffsetIndex(segment.index_path, base_offset, segment._max_offset_entries)
        segment._time_index = TimeIndex(segment.time_index_path, base_offset, segment._max_time_entries)
        segment.activate(create=True)
        return segment

    @property
    def index_path(self) -> Path:
        """Path of the offset index file."""
        return files.index_file(self.directory, self.base_offset)

    @property
    def time_index_path(self) -> Path:
        """Path of the time index file."""
        return files.time_index_file(self.directory, self.base_offset)

    @property
    def _max_offset_entries(self) -> int:
        return self.segment_index_bytes // 8

    @property
    def _max_time_entries(self) -> int:
        return self.segment_index_bytes // 12

    def activate(self, *, create: bool = False) -> None:
        """Make this the active segment (appends allowed); `create` makes its ``.log`` file.

        The append descriptor itself is taken from the handle cache when needed.
        """
        if create:
            self._handles.get(self.log_path, writable=True, create=True)
        self._active = True

    @property
    def is_active(self) -> bool:
        """True while the segment is the partition's active (appendable) segment."""
        return self._active

    def _read_fd(self) -> int:
        # The active segment asks for its O_APPEND descriptor so reads and appends share one.
        return self._handles.get(self.log_path, writable=self._active)

    # ----------------------------------------------------------------- indexes and stats

    @property
    def offset_index(self) -> OffsetIndex:
        """The offset index, loaded (or rebuilt when damaged) on first use."""
        if self._offset_index is None:
            self._load_indexes()
        assert self._offset_index is not None
        return self._offset_index

    @property
    def time_index(self) -> TimeIndex:
        """The time index, loaded (or rebuilt when damaged) on first use."""
        if self._time_index is None:
            self._load_indexes()
        assert self._time_index is not None
        return self._time_index

    def _load_indexes(self) -> None:
        try:
            self._offset_index = OffsetIndex.load(
                self.index_path, self.base_offset, self._max_offset_entries, self.size
            )
            self._time_index = TimeIndex.load(self.time_index_path, self.base_offset, self._max_time_entries)
        except (CorruptIndexError, FileNotFoundError) as exc:
            if self.size > 0:
                logger.warning(
                    "rebuilding indexes segment=%s reason=%s", self.log_path, exc or "missing index"
                )
            self.recover()
            return
        if not self._stats_known:
            last = self._time_index.last_entry
            if last is not None:
                self._max_timestamp, self._offset_of_max_timestamp = last

    def load_tail(self) -> None:
        """Find the next offset by walking headers after the last index entry (clean load)."""
        position = self._index_lookup(2**63 - 1)
        next_offset = None
        end = position
        for pos, header in self._iter_headers(position, self.size):
            next_offset = header.next_offset
            end = pos + header.size
            if header.max_timestamp > self._max_timestamp:
                self._max_timestamp = header.max_timestamp
                self._offset_of_max_timestamp = header.last_offset
        if end != self.size:
            # Only possible if the clean-shutdown marker lied: recover properly.
            logger.warning("segment tail does not end on a batch, recovering segment=%s", self.log_path)
            self.recover()
            return
        self._bytes_since_last_index_entry = self.size - position if position else self.size
        if next_offset is None:
            next_offset = self.offset_index.last_offset + 1 if len(self.offset_index) else self.base_offset
        self._next_offset = next_offset
        self._stats_known = True

    @property
    def next_offset(self) -> int:
        """Offset after the last batch in the segment (walks the tail once if unknown)."""
        if self._next_offset is None:
            self.load_tail()
        assert self._next_offset is not None
        return self._next_offset

    @property
    def max_timestamp(self) -> int:
        """Largest batch max timestamp in the segment (-1 when none)."""
        if not self._stats_known and self._time_index is None:
            self._load_indexes()
        return self._max_timestamp

    @property
    def offset_of_max_timestamp(self) -> int:
        """Last offset of the first batch that carried `max_timestamp`."""
        _ = self.max_timestamp
        return self._offset_of_max_timestamp

    def _first_batch_timestamp(self) -> int | None:
        if self._rolling_timestamp is None and self.size >= BATCH_OVERHEAD:
            data = os.pread(self._read_fd(), BATCH_OVERHEAD, 0)
            if len(data) == BATCH_OVERHEAD:
                self._rolling_timestamp = BatchHeader(*BATCH_HEADER.unpack_from(data)).max_timestamp
        return self._rolling_timestamp

    # ----------------------------------------------------------------- append

    def should_roll(
        self, *, batch_size: int, max_timestamp: int, last_offset: int, now_ms: int,
        segment_bytes: int, segment_ms: int, segment_jitter_ms: int = 0,
    ) -> bool:
        """Kafka's LogSegment.shouldRoll: size, age, full index, or offset overflow."""
        if self.size > segment_bytes - batch_size:
            return True
        if self.size > 0:
            first = self._first_batch_timestamp()
            waited = max_timestamp - first if first is not None and first >= 0 else now_ms - self.created_ms
            if waited > segment_ms - segment_jitter_ms:
                return True
        if self.offset_index.is_full or self.time_index.is_full:
            return True
        return last_offset - self.base_offset > _INT32_MAX

    def append(self, data: bytes | bytearray | memoryview, header: BatchHeader) -> None:
        """Write one or more whole batches ending with `header`'s batch; updates the indexes.

        `header` describes the (last) batch: its last offset and max timestamp are what the
        indexes need. On a failed write the file is cut back so no torn batch remains.
        """
        assert self._active, "append to an inactive segment"
        fd = self._handles.get(self.log_path, writable=True)
        position = self.size
        if header.max_timestamp > self._max_timestamp:
            self._max_timestamp = header.max_timestamp
            self._offset_of_max_timestamp = header.last_offset
        if self._bytes_since_last_index_entry > self.index_interval_bytes:
            self.offset_index.append(header.last_offset, position)
            self.time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
            self._bytes_since_last_index_entry = 0
        view = memoryview(data)
        try:
            while view:
                written = os.write(fd, view)
                view = view[written:]
        except OSError:
            try:
                os.ftruncate(fd, position)
            except OSError:
                logger.exception("cannot cut back a failed write segment=%s", self.log_path)
            raise
        if self.size == 0:
            self._rolling_timestamp = None
        self.size = position + len(data)
        self._bytes_since_last_index_entry += len(data)
        self._next_offset = header.next_offset
        self._stats_known = True

    # ----------------------------------------------------------------- read

    def _iter_headers(self, start: int, end: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of each complete batch between `start` and `end`, header reads only."""
        pos = start
        buf = b""
        buf_start = start
        while end - pos >= BATCH_OVERHEAD:
            off = pos - buf_start
            if off < 0 or off + BATCH_OVERHEAD > len(buf):
                # The descriptor is fetched per read: between two yields the caller may have
                # used the cache and closed the one fetched before.
                buf = os.pread(self._read_fd(), min(_HEADER_READ_BYTES, end - pos), pos)
                buf_start, off = pos, 0
                if len(buf) < BATCH_OVERHEAD:
                    return
            header = BatchHeader(*BATCH_HEADER.unpack_from(buf, off))
            if header.batch_length < MIN_BATCH_LENGTH or pos + header.size > end:
                return
            yield pos, header
            pos += header.size

    def _entry_ok(self, offset: int, position: int) -> bool:
        """Does the index entry point at a batch whose last offset is `offset`? (one pread)"""
        if position == 0:
            return True
        data = os.pread(self._read_fd(), BATCH_OVERHEAD, position)
        if len(data) < BATCH_OVERHEAD:
            return False
        header = BatchHeader(*BATCH_HEADER.unpack_from(data))
        return (
            header.batch_length >= MIN_BATCH_LENGTH
            and header.last_offset == offset
            and position + header.size <= self.size
        )

    def _rebuild_damaged_index(self, offset: int, position: int) -> None:
        # Sanity checks on load cannot catch every damaged index; a wrong entry found in use
        # triggers the same rebuild, so a read never starts or ends inside a batch.
        logger.warning(
            "offset index entry (%d, %d) does not match the log, rebuilding segment=%s",
            offset, position, self.log_path,
        )
        self.recover()

    def _verify_entry(self, offset: int, position: int) -> bool:
        """`_entry_ok`, remembered: a checked entry stays right until the segment is rebuilt or cut."""
        if position in self._verified:
            return True
        if not self._entry_ok(offset, position):
            return False
        self._verified.add(position)
        return True

    def _index_lookup(self, offset: int) -> int:
        """Position of the batch found through the offset index for `offset`, verified."""
        entry_offset, position = self.offset_index.lookup(offset)
        if not self._verify_entry(entry_offset, position):
            self._rebuild_damaged_index(entry_offset, position)
            entry_offset, position = self.offset_index.lookup(offset)
        return position

    def _index_floor_position(self, limit: int) -> int:
        """Largest indexed batch position <= `limit`, verified."""
        entry_offset, position = self.offset_index.floor_entry(limit)
        if not self._verify_entry(entry_offset, position):
            self._rebuild_damaged_index(entry_offset, position)
            entry_offset, position = self.offset_index.floor_entry(limit)
        return position

    def _forget(self) -> None:
        """Drop the read-path memory (the file or its index changed other than by an append)."""
        self._verified = set()
        self._read_hint = None

    def _hinted_batch(self, offset: int) -> tuple[int, BatchHeader] | None:
        """The batch where the last read ended, if it starts exactly at `offset` (one header read)."""
        hint = self._read_hint
        if hint is None or hint[0] != offset or hint[1] + BATCH_OVERHEAD > self.size:
            return None
        position = hint[1]
        data = os.pread(self._read_fd(), BATCH_OVERHEAD, position)
        if len(data) < BATCH_OVERHEAD:
            return None
        header = BatchHeader(*BATCH_HEADER.unpack_from(data))
        if (header.base_offset != offset or header.batch_length < MIN_BATCH_LENGTH
                or position + header.size > self.size):
            return None
        return position, header

    def translate_offset(self, offset: int) -> tuple[int, BatchHeader] | None:
        """(position, header) of the first batch whose last offset is >= `offset`, or None."""
        hinted = self._hinted_batch(offset)
        if hinted is not None:
            return hinted
        start = self._index_lookup(offset)
        for pos, header in self._iter_headers(start, self.size):
            if header.last_offset >= offset:
                return pos, header
        return None

    def read(
        self, fetch_offset: int, max_bytes: int, *, max_offset: int | None, min_one_batch: bool
    ) -> bytes | None:
        """Whole batches from the one containing `fetch_offset`, at most `max_bytes` (but the
        first batch whole when `min_one_batch`), none reaching `max_offset`.

        None when the segment holds nothing at or after `fetch_offset`.
        """
        found = self.translate_offset(fetch_offset)
        if found is None:
            return None
        start, first = found
        if max_offset is not None and first.last_offset >= max_offset:
            return b""
        budget = max(max_bytes, first.size) if min_one_batch else max_bytes
        limit = min(start + budget, self.size)
        # Jump close to the end through the index, then walk headers to the last whole batch.
        scan_from = self._index_floor_position(limit)
        known_next = self._next_offset
        if max_offset is not None and (known_next is None or max_offset < known_next):
            # Only when `max_offset` (HW / LSO) falls inside this segment can it end the read
            # before `limit`; otherwise this lookup would give the same position again.
            bounded = self._index_lookup(max_offset - 1)
            scan_from = min(scan_from, bounded)
        scan_from = max(scan_from, start)
        end = scan_from
        next_offset = None
        for pos, header in self._iter_headers(scan_from, limit):
            if max_offset is not None and header.last_offset >= max_offset:
                break
            end = pos + header.size
            next_offset = header.next_offset
        if end <= start:
            return b""
        if next_offset is not None:
            self._read_hint = (next_offset, end)
        return os.pread(self._read_fd(), end - start, start)

    def read_batch(self, position: int, header: BatchHeader) -> bytes:
        """The bytes of one batch (for the few callers that decode records)."""
        return os.pread(self._read_fd(), header.size, position)

    def batches_from(self, offset: int) -> Iterator[tuple[int, BatchHeader]]:
        """(position, header) of batches from the one containing `offset` to the end."""
        start = self._index_lookup(offset)
        for pos, header in self._iter_headers(start, self.size):
            if header.last_offset >= offset:
                yield pos, header

    def find_by_timestamp(self, timestamp: int, start_offset: int) -> tuple[int, BatchHeader] | None:
        """First batch at or after `start_offset` whose max timestamp is >= `timestamp`."""
        _, indexed_offset = self.time_index.lookup(timestamp)
        for pos, header in self.batches_from(max(indexed_offset, start_offset)):
            if header.max_timestamp >= timestamp and header.last_offset >= start_offset:
                return pos, header
        return None

    # ----------------------------------------------------------------- recovery, truncation

    def recover(self) -> RecoveryResult:
        """Re-validate every batch (lengths, magic, CRC32C, offsets); cut at the first bad one.

        Rebuilds both indexes and the segment's statistics from the surviving batches.
        """
        result = RecoveryResult()
        self._forget()
        self._offset_index = OffsetIndex(self.index_path, self.base_offset, self._max_offset_entries)
        self._time_index = TimeIndex(self.time_index_path, self.base_offset, self._max_time_entries)
        self._max_timestamp = -1
        self._offset_of_max_timestamp = self.base_offset
        self._rolling_timestamp = None
        self._bytes_since_last_index_entry = 0
        fd = self._read_fd()
        file_size = os.fstat(fd).st_size
        pos = 0
        next_offset = self.base_offset
        last_epoch: int | None = None
        buf = b""
        buf_start = 0
        while pos < file_size:
            off = pos - buf_start
            if off + BATCH_OVERHEAD > len(buf):
                buf = os.pread(fd, min(_RECOVERY_READ_BYTES, file_size - pos), pos)
                buf_start, off = pos, 0
            reason = None
            if len(buf) - off < BATCH_OVERHEAD:
                reason = "torn batch header"
            else:
                header = BatchHeader(*BATCH_HEADER.unpack_from(buf, off))
                size = header.batch_length + LOG_OVERHEAD
                if header.batch_length < MIN_BATCH_LENGTH:
                    reason = f"batch length {header.batch_length}"
                elif pos + size > file_size:
                    reason = "torn batch"
                else:
                    if off + size > len(buf):
                        buf = os.pread(fd, max(size, min(_RECOVERY_READ_BYTES, file_size - pos)), pos)
                        buf_start, off = pos, 0
                    reason = _check_stored_batch(buf, off, header, next_offset, self.base_offset)
            if reason is not None:
                result.truncated_bytes = file_size - pos
                result.reason = reason
                break
            if header.max_timestamp > self._max_timestamp:
                self._max_timestamp = header.max_timestamp
                self._offset_of_max_timestamp = header.last_offset
            if self._bytes_since_last_index_entry > self.index_interval_bytes:
                self._offset_index.append(header.last_offset, pos)
                self._time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
                self._bytes_since_last_index_entry = 0
            self._bytes_since_last_index_entry += size
            if self._rolling_timestamp is None:
                self._rolling_timestamp = header.max_timestamp
            if header.partition_leader_epoch >= 0 and header.partition_leader_epoch != last_epoch:
                result.epochs.append((header.partition_leader_epoch, header.base_offset))
                last_epoch = header.partition_leader_epoch
            next_offset = header.next_offset
            pos += size
        if result.truncated_bytes:
            logger.warning(
                "truncating segment=%s at position=%d dropping_bytes=%d reason=%s",
                self.log_path, pos, result.truncated_bytes, result.reason,
            )
            self._truncate_file(pos)
        self.size = pos
        self._next_offset = next_offset
        self._stats_known = True
        if not self.is_active:
            # An inactive segment gets its final time index entry now, as on roll.
            self._time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
        self._offset_index.rewrite()
        self._time_index.rewrite()
        return result

    def _truncate_file(self, position: int) -> None:
        # By path: open descriptors (read-only or O_APPEND) stay valid and see the new size.
        os.truncate(self.log_path, position)

    def truncate_to(self, offset: int) -> int:
        """Remove batches whose last offset is >= `offset`; returns the bytes removed.

        A batch straddling `offset` goes whole (batches are never split), so the segment's
        next offset may end up below `offset`.
        """
        found = self.translate_offset(offset)
        if found is None:
            return 0
        position, _ = found
        self._forget()
        removed = self.size - position
        self.offset_index.truncate_to_position(position)
        self._truncate_file(position)
        self.size = position
        self._time_index = None
        self._offset_index = None
        self._stats_known = False
        self._next_offset = None
        # Statistics and indexes from the surviving bytes (a rare operation: a full scan).
        self.recover()
        return removed

    # ----------------------------------------------------------------- lifecycle

    def flush(self, fsync: bool = True) -> None:
        """Write pending index entries; fsync the log and indexes when `fsync`."""
        if self._offset_index is not None:
            self._offset_index.flush(fsync)
        if self._time_index is not None:
            self._time_index.flush(fsync)
        if fsync:
            # fsync covers the file whichever descriptor asks; a closed one is not reopened
            # into the cache just for this.
            fd = self._handles.peek(self.log_path)
            if fd is not None:
                os.fsync(fd)
            else:
                fd = os.open(self.log_path, os.O_RDONLY)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)

    def deactivate(self) -> None:
        """The segment stops being active (roll, close): final time index entry, indexes written.

        Its cached descriptor (an O_APPEND one) stays for reads until the cache drops it.
        """
        if self._time_index is not None and self._stats_known and self._max_timestamp >= 0:
            self._time_index.maybe_append(self._max_timestamp, self._offset_of_max_timestamp)
        self.flush(fsync=False)
        self._active = False

    def close(self) -> None:
        """Write indexes and release descriptors (no fsync: callers flush first if needed)."""
        self.deactivate()
        self._handles.evict(self.log_path)

    def delete(self) -> None:
        """Close and remove the segment's files."""
        self._active = False
        self._forget()
        self._handles.evict(self.log_path)
        for path in (self.log_path, self.index_path, self.time_index_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass

    def __repr__(self) -> str:
        return f"LogSegment(base_offset={self.base_offset}, size={self.size})"


def _check_stored_batch(
    buf: bytes, off: int, header: BatchHeader, min_offset: int, base_offset: int
) -> str | None:
    """Why the stored batch at `off` is unusable (None when it is fine): magic, CRC, offsets."""
    if header.magic != CURRENT_MAGIC:
        return f"magic {header.magic}"
    if header.last_offset_delta < 0:
        return f"last offset delta {header.last_offset_delta}"
    if header.base_offset < min_offset:
        return f"base offset {header.base_offset} below {min_offset}"
    if header.last_offset - base_offset > _INT32_MAX:
        return f"offset {header.last_offset} out of range for the segment"
    view = memoryview(buf)[off + ATTRIBUTES_OFFSET : off + header.size]
    crc = _crc32c.crc32c(view)
    if crc != header.crc:
        return f"crc mismatch (stored {header.crc}, computed {crc})"
    return None

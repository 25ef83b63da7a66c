"""Log compaction (cleanup.policy=compact): keep the latest record of every key.

Kafka's LogCleaner, for one partition at a time, in three steps so that produce and fetch
never wait on it:

1. `plan_clean` (event-loop thread, cheap): pick the cleanable segments (every inactive
   segment from the log start up to the first uncleanable offset: the active segment, the
   high watermark, and the first segment younger than ``min.compaction.lag.ms``) and snapshot
   them. Inactive segments are immutable, so a snapshot is just their paths and sizes.
2. `clean` (worker thread, heavy): read the snapshot, decide which records survive, write
   each cleaned segment as ``<base>.log.cleaned`` plus its two indexes, fsync them, and rename
   the three files to ``.swap`` (the clean is complete). Nothing the log uses is touched.
3. `swap_in` (event-loop thread, cheap): if the segments are still the ones planned, delete
   the old index files, ``os.replace`` the ``.swap`` log over the old ``.log`` (atomic), put
   the new indexes in place and swap a fresh LogSegment into the log. A crash at any point
   leaves either the old or the new log file under the segment's name, and a missing index
   is rebuilt at load (leftover ``.cleaned``/``.swap`` files are removed at load).

What survives a clean, as Kafka:

* a keyed record survives if its offset is the latest for its key among the cleanable
  records (records in the active segment do not count); a record without a key goes;
* a tombstone (null value) that is the latest for its key stays until ``delete.retention.ms``
  after its timestamp, then goes (Kafka measures the horizon from the segment's modification
  time or, with KIP-534, from the first clean; the record timestamp keeps tests clock-driven);
* transactional data of aborted transactions goes; data of transactions without a marker in
  the cleanable range stays untouched and does not enter the key map; a control batch (COMMIT
  or ABORT marker) stays while any record of its transaction survives, and afterwards until
  ``delete.retention.ms`` after its timestamp;
* batches whose records all survive are copied byte for byte; the others are re-encoded with
  their own codec, attributes, producer fields, offsets and timestamps (`encode_batch`), so
  offsets are preserved; the last batch of each segment is kept (empty if need be) so that a
  segment's offset range, and hence the log end offset after a crash, never moves back.

Segments are cleaned one to one (no merging of small cleaned segments yet).

Dirty ratio: the cleaner checkpoint (Kafka's ``cleaner-offset-checkpoint`` in each log dir)
holds, per partition, the offset below which the log has been cleaned; bytes of cleanable
segments at or above it are dirty. A log is cleaned when dirty / cleanable bytes reaches
``min.cleanable.dirty.ratio``, or when a dirty segment is older than ``max.compaction.lag.ms``.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from protocol.record_codec import ControlRecordType, Record, decode_batch, decode_control_record, encode_batch
from protocol.records import BATCH_HEADER, BATCH_OVERHEAD, MIN_BATCH_LENGTH, BatchHeader

from kbroker.log import checkpoints, files
from kbroker.log.index import OffsetIndex, TimeIndex
from kbroker.log.segment import LogSegment

logger = logging.getLogger(__name__)

CLEANER_CHECKPOINT = "cleaner-offset-checkpoint"  # Kafka's file name, same text format
_READ_BYTES = 1 << 20
_CODEC_MASK = 0x07


# ----------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class SegmentSnapshot:
    """An inactive segment as planned: its identity in the log plus what the worker reads."""

    segment: LogSegment
    base_offset: int
    log_path: Path
    size: int
    next_offset: int


@dataclass
class CleanPlan:
    """One clean of one partition: the snapshot and the parameters the worker needs."""

    log: Any  # PartitionLog; only touched in the event-loop thread
    segments: list[SegmentSnapshot]
    first_uncleanable_offset: int
    now_ms: int
    delete_retention_ms: int
    index_interval_bytes: int
    segment_index_bytes: int
    generation: int


@dataclass
class CleanedSegment:
    """A cleaned segment waiting in ``.swap`` files."""

    snapshot: SegmentSnapshot
    size: int
    log_swap: Path
    index_swap: Path
    time_index_swap: Path


@dataclass
class CleanResult:
    """What a clean produced and what it removed."""

    plan: CleanPlan
    cleaned: list[CleanedSegment] = field(default_factory=list)
    records_read: int = 0
    records_removed: int = 0
    bytes_before: int = 0
    bytes_after: int = 0


def is_compacted(log: Any) -> bool:
    """True when the log's cleanup.policy includes compact."""
    return "compact" in log.config.cleanup_policy


def first_uncleanable_offset(log: Any, now_ms: int) -> int:
    """Offset at and above which nothing may be cleaned (Kafka's LogCleanerManager)."""
    segments = log.segments
    limit = min(segments[-1].base_offset, log.high_watermark, log.last_stable_offset)
    lag_ms = log.config.min_compaction_lag_ms
    if lag_ms > 0:
        for segment in segments[:-1]:
            if segment.max_timestamp >= 0 and now_ms - segment.max_timestamp < lag_ms:
                limit = min(limit, segment.base_offset)
                break
    return limit


def cleanable_segments(log: Any, now_ms: int) -> list[LogSegment]:
    """Inactive segments lying wholly below the first uncleanable offset, oldest first."""
    limit = first_uncleanable_offset(log, now_ms)
    segments = log.segments
    return [s for i, s in enumerate(segments[:-1]) if segments[i + 1].base_offset <= limit]


def dirty_ratio(log: Any, first_dirty_offset: int, now_ms: int) -> float:
    """Dirty bytes / cleanable bytes (0 when nothing is cleanable)."""
    segments = cleanable_segments(log, now_ms)
    total = sum(s.size for s in segments)
    if total == 0:
        return 0.0
    dirty = sum(s.size for s in segments if s.next_offset > first_dirty_offset)
    return dirty / total


def needs_cleaning(log: Any, first_dirty_offset: int, now_ms: int) -> bool:
    """The dirty ratio reached min.cleanable.dirty.ratio, or max.compaction.lag.ms expired."""
    if not is_compacted(log) or log.closed:
        return False
    segments = [s for s in cleanable_segments(log, now_ms) if s.next_offset > first_dirty_offset]
    if not segments:
        return False
    if dirty_ratio(log, first_dirty_offset, now_ms) >= log.config.min_cleanable_dirty_ratio:
        return True
    max_lag_ms = log.config.max_compaction_lag_ms
    oldest = min((s.max_timestamp for s in segments if s.max_timestamp >= 0), default=None)
    return oldest is not None and now_ms - oldest > max_lag_ms


def plan_clean(log: Any, now_ms: int) -> CleanPlan | None:
    """Snapshot the cleanable segments of `log` (None when there are none)."""
    segments = cleanable_segments(log, now_ms)
    if not segments:
        return None
    config = log.config
    return CleanPlan(
        log=log,
        segments=[SegmentSnapshot(s, s.base_offset, s.log_path, s.size, s.next_offset) for s in segments],
        first_uncleanable_offset=segments[-1].next_offset,
        now_ms=now_ms,
        delete_retention_ms=config.delete_retention_ms,
        index_interval_bytes=config.index_interval_bytes,
        segment_index_bytes=config.segment_index_bytes,
        generation=log.truncation_generation,
    )


# ----------------------------------------------------------------------------- the worker


def _iter_stored_batches(path: Path, size: int) -> Iterator[tuple[BatchHeader, bytes]]:
    """(header, bytes) of each whole batch in the first `size` bytes of a segment file."""
    fd = os.open(path, os.O_RDONLY)
    try:
        pos = 0
        buf = b""
        buf_start = 0
        while size - pos >= BATCH_OVERHEAD:
            off = pos - buf_start
            if off + BATCH_OVERHEAD > len(buf):
                buf = os.pread(fd, min(_READ_BYTES, size - pos), pos)
                buf_start, off = pos, 0
            header = BatchHeader(*BATCH_HEADER.unpack_from(buf, off))
            if header.batch_length < MIN_BATCH_LENGTH or pos + header.size > size:
                raise ValueError(f"{path}: malformed batch at position {pos}")
            if off + header.size > len(buf):
                buf = os.pread(fd, max(header.size, min(_READ_BYTES, size - pos)), pos)
                buf_start, off = pos, 0
            yield header, buf[off : off + header.size]
            pos += header.size
    finally:
        os.close(fd)


@dataclass
class _TxnState:
    """Per-producer bookkeeping while walking the log in offset order."""

    open_batches: list[int] = field(default_factory=list)  # base offsets since the last marker
    surviving_records: int = 0  # records of the current transaction kept by this clean


def _control_type(batch_bytes: bytes) -> int | None:
    batch = decode_batch(batch_bytes)
    if not batch.records:
        return None
    try:
        return decode_control_record(batch.records[0]).type
    except Exception:  # noqa: BLE001 - an unreadable control record is kept as it is
        return None


def _classify_transactions(plan: CleanPlan) -> tuple[set[int], set[int]]:
    """(aborted, ongoing) transactional data batches, by base offset."""
    aborted: set[int] = set()
    state: dict[int, list[int]] = {}
    for snapshot in plan.segments:
        for header, data in _iter_stored_batches(snapshot.log_path, snapshot.size):
            if not header.is_transactional:
                continue
            if not header.is_control:
                state.setdefault(header.producer_id, []).append(header.base_offset)
                continue
            batches = state.pop(header.producer_id, [])
            if _control_type(data) == ControlRecordType.ABORT:
                aborted.update(batches)
    ongoing = {offset for batches in state.values() for offset in batches}
    return aborted, ongoing


def build_offset_map(plan: CleanPlan, aborted: set[int], ongoing: set[int]) -> dict[bytes, int]:
    """Latest offset of every key among the cleanable records (Kafka's OffsetMap)."""
    latest: dict[bytes, int] = {}
    for snapshot in plan.segments:
        for header, data in _iter_stored_batches(snapshot.log_path, snapshot.size):
            if header.is_control or header.base_offset in aborted or header.base_offset in ongoing:
                continue
            batch = decode_batch(data)
            for record in batch.records:
                if record.key is not None:
                    latest[record.key] = header.base_offset + record.offset_delta
    return latest


class _SegmentWriter:
    """Writes one cleaned segment (log + indexes) as ``.cleaned`` files, as LogSegment would."""

    def __init__(self, snapshot: SegmentSnapshot, plan: CleanPlan) -> None:
        directory = snapshot.log_path.parent
        base = snapshot.base_offset
        self.snapshot = snapshot
        self.log_cleaned = _suffixed(files.log_file(directory, base), files.CLEANED_SUFFIX)
        self.offset_index = OffsetIndex(
            _suffixed(files.index_file(directory, base), files.CLEANED_SUFFIX), base, plan.segment_index_bytes // 8
        )
        self.time_index = TimeIndex(
            _suffixed(files.time_index_file(directory, base), files.CLEANED_SUFFIX), base,
            plan.segment_index_bytes // 12,
        )
        self.index_interval_bytes = plan.index_interval_bytes
        self.fd = os.open(self.log_cleaned, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        self.size = 0
        self.since_index = 0
        self.max_timestamp = -1
        self.offset_of_max_timestamp = base

    def write(self, data: bytes, header: BatchHeader) -> None:
        if header.max_timestamp > self.max_timestamp:
            self.max_timestamp = header.max_timestamp
            self.offset_of_max_timestamp = header.last_offset
        if self.since_index > self.index_interval_bytes:
            self.offset_index.append(header.last_offset, self.size)
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
            self.since_index = 0
        view = memoryview(data)
        while view:
            view = view[os.write(self.fd, view):]
        self.size += len(data)
        self.since_index += len(data)

    def finish(self) -> CleanedSegment:
        """Final time index entry, fsync everything, rename the three files to ``.swap``."""
        if self.max_timestamp >= 0:
            self.time_index.maybe_append(self.max_timestamp, self.offset_of_max_timestamp)
        os.fsync(self.fd)
        os.close(self.fd)
        self.offset_index.rewrite()
        self.time_index.rewrite()
        files.fsync_paths([self.offset_index.path, self.time_index.path])
        swaps = []
        for path in (self.log_cleaned, self.offset_index.path, self.time_index.path):
            swap = path.with_name(path.name[: -len(files.CLEANED_SUFFIX)] + files.SWAP_SUFFIX)
            os.replace(path, swap)
            swaps.append(swap)
        files.fsync_dir(self.log_cleaned.parent)
        return CleanedSegment(self.snapshot, self.size, *swaps)

    def abort(self) -> None:
        try:
            os.close(self.fd)
        except OSError:
            pass
        for path in (self.log_cleaned, self.offset_index.path, self.time_index.path):
            _unlink(path)


def _suffixed(path: Path, suffix: str) -> Path:
    return path.with_name(path.name + suffix)


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def clean(plan: CleanPlan) -> CleanResult:
    """Write the cleaned segments of `plan` as ``.swap`` files (worker thread; no log state)."""
    aborted, ongoing = _classify_transactions(plan)
    latest = build_offset_map(plan, aborted, ongoing)
    result = CleanResult(plan)
    txns: dict[int, _TxnState] = {}
    try:
        for snapshot in plan.segments:
            writer = _SegmentWriter(snapshot, plan)
            try:
                _clean_segment(plan, snapshot, writer, latest, aborted, ongoing, txns, result)
                result.cleaned.append(writer.finish())
            except BaseException:
                writer.abort()
                raise
    except BaseException:
        discard(result)
        raise
    result.bytes_after = sum(c.size for c in result.cleaned)
    return result


def _clean_segment(
    plan: CleanPlan, snapshot: SegmentSnapshot, writer: _SegmentWriter, latest: dict[bytes, int],
    aborted: set[int], ongoing: set[int], txns: dict[int, _TxnState], result: CleanResult,
) -> None:
    batches = list(_iter_stored_batches(snapshot.log_path, snapshot.size))
    result.bytes_before += snapshot.size
    for i, (header, data) in enumerate(batches):
        last_in_segment = i == len(batches) - 1
        result.records_read += header.records_count
        if header.is_control:
            removable = False
            if header.is_transactional:
                state = txns.pop(header.producer_id, None)
                data_left = state is not None and state.surviving_records > 0
                expired = plan.now_ms - header.max_timestamp >= plan.delete_retention_ms
                removable = expired and not data_left and not last_in_segment
            if removable:
                result.records_removed += header.records_count
            else:
                writer.write(data, header)
            continue
        if header.base_offset in ongoing:
            writer.write(data, header)
            continue
        batch = decode_batch(data)
        if header.base_offset in aborted:
            kept: list[Record] = []
        else:
            kept = [r for r in batch.records if _retain(r, header, batch, latest, plan)]
        if header.is_transactional:
            txns.setdefault(header.producer_id, _TxnState()).surviving_records += len(kept)
        result.records_removed += len(batch.records) - len(kept)
        if len(kept) == len(batch.records):
            writer.write(data, header)
        elif kept or last_in_segment:
            # Same codec, offsets, timestamps and producer fields; only the records change.
            batch.records = kept
            if not kept:
                # An empty batch carries no codec, as Kafka's writeEmptyHeader (librdkafka
                # aborts on a compressed empty payload).
                batch.attributes &= ~_CODEC_MASK
            rebuilt = encode_batch(batch)
            writer.write(rebuilt, BatchHeader(*BATCH_HEADER.unpack_from(rebuilt)))


def _retain(record: Record, header: BatchHeader, batch: Any, latest: dict[bytes, int], plan: CleanPlan) -> bool:
    if record.key is None:
        return False  # Kafka's cleaner discards keyless records of compacted logs
    offset = header.base_offset + record.offset_delta
    if latest.get(record.key, -1) > offset:
        return False
    if record.value is None:
        timestamp = batch.record_timestamp(record)
        return plan.now_ms - timestamp < plan.delete_retention_ms
    return True


def discard(result: CleanResult) -> None:
    """Remove the ``.swap`` files of a clean that will not be swapped in."""
    for cleaned in result.cleaned:
        for path in (cleaned.log_swap, cleaned.index_swap, cleaned.time_index_swap):
            _unlink(path)
    result.cleaned = []


# ----------------------------------------------------------------------------- swapping in


def swap_in(result: CleanResult) -> int:
    """Put the cleaned segments in place of the planned ones (event-loop thread).

    Segments that were deleted (retention, DeleteRecords) or changed (truncation) since the
    plan keep their old files and their ``.swap`` files are dropped. Returns the number of
    segments swapped.
    """
    plan = result.plan
    log = plan.log
    if log.closed or log.truncation_generation != plan.generation:
        discard(result)
        return 0
    swapped = 0
    for cleaned in result.cleaned:
        old = cleaned.snapshot.segment
        still_there = any(s is old for s in log.segments)
        if not still_there or old.is_active or old.size != cleaned.snapshot.size:
            for path in (cleaned.log_swap, cleaned.index_swap, cleaned.time_index_swap):
                _unlink(path)
            continue
        _replace_files(old, cleaned)
        new = LogSegment(
            old.directory, old.base_offset, size=cleaned.size,
            index_interval_bytes=old.index_interval_bytes, segment_index_bytes=old.segment_index_bytes,
            handles=old._handles, created_ms=old.created_ms,
        )
        swapped += log.replace_segment(old, new)
    result.cleaned = []
    if swapped:
        files.fsync_dir(log.directory)
    return swapped


def _replace_files(old: LogSegment, cleaned: CleanedSegment) -> None:
    """Old indexes out, new log in (one atomic rename), new indexes in.

    A crash between two steps leaves a valid log file under the segment's name with missing
    indexes, which the next load rebuilds.
    """
    _unlink(old.index_path)
    _unlink(old.time_index_path)
    os.replace(cleaned.log_swap, old.log_path)
    old._handles.evict(old.log_path)  # cached descriptor still points at the old file
    os.replace(cleaned.index_swap, old.index_path)
    os.replace(cleaned.time_index_swap, old.time_index_path)


# ----------------------------------------------------------------------------- checkpoints


class CleanerCheckpoints:
    """First dirty offset per partition, kept in each log dir's ``cleaner-offset-checkpoint``."""

    def __init__(self) -> None:
        self._offsets: dict[Path, dict[tuple[str, int], int]] = {}

    def _dir(self, log_dir: Path) -> dict[tuple[str, int], int]:
        if log_dir not in self._offsets:
            self._offsets[log_dir] = checkpoints.read_offsets(log_dir / CLEANER_CHECKPOINT)
        return self._offsets[log_dir]

    def first_dirty_offset(self, log: Any) -> int:
        """Where the uncleaned part of `log` begins (at least its log start offset)."""
        offset = self._dir(log.directory.parent).get((log.topic, log.partition), 0)
        if offset > log.log_end_offset:
            offset = 0  # a stale entry (the partition was deleted and created again)
        return max(offset, log.log_start_offset)

    def update(self, log: Any, offset: int) -> None:
        """Record that `log` is clean below `offset`; rewrites the dir's file atomically."""
        log_dir = log.directory.parent
        offsets = self._dir(log_dir)
        offsets[(log.topic, log.partition)] = offset
        checkpoints.write_offsets(log_dir / CLEANER_CHECKPOINT, offsets)

    def forget(self, log_dir: Path, topic: str, partition: int) -> None:
        """Drop a deleted partition's entry."""
        offsets = self._dir(log_dir)
        if offsets.pop((topic, partition), None) is not None:
            checkpoints.write_offsets(log_dir / CLEANER_CHECKPOINT, offsets)


def clean_log_now(log: Any, now_ms: int, cleaner_checkpoints: CleanerCheckpoints | None = None) -> CleanResult | None:
    """Plan, clean and swap in one go, in the calling thread (tests, tools, shutdown paths)."""
    plan = plan_clean(log, now_ms)
    if plan is None:
        return None
    result = clean(plan)
    swap_in(result)
    if cleaner_checkpoints is not None:
        cleaner_checkpoints.update(log, plan.first_uncleanable_offset)
    return result

"""PartitionLog: the segments of one partition and its offsets (Kafka's UnifiedLog + LogLoader).

State: segments sorted by base offset (the last one is active), ``log_start_offset``,
``log_end_offset`` (LEO), ``high_watermark`` (HW), ``recovery_point`` (everything below it is
fsynced), and the leader epoch cache. Invariants, asserted: log_start_offset <= HW <= LEO,
recovery_point <= LEO, segment base offsets increase.

Open: segments after the recovery point are re-validated batch by batch unless the log dir
was shut down cleanly, in which case only the active segment's tail is walked to find the
LEO. Append: one v2 batch, validated, its base offset and leader epoch patched in place, then
written with ``os.write`` before returning. Read: whole batches from one segment, as Kafka.
"""

from __future__ import annotations

import logging
import os
from bisect import bisect_right
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from protocol.errors import DecodeError, InvalidRecordError
from protocol.records import (
    BATCH_OVERHEAD,
    LOG_OVERHEAD,
    MIN_BATCH_LENGTH,
    BatchHeader,
    iter_batches,
    read_batch_header,
    set_base_offset,
    set_max_timestamp_log_append,
    set_partition_leader_epoch,
    validate_batch,
)

from kbroker.errors import KafkaError
from kbroker.log import checkpoints, files
from kbroker.log.handles import FileHandleCache, shared_cache
from kbroker.log.leader_epoch import LeaderEpochCache
from kbroker.log.log_config import LogConfig
from kbroker.log.recompression import prepare_for_append
from kbroker.log.segment import LogSegment

logger = logging.getLogger(__name__)

# Kafka error codes (protocol.ErrorCode is owned by the protocol package; plain ints here).
OFFSET_OUT_OF_RANGE = 1
CORRUPT_MESSAGE = 2
MESSAGE_TOO_LARGE = 10
RECORD_LIST_TOO_LARGE = 18
INVALID_TIMESTAMP = 32
INVALID_RECORD = 87
KAFKA_STORAGE_ERROR = 56


@dataclass(frozen=True, slots=True)
class AppendResult:
    """Offsets assigned to an appended batch."""

    base_offset: int
    last_offset: int
    log_append_time_ms: int  # -1 unless the topic uses LogAppendTime
    log_start_offset: int
    max_timestamp: int = -1


@dataclass(frozen=True, slots=True)
class ReadResult:
    """Whole batches read from one segment plus the partition's offsets at read time."""

    records: bytes
    high_watermark: int
    log_start_offset: int
    last_stable_offset: int
    log_end_offset: int = 0


# Called when an offset that belongs in a per-dir checkpoint changed (the LogManager batches
# these into its periodic checkpoint write); `urgent` asks for a write now (truncation).
CheckpointListener = Callable[["PartitionLog", bool], None]


class PartitionLog:
    """The log of one topic partition in ``<log dir>/<topic>-<partition>``."""

    def __init__(
        self,
        directory: Path,
        config: LogConfig,
        *,
        segments: list[LogSegment],
        log_start_offset: int,
        recovery_point: int,
        high_watermark: int,
        epochs: LeaderEpochCache,
        handles: FileHandleCache,
        now_ms: int,
        checkpoint_listener: CheckpointListener | None = None,
        auto_high_watermark: bool = True,
    ) -> None:
        parsed = files.parse_partition_dir_name(directory.name)
        if parsed is None:
            raise ValueError(f"not a partition directory name: {directory.name}")
        self.directory = directory
        self.topic, self.partition = parsed
        self.config = config
        self._segments = segments
        self._bases = [s.base_offset for s in segments]
        self._handles = handles
        self.epochs = epochs
        self.log_end_offset = segments[-1].next_offset
        self.log_start_offset = min(max(log_start_offset, segments[0].base_offset), self.log_end_offset)
        self.recovery_point = min(recovery_point, self.log_end_offset)
        # Single node: the HW follows the LEO; replication (later) turns this off and moves it.
        self.auto_high_watermark = auto_high_watermark
        hw = self.log_end_offset if auto_high_watermark else high_watermark
        self.high_watermark = min(max(hw, self.log_start_offset), self.log_end_offset)
        self.checkpoint_listener = checkpoint_listener
        self._unflushed_messages = 0
        self._last_flush_ms = now_ms
        self._truncations = 0  # generation: invalidates flushes planned before a truncation
        # Set by the producer state (transactions): HW -> LSO.
        self.stable_offset_fn: Callable[[int], int] | None = None
        self.closed = False

    # ----------------------------------------------------------------- open / recovery

    @classmethod
    def open(
        cls,
        directory: Path,
        config: LogConfig,
        *,
        now_ms: int,
        recovery_point: int | None = None,
        log_start_offset: int | None = None,
        high_watermark: int | None = None,
        clean_shutdown: bool | None = None,
        handles: FileHandleCache | None = None,
        checkpoint_listener: CheckpointListener | None = None,
        auto_high_watermark: bool = True,
    ) -> "PartitionLog":
        """Open (creating if needed) the partition log in `directory`, recovering as needed.

        Offsets not given are read from the parent log dir's checkpoint files, and
        `clean_shutdown` from its ``.kafka_cleanshutdown`` marker (which is left in place:
        the LogManager removes it once the whole dir is loaded).
        """
        directory = Path(directory)
        parsed = files.parse_partition_dir_name(directory.name)
        if parsed is None:
            raise ValueError(f"not a partition directory name: {directory.name}")
        key = parsed
        handles = handles if handles is not None else shared_cache()
        directory.mkdir(parents=True, exist_ok=True)
        parent = directory.parent
        if recovery_point is None:
            recovery_point = checkpoints.read_offsets(parent / files.RECOVERY_POINT_CHECKPOINT).get(key, 0)
        if log_start_offset is None:
            log_start_offset = checkpoints.read_offsets(parent / files.LOG_START_OFFSET_CHECKPOINT).get(key, 0)
        if high_watermark is None:
            high_watermark = checkpoints.read_offsets(parent / files.REPLICATION_CHECKPOINT).get(key, 0)
        if clean_shutdown is None:
            clean_shutdown = (parent / files.CLEAN_SHUTDOWN_MARKER).exists()

        segments = _load_segments(directory, config, handles, now_ms)
        epochs = LeaderEpochCache.load(directory / files.LEADER_EPOCH_CHECKPOINT)
        if not segments:
            segments = [
                LogSegment.create(
                    directory, max(log_start_offset, 0),
                    index_interval_bytes=config.index_interval_bytes,
                    segment_index_bytes=config.segment_index_bytes,
                    handles=handles, now_ms=now_ms,
                )
            ]
        elif clean_shutdown:
            segments[-1].activate()
            segments[-1].load_tail()
            recovery_point = segments[-1].next_offset
        else:
            recovery_point = _recover(directory, segments, recovery_point, epochs)
            segments[-1].activate()
        log = cls(
            directory, config,
            segments=segments, log_start_offset=log_start_offset, recovery_point=recovery_point,
            high_watermark=high_watermark, epochs=epochs, handles=handles, now_ms=now_ms,
            checkpoint_listener=checkpoint_listener, auto_high_watermark=auto_high_watermark,
        )
        log.epochs.truncate_from_end(log.log_end_offset)
        if log.log_start_offset > 0:
            log.epochs.truncate_from_start(log.log_start_offset)
        logger.debug(
            "opened log topic=%s partition=%d segments=%d log_start_offset=%d log_end_offset=%d clean=%s",
            log.topic, log.partition, len(segments), log.log_start_offset, log.log_end_offset, clean_shutdown,
        )
        return log

    # ----------------------------------------------------------------- properties

    @property
    def segments(self) -> list[LogSegment]:
        """The segments, oldest first (read-only view for tests and retention)."""
        return list(self._segments)

    @property
    def active_segment(self) -> LogSegment:
        """The segment receiving appends."""
        return self._segments[-1]

    @property
    def last_stable_offset(self) -> int:
        """LSO: the first offset of an open transaction, else the HW.

        The producer state (kbroker.log.producer_state) installs `stable_offset_fn`; without
        one there are no transactions and the LSO is the HW.
        """
        fn = self.stable_offset_fn
        return min(fn(self.high_watermark), self.high_watermark) if fn is not None else self.high_watermark

    def size_bytes(self) -> int:
        """Bytes of record data on disk (all segments)."""
        return sum(s.size for s in self._segments)

    def update_config(self, config: LogConfig) -> None:
        """Apply new topic configs (segment sizes take effect at the next roll)."""
        self.config = config

    def _check_invariants(self) -> None:
        assert self.log_start_offset <= self.high_watermark <= self.log_end_offset, (
            self.log_start_offset, self.high_watermark, self.log_end_offset)
        assert self.recovery_point <= self.log_end_offset

    # ----------------------------------------------------------------- append

    def append(
        self, records: bytes | bytearray | memoryview, *, leader_epoch: int, now_ms: int, fsync: bool = False
    ) -> AppendResult:
        """Validate one produced v2 batch, assign offsets, write it; raises KafkaError.

        The batch's bytes are kept as the client sent them except the base offset and the
        partition leader epoch (and, for LogAppendTime topics, the timestamp type, max
        timestamp and CRC). Written with os.write before returning; fsynced too when `fsync`
        or the topic's ``log.flush.on.ack`` / ``flush.messages`` say so.
        """
        self._ensure_open()
        config = self.config
        if len(records) < BATCH_OVERHEAD:
            # Kafka finds no batch at all in fewer bytes than a header.
            raise KafkaError(INVALID_RECORD, f"record set of {len(records)} bytes holds no batch")
        try:
            header = validate_batch(records, 0)
        except InvalidRecordError as exc:
            raise KafkaError(exc.error_code, exc.reason) from None
        except DecodeError as exc:
            raise KafkaError(CORRUPT_MESSAGE, exc.reason) from None
        if header.size != len(records):
            raise KafkaError(INVALID_RECORD, "produce request must contain exactly one record batch")
        # compression.type and compacted-topic keys: the only reasons records are decoded here.
        prepared = prepare_for_append(
            records, compression_type=config.compression_type, compacted="compact" in config.cleanup_policy,
            topic_partition=f"{self.topic}-{self.partition}",
        )
        if prepared is not records:  # re-encoded: a new header
            records = prepared
            header = read_batch_header(records, 0)
        if header.size > config.max_message_bytes:
            raise KafkaError(
                MESSAGE_TOO_LARGE,
                f"record batch of {header.size} bytes exceeds max.message.bytes {config.max_message_bytes}",
            )
        if header.size > config.segment_bytes:
            raise KafkaError(
                RECORD_LIST_TOO_LARGE,
                f"record batch of {header.size} bytes exceeds segment.bytes {config.segment_bytes}",
            )
        if not config.log_append_time:
            self._check_timestamps(header, now_ms)

        # A writable view (the connection's receive buffer) is patched in place: no copy.
        writable = isinstance(records, bytearray) or (
            isinstance(records, memoryview) and not records.readonly)
        buf = records if writable else bytearray(records)
        base_offset = self.log_end_offset
        set_base_offset(buf, 0, base_offset)
        set_partition_leader_epoch(buf, 0, leader_epoch)
        append_time = -1
        if config.log_append_time:
            set_max_timestamp_log_append(buf, 0, now_ms)
            append_time = now_ms
        header = read_batch_header(buf, 0)
        self._write(buf, header, now_ms)
        if leader_epoch >= 0:
            self.epochs.assign(leader_epoch, base_offset)
        self._after_append(header.records_count, now_ms, fsync or config.flush_on_ack)
        return AppendResult(
            base_offset=base_offset,
            last_offset=header.last_offset,
            log_append_time_ms=append_time,
            log_start_offset=self.log_start_offset,
            max_timestamp=header.max_timestamp,
        )

    append_as_leader = append

    def append_as_follower(self, records: bytes | bytearray | memoryview, *, now_ms: int) -> int:
        """Append batches that already carry offsets (replication, Raft); returns the new LEO.

        Every batch is CRC-checked; offsets must start at or after the LEO and increase.
        """
        self._ensure_open()
        batches = []
        try:
            for pos, header in iter_batches(records):
                validate_batch(records, pos, allow_empty=True)
                batches.append((pos, header))
        except InvalidRecordError as exc:
            raise KafkaError(exc.error_code, exc.reason) from None
        except DecodeError as exc:
            raise KafkaError(CORRUPT_MESSAGE, exc.reason) from None
        view = memoryview(records)
        for pos, header in batches:
            if header.base_offset < self.log_end_offset:
                raise KafkaError(INVALID_RECORD, f"batch offset {header.base_offset} below the log end offset")
            self._write(view[pos : pos + header.size], header, now_ms)
            if header.partition_leader_epoch >= 0:
                self.epochs.assign(header.partition_leader_epoch, header.base_offset)
            self._after_append(header.records_count, now_ms, self.config.flush_on_ack)
        return self.log_end_offset

    def _check_timestamps(self, header: BatchHeader, now_ms: int) -> None:
        """CreateTime bounds (message.timestamp.before/after.max.ms) on the batch's header.

        Checked on base and max timestamp rather than per record: records are not decoded.
        """
        before, after = self.config.message_timestamp_before_max_ms, self.config.message_timestamp_after_max_ms
        for ts in (header.base_timestamp, header.max_timestamp):
            if now_ms - ts > before or ts - now_ms > after:
                raise KafkaError(
                    INVALID_TIMESTAMP,
                    f"timestamp {ts} of the record batch is out of range (broker time {now_ms})",
                )

    def _write(self, data: bytearray | memoryview, header: BatchHeader, now_ms: int) -> None:
        config = self.config
        segment = self._segments[-1]
        if segment.should_roll(
            batch_size=header.size, max_timestamp=header.max_timestamp, last_offset=header.last_offset,
            now_ms=now_ms, segment_bytes=config.segment_bytes, segment_ms=config.segment_ms,
            segment_jitter_ms=config.segment_jitter_ms,
        ):
            segment = self.roll(now_ms, base_offset=header.base_offset)
        try:
            segment.append(data, header)
        except OSError as exc:
            logger.error("append failed topic=%s partition=%d error=%s", self.topic, self.partition, exc)
            raise KafkaError(KAFKA_STORAGE_ERROR, f"write failed: {exc}") from None
        self.log_end_offset = header.next_offset
        if self.auto_high_watermark:
            self.high_watermark = self.log_end_offset

    def _after_append(self, count: int, now_ms: int, fsync: bool) -> None:
        self._unflushed_messages += count
        if fsync or self._unflushed_messages >= self.config.flush_messages:
            self.flush(now_ms=now_ms)

    def roll(self, now_ms: int, *, base_offset: int | None = None) -> LogSegment:
        """Start a new active segment at the LEO (or `base_offset`); returns it.

        The old segment gets its final time index entry and index files written; it is
        fsynced by the next flush (the LogManager flushes rolled segments soon after).
        """
        new_base = self.log_end_offset if base_offset is None else max(base_offset, self.log_end_offset)
        old = self._segments[-1]
        if old.size == 0 and old.base_offset == new_base:
            return old  # nothing to roll
        if old.size == 0:
            # An empty active segment is replaced rather than left as a hole.
            old.delete()
            self._segments.pop()
            self._bases.pop()
        else:
            old.deactivate()
        segment = LogSegment.create(
            self.directory, new_base,
            index_interval_bytes=self.config.index_interval_bytes,
            segment_index_bytes=self.config.segment_index_bytes,
            handles=self._handles, now_ms=now_ms,
        )
        self._segments.append(segment)
        self._bases.append(new_base)
        logger.debug("rolled topic=%s partition=%d base_offset=%d", self.topic, self.partition, new_base)
        return segment

    @property
    def needs_flush(self) -> bool:
        """True when rolled segments (or unflushed appends) sit above the recovery point."""
        return self.recovery_point < self.active_segment.base_offset

    def flush_due(self, now_ms: int) -> bool:
        """True when flush.ms says an fsync is due, or a rolled segment awaits one."""
        if self.needs_flush:
            return True
        return self.flush_ms_due(now_ms)

    def flush_ms_due(self, now_ms: int) -> bool:
        """True when unflushed appends are older than flush.ms."""
        return self._unflushed_messages > 0 and now_ms - self._last_flush_ms >= self.config.flush_ms

    def rolled_flush_plan(self) -> tuple[list[Path], int, int] | None:
        """Files to fsync so that the recovery point can move to the active segment's base.

        Lets the LogManager fsync rolled segments in a worker thread (by path, with its own
        descriptors) instead of stalling the event loop; pending index entries are written
        here first. Returns (paths, target offset, truncation generation) or None.
        """
        if not self.needs_flush:
            return None
        i = max(bisect_right(self._bases, self.recovery_point) - 1, 0)
        paths: list[Path] = []
        for segment in self._segments[i:-1]:
            segment.flush(fsync=False)
            paths += [segment.log_path, segment.index_path, segment.time_index_path]
        epochs_path = self.epochs.prepare_background_sync()
        if epochs_path is not None:
            paths.append(epochs_path)
        paths.append(self.directory)
        return paths, self.active_segment.base_offset, self._truncations

    def complete_rolled_flush(self, offset: int, generation: int) -> None:
        """Move the recovery point after the fsyncs of `rolled_flush_plan` finished.

        Ignored if the log was truncated or closed meanwhile (the files may have changed).
        """
        if self.closed or generation != self._truncations:
            return
        if self.recovery_point < offset <= self.log_end_offset:
            self.recovery_point = offset
            self._notify(urgent=False)

    # ----------------------------------------------------------------- read

    def read(
        self, fetch_offset: int, max_bytes: int, *, max_offset: int | None = None, min_one_batch: bool = True
    ) -> ReadResult:
        """Whole batches from `fetch_offset` (from one segment, as Kafka), up to `max_bytes`.

        The first batch comes whole even when larger than `max_bytes` (KIP-74) if
        `min_one_batch`; no batch reaching `max_offset` (e.g. the HW) is returned. Raises
        KafkaError(OFFSET_OUT_OF_RANGE) below the log start offset or beyond the LEO.
        """
        self._ensure_open()
        if fetch_offset < self.log_start_offset or fetch_offset > self.log_end_offset:
            raise KafkaError(
                OFFSET_OUT_OF_RANGE,
                f"offset {fetch_offset} is out of range [{self.log_start_offset}, {self.log_end_offset}]",
            )
        records = b""
        if max_offset is None or fetch_offset < max_offset:
            i = max(bisect_right(self._bases, fetch_offset) - 1, 0)
            try:
                while i < len(self._segments):
                    data = self._segments[i].read(
                        fetch_offset, max_bytes, max_offset=max_offset, min_one_batch=min_one_batch
                    )
                    if data is not None:
                        records = data
                        break
                    i += 1
            except OSError as exc:
                # e.g. EMFILE when reopening a segment the descriptor cache had closed: the
                # client gets Kafka's error for a failed log dir read, the broker carries on.
                logger.error("read failed topic=%s partition=%d error=%s", self.topic, self.partition, exc)
                raise KafkaError(KAFKA_STORAGE_ERROR, f"read failed: {exc}") from None
        return ReadResult(
            records=records,
            high_watermark=self.high_watermark,
            log_start_offset=self.log_start_offset,
            last_stable_offset=self.last_stable_offset,
            log_end_offset=self.log_end_offset,
        )

    def batches(self, start_offset: int | None = None) -> Iterator[tuple[BatchHeader, bytes]]:
        """Every batch from `start_offset` (default: the log start) as (header, bytes): replay."""
        offset = self.log_start_offset if start_offset is None else start_offset
        i = max(bisect_right(self._bases, offset) - 1, 0)
        for segment in self._segments[i:]:
            for pos, header in segment.batches_from(offset):
                yield header, segment.read_batch(pos, header)

    # ----------------------------------------------------------------- timestamps, epochs

    def offset_for_timestamp(self, timestamp_ms: int) -> tuple[int, int, int] | None:
        """(offset, timestamp, leader epoch) of the first record with timestamp >= `timestamp_ms`.

        Located through the time indexes and a header walk; the one matching batch is decoded
        (when protocol.record_codec is available) to return the exact record, as Kafka does.
        """
        self._ensure_open()
        for segment in self._segments:
            if segment.max_timestamp < timestamp_ms or segment.next_offset <= self.log_start_offset:
                continue
            found = segment.find_by_timestamp(timestamp_ms, self.log_start_offset)
            if found is None:
                continue
            pos, header = found
            offset, ts = _exact_record(
                segment, pos, header, lambda t: t >= timestamp_ms, self.log_start_offset
            )
            return offset, ts, header.partition_leader_epoch
        return None

    def offset_of_max_timestamp(self) -> tuple[int, int, int] | None:
        """(offset, timestamp, leader epoch) of the record with the largest timestamp."""
        self._ensure_open()
        best: LogSegment | None = None
        for segment in self._segments:
            if segment.next_offset > self.log_start_offset and (
                best is None or segment.max_timestamp > best.max_timestamp
            ):
                best = segment
        if best is None or best.size == 0:
            return None
        target = best.max_timestamp
        for pos, header in best.batches_from(max(self.log_start_offset, best.base_offset)):
            if header.max_timestamp == target:
                offset, ts = _exact_record(best, pos, header, lambda t: t == target, self.log_start_offset)
                return offset, ts, header.partition_leader_epoch
        return None

    def end_offset_for_leader_epoch(self, epoch: int) -> tuple[int, int]:
        """(epoch, end offset) for OffsetForLeaderEpoch (Kafka's LeaderEpochFileCache.endOffsetFor)."""
        return self.epochs.end_offset_for(epoch, self.log_end_offset)

    # ----------------------------------------------------------------- truncation, deletion

    def truncate_to(self, offset: int) -> int:
        """Remove every batch at or after `offset`; returns the new LEO.

        A batch straddling `offset` is removed whole. The recovery point checkpoint is
        rewritten at once (a stale one above the new LEO would skip recovery later).
        """
        self._ensure_open()
        if offset >= self.log_end_offset:
            return self.log_end_offset
        if offset <= self._segments[0].base_offset:
            return self._truncate_fully(max(offset, 0))
        i = bisect_right(self._bases, offset) - 1
        for segment in self._segments[i + 1 :]:
            segment.delete()
        del self._segments[i + 1 :]
        del self._bases[i + 1 :]
        segment = self._segments[-1]
        segment.activate()
        segment.truncate_to(offset)
        self.log_end_offset = segment.next_offset
        self._after_truncate()
        return self.log_end_offset

    def _truncate_fully(self, offset: int) -> int:
        for segment in self._segments:
            segment.delete()
        segment = LogSegment.create(
            self.directory, offset,
            index_interval_bytes=self.config.index_interval_bytes,
            segment_index_bytes=self.config.segment_index_bytes,
            handles=self._handles, now_ms=self._last_flush_ms,
        )
        self._segments = [segment]
        self._bases = [offset]
        self.log_end_offset = offset
        self.log_start_offset = offset
        self._after_truncate()
        return offset

    def _after_truncate(self) -> None:
        self._truncations += 1
        leo = self.log_end_offset
        self.log_start_offset = min(self.log_start_offset, leo)
        self.high_watermark = min(self.high_watermark, leo)
        if self.auto_high_watermark:
            self.high_watermark = leo
        self.recovery_point = min(self.recovery_point, leo)
        self.epochs.truncate_from_end(leo)
        self._notify(urgent=True)
        self._check_invariants()

    def replace_segment(self, old: LogSegment, new: LogSegment) -> bool:
        """Put `new` where `old` is (same base offset; the log cleaner's swap).

        False when `old` is no longer an inactive segment of this log (deleted, truncated).
        """
        if old.is_active or new.base_offset != old.base_offset:
            return False
        for i, segment in enumerate(self._segments):
            if segment is old:
                self._segments[i] = new
                return True
        return False

    @property
    def truncation_generation(self) -> int:
        """Counts truncations: work planned on the segments before one must be dropped."""
        return self._truncations

    def delete_records_before(self, offset: int) -> int:
        """Move the log start offset up to `offset` (-1: the HW) and drop whole segments below it.

        Returns the new log start offset. OFFSET_OUT_OF_RANGE beyond the HW, as Kafka's
        DeleteRecords.
        """
        self._ensure_open()
        if offset == -1:
            offset = self.high_watermark
        if offset < 0 or offset > self.high_watermark:
            raise KafkaError(
                OFFSET_OUT_OF_RANGE,
                f"cannot move the log start offset to {offset}: high watermark is {self.high_watermark}",
            )
        if offset > self.log_start_offset:
            self.log_start_offset = offset
            self.epochs.truncate_from_start(offset)
            self._delete_segments_below(offset)
            self._notify(urgent=False)
        return self.log_start_offset

    def _delete_segments_below(self, offset: int) -> int:
        """Delete leading segments that end at or before `offset` (never the active one)."""
        count = 0
        while len(self._segments) > 1 and self._segments[1].base_offset <= offset:
            self._segments.pop(0).delete()
            self._bases.pop(0)
            count += 1
        return count

    def delete_retention_segments(self, now_ms: int) -> int:
        """Retention (cleanup.policy delete): drop old segments past retention.ms / retention.bytes.

        Never the active segment; moves the log start offset. Returns the segments deleted.
        """
        if "delete" not in self.config.cleanup_policy:
            return 0
        deleted = 0
        retention_ms, retention_bytes = self.config.retention_ms, self.config.retention_bytes
        while len(self._segments) > 1:
            first = self._segments[0]
            expired = retention_ms >= 0 and first.max_timestamp >= 0 and now_ms - first.max_timestamp > retention_ms
            oversized = retention_bytes >= 0 and self.size_bytes() - first.size >= retention_bytes
            if not (expired or oversized) or self._segments[1].base_offset > self.high_watermark:
                break
            self.log_start_offset = max(self.log_start_offset, self._segments[1].base_offset)
            self._segments.pop(0).delete()
            self._bases.pop(0)
            deleted += 1
        if deleted:
            self.epochs.truncate_from_start(self.log_start_offset)
            self._notify(urgent=False)
        return deleted

    # ----------------------------------------------------------------- flush / close

    def flush(self, *, now_ms: int | None = None) -> None:
        """fsync every segment above the recovery point, then advance and checkpoint it."""
        self._ensure_open()
        i = max(bisect_right(self._bases, self.recovery_point) - 1, 0)
        for segment in self._segments[i:]:
            segment.flush(fsync=True)
        self.epochs.sync()  # epochs of the flushed data are durable before the recovery point moves
        self.recovery_point = self.log_end_offset
        self._unflushed_messages = 0
        if now_ms is not None:
            self._last_flush_ms = now_ms
        self._notify(urgent=False)

    def _notify(self, *, urgent: bool) -> None:
        if self.checkpoint_listener is not None:
            self.checkpoint_listener(self, urgent)
        else:
            self.write_checkpoints()

    def write_checkpoints(self) -> None:
        """Update this partition's lines in the parent dir's checkpoint files (standalone use)."""
        key = (self.topic, self.partition)
        parent = self.directory.parent
        for name, value in (
            (files.RECOVERY_POINT_CHECKPOINT, self.recovery_point),
            (files.REPLICATION_CHECKPOINT, self.high_watermark),
            (files.LOG_START_OFFSET_CHECKPOINT, self.log_start_offset),
        ):
            path = parent / name
            offsets = checkpoints.read_offsets(path)
            if offsets.get(key) != value:
                offsets[key] = value
                checkpoints.write_offsets(path, offsets)

    def close(self, *, flush: bool = True) -> None:
        """Flush (unless told not to), write the indexes and release every descriptor."""
        if self.closed:
            return
        if flush:
            self.flush()
        for segment in self._segments:
            segment.close()
        self.closed = True

    def delete(self) -> None:
        """Close without flushing and remove the partition directory and its files."""
        if not self.closed:
            for segment in self._segments:
                segment.delete()
            self.closed = True
        for path in self.directory.iterdir():
            path.unlink()
        self.directory.rmdir()

    def _ensure_open(self) -> None:
        if self.closed:
            raise KafkaError(KAFKA_STORAGE_ERROR, f"log {self.directory.name} is closed")

    def __repr__(self) -> str:
        return (
            f"PartitionLog({self.topic}-{self.partition}, start={self.log_start_offset}, "
            f"hw={self.high_watermark}, leo={self.log_end_offset}, segments={len(self._segments)})"
        )


def _load_segments(directory: Path, config: LogConfig, handles: FileHandleCache, now_ms: int) -> list[LogSegment]:
    """Segments found in `directory`; leftovers of interrupted operations are removed."""
    logs: dict[int, int] = {}
    indexes: list[tuple[int, Path]] = []
    with os.scandir(directory) as entries:
        for entry in entries:
            name = entry.name
            if name.endswith((files.DELETED_SUFFIX, files.CLEANED_SUFFIX, files.SWAP_SUFFIX, ".tmp")):
                logger.info("removing leftover file=%s", entry.path)
                os.unlink(entry.path)
                continue
            parsed = files.parse_segment_file_name(name)
            if parsed is None:
                continue
            base, suffix = parsed
            if suffix == files.LOG_SUFFIX:
                logs[base] = entry.stat().st_size
            elif suffix in (files.INDEX_SUFFIX, files.TIME_INDEX_SUFFIX):
                indexes.append((base, Path(entry.path)))
    for base, path in indexes:
        if base not in logs:
            logger.info("removing orphan index file=%s", path)
            path.unlink()
    return [
        LogSegment(
            directory, base, size=size,
            index_interval_bytes=config.index_interval_bytes,
            segment_index_bytes=config.segment_index_bytes,
            handles=handles, created_ms=now_ms,
        )
        for base, size in sorted(logs.items())
    ]


def _recover(directory: Path, segments: list[LogSegment], recovery_point: int, epochs: LeaderEpochCache) -> int:
    """Re-validate segments from the one holding `recovery_point`; drop everything after a
    corrupt batch. Returns the recovery point to keep (the old one, capped at the new LEO)."""
    bases = [s.base_offset for s in segments]
    start = max(bisect_right(bases, recovery_point) - 1, 0)
    i = start
    while i < len(segments):
        segment = segments[i]
        result = segment.recover()
        for epoch, offset in result.epochs:
            epochs.assign(epoch, offset)
        if result.truncated_bytes:
            for later in segments[i + 1 :]:
                logger.warning("deleting segment after corruption segment=%s", later.log_path)
                later.delete()
            del segments[i + 1 :]
            break
        i += 1
    # Empty segments left in the middle (a roll interrupted by the crash) would make holes.
    while len(segments) > 1 and segments[-1].size == 0 and segments[-2].size == 0:
        segments.pop().delete()
    return min(recovery_point, segments[-1].next_offset)


def _exact_record(
    segment: LogSegment, pos: int, header: BatchHeader, match: Callable[[int], bool], min_offset: int
) -> tuple[int, int]:
    """(offset, timestamp) of the first record in the batch whose timestamp matches.

    LogAppendTime batches stamp every record with the max timestamp. Falls back to the batch
    (first offset, max timestamp) when records cannot be decoded.
    """
    first = max(header.base_offset, min_offset)
    if header.timestamp_type == 1:
        return first, header.max_timestamp
    try:
        from protocol.record_codec import decode_batch  # owned by the protocol package
    except ImportError:
        return first, header.max_timestamp
    try:
        batch = decode_batch(segment.read_batch(pos, header))
        for record in batch.records:
            offset = header.base_offset + record.offset_delta
            ts = header.base_timestamp + record.timestamp_delta
            if offset >= min_offset and match(ts):
                return offset, ts
    except Exception:  # noqa: BLE001 - a batch we cannot decode still has a usable header
        logger.debug("cannot decode batch at offset=%d for a timestamp lookup", header.base_offset)
    return first, header.max_timestamp

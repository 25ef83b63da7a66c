"""Per-partition producer state: idempotence checks, open transactions, LSO, snapshots.

For every producer id that wrote to a partition this keeps (as Kafka's
``ProducerStateManager``/``ProducerStateEntry``): its epoch, the sequence/offset metadata of
its last 5 batches (so a retried batch is answered with its original offsets and not written
twice), the coordinator epoch of its last marker, and the first offset of its ongoing
transaction. From the ongoing transactions follows the last stable offset (LSO); completed
aborted transactions go into the ``.txnindex`` files (kbroker.log.txn_index).

Checks on a produced batch (Kafka 3.9 ``ProducerAppendInfo``), in order:
  1. producer id -1: not tracked;
  2. same epoch and the same (first, last) sequence as one of the last 5 batches: DUPLICATE,
     the original offsets are returned;
  3. epoch older than the producer's: INVALID_PRODUCER_EPOCH (47);
  4. new epoch (KIP-360 bump): the sequence must restart at 0; same epoch: the sequence must
     follow the last one (Int32.MAX wraps to 0): else OUT_OF_ORDER_SEQUENCE_NUMBER (45).
     A producer with no state (never seen, or its state was removed by retention) may start
     at any sequence, as Kafka 3.x does, so UNKNOWN_PRODUCER_ID is no longer given on produce;
  5. a non-transactional batch while the producer has a transaction open: INVALID_TXN_STATE.
Markers (control batches) with an older producer epoch are PRODUCER_FENCED, with an older
coordinator epoch TRANSACTION_COORDINATOR_FENCED.

Persistence: ``<offset>.snapshot`` files in the partition directory in Kafka's format
(version 1: int16 version, uint32 CRC32C of the rest, int32 count, then per producer
producer_id int64, epoch int16, last_sequence int32, last_offset int64, offset_delta int32,
timestamp int64, coordinator_epoch int32, current_txn_first_offset int64). `load` reads the
newest usable snapshot and replays the batch headers of the log after it, so the state
survives a clean stop and a ``kill -9`` alike. Pure: no trio.
"""

from __future__ import annotations

import logging
import os
import struct
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from protocol import crc32c  # the C function without the package's slow __init__

from kbroker.errors import KafkaError
from kbroker.log.txn_index import AbortedTxn, AbortedTxnIndex

logger = logging.getLogger(__name__)

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
NO_SEQUENCE = -1
INT32_MAX = 2**31 - 1
NUM_BATCHES_TO_RETAIN = 5              # Kafka's ProducerStateEntry.NUM_BATCHES_TO_RETAIN
PRODUCER_ID_EXPIRATION_MS = 86_400_000  # producer.id.expiration.ms

OUT_OF_ORDER_SEQUENCE_NUMBER = 45
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
TRANSACTION_COORDINATOR_FENCED = 52
UNKNOWN_PRODUCER_ID = 59
PRODUCER_FENCED = 90

SNAPSHOT_SUFFIX = ".snapshot"
SNAPSHOT_VERSION = 1
SNAPSHOTS_TO_KEEP = 2
_SNAPSHOT_HEADER = struct.Struct(">hI")          # version, crc
_SNAPSHOT_COUNT = struct.Struct(">i")
_SNAPSHOT_ENTRY = struct.Struct(">qhiqiqiq")


def next_sequence(sequence: int, increment: int) -> int:
    """`sequence` + `increment`, wrapping past Int32.MAX to 0 (Kafka's incrementSequence)."""
    if sequence > INT32_MAX - increment:
        return increment - (INT32_MAX - sequence) - 1
    return sequence + increment


def in_sequence(last_sequence: int, next_seq: int) -> bool:
    """Whether `next_seq` directly follows `last_sequence` (with the Int32.MAX wrap)."""
    return next_seq == last_sequence + 1 or (next_seq == 0 and last_sequence == INT32_MAX)


@dataclass(frozen=True, slots=True)
class BatchMetadata:
    """Sequence and offset range of one appended batch of a producer."""

    first_seq: int
    last_seq: int
    first_offset: int
    last_offset: int
    timestamp: int


@dataclass(slots=True)
class ProducerStateEntry:
    """What one partition knows about one producer id."""

    producer_id: int
    producer_epoch: int = NO_PRODUCER_EPOCH
    batches: deque = field(default_factory=lambda: deque(maxlen=NUM_BATCHES_TO_RETAIN))
    coordinator_epoch: int = -1
    current_txn_first_offset: int = -1
    last_timestamp: int = -1

    @property
    def last_seq(self) -> int:
        return self.batches[-1].last_seq if self.batches else NO_SEQUENCE

    @property
    def first_seq(self) -> int:
        return self.batches[0].first_seq if self.batches else NO_SEQUENCE

    @property
    def last_offset(self) -> int:
        return self.batches[-1].last_offset if self.batches else -1

    def find_duplicate(self, epoch: int, first_seq: int, last_seq: int) -> BatchMetadata | None:
        """The retained batch with exactly this epoch and sequence range, if any."""
        if epoch != self.producer_epoch:
            return None
        for batch in self.batches:
            if batch.first_seq == first_seq and batch.last_seq == last_seq:
                return batch
        return None

    def bump_epoch(self, epoch: int) -> None:
        """A new epoch starts the sequences over (the retained batches no longer count)."""
        if epoch != self.producer_epoch:
            self.producer_epoch = epoch
            self.batches.clear()


@dataclass(frozen=True, slots=True)
class CompletedTxn:
    """A transaction ended by a marker in this partition."""

    producer_id: int
    first_offset: int
    last_offset: int
    aborted: bool


@dataclass(frozen=True, slots=True)
class BatchInfo:
    """The header fields producer state needs (from protocol.records.BatchHeader)."""

    producer_id: int
    producer_epoch: int
    base_sequence: int
    last_offset_delta: int
    max_timestamp: int
    is_transactional: bool
    is_control: bool

    @classmethod
    def of(cls, header: Any) -> "BatchInfo":
        """From a BatchHeader (or anything with the same attributes)."""
        return cls(header.producer_id, header.producer_epoch, header.base_sequence,
                   header.last_offset_delta, header.max_timestamp, header.is_transactional,
                   header.is_control)

    @property
    def last_sequence(self) -> int:
        if self.base_sequence == NO_SEQUENCE:
            return NO_SEQUENCE
        return next_sequence(self.base_sequence, self.last_offset_delta)


class ProducerStateManager:
    """Producer state of one partition (see the module docstring)."""

    def __init__(self, directory: Path | None, *,
                 producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self.producers: dict[int, ProducerStateEntry] = {}
        self.ongoing: dict[int, int] = {}   # first offset of an open transaction -> producer id
        self.aborted = AbortedTxnIndex(self.directory) if self.directory is not None else None
        self._aborted_memory: list[AbortedTxn] = []   # when there is no directory (tests)
        self.map_end_offset = 0             # state reflects every batch below this offset

    # ------------------------------------------------------------------ checks

    def check(self, info: BatchInfo) -> BatchMetadata | None:
        """Validate a produced batch before it is appended.

        Returns the original batch's metadata when it is a duplicate (do not append it),
        None when it may be appended; raises KafkaError otherwise.
        """
        pid = info.producer_id
        if pid == NO_PRODUCER_ID:
            return None
        entry = self.producers.get(pid)
        if entry is None:
            return None
        if info.is_control:
            self._check_marker_epoch(entry, info.producer_epoch)
            return None
        duplicate = entry.find_duplicate(info.producer_epoch, info.base_sequence, info.last_sequence)
        if duplicate is not None:
            return duplicate
        if info.producer_epoch < entry.producer_epoch:
            raise KafkaError(INVALID_PRODUCER_EPOCH,
                             f"Epoch of producer {pid} at offset {self.map_end_offset} is "
                             f"{info.producer_epoch}, which is smaller than the last seen epoch "
                             f"{entry.producer_epoch}")
        if info.base_sequence != NO_SEQUENCE:
            if info.producer_epoch != entry.producer_epoch:
                if info.base_sequence != 0 and entry.producer_epoch != NO_PRODUCER_EPOCH:
                    raise KafkaError(OUT_OF_ORDER_SEQUENCE_NUMBER,
                                     f"Invalid sequence number for new epoch of producer {pid}: "
                                     f"{info.producer_epoch} (request epoch), "
                                     f"{info.base_sequence} (seq. number), "
                                     f"{entry.producer_epoch} (current producer epoch)")
            elif entry.producer_epoch != NO_PRODUCER_EPOCH and not in_sequence(entry.last_seq,
                                                                               info.base_sequence):
                raise KafkaError(OUT_OF_ORDER_SEQUENCE_NUMBER,
                                 f"Out of order sequence number for producer {pid}: found "
                                 f"{info.base_sequence} (incoming seq. number), "
                                 f"{entry.last_seq} (current end sequence number)")
        if not info.is_transactional and entry.current_txn_first_offset >= 0 \
                and info.producer_epoch == entry.producer_epoch:
            raise KafkaError(INVALID_TXN_STATE,
                             f"Expected transactional write from producer {pid} at offset "
                             f"{self.map_end_offset}")
        return None

    def check_marker(self, producer_id: int, producer_epoch: int, coordinator_epoch: int) -> None:
        """Validate a transaction marker before it is appended; raises KafkaError."""
        entry = self.producers.get(producer_id)
        if entry is None:
            return
        self._check_marker_epoch(entry, producer_epoch)
        if coordinator_epoch < entry.coordinator_epoch:
            raise KafkaError(TRANSACTION_COORDINATOR_FENCED,
                             f"Invalid coordinator epoch for producer {producer_id}: "
                             f"{coordinator_epoch} (zombie), {entry.coordinator_epoch} (current)")

    @staticmethod
    def _check_marker_epoch(entry: ProducerStateEntry, epoch: int) -> None:
        if epoch < entry.producer_epoch:
            raise KafkaError(PRODUCER_FENCED,
                             f"Producer {entry.producer_id}'s epoch {epoch} is older than the "
                             f"current epoch {entry.producer_epoch}")

    # ------------------------------------------------------------------ updates

    def on_append(self, info: BatchInfo, first_offset: int, *,
                  marker: tuple[bool, int] | None = None,
                  segment_base_offset: int = 0) -> CompletedTxn | None:
        """Record a batch now in the log at `first_offset` (live appends and replay alike).

        `marker` is (commit, coordinator_epoch) for control batches. Returns the completed
        transaction for a marker.
        """
        last_offset = first_offset + info.last_offset_delta
        self.map_end_offset = max(self.map_end_offset, last_offset + 1)
        pid = info.producer_id
        if pid == NO_PRODUCER_ID:
            return None
        entry = self.producers.get(pid)
        if entry is None:
            entry = self.producers[pid] = ProducerStateEntry(pid)
        entry.bump_epoch(info.producer_epoch)
        entry.last_timestamp = max(entry.last_timestamp, info.max_timestamp)
        if info.is_control:
            commit, coordinator_epoch = marker if marker is not None else (True, -1)
            return self._complete(entry, commit, coordinator_epoch, first_offset, segment_base_offset)
        if info.base_sequence != NO_SEQUENCE:
            entry.batches.append(BatchMetadata(info.base_sequence, info.last_sequence, first_offset,
                                               last_offset, info.max_timestamp))
        if info.is_transactional and entry.current_txn_first_offset < 0:
            entry.current_txn_first_offset = first_offset
            self.ongoing[first_offset] = pid
        return None

    def _complete(self, entry: ProducerStateEntry, commit: bool, coordinator_epoch: int,
                  marker_offset: int, segment_base_offset: int) -> CompletedTxn:
        first = entry.current_txn_first_offset
        if first >= 0:
            self.ongoing.pop(first, None)
        else:
            first = marker_offset
        entry.current_txn_first_offset = -1
        entry.coordinator_epoch = max(entry.coordinator_epoch, coordinator_epoch)
        completed = CompletedTxn(entry.producer_id, first, marker_offset, not commit)
        if not commit:
            lso = min(self.ongoing) if self.ongoing else marker_offset + 1
            txn = AbortedTxn(entry.producer_id, first, marker_offset, lso)
            if self.aborted is not None:
                self.aborted.append(txn, segment_base_offset)
            else:
                self._aborted_memory.append(txn)
        return completed

    # ------------------------------------------------------------------ queries

    def first_unstable_offset(self) -> int | None:
        """The first offset of the oldest open transaction, None when none is open."""
        return min(self.ongoing) if self.ongoing else None

    def last_stable_offset(self, high_watermark: int) -> int:
        """LSO: below the first open transaction, never beyond the high watermark."""
        first = self.first_unstable_offset()
        return high_watermark if first is None else min(first, high_watermark)

    def aborted_transactions(self, fetch_offset: int, upper_bound_offset: int) -> list[AbortedTxn]:
        """Aborted transactions overlapping [fetch_offset, upper_bound_offset) (Fetch)."""
        if self.aborted is not None:
            return self.aborted.collect(fetch_offset, upper_bound_offset)
        return [t for t in self._aborted_memory
                if t.last_offset >= fetch_offset and t.first_offset < upper_bound_offset]

    def all_aborted(self) -> list[AbortedTxn]:
        """Every aborted transaction still indexed."""
        return self.aborted.all() if self.aborted is not None else list(self._aborted_memory)

    def active_producers(self) -> list[dict]:
        """DescribeProducers' ProducerState entries for this partition."""
        return [{"producer_id": e.producer_id, "producer_epoch": e.producer_epoch,
                 "last_sequence": e.last_seq, "last_timestamp": e.last_timestamp,
                 "coordinator_epoch": e.coordinator_epoch,
                 "current_txn_start_offset": e.current_txn_first_offset}
                for e in sorted(self.producers.values(), key=lambda e: e.producer_id)]

    def expire(self, now_ms: int) -> int:
        """Forget producers idle for producer.id.expiration.ms with no open transaction."""
        expired = [pid for pid, e in self.producers.items()
                   if e.current_txn_first_offset < 0
                   and e.last_timestamp + self.producer_id_expiration_ms < now_ms]
        for pid in expired:
            del self.producers[pid]
        return len(expired)

    # ------------------------------------------------------------------ truncation

    def truncate_to(self, offset: int, log: Any = None) -> None:
        """The log was truncated to `offset`: rebuild from scratch (rare; keeps it simple)."""
        self.producers.clear()
        self.ongoing.clear()
        self._aborted_memory = [t for t in self._aborted_memory if t.last_offset < offset]
        if self.aborted is not None:
            self.aborted.truncate_to(offset)
        for path in self._snapshot_files():
            if _snapshot_offset(path) > offset:
                path.unlink(missing_ok=True)
        self.map_end_offset = 0
        if log is not None:
            self.load(log)

    # ------------------------------------------------------------------ snapshots

    def _snapshot_files(self) -> list[Path]:
        if self.directory is None or not self.directory.exists():
            return []
        return sorted(self.directory.glob(f"*{SNAPSHOT_SUFFIX}"), key=_snapshot_offset)

    def take_snapshot(self, offset: int | None = None) -> Path | None:
        """Write ``<offset>.snapshot`` (default: the map end offset); keeps the newest two."""
        if self.directory is None:
            return None
        offset = self.map_end_offset if offset is None else offset
        path = self.directory / f"{offset:020d}{SNAPSHOT_SUFFIX}"
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(encode_snapshot(self.producers.values()))
        os.replace(tmp, path)
        for old in self._snapshot_files()[:-SNAPSHOTS_TO_KEEP]:
            old.unlink(missing_ok=True)
        return path

    def load(self, log: Any) -> None:
        """Rebuild from the newest snapshot at or below the log end, then the log tail.

        `log` is a PartitionLog (directory, log_start_offset, log_end_offset, segments,
        batches()). Snapshots beyond the log end (written before a truncation) are deleted.
        """
        self.producers.clear()
        self.ongoing.clear()
        start = log.log_start_offset
        for path in reversed(self._snapshot_files()):
            offset = _snapshot_offset(path)
            if offset > log.log_end_offset:
                path.unlink(missing_ok=True)
                continue
            if offset < log.log_start_offset:
                continue
            try:
                entries = decode_snapshot(path.read_bytes())
            except ValueError as exc:
                logger.warning("ignoring producer snapshot %s: %s", path, exc)
                continue
            for entry in entries:
                self.producers[entry.producer_id] = entry
                if entry.current_txn_first_offset >= 0:
                    self.ongoing[entry.current_txn_first_offset] = entry.producer_id
            start = offset
            break
        self.map_end_offset = start
        if self.aborted is not None:
            self.aborted.truncate_to(start)   # markers from `start` on are indexed again below
        replayed = self._replay(log, start)
        logger.debug("producer state of %s rebuilt from offset %d: producers=%d batches=%d",
                     getattr(log, "directory", "?"), start, len(self.producers), replayed)

    def _replay(self, log: Any, start: int) -> int:
        """Feed every batch header from `start` on; only markers are read in full."""
        count = 0
        if start >= log.log_end_offset:
            return 0
        for segment in log.segments:
            if segment.next_offset <= start:
                continue
            for pos, header in segment.batches_from(start):
                if header.next_offset <= start:
                    continue
                count += 1
                marker = _read_marker(segment.read_batch(pos, header)) if header.is_control else None
                self.on_append(BatchInfo.of(header), header.base_offset, marker=marker,
                               segment_base_offset=segment.base_offset)
        return count


def _snapshot_offset(path: Path) -> int:
    try:
        return int(path.name[: -len(SNAPSHOT_SUFFIX)])
    except ValueError:
        return -1


def _read_marker(data: bytes) -> tuple[bool, int] | None:
    """(commit, coordinator epoch) of a control batch, None when it is not a txn marker."""
    from protocol.record_codec import decode_batch

    batch = decode_batch(data)
    if not batch.records:
        return None
    record = batch.records[0]
    if record.key is None or len(record.key) < 4:
        return None
    _version, control_type = struct.unpack_from(">hh", record.key)
    if control_type not in (0, 1):       # 0 ABORT, 1 COMMIT; others are not txn markers
        return None
    coordinator_epoch = -1
    if record.value is not None and len(record.value) >= 6:
        _value_version, coordinator_epoch = struct.unpack_from(">hi", record.value)
    return control_type == 1, coordinator_epoch


def encode_snapshot(entries: Iterable[ProducerStateEntry]) -> bytes:
    """Kafka's producer snapshot file (version 1) for `entries` (last batch of each)."""
    body = bytearray()
    items = [e for e in entries]
    body += _SNAPSHOT_COUNT.pack(len(items))
    for e in items:
        last = e.batches[-1] if e.batches else None
        body += _SNAPSHOT_ENTRY.pack(
            e.producer_id, e.producer_epoch,
            last.last_seq if last else NO_SEQUENCE,
            last.last_offset if last else -1,
            (last.last_offset - last.first_offset) if last else 0,
            e.last_timestamp, e.coordinator_epoch, e.current_txn_first_offset)
    return _SNAPSHOT_HEADER.pack(SNAPSHOT_VERSION, crc32c.crc32c(bytes(body))) + bytes(body)


def decode_snapshot(data: bytes) -> list[ProducerStateEntry]:
    """Entries of a snapshot file; raises ValueError when it is damaged."""
    if len(data) < _SNAPSHOT_HEADER.size + _SNAPSHOT_COUNT.size:
        raise ValueError("snapshot too short")
    version, crc = _SNAPSHOT_HEADER.unpack_from(data, 0)
    if version != SNAPSHOT_VERSION:
        raise ValueError(f"unknown snapshot version {version}")
    body = data[_SNAPSHOT_HEADER.size:]
    if crc32c.crc32c(body) != crc:
        raise ValueError("snapshot CRC mismatch")
    (count,) = _SNAPSHOT_COUNT.unpack_from(body, 0)
    if count < 0 or len(body) != _SNAPSHOT_COUNT.size + count * _SNAPSHOT_ENTRY.size:
        raise ValueError("snapshot length does not match its entry count")
    entries = []
    for i in range(count):
        (pid, epoch, last_seq, last_offset, offset_delta, timestamp, coordinator_epoch,
         txn_first) = _SNAPSHOT_ENTRY.unpack_from(body, _SNAPSHOT_COUNT.size + i * _SNAPSHOT_ENTRY.size)
        entry = ProducerStateEntry(pid, epoch, coordinator_epoch=coordinator_epoch,
                                   current_txn_first_offset=txn_first, last_timestamp=timestamp)
        if last_seq != NO_SEQUENCE and last_offset >= 0:
            first_seq = last_seq - offset_delta if last_seq >= offset_delta else \
                next_sequence(last_seq, INT32_MAX + 1 - offset_delta)
            entry.batches.append(BatchMetadata(first_seq, last_seq, last_offset - offset_delta,
                                               last_offset, timestamp))
        entries.append(entry)
    return entries


class ProducerStates:
    """Every partition's ProducerStateManager, built lazily from its log (``broker.producers``)."""

    def __init__(self, *, producer_id_expiration_ms: int = PRODUCER_ID_EXPIRATION_MS) -> None:
        self.producer_id_expiration_ms = producer_id_expiration_ms
        self._states: dict[tuple[str, int], tuple[Any, ProducerStateManager]] = {}

    def for_log(self, log: Any) -> ProducerStateManager:
        """The state of `log`'s partition, loaded (snapshot + log tail) on first use."""
        key = (log.topic, log.partition)
        held = self._states.get(key)
        if held is not None and held[0] is log:
            return held[1]
        state = ProducerStateManager(log.directory,
                                     producer_id_expiration_ms=self.producer_id_expiration_ms)
        state.load(log)
        self._states[key] = (log, state)
        # PartitionLog.last_stable_offset asks this (Fetch, ListOffsets, the cleaner).
        log.stable_offset_fn = state.last_stable_offset
        return state

    def get(self, topic: str, partition: int) -> ProducerStateManager | None:
        """The state if already loaded."""
        held = self._states.get((topic, partition))
        return held[1] if held is not None else None

    def forget(self, topic: str, partition: int) -> None:
        """Drop a partition's state (its log was deleted)."""
        self._states.pop((topic, partition), None)

    def snapshot_all(self) -> None:
        """Write a snapshot of every loaded partition at its log end (clean stop)."""
        for (topic, partition), (log, state) in list(self._states.items()):
            if getattr(log, "closed", False):
                continue
            try:
                state.take_snapshot(log.log_end_offset)
            except OSError as exc:
                logger.warning("producer snapshot of %s-%d failed: %s", topic, partition, exc)

    def items(self) -> list[tuple[tuple[str, int], ProducerStateManager]]:
        """(topic, partition) and state of every loaded partition."""
        return [(key, held[1]) for key, held in self._states.items()]


def guarded_append(producers: ProducerStates | None, log: Any, batch: Any, *,
                   leader_epoch: int, now_ms: int) -> Any:
    """Append a produced batch through the producer-state checks (the Produce path).

    Returns the PartitionLog's AppendResult; for a duplicate, an AppendResult with the
    original offsets and nothing is written. Raises KafkaError as PartitionLog.append does,
    plus the sequence/epoch errors above.
    """
    from protocol.records import BATCH_OVERHEAD, read_batch_header

    if producers is None or len(batch) < BATCH_OVERHEAD:
        return log.append(batch, leader_epoch=leader_epoch, now_ms=now_ms)
    header = read_batch_header(batch, 0)
    if header.producer_id == NO_PRODUCER_ID:
        return log.append(batch, leader_epoch=leader_epoch, now_ms=now_ms)
    info = BatchInfo.of(header)
    state = producers.for_log(log)
    duplicate = state.check(info)
    if duplicate is not None:
        from kbroker.log.partition_log import AppendResult

        logger.debug("duplicate batch producer_id=%d seq=%d..%d of %s-%d: offsets %d..%d",
                     info.producer_id, duplicate.first_seq, duplicate.last_seq, log.topic,
                     log.partition, duplicate.first_offset, duplicate.last_offset)
        return AppendResult(base_offset=duplicate.first_offset, last_offset=duplicate.last_offset,
                            log_append_time_ms=-1, log_start_offset=log.log_start_offset)
    result = log.append(batch, leader_epoch=leader_epoch, now_ms=now_ms)
    state.on_append(info, result.base_offset, segment_base_offset=log.active_segment.base_offset)
    return result

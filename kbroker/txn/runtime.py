"""The trio side of the transaction coordinator: __transaction_state, markers, timers.

The Broker constructs `TransactionCoordinatorRuntime(broker)` and starts
`await runtime.run(task_status=...)` after the group coordinator. `run` replays
__transaction_state into the pure `TransactionCoordinator`, writes again the markers of any
transaction a crash left in PrepareCommit/PrepareAbort, reports ready, then aborts timed-out
transactions (every transaction.abort.timed.out.transaction.cleanup.interval.ms, or earlier
when a timeout is due) and expires idle transactional ids.

Handlers call `execute(op)`: ops are serialised by one lock; each op's records are appended to
the id's __transaction_state partition and replayed; then its markers are written (control
batches through the partitions' producer state, see kbroker.log.producer_state), staged
transactional offsets are handed to the group coordinator on commit (dropped on abort), and
the Complete record is appended. The answer goes back only after all of that, so a client
that saw its commit succeed reads its records with read_committed at once.

Producer ids come from blocks allocated through the metadata log
(`Controller.allocate_producer_ids`, a ProducerIdsRecord each), so they are unique across
restarts. Also sets `broker.producers` (kbroker.log.producer_state.ProducerStates) when the
broker has none, and writes its snapshots at a clean stop.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

import trio

from kbroker.errors import KafkaError
from kbroker.metadata.internal_topics import ensure_internal_topic, internal_partition_for
from kbroker.log.producer_state import BatchInfo, ProducerStates

if TYPE_CHECKING:
    from kbroker.broker import Broker
    from kbroker.txn.coordinator import MarkerRequest, Result, TransactionCoordinator

# The state machine and record modules are imported when the first transactional request
# needs them (or at load, when __transaction_state exists), so start-up stays light (issue 8).
TRANSACTION_STATE_TOPIC = "__transaction_state"   # as kbroker.txn.records (not imported yet)

logger = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
LOAD_READ_BYTES = 1 << 20
COORDINATOR_NOT_AVAILABLE = 15


@dataclass(frozen=True, slots=True)
class PendingOffset:
    """An offset committed inside a transaction, visible once the transaction commits."""

    offset: int
    leader_epoch: int
    metadata: str | None
    commit_timestamp_ms: int


class TransactionCoordinatorRuntime:
    """Loads __transaction_state, runs transactional requests, writes markers, aborts on timeout."""

    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        config = broker.config
        self.num_partitions: int = getattr(config, "transaction_state_log_num_partitions", 50)
        self.replication_factor: int = getattr(config, "transaction_state_log_replication_factor", 1)
        self.segment_bytes: int = getattr(config, "transaction_state_log_segment_bytes", 104857600)
        self.min_isr: int = getattr(config, "transaction_state_log_min_isr", 1)
        self.cleanup_interval_ms: int = getattr(
            config, "transaction_abort_timed_out_transaction_cleanup_interval_ms", 10000)
        self._coordinator: TransactionCoordinator | None = None   # created on first use
        if getattr(broker, "producers", None) is None:
            broker.producers = ProducerStates()
        # producer id -> group -> (topic, partition) -> offset staged by TxnOffsetCommit
        self.pending_offsets: dict[int, dict[str, dict[tuple[str, int], PendingOffset]]] = {}
        self.loaded = False
        self._lock = trio.Lock()
        self._create_lock = trio.Lock()
        self._id_lock = trio.Lock()
        self.producer_id_expiration_check_interval_ms: int = getattr(
            config, "producer_id_expiration_check_interval_ms", 600_000)
        self._next_producer_expiry_ms = 0
        self._next_id = 0
        self._end_id = 0          # exclusive end of the current producer id block
        self._wakeup = trio.Event()

    @property
    def coordinator(self) -> TransactionCoordinator:
        """The transaction state machine (created on first use)."""
        if self._coordinator is None:
            from kbroker.txn.coordinator import TransactionCoordinator, TxnConfig

            config = self.broker.config
            self._coordinator = TransactionCoordinator(TxnConfig(
                max_timeout_ms=getattr(config, "transaction_max_timeout_ms", 900_000),
                transactional_id_expiration_ms=getattr(config, "transactional_id_expiration_ms",
                                                       604_800_000)))
        return self._coordinator

    # ------------------------------------------------------------------ service

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Replay __transaction_state, finish interrupted transactions, then run timers."""
        self._load()
        self._restage_open_offsets()
        async with self._lock:
            pending = self._coordinator.pending_markers() if self._coordinator is not None else []
            for markers in pending:
                await self._finish(markers)
        self.loaded = True
        task_status.started()
        await self._timer_loop()

    def close(self) -> None:
        """Snapshot producer state at a clean stop (restart then reads only the log tail)."""
        producers = getattr(self.broker, "producers", None)
        if producers is not None:
            producers.snapshot_all()

    def _now_ms(self) -> int:
        return self.broker.clock.now_ms()

    def _load(self) -> None:
        topic = self.broker.controller.image.topics_by_name.get(TRANSACTION_STATE_TOPIC)
        if topic is None:
            logger.info("transaction coordinator ready: no %s yet", TRANSACTION_STATE_TOPIC)
            return
        from kbroker.txn.records import decode_record
        from protocol.record_codec import decode_records

        count = 0
        for partition in sorted(topic.partitions):
            log = self.broker.partition_log(topic, partition)
            if log is None:
                continue
            offset = log.log_start_offset
            while offset < log.log_end_offset:
                read = log.read(offset, LOAD_READ_BYTES)
                batches = decode_records(read.records) if read.records else []
                if not batches:
                    break
                for batch in batches:
                    offset = batch.next_offset
                    if batch.is_control:
                        continue
                    for record in batch.records:
                        logical = decode_record(record.key, record.value)
                        if logical is not None:
                            self.coordinator.replay(logical)
                            count += 1
        logger.info("transaction coordinator loaded %s: records=%d transactional_ids=%d",
                    TRANSACTION_STATE_TOPIC, count, len(self.coordinator.transactions))

    def _restage_open_offsets(self) -> None:
        """Offsets of transactions still open in __consumer_offsets (found by the group loader)."""
        groups = getattr(self.broker, "groups", None)
        open_offsets = getattr(groups, "open_txn_offsets", None)
        if not open_offsets:
            return   # the usual case; and no record module to import at start-up
        from kbroker.coordinator.records import OffsetCommitRecord
        from kbroker.coordinator.records import decode_record as decode_group_record

        for producer_id, pairs in open_offsets.items():
            for key, value in pairs:
                record = decode_group_record(key, value) if key is not None else None
                if isinstance(record, OffsetCommitRecord) and record.value is not None:
                    v = record.value
                    self.stage_offsets(producer_id, record.group_id, {
                        (record.topic, record.partition): PendingOffset(
                            v.offset, v.leader_epoch, v.metadata, v.commit_timestamp_ms)})

    async def _timer_loop(self) -> None:
        while True:
            coordinator = self._coordinator   # None: no transaction yet, only producer expiry
            deadline = coordinator.next_deadline_ms() if coordinator is not None else None
            wait_ms = self.cleanup_interval_ms
            if deadline is not None:
                wait_ms = min(wait_ms, max(deadline - self._now_ms(), 0))
            self._wakeup = trio.Event()
            with trio.move_on_after(wait_ms / 1000):
                await self._wakeup.wait()
            try:
                now_ms = self._now_ms()
                if self._coordinator is not None:
                    for txn_id in self.coordinator.timed_out(now_ms):
                        await self.execute(lambda now, t=txn_id: self.coordinator.abort_timed_out(t, now_ms=now))
                    expired = self.coordinator.expire(now_ms)
                    if expired.records:
                        await self.execute(lambda now: self.coordinator.expire(now))
                self._expire_producers(now_ms)
            except KafkaError as exc:
                logger.warning("transaction coordinator timer step failed: %s", exc)
                await trio.sleep(1)   # back off rather than spin on a persistent failure

    def _expire_producers(self, now_ms: int) -> None:
        """Forget idle producers (producer.id.expiration.ms) every check interval."""
        if now_ms < self._next_producer_expiry_ms:
            return
        self._next_producer_expiry_ms = now_ms + self.producer_id_expiration_check_interval_ms
        for (topic, partition), state in self.broker.producers.items():
            count = state.expire(now_ms)
            if count:
                logger.debug("expired %d producers of %s-%d", count, topic, partition)

    # ------------------------------------------------------------------ topic, ids

    def partition_for(self, transactional_id: str) -> int:
        """The __transaction_state partition of `transactional_id`."""
        from kbroker.txn.records import partition_for

        return internal_partition_for(self.broker.controller, TRANSACTION_STATE_TOPIC,
                                      transactional_id, self.num_partitions, partition_for)

    async def ensure_state_topic(self) -> None:
        """Create __transaction_state through the controller unless it exists."""
        await ensure_internal_topic(
            self.broker.controller, self._create_lock, TRANSACTION_STATE_TOPIC, self.num_partitions,
            self.replication_factor,
            {"cleanup.policy": "compact", "compression.type": "uncompressed",
             "min.insync.replicas": str(self.min_isr), "segment.bytes": str(self.segment_bytes),
             "unclean.leader.election.enable": "false"})

    async def new_producer_id(self) -> int:
        """The next producer id, allocating a block through the metadata log when needed."""
        await self._ensure_ids()
        return self._take_id()

    async def _ensure_ids(self) -> None:
        async with self._id_lock:   # concurrent InitProducerIds must not take two blocks
            if self._next_id >= self._end_id:
                start, length = await self.broker.controller.allocate_producer_ids(self.broker.node_id)
                self._next_id, self._end_id = start, start + length
                logger.info("allocated producer ids %d..%d", start, start + length - 1)

    def _take_id(self) -> int:
        assert self._next_id < self._end_id, "producer id block exhausted"
        pid = self._next_id
        self._next_id += 1
        return pid

    # ------------------------------------------------------------------ requests

    async def execute(self, op: Callable[[int], Result]) -> Any:
        """Run `op(now_ms)`, persist its records, write its markers, return its answer.

        Raises KafkaError when the records cannot be appended (nothing is applied then).
        """
        await self.ensure_state_topic()
        async with self._lock:
            await self._ensure_ids()   # an InitProducerId op may need one id, synchronously
            now_ms = self._now_ms()
            result = op(now_ms)
            self._apply(result, now_ms)
            if result.markers is not None:
                await self._finish(result.markers)
            self._wakeup.set()         # deadlines may have moved
            return result.response

    def new_id_for_op(self) -> int:
        """The producer id callable handed to pure ops (a block is ensured by `execute`)."""
        return self._take_id()

    def query(self, fn: Callable[[TransactionCoordinator], Any]) -> Any:
        """Read-only access to the state machine (Describe/ListTransactions)."""
        return fn(self.coordinator)

    def _apply(self, result: Result, now_ms: int) -> None:
        if not result.records:
            return
        self._append(result.records, now_ms)
        for record in result.records:
            self.coordinator.replay(record)

    def _append(self, records: list, now_ms: int) -> None:
        from kbroker.txn.records import encode_record, partition_for
        from protocol.record_codec import build_batch

        topic = self.broker.controller.image.topics_by_name.get(TRANSACTION_STATE_TOPIC)
        if topic is None:
            raise KafkaError(COORDINATOR_NOT_AVAILABLE, f"{TRANSACTION_STATE_TOPIC} does not exist")
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for record in records:
            p = partition_for(record.transactional_id, len(topic.partitions))
            by_partition.setdefault(p, []).append(encode_record(record))
        for p, pairs in by_partition.items():
            log = self.broker.partition_log(topic, p)
            if log is None:
                raise KafkaError(COORDINATOR_NOT_AVAILABLE, f"{TRANSACTION_STATE_TOPIC}-{p} is not available")
            log.append(build_batch(pairs, base_timestamp=now_ms),
                       leader_epoch=topic.partitions[p].leader_epoch, now_ms=now_ms)
            self.broker.log_appended(TRANSACTION_STATE_TOPIC, p)

    def coordinator_epoch(self, transactional_id: str) -> int:
        """The leader epoch of the id's __transaction_state partition (0 on a single node)."""
        from kbroker.txn.records import partition_for

        topic = self.broker.controller.image.topics_by_name.get(TRANSACTION_STATE_TOPIC)
        if topic is None:
            return 0
        partition = topic.partitions.get(partition_for(transactional_id, len(topic.partitions)))
        return max(partition.leader_epoch, 0) if partition is not None else 0

    # ------------------------------------------------------------------ markers

    async def _finish(self, markers: MarkerRequest) -> None:
        """Write the markers, settle staged offsets, then record the transaction complete."""
        coordinator_epoch = self.coordinator_epoch(markers.transactional_id)
        for topic_name, partition in sorted(markers.partitions):
            self.write_marker(topic_name, partition, markers.producer_id, markers.producer_epoch,
                              markers.commit, coordinator_epoch)
        await self._settle_offsets(markers.producer_id, markers.commit)
        now_ms = self._now_ms()
        self._apply(self.coordinator.complete_markers(markers.transactional_id, now_ms=now_ms), now_ms)

    def write_marker(self, topic_name: str, partition: int, producer_id: int, producer_epoch: int,
                     commit: bool, coordinator_epoch: int) -> int:
        """Append one COMMIT/ABORT control batch (through producer state); an error code."""
        from protocol.record_codec import build_control_batch

        topic = self.broker.controller.image.topics_by_name.get(topic_name)
        log = self.broker.partition_log(topic, partition) if topic is not None else None
        if log is None:
            logger.warning("marker for %s-%d dropped: no such partition", topic_name, partition)
            return 3   # UNKNOWN_TOPIC_OR_PARTITION
        now_ms = self._now_ms()
        state = self.broker.producers.for_log(log)
        try:
            state.check_marker(producer_id, producer_epoch, coordinator_epoch)
            batch = build_control_batch(commit, producer_id, producer_epoch, coordinator_epoch,
                                        timestamp=now_ms)
            result = log.append(batch, leader_epoch=topic.partitions[partition].leader_epoch,
                                now_ms=now_ms)
        except KafkaError as exc:
            logger.warning("marker for %s-%d producer_id=%d not written: %s", topic_name, partition,
                           producer_id, exc)
            return int(exc.code)
        state.on_append(BatchInfo(producer_id, producer_epoch, -1, 0, now_ms, True, True),
                        result.base_offset, marker=(commit, coordinator_epoch),
                        segment_base_offset=log.active_segment.base_offset)
        self.broker.log_appended(topic_name, partition)
        return 0

    # ------------------------------------------------------------------ transactional offsets

    def stage_offsets(self, producer_id: int, group_id: str,
                      offsets: dict[tuple[str, int], PendingOffset]) -> None:
        """TxnOffsetCommit: keep offsets until the transaction ends."""
        self.pending_offsets.setdefault(producer_id, {}).setdefault(group_id, {}).update(offsets)

    def has_pending_offset(self, group_id: str, topic: str, partition: int) -> bool:
        """Whether an open transaction staged an offset for this partition of the group.

        For OffsetFetch with require_stable (v7+): Kafka answers UNSTABLE_OFFSET_COMMIT then.
        """
        return any((topic, partition) in staged.get(group_id, {})
                   for staged in self.pending_offsets.values())

    def write_txn_offsets(self, producer_id: int, producer_epoch: int, group_id: str,
                          offsets: dict[tuple[str, int], PendingOffset]) -> None:
        """Append staged offsets to the group's __consumer_offsets partition, transactionally.

        The batch carries the producer's id and epoch, so a restart finds these offsets and
        applies them only if the transaction's COMMIT marker follows (kbroker.txn.offsets).
        Raises KafkaError when the partition cannot be written.
        """
        from kbroker.coordinator.offsets import OffsetAndMetadata
        from kbroker.coordinator.records import OffsetCommitRecord
        from kbroker.coordinator.records import encode_record as encode_group_record
        from protocol.record_codec import build_batch
        from protocol.records import read_batch_header

        groups = getattr(self.broker, "groups", None)
        topic = self.broker.controller.image.topics_by_name.get(OFFSETS_TOPIC)
        if groups is None or topic is None:
            raise KafkaError(COORDINATOR_NOT_AVAILABLE, f"{OFFSETS_TOPIC} is not available")
        partition = groups.partition_for(group_id)
        log = self.broker.partition_log(topic, partition)
        if log is None:
            raise KafkaError(COORDINATOR_NOT_AVAILABLE, f"{OFFSETS_TOPIC}-{partition} is not available")
        pairs = [encode_group_record(OffsetCommitRecord(group_id, t, p, OffsetAndMetadata(
                     o.offset, o.leader_epoch, o.metadata or "", o.commit_timestamp_ms, -1)))
                 for (t, p), o in sorted(offsets.items())]
        now_ms = self._now_ms()
        batch = build_batch(pairs, base_timestamp=now_ms, producer_id=producer_id,
                            producer_epoch=producer_epoch, is_transactional=True)
        result = log.append(batch, leader_epoch=topic.partitions[partition].leader_epoch, now_ms=now_ms)
        info = BatchInfo.of(read_batch_header(batch, 0))
        self.broker.producers.for_log(log).on_append(
            info, result.base_offset, segment_base_offset=log.active_segment.base_offset)
        self.broker.log_appended(OFFSETS_TOPIC, partition)

    async def _settle_offsets(self, producer_id: int, commit: bool) -> None:
        staged = self.pending_offsets.pop(producer_id, None)
        if not staged or not commit:
            return
        groups = getattr(self.broker, "groups", None)
        if groups is None:
            logger.warning("transactional offsets of producer_id=%d dropped: no group coordinator",
                           producer_id)
            return
        await commit_offsets_to_groups(groups, staged)


async def commit_offsets_to_groups(groups: Any, staged: dict[str, dict[tuple[str, int], PendingOffset]]
                                   ) -> None:
    """Make committed transactional offsets visible through the group coordinator.

    Uses the group runtime's `execute` with a Result carrying OffsetCommitRecords (the same
    records a plain OffsetCommit appends), so they are persisted and replayed as usual.
    """
    from kbroker.coordinator.coordinator import Result as GroupResult
    from kbroker.coordinator.offsets import OffsetAndMetadata
    from kbroker.coordinator.records import OffsetCommitRecord

    def op(now_ms: int) -> GroupResult:
        records = []
        for group_id, offsets in staged.items():
            for (topic, partition), o in sorted(offsets.items()):
                ts = o.commit_timestamp_ms if o.commit_timestamp_ms >= 0 else now_ms
                records.append(OffsetCommitRecord(group_id, topic, partition, OffsetAndMetadata(
                    o.offset, o.leader_epoch, o.metadata or "", ts, -1)))
        return GroupResult(records=records)

    await groups.execute(op)

"""The trio side of the group coordinator: persistence, waiting requests and timers.

The Broker constructs `GroupCoordinatorRuntime(broker)` and starts
`await runtime.run(task_status=...)` in its nursery (docs/contracts.md). `run` replays
__consumer_offsets into the pure `GroupCoordinator` (coordinator.py), reports ready, then
drives its timers (session/rebalance timeouts, initial rebalance delay, offset expiry).

Handlers call `execute(op)`: the op runs on the state machine with the current time, its
records are appended to the group's __consumer_offsets partition (one v2 batch, framed as
Kafka frames them) and replayed, answers for earlier waiting requests are delivered, and the
op's own answer is returned, after waiting for it when the op left the request pending (a
JoinGroup during a rebalance). Between running an op and replaying its records there is no
`await`, so ops never see each other half-applied.

__consumer_offsets is created through the controller the first time it is needed, with
offsets.topic.num.partitions partitions and cleanup.policy=compact.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Callable

import trio

from kbroker.errors import KafkaError
from kbroker.metadata.internal_topics import ensure_internal_topic, internal_partition_for

if TYPE_CHECKING:
    from kbroker.broker import Broker
    from kbroker.coordinator.coordinator import GroupConfig, GroupCoordinator, Result
    from kbroker.coordinator.records import CoordinatorRecord

# The state machine and record modules are imported when the first group needs them (or at
# load, when __consumer_offsets exists): a broker nobody uses as a group coordinator starts
# about 12 ms sooner (issue 8).

logger = logging.getLogger(__name__)

OFFSETS_TOPIC = "__consumer_offsets"
LOAD_READ_BYTES = 1 << 20            # bytes read per step when replaying a partition


class _Waiter:
    """One request waiting for its answer (a delayed JoinGroup or SyncGroup)."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = trio.Event()
        self.value: Any = None

    def deliver(self, value: Any) -> None:
        self.value = value
        self.event.set()


def group_config_from(config: Any) -> GroupConfig:
    """The coordinator's settings from a BrokerConfig (Kafka defaults for anything absent)."""
    from kbroker.coordinator.coordinator import GroupConfig

    d = GroupConfig()
    retention_min = getattr(config, "offsets_retention_minutes", None)
    return GroupConfig(
        min_session_timeout_ms=getattr(config, "group_min_session_timeout_ms",
                                       d.min_session_timeout_ms),
        max_session_timeout_ms=getattr(config, "group_max_session_timeout_ms",
                                       d.max_session_timeout_ms),
        initial_rebalance_delay_ms=getattr(config, "group_initial_rebalance_delay_ms",
                                           d.initial_rebalance_delay_ms),
        max_size=getattr(config, "group_max_size", d.max_size),
        offset_metadata_max_bytes=getattr(config, "offset_metadata_max_bytes",
                                          d.offset_metadata_max_bytes),
        offsets_retention_ms=(retention_min * 60_000 if retention_min is not None
                              else d.offsets_retention_ms),
        offsets_retention_check_interval_ms=getattr(
            config, "offsets_retention_check_interval_ms",
            d.offsets_retention_check_interval_ms),
        consumer_session_timeout_ms=getattr(config, "group_consumer_session_timeout_ms",
                                            d.consumer_session_timeout_ms),
        consumer_heartbeat_interval_ms=getattr(config, "group_consumer_heartbeat_interval_ms",
                                               d.consumer_heartbeat_interval_ms),
        consumer_max_size=getattr(config, "group_consumer_max_size", d.consumer_max_size),
        consumer_assignors=_assignor_names(getattr(config, "group_consumer_assignors", None),
                                           d.consumer_assignors),
    )


def _assignor_names(value: Any, default: tuple[str, ...]) -> tuple[str, ...]:
    """group.consumer.assignors as short names ("uniform", "range"), known ones only."""
    if not value:
        return default
    items = value.split(",") if isinstance(value, str) else list(value)
    names = []
    for item in items:
        short = item.strip().rsplit(".", 1)[-1].lower()
        short = {"uniformassignor": "uniform", "rangeassignor": "range"}.get(short, short)
        if short in default:
            names.append(short)
    return tuple(names) or default


class GroupCoordinatorRuntime:
    """Loads __consumer_offsets, appends coordinator records, runs group timers."""

    def __init__(self, broker: "Broker") -> None:
        self.broker = broker
        config = broker.config
        self.num_partitions: int = getattr(config, "offsets_topic_num_partitions", 50)
        self.replication_factor: int = getattr(config, "offsets_topic_replication_factor", 1)
        self.segment_bytes: int = getattr(config, "offsets_topic_segment_bytes", 104857600)
        self._coordinator: GroupCoordinator | None = None   # created on first use
        self.loaded = False
        # issue 7: offsets of transactions open at load, by producer id, for the txn coordinator
        self.open_txn_offsets: dict[int, list[tuple[bytes | None, bytes | None]]] = {}
        self._waiters: dict[int, _Waiter] = {}
        self._wakeup = trio.Event()
        self._create_lock = trio.Lock()

    @property
    def coordinator(self) -> GroupCoordinator:
        """The group state machine (created on first use)."""
        if self._coordinator is None:
            from kbroker.coordinator.coordinator import GroupCoordinator

            self._coordinator = GroupCoordinator(group_config_from(self.broker.config))
        return self._coordinator

    # ------------------------------------------------------------------ service

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        """Replay __consumer_offsets, report ready through `task_status`, then run timers."""
        self._load()
        self.loaded = True
        task_status.started()
        await self._timer_loop()

    def close(self) -> None:
        """Nothing to flush: every record was appended before its request was answered."""

    def _now_ms(self) -> int:
        return self.broker.clock.now_ms()

    def _load(self) -> None:
        topic = self.broker.controller.image.topics_by_name.get(OFFSETS_TOPIC)
        if topic is None:
            logger.info("group coordinator ready: no %s yet", OFFSETS_TOPIC)
            return
        now_ms = self._now_ms()
        count = 0
        for partition in sorted(topic.partitions):
            log = self.broker.partition_log(topic, partition)
            if log is None:
                continue
            count += self._load_partition(log, now_ms)
        self.coordinator.finish_load(now_ms)
        logger.info("group coordinator loaded %s: records=%d groups=%d consumer_groups=%d",
                    OFFSETS_TOPIC, count, len(self.coordinator.groups),
                    len(self.coordinator.consumer_groups))

    def _load_partition(self, log: Any, now_ms: int) -> int:
        from kbroker.coordinator.records import decode_record
        from kbroker.txn.offsets import TxnOffsetLoader
        from protocol.record_codec import decode_records

        # issue 7: transactional offset commits apply only once their COMMIT marker is read
        txn_loader = TxnOffsetLoader()
        offset = log.log_start_offset
        count = 0
        while offset < log.log_end_offset:
            read = log.read(offset, LOAD_READ_BYTES)
            batches = decode_records(read.records) if read.records else []
            if not batches:
                break
            for batch in batches:
                offset = batch.next_offset
                for key, value in txn_loader.feed(batch):
                    if key is None:
                        continue
                    logical = decode_record(key, value)
                    if logical is not None:
                        self.coordinator.replay(logical, now_ms=now_ms, loading=True)
                        count += 1
        for producer_id, pairs in txn_loader.open_transactions().items():
            self.open_txn_offsets.setdefault(producer_id, []).extend(pairs)
        return count

    async def _timer_loop(self) -> None:
        while True:
            # no state machine yet: no group, nothing due; the first op's _apply wakes us
            coordinator = self._coordinator
            deadline = coordinator.next_deadline_ms() if coordinator is not None else None
            self._wakeup = trio.Event()
            if deadline is None:
                await self._wakeup.wait()
            else:
                with trio.move_on_after(max(deadline - self._now_ms(), 0) / 1000):
                    await self._wakeup.wait()
            try:
                await self._ensure_topic_if_needed()
                now_ms = self._now_ms()
                self._apply(self.coordinator.tick(now_ms), now_ms)
            except KafkaError as exc:
                logger.warning("group coordinator timer step failed: %s", exc)
                await trio.sleep(1)   # back off: retry the step later, do not spin

    # ------------------------------------------------------------------ requests

    def partition_for(self, group_id: str) -> int:
        """The __consumer_offsets partition that holds `group_id`."""
        from kbroker.coordinator.records import partition_for

        return internal_partition_for(self.broker.controller, OFFSETS_TOPIC, group_id,
                                      self.num_partitions, partition_for)

    async def ensure_offsets_topic(self) -> None:
        """Create __consumer_offsets through the controller unless it exists."""
        await ensure_internal_topic(
            self.broker.controller, self._create_lock, OFFSETS_TOPIC, self.num_partitions,
            self.replication_factor,
            {"cleanup.policy": "compact", "compression.type": "producer",
             "segment.bytes": str(self.segment_bytes)})

    async def _ensure_topic_if_needed(self) -> None:
        # the timer only writes when a group has something persisted, i.e. the topic exists,
        # except for expiry of groups that were never written; creating it then is harmless
        if self._coordinator is not None and self._coordinator.groups:
            await self.ensure_offsets_topic()

    async def execute(self, op: Callable[[int], Result], *, wake_timers: bool = True) -> Any:
        """Run `op(now_ms)` on the state machine, persist its records, return its answer.

        Waits for the answer when the op left the request pending. Raises KafkaError when
        the records could not be appended (the op's records are then not applied).
        `wake_timers=False` is for ops that can only push deadlines later (heartbeats,
        commits): the timer task then keeps sleeping instead of rescanning every group.
        """
        await self.ensure_offsets_topic()
        now_ms = self._now_ms()
        result = op(now_ms)
        waiter = None
        if result.pending_id is not None:
            waiter = _Waiter()
            self._waiters[result.pending_id] = waiter
        try:
            self._apply(result, now_ms, wake=wake_timers or bool(result.completions))
        except BaseException:
            if result.pending_id is not None:
                self._waiters.pop(result.pending_id, None)
            raise
        if waiter is None:
            return result.response
        try:
            await waiter.event.wait()
        finally:
            self._waiters.pop(result.pending_id, None)
        return waiter.value

    def query(self, fn: Callable[[GroupCoordinator], Any]) -> Any:
        """Read-only access to the state machine (OffsetFetch, DescribeGroups, ListGroups)."""
        return fn(self.coordinator)

    def _apply(self, result: Result, now_ms: int, wake: bool = True) -> None:
        try:
            if result.records:
                self._append(result.records, now_ms)
                for record in result.records:
                    self.coordinator.replay(record, now_ms=now_ms)
        finally:
            for pending_id, response in result.completions:
                waiter = self._waiters.pop(pending_id, None)
                if waiter is not None:
                    waiter.deliver(response)
            if wake:
                self._wakeup.set()      # deadlines may have moved earlier

    def _append(self, records: list[CoordinatorRecord], now_ms: int) -> None:
        from kbroker.coordinator.records import encode_record, partition_for
        from protocol.record_codec import build_batch

        topic = self.broker.controller.image.topics_by_name.get(OFFSETS_TOPIC)
        if topic is None:
            raise KafkaError(15, f"{OFFSETS_TOPIC} does not exist")   # COORDINATOR_NOT_AVAILABLE
        by_partition: dict[int, list[tuple[bytes, bytes | None]]] = {}
        for record in records:
            p = partition_for(record.group_id, len(topic.partitions))
            by_partition.setdefault(p, []).append(encode_record(record))
        for p, pairs in by_partition.items():
            log = self.broker.partition_log(topic, p)
            if log is None:
                raise KafkaError(15, f"{OFFSETS_TOPIC}-{p} is not available")
            batch = build_batch(pairs, base_timestamp=now_ms)
            log.append(batch, leader_epoch=topic.partitions[p].leader_epoch, now_ms=now_ms)
            self.broker.log_appended(OFFSETS_TOPIC, p)

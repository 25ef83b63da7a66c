"""The metadata controller: validates admin operations and turns them into metadata records.

The controller is the only writer of the metadata log. Each operation
1. validates against the latest image, including records appended but not yet committed
   (Kafka's controller does the same with its timeline structures), so two operations in
   flight cannot both create one topic;
2. builds the records and applies them to that latest image at once, before any checkpoint,
   so operations are serialised in call order without a lock;
3. appends them to the quorum and returns once they are committed and published, i.e. once
   `controller.image` and the listeners (log manager) reflect them.

State changes only by replaying records (`image.apply`), at start-up and on commit alike.
There is no trio here: waiting is the quorum driver's business (`raft/driver.py`).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence
from uuid import UUID

from kbroker.errors import KafkaError
from kbroker.metadata import serde
from kbroker.metadata.codes import ErrorCode
from kbroker.metadata.image import (RESOURCE_BROKER, RESOURCE_TOPIC, MetadataImage, PartitionImage, TopicImage,
                                    apply, empty_image, new_topic_id, partition_record, topic_records)
from kbroker.metadata.properties import ensure_meta_properties
from kbroker.metadata.publisher import ImageListener, MetadataPublisher, record_version
from kbroker.metadata.topic_configs import validate_topic_configs
from kbroker.metadata.topic_names import unify_collision_chars, validate_topic_name
from kbroker.raft.log import METADATA_DIR_NAME
from kbroker.raft.quorum import QuorumLog

logger = logging.getLogger(__name__)

Record = tuple[str, dict]

METADATA_VERSION_FEATURE = "metadata.version"
METADATA_VERSION_LEVEL = 21  # 3.9-IV0, the metadata.version of Kafka 3.9
DEFAULT_SNAPSHOT_BYTES = 20 * 1024 * 1024  # metadata.log.max.record.bytes.between.snapshots
MAX_PARTITIONS_PER_TOPIC = 100_000  # kbroker's bound, so one request cannot exhaust the node
PRODUCER_ID_BLOCK_SIZE = 1000  # Kafka's ProducerIdsBlock.PRODUCER_ID_BLOCK_SIZE


class _Ignored:
    def started(self, value: Any = None) -> None:
        """No-op task status."""


class Controller:
    """Owns the metadata log and the image; see the module docstring.

    `Controller(config, clock)`, or `Controller(broker)` (its `config` and `clock` are used);
    `run()` opens the log under `metadata.log.dir` (default: the first of `log.dirs`), so
    nothing may call the async operations before it has started. `quorum` replaces the
    single-voter log (tests, later a Raft quorum).
    """

    def __init__(self, config: Any, clock: Any = None, *, quorum: QuorumLog | None = None) -> None:
        if clock is None and hasattr(config, "config") and hasattr(config, "clock"):
            config, clock = config.config, config.clock  # given the Broker
        if clock is None:
            from kbroker.clock import Clock

            clock = Clock()
        self.config = config
        self.clock = clock
        self.node_id: int = config.node_id
        self._quorum = quorum
        self._publisher = MetadataPublisher(empty_image("", self.node_id))
        self._latest = self._publisher.image
        self.snapshot_bytes: int = getattr(config, "metadata_log_max_record_bytes_between_snapshots", None) \
            or DEFAULT_SNAPSHOT_BYTES

    # ------------------------------------------------------------------ lifecycle

    @property
    def image(self) -> MetadataImage:
        """The latest committed image."""
        return self._publisher.image

    @property
    def metadata_dir(self) -> Path:
        """Directory of the metadata log (`__cluster_metadata-0`)."""
        base = getattr(self.config, "metadata_log_dir", None) or self.config.log_dirs[0]
        return Path(base) / METADATA_DIR_NAME

    def add_listener(self, fn: ImageListener) -> None:
        """Call `fn(old_image, new_image)` after each applied batch (and once after load)."""
        self._publisher.add_listener(fn)

    def open(self) -> None:
        """Format/check meta.properties, open the log, replay snapshot + log into the image."""
        dirs = [Path(d) for d in self.config.log_dirs]
        meta_dir = getattr(self.config, "metadata_log_dir", None)
        if meta_dir and Path(meta_dir) not in dirs:
            dirs.append(Path(meta_dir))
        cluster_id = ensure_meta_properties(dirs, self.node_id)
        if self._quorum is None:
            from kbroker.raft.driver import SingleVoterQuorum  # the trio side, created lazily

            self._quorum = SingleVoterQuorum(self.metadata_dir, self.node_id, now_ms=self.clock.now_ms)
            self._quorum.open()
        publisher = self._publisher
        publisher.image = empty_image(cluster_id, self.node_id)
        start = 0
        snapshot = self._quorum.latest_snapshot()
        if snapshot is not None:
            start, values = snapshot
            publisher.load_snapshot(start, values)
        for base, values in self._quorum.read_committed(start):
            publisher.load(base, values)
        publisher.bytes_since_snapshot = 0
        self._latest = publisher.image
        self._quorum.add_listener(self._on_commit)
        logger.info("metadata loaded cluster_id=%s offset=%d topics=%d snapshot_end=%d",
                    cluster_id, self.image.offset, len(self.image.topics_by_name), start)

    async def run(self, *, task_status: Any = _Ignored()) -> None:
        """Open and load, bootstrap an empty log, announce readiness, then serve until cancelled."""
        self.open()
        if self.image.offset < 0:
            await self._commit([("FeatureLevelRecord", {"name": METADATA_VERSION_FEATURE,
                                                        "feature_level": METADATA_VERSION_LEVEL})])
        loaded = self.image
        self._publisher.notify(empty_image(loaded.cluster_id, self.node_id), loaded)
        task_status.started()
        serve = getattr(self._quorum, "serve", None)
        if serve is not None:
            await serve()

    def close(self) -> None:
        """Close the metadata log (also done by `run` when cancelled)."""
        close = getattr(self._quorum, "close", None)
        if close is not None:
            close()

    # ------------------------------------------------------------------ committing

    async def _commit(self, records: list[Record]) -> int:
        """Apply `records` to the latest image now, append them, return once committed."""
        assert self._quorum is not None, "controller not started"
        values = [serde.encode_record(name, fields, record_version(name)) for name, fields in records]
        offset = self._quorum.end_offset + len(values) - 1
        self._latest = apply(self._latest, records, offset)
        try:
            last = await self._quorum.append(values)
        except BaseException:
            # Not committed: fall back to what is. In a single-voter quorum a failed fsync
            # leaves the log in an unknown state, so the error propagates and stops the broker.
            self._latest = self._publisher.image
            raise
        assert last == offset, f"quorum assigned offset {last}, expected {offset}"
        return last

    def _on_commit(self, base_offset: int, values: list[bytes]) -> None:
        self._publisher.publish(base_offset, values)
        if self._publisher.bytes_since_snapshot >= self.snapshot_bytes:
            self.write_snapshot()

    def write_snapshot(self) -> None:
        """Snapshot the committed image now."""
        assert self._quorum is not None, "controller not started"
        end_offset, values = self._publisher.snapshot_values()
        if end_offset <= 0:
            return
        self._quorum.save_snapshot(end_offset, values)
        self._publisher.bytes_since_snapshot = 0

    # ------------------------------------------------------------------ brokers

    def live_broker_ids(self, image: MetadataImage | None = None) -> list[int]:
        """Unfenced registered brokers plus this node (a combined node is always alive)."""
        image = image or self._latest
        ids = {b.node_id for b in image.live_brokers()}
        if "broker" in (getattr(self.config, "process_roles", None) or ["broker"]):
            ids.add(self.node_id)
        return sorted(ids)

    async def register_broker(self, node_id: int, host: str, port: int, listener_name: str,
                              rack: str | None) -> int:
        """Register (or re-register) a broker's endpoint; returns its broker epoch."""
        epoch = self._quorum.end_offset if self._quorum is not None else 0  # Kafka: the record's offset
        record = {"broker_id": node_id, "incarnation_id": uuid.uuid4(), "broker_epoch": epoch,
                  "end_points": [{"name": listener_name, "host": host, "port": port, "security_protocol": 0}],
                  "rack": rack, "fenced": False}
        await self._commit([("RegisterBrokerRecord", record)])
        logger.info("broker registered node_id=%d endpoint=%s:%d listener=%s epoch=%d",
                    node_id, host, port, listener_name, epoch)
        return epoch

    # ------------------------------------------------------------------ topics

    async def create_topic(self, name: str, num_partitions: int, replication_factor: int,
                           assignments: Mapping[int, Sequence[int]] | None = None,
                           configs: Mapping[str, str | None] | None = None,
                           *, validate_only: bool = False) -> TopicImage:
        """Create a topic (-1 partitions / replication factor: broker defaults).

        `assignments` maps partition index -> replica broker ids (then both counts must be
        -1). Raises KafkaError with Kafka's code. With validate_only nothing is written and
        the returned image carries a topic id that is not stored anywhere.
        """
        topic, records = plan_create_topic(self._latest, name, num_partitions, replication_factor,
                                           assignments, configs or {}, self.live_broker_ids(),
                                           self.config.num_partitions, self.config.default_replication_factor)
        if validate_only:
            return topic
        await self._commit(records)
        logger.info("topic created name=%s topic_id=%s partitions=%d", name, topic.topic_id, len(topic.partitions))
        return self.image.topics_by_name.get(name, topic)

    async def delete_topic(self, name_or_id: str | UUID) -> TopicImage:
        """Delete a topic by name or id; returns its last image."""
        if not getattr(self.config, "delete_topic_enable", True):
            raise KafkaError(ErrorCode.TOPIC_DELETION_DISABLED, "Topic deletion is disabled.")
        latest = self._latest
        if isinstance(name_or_id, UUID):
            topic = latest.topics_by_id.get(name_or_id)
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_ID, f"Topic id {name_or_id} does not exist.")
        else:
            topic = latest.topics_by_name.get(name_or_id)
            if topic is None:
                raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                 "This server does not host this topic-partition.")
        await self._commit([("RemoveTopicRecord", {"topic_id": topic.topic_id})])
        logger.info("topic deleted name=%s topic_id=%s", topic.name, topic.topic_id)
        return topic

    async def create_partitions(self, name: str, new_total: int,
                                assignments: Sequence[Sequence[int]] | None = None,
                                *, validate_only: bool = False) -> TopicImage:
        """Grow a topic to `new_total` partitions; `assignments` lists the new partitions' replicas."""
        topic, records = plan_create_partitions(self._latest, name, new_total, assignments, self.live_broker_ids())
        if validate_only:
            return topic
        await self._commit(records)
        return self.image.topics_by_name.get(name, topic)

    # ------------------------------------------------------------------ configs (issue 6)

    async def alter_configs(self, resource_type: int, resource_name: str,
                            changes: Mapping[str, str | None], *, replace_all: bool = False,
                            validate_only: bool = False) -> None:
        """Set (value) or delete (None) config overrides of a topic or broker.

        `replace_all` is the legacy AlterConfigs meaning: keys not in `changes` are deleted.
        resource_type is Kafka's ConfigResource type (2 topic, 4 broker); resource_name "" is
        the cluster-wide broker default.
        """
        records = plan_alter_configs(self._latest, resource_type, resource_name, changes, replace_all)
        if validate_only or not records:
            return
        await self._commit(records)

    # ------------------------------------------------------------------ producer ids (issue 7)

    async def allocate_producer_ids(self, broker_id: int, broker_epoch: int = -1) -> tuple[int, int]:
        """Hand out the next block of producer ids: returns (first id, length)."""
        start = self._latest.next_producer_id
        await self._commit([("ProducerIdsRecord", {"broker_id": broker_id, "broker_epoch": broker_epoch,
                                                   "next_producer_id": start + PRODUCER_ID_BLOCK_SIZE})])
        return start, PRODUCER_ID_BLOCK_SIZE


# ---------------------------------------------------------------------- planning (pure)

def plan_create_topic(image: MetadataImage, name: str, num_partitions: int, replication_factor: int,
                      assignments: Mapping[int, Sequence[int]] | None, configs: Mapping[str, str | None],
                      live_brokers: list[int], default_partitions: int,
                      default_replication_factor: int) -> tuple[TopicImage, list[Record]]:
    """Validate a topic creation against `image`; the topic it would make and its records."""
    validate_topic_name(name)
    if name in image.topics_by_name:
        raise KafkaError(ErrorCode.TOPIC_ALREADY_EXISTS, f"Topic '{name}' already exists.")
    unified = unify_collision_chars(name)
    for existing in image.topics_by_name:
        if unify_collision_chars(existing) == unified:
            raise KafkaError(ErrorCode.INVALID_TOPIC_EXCEPTION,
                             f"Topic '{name}' collides with existing topic: {existing}")
    if assignments:
        if num_partitions != -1 or replication_factor != -1:
            raise KafkaError(ErrorCode.INVALID_REQUEST,
                             "Both numPartitions or replicationFactor and replicasAssignments were set. "
                             "Both cannot be used at the same time.")
        if sorted(assignments) != list(range(len(assignments))):
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             "Partitions should be a consecutive 0-based integer sequence")
        replica_lists = [list(assignments[i]) for i in range(len(assignments))]
        _check_assignment(replica_lists, image, live_brokers, None)
    else:
        partitions = default_partitions if num_partitions == -1 else num_partitions
        factor = default_replication_factor if replication_factor == -1 else replication_factor
        if partitions <= 0:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                             "Number of partitions was set to an invalid non-positive value.")
        if partitions > MAX_PARTITIONS_PER_TOPIC:
            raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                             f"Number of partitions {partitions} exceeds the limit of {MAX_PARTITIONS_PER_TOPIC}.")
        if factor <= 0:
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             "Replication factor must be larger than 0, or -1 to use the default value.")
        if factor > len(live_brokers):
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             f"Unable to replicate the partition {factor} time(s): The target replication "
                             f"factor of {factor} cannot be reached because only {len(live_brokers)} "
                             "broker(s) are registered.")
        replica_lists = [_assign(p, factor, live_brokers) for p in range(partitions)]
    validate_topic_configs(configs)
    topic_id = new_topic_id(image.topics_by_id)
    parts = {p: _new_partition(p, replicas) for p, replicas in enumerate(replica_lists)}
    topic = TopicImage(name, topic_id, MappingProxyType(parts),
                       MappingProxyType({k: v for k, v in configs.items() if v is not None}))
    return topic, topic_records(topic)


def plan_create_partitions(image: MetadataImage, name: str, new_total: int,
                           assignments: Sequence[Sequence[int]] | None,
                           live_brokers: list[int]) -> tuple[TopicImage, list[Record]]:
    """Validate growing `name` to `new_total` partitions; the resulting topic and its records."""
    topic = image.topics_by_name.get(name)
    if topic is None:
        raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"The topic '{name}' does not exist.")
    current = len(topic.partitions)
    if new_total < current:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                         f"The topic {name} currently has {current} partition(s); {new_total} would not "
                         "be an increase.")
    if new_total == current:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS, f"Topic already has {current} partition(s).")
    if new_total > MAX_PARTITIONS_PER_TOPIC:
        raise KafkaError(ErrorCode.INVALID_PARTITIONS,
                         f"Number of partitions {new_total} exceeds the limit of {MAX_PARTITIONS_PER_TOPIC}.")
    factor = len(topic.partitions[0].replicas) if 0 in topic.partitions else 1
    added = new_total - current
    if assignments is not None:
        if len(assignments) != added:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"Attempted to add {added} additional partition(s), but only "
                             f"{len(assignments)} assignment(s) were specified.")
        replica_lists = [list(r) for r in assignments]
        _check_assignment(replica_lists, image, live_brokers, factor)
    else:
        if factor > len(live_brokers):
            raise KafkaError(ErrorCode.INVALID_REPLICATION_FACTOR,
                             f"Unable to replicate the partition {factor} time(s): only "
                             f"{len(live_brokers)} broker(s) are registered.")
        replica_lists = [_assign(p, factor, live_brokers) for p in range(current, new_total)]
    parts = dict(topic.partitions)
    records: list[Record] = []
    for p, replicas in enumerate(replica_lists, start=current):
        parts[p] = _new_partition(p, replicas)
        records.append(("PartitionRecord", partition_record(topic.topic_id, parts[p])))
    return replace(topic, partitions=MappingProxyType(parts)), records


def plan_alter_configs(image: MetadataImage, resource_type: int, resource_name: str,
                       changes: Mapping[str, str | None], replace_all: bool) -> list[Record]:
    """Validate config changes; the ConfigRecords that make them."""
    if resource_type == RESOURCE_TOPIC:
        topic = image.topics_by_name.get(resource_name)
        if topic is None:
            raise KafkaError(ErrorCode.UNKNOWN_TOPIC_OR_PARTITION, f"Topic {resource_name} does not exist.")
        validate_topic_configs({k: v for k, v in changes.items() if v is not None})
        current: Mapping[str, str] = topic.configs
    elif resource_type == RESOURCE_BROKER:
        from kbroker.config import DEFS_BY_NAME

        if resource_name and not resource_name.lstrip("-").isdigit():
            raise KafkaError(ErrorCode.INVALID_REQUEST, f"Invalid broker name {resource_name}")
        for key, value in changes.items():
            if key not in DEFS_BY_NAME:
                raise KafkaError(ErrorCode.INVALID_CONFIG, f"Unknown broker config name: {key}")
            _validate_broker_value(DEFS_BY_NAME[key], value)
        current = image.broker_configs if not resource_name else image.per_broker_configs.get(int(resource_name), {})
    else:
        raise KafkaError(ErrorCode.INVALID_REQUEST, f"Unsupported resource type {resource_type}")
    target = dict(changes)
    if replace_all:
        for key in current:
            target.setdefault(key, None)
    return [("ConfigRecord", {"resource_type": resource_type, "resource_name": resource_name,
                              "name": key, "value": value})
            for key, value in sorted(target.items()) if current.get(key) != value]


def _validate_broker_value(definition: Any, value: str | None) -> None:
    """Check a broker config value with the broker's own parser (kbroker.config)."""
    if value is None:
        return
    from kbroker.config import ConfigError, _parse_value

    try:
        _parse_value(definition, value)
    except ConfigError as exc:
        raise KafkaError(ErrorCode.INVALID_CONFIG, f"Invalid value {value} for configuration {definition.name}: "
                                                   f"{exc}") from None


def _assign(partition: int, factor: int, brokers: list[int]) -> list[int]:
    """Round-robin replicas: partition p starts at broker p mod n (leader spread)."""
    n = len(brokers)
    return [brokers[(partition + i) % n] for i in range(factor)]


def _new_partition(partition: int, replicas: list[int]) -> PartitionImage:
    return PartitionImage(partition=partition, replicas=tuple(replicas), isr=tuple(replicas),
                          leader=replicas[0], leader_epoch=0, partition_epoch=0)


def _check_assignment(replica_lists: list[list[int]], image: MetadataImage, live_brokers: list[int],
                      factor: int | None) -> None:
    known = set(live_brokers) | set(image.brokers)
    for replicas in replica_lists:
        if not replicas:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             "The manual partition assignment includes an empty replica list.")
        if len(set(replicas)) != len(replicas):
            dup = next(r for r in replicas if replicas.count(r) > 1)
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"The manual partition assignment includes the broker {dup} more than once.")
        for broker in replicas:
            if broker not in known:
                raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                                 f"The manual partition assignment includes broker {broker}, but no such "
                                 "broker is registered.")
        if factor is None:
            factor = len(replicas)
        elif len(replicas) != factor:
            raise KafkaError(ErrorCode.INVALID_REPLICA_ASSIGNMENT,
                             f"The manual partition assignment includes a partition with {len(replicas)} "
                             f"replica(s), but this is not consistent with previous partitions, which have "
                             f"{factor} replica(s).")

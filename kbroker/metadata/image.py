"""The metadata image: an immutable view of the cluster built by replaying metadata records.

`apply(image, records, offset)` is the only way to change it; loading from the log, from a
snapshot, and committing new records all go through it, so the image after a restart is
the image before it. `to_records(image)` is the inverse used to write snapshots.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Iterable, Mapping
from uuid import UUID

logger = logging.getLogger(__name__)

# ConfigRecord resource types (Kafka's ConfigResource.Type ids)
RESOURCE_TOPIC = 2
RESOURCE_BROKER = 4

EMPTY: Mapping = MappingProxyType({})


@dataclass(frozen=True, slots=True)
class PartitionImage:
    """One partition: its replicas, in-sync replicas, leader and epochs."""

    partition: int
    replicas: tuple[int, ...]
    isr: tuple[int, ...]
    leader: int
    leader_epoch: int
    partition_epoch: int
    removing_replicas: tuple[int, ...] = ()
    adding_replicas: tuple[int, ...] = ()
    leader_recovery_state: int = 0


@dataclass(frozen=True, slots=True)
class TopicImage:
    """A topic: name, id, partitions by index, and its config overrides."""

    name: str
    topic_id: UUID
    partitions: Mapping[int, PartitionImage]
    configs: Mapping[str, str] = field(default_factory=lambda: EMPTY)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One listener of a broker."""

    name: str
    host: str
    port: int
    security_protocol: int = 0


@dataclass(frozen=True, slots=True)
class BrokerImage:
    """A registered broker; host/port/listener_name are those of its first endpoint."""

    node_id: int
    host: str
    port: int
    rack: str | None
    listener_name: str
    epoch: int = 0
    incarnation_id: UUID = UUID(int=0)
    fenced: bool = False
    endpoints: tuple[Endpoint, ...] = ()


@dataclass(frozen=True, slots=True)
class MetadataImage:
    """Everything the metadata log says, as of `offset` (the last applied record, -1 if none)."""

    cluster_id: str
    controller_id: int
    brokers: Mapping[int, BrokerImage] = field(default_factory=lambda: EMPTY)
    topics_by_name: Mapping[str, TopicImage] = field(default_factory=lambda: EMPTY)
    topics_by_id: Mapping[UUID, TopicImage] = field(default_factory=lambda: EMPTY)
    # cluster-wide dynamic defaults (ConfigRecord resource name "")
    broker_configs: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    per_broker_configs: Mapping[int, Mapping[str, str]] = field(default_factory=lambda: EMPTY)
    features: Mapping[str, int] = field(default_factory=lambda: EMPTY)
    next_producer_id: int = 0
    offset: int = -1

    def live_brokers(self) -> list[BrokerImage]:
        """Registered, unfenced brokers by node id."""
        return [b for _, b in sorted(self.brokers.items()) if not b.fenced]


class _Delta:
    """Mutable copies of the maps one batch touches; turned back into an image at the end."""

    def __init__(self, image: MetadataImage) -> None:
        self.image = image
        self.brokers = dict(image.brokers)
        self.topics = dict(image.topics_by_name)
        self.names_by_id = {t.topic_id: t.name for t in image.topics_by_name.values()}
        self.broker_configs = dict(image.broker_configs)
        self.per_broker = {k: dict(v) for k, v in image.per_broker_configs.items()}
        self.features = dict(image.features)
        self.next_producer_id = image.next_producer_id

    def topic_by_id(self, topic_id: UUID) -> TopicImage | None:
        name = self.names_by_id.get(topic_id)
        return self.topics.get(name) if name is not None else None

    def apply(self, name: str, r: dict) -> None:
        handler = getattr(self, "_" + name, None)
        if handler is None:
            logger.debug("metadata record %s ignored", name)
            return
        handler(r)

    # one method per record type, named after it

    def _TopicRecord(self, r: dict) -> None:
        self.topics[r["name"]] = TopicImage(r["name"], r["topic_id"], MappingProxyType({}))
        self.names_by_id[r["topic_id"]] = r["name"]

    def _RemoveTopicRecord(self, r: dict) -> None:
        name = self.names_by_id.pop(r["topic_id"], None)
        if name is None:
            logger.warning("RemoveTopicRecord for unknown topic id %s", r["topic_id"])
            return
        del self.topics[name]

    def _PartitionRecord(self, r: dict) -> None:
        topic = self.topic_by_id(r["topic_id"])
        if topic is None:
            logger.warning("PartitionRecord for unknown topic id %s", r["topic_id"])
            return
        part = PartitionImage(
            partition=r["partition_id"], replicas=tuple(r["replicas"]), isr=tuple(r["isr"]),
            leader=r["leader"], leader_epoch=r["leader_epoch"], partition_epoch=r["partition_epoch"],
            removing_replicas=tuple(r.get("removing_replicas") or ()),
            adding_replicas=tuple(r.get("adding_replicas") or ()),
            leader_recovery_state=r.get("leader_recovery_state", 0))
        parts = dict(topic.partitions)
        parts[part.partition] = part
        self.topics[topic.name] = replace(topic, partitions=MappingProxyType(parts))

    def _PartitionChangeRecord(self, r: dict) -> None:
        topic = self.topic_by_id(r["topic_id"])
        part = topic.partitions.get(r["partition_id"]) if topic else None
        if topic is None or part is None:
            logger.warning("PartitionChangeRecord for unknown partition %s/%s", r["topic_id"], r["partition_id"])
            return
        changes: dict = {"partition_epoch": part.partition_epoch + 1}
        for key in ("isr", "replicas", "removing_replicas", "adding_replicas"):
            if r.get(key) is not None:
                changes[key] = tuple(r[key])
        if r.get("leader", -2) != -2:  # -2 means unchanged; a new leader means a new epoch
            changes["leader"] = r["leader"]
            changes["leader_epoch"] = part.leader_epoch + 1
        if r.get("leader_recovery_state", -1) != -1:
            changes["leader_recovery_state"] = r["leader_recovery_state"]
        parts = dict(topic.partitions)
        parts[part.partition] = replace(part, **changes)
        self.topics[topic.name] = replace(topic, partitions=MappingProxyType(parts))

    def _ConfigRecord(self, r: dict) -> None:
        value = r["value"]
        if r["resource_type"] == RESOURCE_TOPIC:
            topic = self.topics.get(r["resource_name"])
            if topic is None:
                logger.warning("ConfigRecord for unknown topic %s", r["resource_name"])
                return
            configs = dict(topic.configs)
            _set(configs, r["name"], value)
            self.topics[topic.name] = replace(topic, configs=MappingProxyType(configs))
        elif r["resource_type"] == RESOURCE_BROKER:
            if r["resource_name"] == "":
                _set(self.broker_configs, r["name"], value)
            else:
                _set(self.per_broker.setdefault(int(r["resource_name"]), {}), r["name"], value)

    def _RegisterBrokerRecord(self, r: dict) -> None:
        endpoints = tuple(Endpoint(e["name"], e["host"], e["port"], e["security_protocol"])
                          for e in r["end_points"])
        first = endpoints[0] if endpoints else Endpoint("", "", 0)
        self.brokers[r["broker_id"]] = BrokerImage(
            node_id=r["broker_id"], host=first.host, port=first.port, rack=r["rack"],
            listener_name=first.name, epoch=r["broker_epoch"], incarnation_id=r["incarnation_id"],
            fenced=r["fenced"], endpoints=endpoints)

    def _UnregisterBrokerRecord(self, r: dict) -> None:
        self.brokers.pop(r["broker_id"], None)

    def _set_fenced(self, node_id: int, fenced: bool) -> None:
        broker = self.brokers.get(node_id)
        if broker is not None:
            self.brokers[node_id] = replace(broker, fenced=fenced)

    def _FenceBrokerRecord(self, r: dict) -> None:
        self._set_fenced(r["id"], True)

    def _UnfenceBrokerRecord(self, r: dict) -> None:
        self._set_fenced(r["id"], False)

    def _BrokerRegistrationChangeRecord(self, r: dict) -> None:
        if r.get("fenced", 0) != 0:
            self._set_fenced(r["broker_id"], r["fenced"] == 1)

    def _FeatureLevelRecord(self, r: dict) -> None:
        if r["feature_level"] == 0:
            self.features.pop(r["name"], None)
        else:
            self.features[r["name"]] = r["feature_level"]

    def _ProducerIdsRecord(self, r: dict) -> None:
        self.next_producer_id = max(self.next_producer_id, r["next_producer_id"])

    def finish(self, offset: int) -> MetadataImage:
        by_id = {t.topic_id: t for t in self.topics.values()}
        return replace(
            self.image,
            brokers=MappingProxyType(self.brokers),
            topics_by_name=MappingProxyType(self.topics),
            topics_by_id=MappingProxyType(by_id),
            broker_configs=MappingProxyType(self.broker_configs),
            per_broker_configs=MappingProxyType({k: MappingProxyType(v) for k, v in self.per_broker.items()}),
            features=MappingProxyType(self.features),
            next_producer_id=self.next_producer_id,
            offset=offset,
        )


def _set(configs: dict[str, str], name: str, value: str | None) -> None:
    if value is None:
        configs.pop(name, None)
    else:
        configs[name] = value


def empty_image(cluster_id: str, controller_id: int) -> MetadataImage:
    """The image before any record."""
    return MetadataImage(cluster_id=cluster_id, controller_id=controller_id)


def apply(image: MetadataImage, records: Iterable[tuple[str, dict]], offset: int) -> MetadataImage:
    """The image after `records` (name, fields), the last of which sits at `offset`."""
    delta = _Delta(image)
    for name, fields in records:
        delta.apply(name, fields)
    return delta.finish(offset)


def to_records(image: MetadataImage) -> list[tuple[str, dict]]:
    """Records that rebuild `image` from an empty one (snapshot content), in replay order."""
    out: list[tuple[str, dict]] = []
    for name, level in sorted(image.features.items()):
        out.append(("FeatureLevelRecord", {"name": name, "feature_level": level}))
    for node_id, b in sorted(image.brokers.items()):
        out.append(("RegisterBrokerRecord", {
            "broker_id": node_id, "incarnation_id": b.incarnation_id, "broker_epoch": b.epoch,
            "end_points": [{"name": e.name, "host": e.host, "port": e.port, "security_protocol": e.security_protocol}
                           for e in b.endpoints],
            "rack": b.rack, "fenced": b.fenced}))
    for name, value in sorted(image.broker_configs.items()):
        out.append(("ConfigRecord", _config(RESOURCE_BROKER, "", name, value)))
    for node_id, configs in sorted(image.per_broker_configs.items()):
        for name, value in sorted(configs.items()):
            out.append(("ConfigRecord", _config(RESOURCE_BROKER, str(node_id), name, value)))
    for name, topic in sorted(image.topics_by_name.items()):
        out.extend(topic_records(topic))
    if image.next_producer_id:
        out.append(("ProducerIdsRecord", {"broker_id": image.controller_id, "broker_epoch": 0,
                                          "next_producer_id": image.next_producer_id}))
    return out


def topic_records(topic: TopicImage) -> list[tuple[str, dict]]:
    """TopicRecord, its ConfigRecords, then one PartitionRecord per partition."""
    out: list[tuple[str, dict]] = [("TopicRecord", {"name": topic.name, "topic_id": topic.topic_id})]
    for name, value in sorted(topic.configs.items()):
        out.append(("ConfigRecord", _config(RESOURCE_TOPIC, topic.name, name, value)))
    for _, p in sorted(topic.partitions.items()):
        out.append(("PartitionRecord", partition_record(topic.topic_id, p)))
    return out


def partition_record(topic_id: UUID, p: PartitionImage) -> dict:
    """The PartitionRecord fields describing `p`."""
    return {"partition_id": p.partition, "topic_id": topic_id, "replicas": list(p.replicas),
            "isr": list(p.isr), "removing_replicas": list(p.removing_replicas),
            "adding_replicas": list(p.adding_replicas), "leader": p.leader,
            "leader_recovery_state": p.leader_recovery_state, "leader_epoch": p.leader_epoch,
            "partition_epoch": p.partition_epoch}


def _config(resource_type: int, resource_name: str, name: str, value: str | None) -> dict:
    return {"resource_type": resource_type, "resource_name": resource_name, "name": name, "value": value}


def new_topic_id(existing: Mapping[UUID, object]) -> UUID:
    """A random topic id that is neither taken nor one of Kafka's reserved ids (zero, one)."""
    while True:
        candidate = uuid.uuid4()
        if candidate.int > 1 and candidate not in existing:
            return candidate

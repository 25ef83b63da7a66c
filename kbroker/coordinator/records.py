"""Records the group coordinator writes to __consumer_offsets, and their Kafka framing.

Logical records (`OffsetCommitRecord`, `GroupMetadataRecord`) are what the state machine
produces and replays. `encode_record` / `decode_record` frame them exactly as Kafka does:

    key   = int16 key version + key struct    (OffsetCommitKey v1, GroupMetadataKey v2,
                                                KIP-848 ConsumerGroup*Key v3-8)
    value = int16 value version + value struct (OffsetCommitValue v1/v3, GroupMetadataValue v3,
                                                ConsumerGroup*Value v0)
            or None (a tombstone: the offset, the group or the member was deleted)

KIP-848 groups (`ConsumerGroupRecord`) use Kafka's record types 3-8: group metadata (the group
epoch), partition metadata (subscribed topics), member metadata, target assignment metadata
(assignment epoch), target assignment per member and current member assignment.

The struct schemas are protocol/coordinator_records/*.json, encoded by protocol.encode_data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from uuid import UUID

from kbroker.coordinator.offsets import OffsetAndMetadata

OFFSET_COMMIT_KEY_VERSION = 1          # Kafka writes 1; 0 is read the same way
GROUP_METADATA_KEY_VERSION = 2
GROUP_METADATA_VALUE_VERSION = 3       # adds group_instance_id (KIP-345)
_INT16 = struct.Struct(">h")


@dataclass(frozen=True, slots=True)
class MemberRecord:
    """One member inside GroupMetadataValue."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    subscription: bytes
    assignment: bytes


@dataclass(frozen=True, slots=True)
class GroupMetadataSnapshot:
    """GroupMetadataValue: the group as of its last completed generation."""

    protocol_type: str
    generation_id: int
    protocol_name: str | None
    leader_id: str | None
    current_state_timestamp_ms: int
    members: tuple[MemberRecord, ...]


@dataclass(frozen=True, slots=True)
class OffsetCommitRecord:
    """A committed offset (value None: tombstone, offset deleted)."""

    group_id: str
    topic: str
    partition: int
    value: OffsetAndMetadata | None


@dataclass(frozen=True, slots=True)
class GroupMetadataRecord:
    """A group's metadata (value None: tombstone, group deleted)."""

    group_id: str
    value: GroupMetadataSnapshot | None


# KIP-848 record types (Kafka's key versions)
CG_METADATA = 3
CG_PARTITION_METADATA = 4
CG_MEMBER_METADATA = 5
CG_TARGET_METADATA = 6
CG_TARGET_MEMBER = 7
CG_CURRENT_ASSIGNMENT = 8
_CG_SCHEMAS = {
    CG_METADATA: "ConsumerGroupMetadata",
    CG_PARTITION_METADATA: "ConsumerGroupPartitionMetadata",
    CG_MEMBER_METADATA: "ConsumerGroupMemberMetadata",
    CG_TARGET_METADATA: "ConsumerGroupTargetAssignmentMetadata",
    CG_TARGET_MEMBER: "ConsumerGroupTargetAssignmentMember",
    CG_CURRENT_ASSIGNMENT: "ConsumerGroupCurrentMemberAssignment",
}
_PER_MEMBER = frozenset({CG_MEMBER_METADATA, CG_TARGET_MEMBER, CG_CURRENT_ASSIGNMENT})

# (topic id, sorted partitions) pairs, sorted by topic id: hashable and comparable
FrozenAssignment = tuple[tuple[UUID, tuple[int, ...]], ...]


@dataclass(frozen=True, slots=True)
class ConsumerMemberMetadata:
    """ConsumerGroupMemberMetadataValue: what a KIP-848 member joined with."""

    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    subscribed_topic_names: tuple[str, ...]
    subscribed_topic_regex: str | None
    rebalance_timeout_ms: int
    server_assignor: str | None


@dataclass(frozen=True, slots=True)
class ConsumerMemberAssignment:
    """ConsumerGroupCurrentMemberAssignmentValue: a member's reconciliation state."""

    member_epoch: int
    previous_member_epoch: int
    state: int                  # 0 unknown, 1 stable, 2 unrevoked, 3 unreleased (Kafka's)
    assigned: FrozenAssignment
    pending_revocation: FrozenAssignment


@dataclass(frozen=True, slots=True)
class ConsumerGroupRecord:
    """One KIP-848 record; `record_type` is Kafka's key version (3-8), value None: tombstone.

    value by type: 3 group epoch (int); 4 ((topic id, name, partitions), ...);
    5 ConsumerMemberMetadata; 6 assignment epoch (int); 7 FrozenAssignment;
    8 ConsumerMemberAssignment. `member_id` is set for types 5, 7 and 8.
    """

    group_id: str
    record_type: int
    member_id: str | None
    value: object


CoordinatorRecord = OffsetCommitRecord | GroupMetadataRecord | ConsumerGroupRecord


def record_group_id(record: CoordinatorRecord) -> str:
    """The group a record belongs to (selects the __consumer_offsets partition)."""
    return record.group_id


def encode_record(record: CoordinatorRecord) -> tuple[bytes, bytes | None]:
    """(key, value) bytes for `record`, framed as Kafka frames them."""
    from protocol import encode_data  # local: the codec is only needed at the I/O edge

    if isinstance(record, ConsumerGroupRecord):
        return _encode_consumer_record(record)
    if isinstance(record, OffsetCommitRecord):
        key = _INT16.pack(OFFSET_COMMIT_KEY_VERSION) + encode_data(
            "OffsetCommitKey", OFFSET_COMMIT_KEY_VERSION,
            {"group": record.group_id, "topic": record.topic, "partition": record.partition})
        if record.value is None:
            return key, None
        v = record.value
        if v.expire_timestamp_ms >= 0:
            version, body = 1, {"offset": v.offset, "metadata": v.metadata,
                                "commit_timestamp": v.commit_timestamp_ms,
                                "expire_timestamp": v.expire_timestamp_ms}
        else:
            version, body = 3, {"offset": v.offset, "leader_epoch": v.leader_epoch,
                                "metadata": v.metadata,
                                "commit_timestamp": v.commit_timestamp_ms}
        return key, _INT16.pack(version) + encode_data("OffsetCommitValue", version, body)
    key = _INT16.pack(GROUP_METADATA_KEY_VERSION) + encode_data(
        "GroupMetadataKey", GROUP_METADATA_KEY_VERSION, {"group": record.group_id})
    if record.value is None:
        return key, None
    g = record.value
    body = {
        "protocol_type": g.protocol_type,
        "generation": g.generation_id,
        "protocol": g.protocol_name,
        "leader": g.leader_id,
        "current_state_timestamp": g.current_state_timestamp_ms,
        "members": [{
            "member_id": m.member_id, "group_instance_id": m.group_instance_id,
            "client_id": m.client_id, "client_host": m.client_host,
            "rebalance_timeout": m.rebalance_timeout_ms, "session_timeout": m.session_timeout_ms,
            "subscription": m.subscription, "assignment": m.assignment,
        } for m in g.members],
    }
    return key, _INT16.pack(GROUP_METADATA_VALUE_VERSION) + encode_data(
        "GroupMetadataValue", GROUP_METADATA_VALUE_VERSION, body)


def decode_record(key: bytes, value: bytes | None) -> CoordinatorRecord | None:
    """The logical record for a (key, value) read from __consumer_offsets.

    Returns None for key versions this coordinator does not own (e.g. KIP-848 records
    written by a later version), which are skipped on load as Kafka skips unknown types.
    """
    from protocol import decode_data

    key = bytes(key)
    (key_version,) = _INT16.unpack_from(key, 0)
    if key_version in _CG_SCHEMAS:
        return _decode_consumer_record(key_version, key, value)
    if key_version in (0, 1):
        k = decode_data("OffsetCommitKey", key_version, key[2:])
        if value is None:
            return OffsetCommitRecord(k["group"], k["topic"], k["partition"], None)
        value = bytes(value)
        (version,) = _INT16.unpack_from(value, 0)
        v = decode_data("OffsetCommitValue", version, value[2:])
        return OffsetCommitRecord(k["group"], k["topic"], k["partition"], OffsetAndMetadata(
            offset=v["offset"], leader_epoch=v.get("leader_epoch", -1),
            metadata=v.get("metadata") or "",
            commit_timestamp_ms=v.get("commit_timestamp", -1),
            expire_timestamp_ms=v.get("expire_timestamp", -1)))
    if key_version == 2:
        k = decode_data("GroupMetadataKey", key_version, key[2:])
        if value is None:
            return GroupMetadataRecord(k["group"], None)
        value = bytes(value)
        (version,) = _INT16.unpack_from(value, 0)
        v = decode_data("GroupMetadataValue", version, value[2:])
        members = tuple(MemberRecord(
            member_id=m["member_id"], group_instance_id=m.get("group_instance_id"),
            client_id=m["client_id"], client_host=m["client_host"],
            rebalance_timeout_ms=m.get("rebalance_timeout", m["session_timeout"]),
            session_timeout_ms=m["session_timeout"],
            subscription=bytes(m["subscription"]), assignment=bytes(m["assignment"]),
        ) for m in v["members"] or [])
        return GroupMetadataRecord(k["group"], GroupMetadataSnapshot(
            protocol_type=v["protocol_type"], generation_id=v["generation"],
            protocol_name=v.get("protocol"), leader_id=v.get("leader"),
            current_state_timestamp_ms=v.get("current_state_timestamp", -1),
            members=members))
    return None


def _wire_assignment(a: FrozenAssignment) -> list[dict]:
    return [{"topic_id": t, "partitions": list(ps)} for t, ps in a]


def _frozen_assignment(rows: list[dict] | None) -> FrozenAssignment:
    return tuple(sorted(((r["topic_id"], tuple(sorted(r["partitions"] or ())))
                         for r in rows or () if r["partitions"]), key=lambda x: str(x[0])))


def _encode_consumer_record(record: ConsumerGroupRecord) -> tuple[bytes, bytes | None]:
    from protocol import encode_data

    name = _CG_SCHEMAS[record.record_type]
    key_body = {"group_id": record.group_id}
    if record.record_type in _PER_MEMBER:
        key_body["member_id"] = record.member_id
    key = _INT16.pack(record.record_type) + encode_data(name + "Key", record.record_type,
                                                         key_body)
    v = record.value
    if v is None:
        return key, None
    if record.record_type == CG_METADATA:
        body: dict = {"epoch": v}
    elif record.record_type == CG_PARTITION_METADATA:
        body = {"topics": [{"topic_id": tid, "topic_name": name_, "num_partitions": n,
                            "partition_metadata": []} for tid, name_, n in v]}
    elif record.record_type == CG_MEMBER_METADATA:
        body = {"instance_id": v.instance_id, "rack_id": v.rack_id, "client_id": v.client_id,
                "client_host": v.client_host,
                "subscribed_topic_names": list(v.subscribed_topic_names),
                "subscribed_topic_regex": v.subscribed_topic_regex,
                "rebalance_timeout_ms": v.rebalance_timeout_ms,
                "server_assignor": v.server_assignor}
    elif record.record_type == CG_TARGET_METADATA:
        body = {"assignment_epoch": v}
    elif record.record_type == CG_TARGET_MEMBER:
        body = {"topic_partitions": _wire_assignment(v)}
    else:
        body = {"member_epoch": v.member_epoch, "previous_member_epoch": v.previous_member_epoch,
                "state": v.state, "assigned_partitions": _wire_assignment(v.assigned),
                "partitions_pending_revocation": _wire_assignment(v.pending_revocation)}
    return key, _INT16.pack(0) + encode_data(name + "Value", 0, body)


def _decode_consumer_record(record_type: int, key: bytes,
                            value: bytes | None) -> ConsumerGroupRecord:
    from protocol import decode_data

    name = _CG_SCHEMAS[record_type]
    k = decode_data(name + "Key", record_type, key[2:])
    member_id = k.get("member_id") if record_type in _PER_MEMBER else None
    if value is None:
        return ConsumerGroupRecord(k["group_id"], record_type, member_id, None)
    value = bytes(value)
    (version,) = _INT16.unpack_from(value, 0)
    v = decode_data(name + "Value", version, value[2:])
    out: object
    if record_type == CG_METADATA:
        out = v["epoch"]
    elif record_type == CG_PARTITION_METADATA:
        out = tuple((t["topic_id"], t["topic_name"], t["num_partitions"])
                    for t in v["topics"] or ())
    elif record_type == CG_MEMBER_METADATA:
        out = ConsumerMemberMetadata(
            instance_id=v.get("instance_id"), rack_id=v.get("rack_id"),
            client_id=v["client_id"], client_host=v["client_host"],
            subscribed_topic_names=tuple(v["subscribed_topic_names"] or ()),
            subscribed_topic_regex=v.get("subscribed_topic_regex"),
            rebalance_timeout_ms=v.get("rebalance_timeout_ms", -1),
            server_assignor=v.get("server_assignor"))
    elif record_type == CG_TARGET_METADATA:
        out = v["assignment_epoch"]
    elif record_type == CG_TARGET_MEMBER:
        out = _frozen_assignment(v["topic_partitions"])
    else:
        out = ConsumerMemberAssignment(
            member_epoch=v["member_epoch"], previous_member_epoch=v["previous_member_epoch"],
            state=v["state"], assigned=_frozen_assignment(v["assigned_partitions"]),
            pending_revocation=_frozen_assignment(v["partitions_pending_revocation"]))
    return ConsumerGroupRecord(k["group_id"], record_type, member_id, out)


def java_string_hash(s: str) -> int:
    """Java's String.hashCode (over UTF-16 code units), as a signed 32-bit int."""
    h = 0
    data = s.encode("utf-16-be")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h - (1 << 32) if h & 0x80000000 else h


def partition_for(group_id: str, num_partitions: int) -> int:
    """The __consumer_offsets partition of `group_id`: Utils.abs(hashCode) % partitions.

    Kafka's Utils.abs is Math.abs except that Integer.MIN_VALUE maps to 0.
    """
    h = java_string_hash(group_id)
    return (0 if h == -(1 << 31) else abs(h)) % num_partitions

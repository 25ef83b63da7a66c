"""Records the group coordinator writes to __consumer_offsets, and their Kafka framing.

Logical records (`OffsetCommitRecord`, `GroupMetadataRecord`) are what the state machine
produces and replays. `encode_record` / `decode_record` frame them exactly as Kafka does:

    key   = int16 key version + key struct    (OffsetCommitKey v1, GroupMetadataKey v2)
    value = int16 value version + value struct (OffsetCommitValue v1/v3, GroupMetadataValue v3)
            or None (a tombstone: the offset or the group was deleted)

The struct schemas are protocol/coordinator_records/*.json, encoded by protocol.encode_data.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

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


CoordinatorRecord = OffsetCommitRecord | GroupMetadataRecord


def record_group_id(record: CoordinatorRecord) -> str:
    """The group a record belongs to (selects the __consumer_offsets partition)."""
    return record.group_id


def encode_record(record: CoordinatorRecord) -> tuple[bytes, bytes | None]:
    """(key, value) bytes for `record`, framed as Kafka frames them."""
    from protocol import encode_data  # local: the codec is only needed at the I/O edge

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

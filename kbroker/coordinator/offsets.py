"""Committed offsets: the stored value and the expiry rule (pure; no I/O)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class OffsetAndMetadata:
    """A committed offset as stored in __consumer_offsets (OffsetCommitValue)."""

    offset: int
    leader_epoch: int = -1
    metadata: str = ""
    commit_timestamp_ms: int = -1
    expire_timestamp_ms: int = -1     # only set by OffsetCommit v2-4 with a retention time


def is_expired(offset: OffsetAndMetadata, *, now_ms: int, retention_ms: int,
               group_empty_since_ms: int | None) -> bool:
    """Kafka's expiry rule (KIP-211).

    An explicit expire timestamp (OffsetCommit v2-4) wins. Otherwise offsets of a group that
    uses group management expire `retention_ms` after the group became Empty
    (`group_empty_since_ms`); offsets of a simple group (no protocol type) expire
    `retention_ms` after their own commit. `group_empty_since_ms` is None while the group
    has members, which keeps its offsets.
    """
    if offset.expire_timestamp_ms >= 0:
        return now_ms >= offset.expire_timestamp_ms
    if group_empty_since_ms is None:
        return False
    base = max(group_empty_since_ms, offset.commit_timestamp_ms)
    return now_ms - base >= retention_ms

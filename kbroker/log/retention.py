"""Retention (cleanup.policy=delete): drop whole old segments, moving the log start offset.

Kafka's UnifiedLog.deleteOldSegments, per partition:

* by time: a segment goes when its largest timestamp is more than ``retention.ms`` old
  (``retention.ms`` = -1: never);
* by size: the oldest segments go while the log without them is still at least
  ``retention.bytes`` (-1: no limit);
* segments wholly below the log start offset (moved by DeleteRecords) go whatever the policy.

Never the active segment, and never a segment holding offsets at or above the high
watermark. Deleting is two-phase, as Kafka's ``file.delete.delay.ms``: the segment's files are
renamed to ``*.deleted`` and leave the log at once (the log start offset moves to the next
segment's base offset), and the renamed files are removed once the delay has passed
(`PendingDeletions.remove_due`). ``.deleted`` files found at load are removed by the log.

No trio here: the LogScheduler (`kbroker.log.log_scheduler`) calls these periodically.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from kbroker.log import files

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RetentionDecision:
    """How many leading segments to delete, the log start offset after it, and why."""

    segment_count: int
    new_log_start_offset: int
    reason: str


def plan_retention(log: Any, now_ms: int) -> RetentionDecision | None:
    """The leading segments of `log` that retention would delete now (None: nothing)."""
    segments = log.segments
    config = log.config
    time_and_size = "delete" in config.cleanup_policy
    retention_ms, retention_bytes = config.retention_ms, config.retention_bytes
    remaining_bytes = sum(s.size for s in segments)
    count = 0
    reasons: set[str] = set()
    # segments[-1] is the active segment: only those before it are candidates.
    for segment, following in zip(segments, segments[1:]):
        if following.base_offset > log.high_watermark:
            break
        reason = None
        if following.base_offset <= log.log_start_offset:
            reason = "log start offset"
        elif time_and_size and retention_ms >= 0 and segment.max_timestamp >= 0 \
                and now_ms - segment.max_timestamp > retention_ms:
            reason = "retention.ms"
        elif time_and_size and retention_bytes >= 0 and remaining_bytes - segment.size >= retention_bytes:
            reason = "retention.bytes"
        if reason is None:
            break
        reasons.add(reason)
        remaining_bytes -= segment.size
        count += 1
    if count == 0:
        return None
    return RetentionDecision(count, segments[count].base_offset, ",".join(sorted(reasons)))


@dataclass(order=True)
class _Pending:
    due_ms: int
    paths: list[Path] = field(compare=False)


class PendingDeletions:
    """Files renamed ``*.deleted`` waiting for ``file.delete.delay.ms`` before removal."""

    def __init__(self) -> None:
        self._pending: list[_Pending] = []

    def __len__(self) -> int:
        return len(self._pending)

    def schedule(self, paths: Iterable[Path], due_ms: int) -> None:
        """Remove `paths` once the wall clock reaches `due_ms`."""
        self._pending.append(_Pending(due_ms, list(paths)))
        self._pending.sort()

    def remove_due(self, now_ms: int) -> int:
        """Remove the files whose delay has passed; returns how many files were removed."""
        removed = 0
        while self._pending and self._pending[0].due_ms <= now_ms:
            for path in self._pending.pop(0).paths:
                removed += _unlink(path)
        return removed

    def remove_all(self) -> int:
        """Remove every pending file now (shutdown)."""
        removed = 0
        for pending in self._pending:
            for path in pending.paths:
                removed += _unlink(path)
        self._pending.clear()
        return removed


def _unlink(path: Path) -> int:
    try:
        os.unlink(path)
        return 1
    except FileNotFoundError:
        return 0


def _rename_deleted(segment: Any) -> list[Path]:
    """Rename a segment's files to ``*.deleted`` (readers holding descriptors keep working)."""
    renamed = []
    for path in (segment.log_path, segment.index_path, segment.time_index_path):
        target = path.with_name(path.name + files.DELETED_SUFFIX)
        try:
            os.replace(path, target)
        except FileNotFoundError:
            continue
        renamed.append(target)
    return renamed


def apply_retention(log: Any, now_ms: int, pending: PendingDeletions | None = None) -> int:
    """Delete the segments `plan_retention` names; returns how many were deleted.

    Files go to `pending` (removed after the topic's file.delete.delay.ms) or, without it,
    are removed at once.
    """
    if log.closed:
        return 0
    decision = plan_retention(log, now_ms)
    if decision is None:
        return 0
    doomed = log.segments[: decision.segment_count]
    renamed: list[Path] = []
    for segment in doomed:
        renamed += _rename_deleted(segment)
    # Moves the log start offset and drops the (renamed) segments from the log; their
    # now-missing paths are skipped by LogSegment.delete.
    log.delete_records_before(decision.new_log_start_offset)
    if pending is not None:
        pending.schedule(renamed, now_ms + log.config.file_delete_delay_ms)
    else:
        for path in renamed:
            _unlink(path)
    logger.info(
        "retention deleted segments=%d topic=%s partition=%d log_start_offset=%d reason=%s",
        decision.segment_count, log.topic, log.partition, log.log_start_offset, decision.reason,
    )
    return decision.segment_count

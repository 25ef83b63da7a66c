"""LogManager: every partition log of the broker's log dirs, and the background work on them.

The only trio user in ``kbroker/log``. At start it loads each log dir: partitions of a dir
shut down cleanly (``.kafka_cleanshutdown`` present) open without a scan; the others recover
from their recovery point. The marker is removed once the dir is loaded and written again by
`close(clean=True)` after every log is flushed.

Background (`run`): fsync logs whose rolled segments await it or whose ``flush.ms`` elapsed,
close segment descriptors left idle (`FileHandleCache.close_idle`), apply retention, and rewrite the per-dir checkpoint files (recovery points, high watermarks,
log start offsets) when they changed.
"""

from __future__ import annotations

import json
import logging
import shutil
import uuid
from pathlib import Path
from typing import Any, Iterable, Mapping

import trio

from kbroker.log import checkpoints, files
from kbroker.log.handles import DEFAULT_MAX_OPEN, FileHandleCache
from kbroker.log.log_config import LogConfig
from kbroker.log.partition_log import PartitionLog

logger = logging.getLogger(__name__)

# How often the background task looks at the logs (flush due, rolled segments to fsync).
FLUSH_CHECK_INTERVAL_MS = 1000
# Checkpoint rewrite interval when the broker config does not give Kafka's keys
# (log.flush.offset.checkpoint.interval.ms / log.flush.start.offset.checkpoint.interval.ms).
DEFAULT_CHECKPOINT_INTERVAL_MS = 5000
DEFAULT_RETENTION_CHECK_INTERVAL_MS = 300_000  # Kafka's log.retention.check.interval.ms
METADATA_TOPIC = "__cluster_metadata"


class LogManager:
    """Owns the log dirs and the PartitionLog of every local partition."""

    def __init__(
        self,
        log_dirs: list[Path],
        default_props: Mapping[str, str],
        clock: Any,
        *,
        max_open_files: int = DEFAULT_MAX_OPEN,
        flush_check_interval_ms: int = FLUSH_CHECK_INTERVAL_MS,
    ) -> None:
        self.log_dirs = [Path(d) for d in log_dirs]
        if not self.log_dirs:
            raise ValueError("at least one log dir is needed")
        self.default_props = dict(default_props)
        self.clock = clock
        self.handles = FileHandleCache(max_open_files)
        self._logs: dict[tuple[str, int], PartitionLog] = {}
        self._props: dict[tuple[str, int], dict[str, str]] = {}
        self._dirty_dirs: set[Path] = set()
        self._loaded = False
        self._closed = False
        self.flush_check_interval_ms = flush_check_interval_ms
        # Simple built-in retention; a dedicated scheduler (kbroker.log.log_scheduler, with
        # file.delete.delay.ms and compaction) turns this off when it is wired in.
        self.retention_enabled = True
        self.checkpoint_interval_ms = int(
            self.default_props.get("log.flush.offset.checkpoint.interval.ms", DEFAULT_CHECKPOINT_INTERVAL_MS)
        )
        self.retention_check_interval_ms = int(
            self.default_props.get("log.retention.check.interval.ms", DEFAULT_RETENTION_CHECK_INTERVAL_MS)
        )

    # ----------------------------------------------------------------- loading

    def load(self) -> None:
        """Open every partition found in the log dirs (idempotent)."""
        if self._loaded:
            return
        self._loaded = True
        default_config = self.config_for({})
        for log_dir in self.log_dirs:
            self._load_dir(log_dir, default_config)

    def _load_dir(self, log_dir: Path, config: LogConfig) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        marker = log_dir / files.CLEAN_SHUTDOWN_MARKER
        clean = marker.exists()
        recovery = checkpoints.read_offsets(log_dir / files.RECOVERY_POINT_CHECKPOINT)
        starts = checkpoints.read_offsets(log_dir / files.LOG_START_OFFSET_CHECKPOINT)
        watermarks = checkpoints.read_offsets(log_dir / files.REPLICATION_CHECKPOINT)
        now_ms = self.clock.now_ms()
        count = 0
        for entry in sorted(log_dir.iterdir()):
            if not entry.is_dir():
                continue
            if entry.name.endswith(files.DELETE_DIR_SUFFIX):
                logger.info("removing partition dir left for deletion dir=%s", entry)
                shutil.rmtree(entry, ignore_errors=True)
                continue
            key = files.parse_partition_dir_name(entry.name)
            if key is None or key[0] == METADATA_TOPIC:
                # The metadata log belongs to the Raft layer (Kafka's LogManager skips it too).
                continue
            if key in self._logs:
                logger.error("partition %s-%d found in two log dirs; ignoring dir=%s", *key, entry)
                continue
            self._logs[key] = PartitionLog.open(
                entry, config, now_ms=now_ms,
                recovery_point=recovery.get(key, 0), log_start_offset=starts.get(key, 0),
                high_watermark=watermarks.get(key, 0), clean_shutdown=clean,
                handles=self.handles, checkpoint_listener=self._on_checkpoint,
            )
            count += 1
        if clean:
            marker.unlink()
            files.fsync_dir(log_dir)
        logger.info("loaded log dir=%s partitions=%d clean_shutdown=%s", log_dir, count, clean)

    # ----------------------------------------------------------------- partitions

    def config_for(self, topic_props: Mapping[str, str]) -> LogConfig:
        """LogConfig of a topic: its props over the broker defaults over Kafka's defaults."""
        return LogConfig.from_props(topic_props, self.default_props)

    def get(self, topic: str, partition: int) -> PartitionLog | None:
        """The open log of a partition, or None."""
        self.load()
        return self._logs.get((topic, partition))

    def get_or_create(self, topic: str, partition: int, topic_props: Mapping[str, str]) -> PartitionLog:
        """The partition's log, created in the least loaded log dir if new; configs applied."""
        self.load()
        key = (topic, partition)
        props = dict(topic_props)
        log = self._logs.get(key)
        if log is not None:
            if self._props.get(key) != props:
                log.update_config(self.config_for(props))
                self._props[key] = props
            return log
        log_dir = min(self.log_dirs, key=lambda d: sum(1 for l in self._logs.values() if l.directory.parent == d))
        log = PartitionLog.open(
            log_dir / files.partition_dir_name(topic, partition), self.config_for(props),
            now_ms=self.clock.now_ms(), recovery_point=0, log_start_offset=0, high_watermark=0,
            clean_shutdown=False, handles=self.handles, checkpoint_listener=self._on_checkpoint,
        )
        self._logs[key] = log
        self._props[key] = props
        self._dirty_dirs.add(log_dir)
        logger.info("created log topic=%s partition=%d dir=%s", topic, partition, log_dir)
        return log

    def delete_partition(self, topic: str, partition: int) -> None:
        """Close and remove a partition's log (renamed ``...-delete`` first, so a crash finishes it)."""
        log = self._logs.pop((topic, partition), None)
        self._props.pop((topic, partition), None)
        if log is None:
            return
        log.close(flush=False)
        doomed = log.directory.with_name(f"{log.directory.name}.{uuid.uuid4().hex}{files.DELETE_DIR_SUFFIX}")
        log.directory.rename(doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        self.write_checkpoints(log.directory.parent)
        logger.info("deleted log topic=%s partition=%d", topic, partition)

    def all_logs(self) -> Iterable[PartitionLog]:
        """Every open partition log."""
        self.load()
        return list(self._logs.values())

    # ----------------------------------------------------------------- checkpoints

    def _on_checkpoint(self, log: PartitionLog, urgent: bool) -> None:
        parent = log.directory.parent
        if urgent:
            self.write_checkpoints(parent)
        else:
            self._dirty_dirs.add(parent)

    def write_checkpoints(self, log_dir: Path | None = None) -> None:
        """Rewrite the three offset checkpoint files of one log dir (default: the dirty ones)."""
        dirs = [log_dir] if log_dir is not None else sorted(self._dirty_dirs)
        for d in dirs:
            in_dir = [l for l in self._logs.values() if l.directory.parent == d]
            checkpoints.write_offsets(
                d / files.RECOVERY_POINT_CHECKPOINT, {(l.topic, l.partition): l.recovery_point for l in in_dir}
            )
            checkpoints.write_offsets(
                d / files.REPLICATION_CHECKPOINT, {(l.topic, l.partition): l.high_watermark for l in in_dir}
            )
            checkpoints.write_offsets(
                d / files.LOG_START_OFFSET_CHECKPOINT, {(l.topic, l.partition): l.log_start_offset for l in in_dir}
            )
            self._dirty_dirs.discard(d)

    # ----------------------------------------------------------------- background

    def tick(self, now_ms: int) -> None:
        """One round of background work: flush what is due (synchronous; used by `run`)."""
        for log in list(self._logs.values()):
            if not log.closed and log.flush_due(now_ms):
                log.flush(now_ms=now_ms)

    async def _flush_round(self, now_ms: int) -> None:
        """Rolled segments are fsynced in a worker thread; flush.ms flushes run inline."""
        for log in list(self._logs.values()):
            if log.closed:
                continue
            plan = log.rolled_flush_plan()
            if plan is not None:
                paths, offset, generation = plan
                await trio.to_thread.run_sync(files.fsync_paths, paths)
                log.complete_rolled_flush(offset, generation)
            elif log.flush_ms_due(now_ms):
                log.flush(now_ms=now_ms)

    def apply_retention(self, now_ms: int) -> int:
        """Delete segments past retention in every log; returns the number deleted."""
        return sum(log.delete_retention_segments(now_ms) for log in list(self._logs.values()) if not log.closed)

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Load the logs, report ready, then flush / checkpoint / retain periodically."""
        self.load()
        task_status.started()
        last_checkpoint = last_retention = self.clock.monotonic()
        while True:
            await trio.sleep(self.flush_check_interval_ms / 1000)
            if self._closed:
                return
            now_ms = self.clock.now_ms()
            await self._flush_round(now_ms)
            # Segment files unused for a while give their descriptors back (issue 8).
            self.handles.close_idle()
            monotonic = self.clock.monotonic()
            if self.retention_enabled and (monotonic - last_retention) * 1000 >= self.retention_check_interval_ms:
                last_retention = monotonic
                self.apply_retention(now_ms)
            if (monotonic - last_checkpoint) * 1000 >= self.checkpoint_interval_ms:
                last_checkpoint = monotonic
                if self._dirty_dirs:
                    self.write_checkpoints()

    def close(self, clean: bool) -> None:
        """Close every log; when `clean`, flush them all and write the clean-shutdown markers."""
        if self._closed:
            return
        self._closed = True
        for log in self._logs.values():
            try:
                log.close(flush=clean)
            except OSError:
                logger.exception("closing log %s failed", log.directory)
                clean = False
        for d in self.log_dirs:
            if d.exists():
                self.write_checkpoints(d)
        if clean:
            for d in self.log_dirs:
                if d.exists():
                    files.write_atomically(
                        d / files.CLEAN_SHUTDOWN_MARKER, json.dumps({"version": 0, "brokerEpoch": -1}).encode()
                    )
        self.handles.close_all()
        logger.info("closed %d logs clean=%s", len(self._logs), clean)

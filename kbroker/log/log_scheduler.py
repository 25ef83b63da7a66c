"""LogScheduler: the background trio task for retention and compaction of every partition log.

Like `manager.py` this is a trio edge of ``kbroker/log``; the decisions live in
`retention.py` and `cleaner.py`, which know nothing of trio.

Every ``log.retention.check.interval.ms`` (Kafka default 5 minutes) it applies retention to
each log and removes ``*.deleted`` files whose ``file.delete.delay.ms`` passed. Every
``log.cleaner.backoff.ms`` (default 15 s) it cleans the compacted logs whose dirty ratio
reached ``min.cleanable.dirty.ratio`` (or whose dirty data is older than
``max.compaction.lag.ms``), one log at a time: planning and swapping run in the event loop
(cheap), the rewrite runs in a worker thread, so produce and fetch keep going meanwhile.
``log.cleaner.enable=false`` turns compaction off, as in Kafka.
"""

from __future__ import annotations

import logging
from typing import Any, Callable, Iterable, Mapping

import trio

from kbroker.log import retention

# kbroker.log.cleaner (and the record codec behind it) is imported at the first cleaner
# round, not at broker start-up (issue 8).

logger = logging.getLogger(__name__)

DEFAULT_RETENTION_CHECK_INTERVAL_MS = 300_000  # log.retention.check.interval.ms
DEFAULT_CLEANER_BACKOFF_MS = 15_000  # log.cleaner.backoff.ms


def _flag(value: Any, default: bool) -> bool:
    if value is None:
        return default
    return str(value).strip().lower() == "true"


class LogScheduler:
    """Runs retention and the log cleaner over the logs returned by `logs()`."""

    def __init__(
        self,
        logs: Callable[[], Iterable[Any]],
        clock: Any,
        broker_props: Mapping[str, str] | None = None,
    ) -> None:
        props = dict(broker_props or {})
        self._logs = logs
        self.clock = clock
        self.retention_check_interval_ms = int(
            props.get("log.retention.check.interval.ms", DEFAULT_RETENTION_CHECK_INTERVAL_MS))
        self.cleaner_backoff_ms = int(props.get("log.cleaner.backoff.ms", DEFAULT_CLEANER_BACKOFF_MS))
        self.cleaner_enabled = _flag(props.get("log.cleaner.enable"), True)
        self.pending = retention.PendingDeletions()
        self._checkpoints: Any = None  # cleaner.CleanerCheckpoints, created on first use
        self.cleans = 0  # completed cleans (tests, statistics)
        self._closed = False

    @property
    def checkpoints(self) -> Any:
        """The cleaner's checkpoints (cleaner.CleanerCheckpoints)."""
        if self._checkpoints is None:
            from kbroker.log import cleaner

            self._checkpoints = cleaner.CleanerCheckpoints()
        return self._checkpoints

    # ------------------------------------------------------------------ one round each

    def retention_round(self) -> int:
        """Apply retention to every log and remove expired ``.deleted`` files."""
        now_ms = self.clock.now_ms()
        deleted = 0
        for log in list(self._logs()):
            try:
                deleted += retention.apply_retention(log, now_ms, self.pending)
            except Exception:  # one broken log must not stop retention for the others
                logger.exception("retention failed for %r", log)
        self.pending.remove_due(now_ms)
        return deleted

    async def cleaner_round(self) -> int:
        """Clean every compacted log that needs it; returns the number of logs cleaned."""
        if not self.cleaner_enabled:
            return 0
        from kbroker.log import cleaner

        cleaned = 0
        for log in list(self._logs()):
            now_ms = self.clock.now_ms()
            try:
                if not cleaner.needs_cleaning(log, self.checkpoints.first_dirty_offset(log), now_ms):
                    continue
                plan = cleaner.plan_clean(log, now_ms)
                if plan is None:
                    continue
                result = await trio.to_thread.run_sync(cleaner.clean, plan)
                if self._closed:
                    cleaner.discard(result)
                    return cleaned
                swapped = cleaner.swap_in(result)
                if swapped:
                    self.checkpoints.update(log, plan.first_uncleanable_offset)
                    cleaned += 1
                    self.cleans += 1
                    logger.info(
                        "cleaned topic=%s partition=%d segments=%d records_removed=%d bytes=%d->%d",
                        log.topic, log.partition, swapped, result.records_removed,
                        result.bytes_before, result.bytes_after,
                    )
            except Exception:
                logger.exception("cleaning failed for %r", log)
        return cleaned

    # ------------------------------------------------------------------ the task

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Retention and cleaning until cancelled (or `close`)."""
        task_status.started()
        next_retention = self.clock.monotonic() + self.retention_check_interval_ms / 1000
        next_clean = self.clock.monotonic() + self.cleaner_backoff_ms / 1000
        while not self._closed:
            await trio.sleep(max(0.0, min(next_retention, next_clean) - self.clock.monotonic()))
            if self._closed:
                return
            now = self.clock.monotonic()
            if now >= next_retention:
                self.retention_round()
                next_retention = now + self.retention_check_interval_ms / 1000
            if now >= next_clean:
                await self.cleaner_round()
                next_clean = self.clock.monotonic() + self.cleaner_backoff_ms / 1000

    def forget(self, log: Any) -> None:
        """A partition is being deleted: drop its cleaner checkpoint entry."""
        self.checkpoints.forget(log.directory.parent, log.topic, log.partition)

    def close(self) -> None:
        """Stop scheduling; files waiting for their delete delay are removed now."""
        self._closed = True
        self.pending.remove_all()

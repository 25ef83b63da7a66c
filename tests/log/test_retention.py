"""Retention (retention.ms, retention.bytes, log start offset) with a controllable clock, the
two-phase ``.deleted`` removal, and the LogScheduler under trio's MockClock."""

from __future__ import annotations

import trio
import trio.testing

from protocol.records import iter_batches

from kbroker.log import files
from kbroker.log.log_scheduler import LogScheduler
from kbroker.log.retention import PendingDeletions, apply_retention, plan_retention
from tests.log.helpers import NOW_MS, make_batch, open_log, read_all, small_config

HOUR_MS = 3_600_000


def fill(log, count: int, *, timestamp: int = NOW_MS, value_size: int = 200) -> None:
    for i in range(count):
        log.append(make_batch(1, value_size=value_size, timestamp=timestamp, tag=i), leader_epoch=0,
                   now_ms=timestamp)


def deleted_files(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(files.DELETED_SUFFIX))


def test_time_retention_by_largest_timestamp(tmp_path):
    log = open_log(tmp_path / "r-0", small_config(retention_ms=HOUR_MS, segment_bytes=1024))
    fill(log, 8, timestamp=NOW_MS)                  # old segments
    fill(log, 8, timestamp=NOW_MS + HOUR_MS)        # newer ones
    segments_before = len(log.segments)
    assert plan_retention(log, NOW_MS + HOUR_MS) is None  # exactly retention.ms old: kept
    deleted = apply_retention(log, NOW_MS + HOUR_MS + 1)
    assert 0 < deleted < segments_before
    # Every surviving segment has a record newer than the cut, the log start moved with them.
    assert log.log_start_offset == log.segments[0].base_offset > 0
    assert all(s.max_timestamp >= NOW_MS + HOUR_MS for s in log.segments[:-1])
    assert read_all(log)[0][0] == log.log_start_offset
    assert log.log_end_offset == 16


def test_active_segment_is_never_deleted(tmp_path):
    log = open_log(tmp_path / "r-0", small_config(retention_ms=1, segment_bytes=1024))
    fill(log, 12)
    apply_retention(log, NOW_MS + 10 * HOUR_MS)
    assert len(log.segments) == 1 and log.segments[0].size > 0
    assert log.log_start_offset == log.segments[0].base_offset
    assert log.log_end_offset == 12
    assert read_all(log)  # still readable


def test_size_retention(tmp_path):
    log = open_log(tmp_path / "r-0", small_config(retention_bytes=2048, retention_ms=-1, segment_bytes=1024))
    fill(log, 30)
    apply_retention(log, NOW_MS)
    sizes = [s.size for s in log.segments]
    assert sum(sizes) >= 2048 and sum(sizes) - sizes[0] < 2048  # Kafka's rule: stop just above
    assert log.log_start_offset == log.segments[0].base_offset


def test_unlimited_and_compact_only_keep_everything(tmp_path):
    for config in (small_config(retention_ms=-1, retention_bytes=-1, segment_bytes=1024),
                   small_config(retention_ms=1, retention_bytes=0, segment_bytes=1024, cleanup_policy=("compact",))):
        directory = tmp_path / f"r-{len(config.cleanup_policy)}"
        log = open_log(directory, config)
        fill(log, 20)
        assert apply_retention(log, NOW_MS + 1000 * HOUR_MS) == 0
        assert log.log_start_offset == 0


def test_high_watermark_bounds_retention(tmp_path):
    log = open_log(tmp_path / "r-0", small_config(retention_ms=1, segment_bytes=1024), auto_high_watermark=False)
    fill(log, 20)
    log.high_watermark = log.segments[1].base_offset  # a follower lagging behind
    apply_retention(log, NOW_MS + HOUR_MS)
    assert log.segments[0].base_offset <= log.high_watermark
    assert log.log_start_offset == log.segments[0].base_offset


def test_deleted_files_wait_for_file_delete_delay(tmp_path):
    directory = tmp_path / "r-0"
    log = open_log(directory, small_config(retention_ms=1, segment_bytes=1024, file_delete_delay_ms=60_000))
    fill(log, 12)
    pending = PendingDeletions()
    deleted = apply_retention(log, NOW_MS + HOUR_MS, pending)
    names = deleted_files(directory)
    assert deleted > 0 and len(names) >= deleted  # .log (+ indexes) renamed, not yet removed
    assert all(n.split(".")[0].isdigit() for n in names)
    assert pending.remove_due(NOW_MS + HOUR_MS + 59_999) == 0
    assert deleted_files(directory) == names
    assert pending.remove_due(NOW_MS + HOUR_MS + 60_000) == len(names)
    assert deleted_files(directory) == []


def test_crash_with_deleted_files_left_behind(tmp_path):
    directory = tmp_path / "r-0"
    config = small_config(retention_ms=1, segment_bytes=1024)
    log = open_log(directory, config)
    fill(log, 12)
    apply_retention(log, NOW_MS + HOUR_MS, PendingDeletions())
    start, leo = log.log_start_offset, log.log_end_offset
    log.write_checkpoints()
    log.close(flush=True)  # the process dies before the delay passes
    reopened = open_log(directory, config, clean_shutdown=False)
    assert deleted_files(directory) == []
    assert (reopened.log_start_offset, reopened.log_end_offset) == (start, leo)
    reopened.close()


def test_delete_records_leftover_segments_are_removed(tmp_path):
    log = open_log(tmp_path / "r-0", small_config(retention_ms=-1, segment_bytes=1024))
    fill(log, 20)
    log.log_start_offset = log.segments[2].base_offset  # e.g. restored from the checkpoint
    decision = plan_retention(log, NOW_MS)
    assert decision is not None and decision.segment_count == 2 and decision.reason == "log start offset"


class TrioWallClock:
    """Wall clock driven by trio's (mock) clock, so the scheduler's timers and retention agree."""

    def now_ms(self) -> int:
        return NOW_MS + int(trio.current_time() * 1000)

    def monotonic(self) -> float:
        return trio.current_time()


async def test_scheduler_applies_retention_on_its_interval(tmp_path, autojump_clock):
    log = open_log(tmp_path / "r-0", small_config(retention_ms=HOUR_MS, segment_bytes=1024,
                                                  file_delete_delay_ms=60_000))
    fill(log, 12, timestamp=NOW_MS)
    scheduler = LogScheduler(lambda: [log], TrioWallClock(),
                             {"log.retention.check.interval.ms": "300000", "log.cleaner.enable": "false"})
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        await trio.sleep(HOUR_MS / 1000 - 1)
        assert log.log_start_offset == 0  # not expired yet
        deadline = trio.current_time() + 310
        while log.log_start_offset == 0 and trio.current_time() < deadline:
            await trio.sleep(1)
        assert log.log_start_offset > 0
        assert deleted_files(log.directory)
        await trio.sleep(61 + 300)  # the next round removes the files past their delay
        assert deleted_files(log.directory) == []
        scheduler.close()
        nursery.cancel_scope.cancel()


async def test_scheduler_cleans_compacted_logs_in_a_thread(tmp_path):
    from protocol.record_codec import Record, build_batch

    log = open_log(tmp_path / "c-0", small_config(cleanup_policy=("compact",), segment_bytes=1024,
                                                  min_cleanable_dirty_ratio=0.5))
    for i in range(60):
        batch = build_batch([Record(0, 0, b"k%d" % (i % 3), b"v" * 100)], base_timestamp=NOW_MS)
        log.append(batch, leader_epoch=0, now_ms=NOW_MS)
    log.roll(NOW_MS)
    size_before = log.size_bytes()
    scheduler = LogScheduler(lambda: [log], TrioWallClock(), {"log.cleaner.backoff.ms": "10"})
    async with trio.open_nursery() as nursery:
        await nursery.start(scheduler.run)
        with trio.fail_after(20):
            while scheduler.cleans == 0:
                await trio.sleep(0.01)
        scheduler.close()
        nursery.cancel_scope.cancel()
    assert log.size_bytes() < size_before
    keys = []
    for _, _, data in read_all(log):
        from protocol.record_codec import decode_batch

        keys += [r.key for r in decode_batch(data).records]
    assert sorted(keys) == [b"k0", b"k1", b"k2"]

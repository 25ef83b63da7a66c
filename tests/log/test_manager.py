"""LogManager: loading log dirs, clean-shutdown marker, checkpoints, background flushing."""

from __future__ import annotations

import trio

from kbroker.clock import Clock
from kbroker.log import files
from kbroker.log.manager import LogManager
from kbroker.log.segment import LogSegment
from tests.log.helpers import NOW_MS, make_batch, read_all

SMALL = {"segment.bytes": "2048", "index.interval.bytes": "128"}


def manager(tmp_path, dirs=("a",), props=None):
    return LogManager([tmp_path / d for d in dirs], props if props is not None else {}, Clock())


def fill(log, n=20):
    for i in range(n):
        log.append(make_batch(2, tag=i, value_size=100), leader_epoch=0, now_ms=NOW_MS)


def test_clean_close_writes_marker_and_checkpoints_and_reopens_without_scan(tmp_path, monkeypatch):
    m = manager(tmp_path, dirs=("a", "b"))
    logs = [m.get_or_create("orders", p, SMALL) for p in range(4)]
    assert {log.directory.parent.name for log in logs} == {"a", "b"}  # spread over the dirs
    for log in logs:
        fill(log)
    stored = {(log.topic, log.partition): read_all(log) for log in logs}
    m.close(clean=True)
    for d in ("a", "b"):
        assert (tmp_path / d / files.CLEAN_SHUTDOWN_MARKER).exists()
        text = (tmp_path / d / files.RECOVERY_POINT_CHECKPOINT).read_text().splitlines()
        assert text[:2] == ["0", "2"] and all(line.endswith(" 40") for line in text[2:])
    scanned = []
    original = LogSegment.recover
    monkeypatch.setattr(LogSegment, "recover", lambda self: scanned.append(self) or original(self))
    again = manager(tmp_path, dirs=("a", "b"))
    again.load()
    assert scanned == []
    assert not (tmp_path / "a" / files.CLEAN_SHUTDOWN_MARKER).exists()
    assert {(l.topic, l.partition): read_all(l) for l in again.all_logs()} == stored
    again.close(clean=True)


def test_unclean_close_leaves_no_marker_and_reopen_recovers(tmp_path, monkeypatch):
    m = manager(tmp_path)
    log = m.get_or_create("t", 0, SMALL)
    fill(log)
    stored = read_all(log)
    m.close(clean=False)
    assert not (tmp_path / "a" / files.CLEAN_SHUTDOWN_MARKER).exists()
    scanned = []
    original = LogSegment.recover
    monkeypatch.setattr(LogSegment, "recover", lambda self: scanned.append(self) or original(self))
    again = manager(tmp_path)
    assert read_all(again.get("t", 0)) == stored
    assert scanned
    again.close(clean=True)


def test_topic_props_apply_and_update(tmp_path):
    m = manager(tmp_path, props={"segment.bytes": "100000"})
    log = m.get_or_create("t", 0, {})
    assert log.config.segment_bytes == 100000
    assert m.get_or_create("t", 0, {"segment.bytes": "4096"}) is log
    assert log.config.segment_bytes == 4096
    m.close(clean=True)


def test_delete_partition_removes_files_and_checkpoint_lines(tmp_path):
    m = manager(tmp_path)
    fill(m.get_or_create("t", 0, SMALL))
    fill(m.get_or_create("t", 1, SMALL))
    m.delete_partition("t", 0)
    assert m.get("t", 0) is None
    assert sorted(p.name for p in (tmp_path / "a").iterdir() if p.is_dir()) == ["t-1"]
    assert "t 0 " not in (tmp_path / "a" / files.RECOVERY_POINT_CHECKPOINT).read_text()
    m.close(clean=True)
    again = manager(tmp_path)
    assert [(l.topic, l.partition) for l in again.all_logs()] == [("t", 1)]
    again.close(clean=True)


def test_leftover_delete_dirs_are_removed_at_load(tmp_path):
    (tmp_path / "a" / "t-0.abc-delete").mkdir(parents=True)
    (tmp_path / "a" / "t-0.abc-delete" / "00000000000000000000.log").write_bytes(b"x")
    m = manager(tmp_path)
    m.load()
    assert not (tmp_path / "a" / "t-0.abc-delete").exists()
    m.close(clean=True)


async def test_background_task_flushes_rolled_segments_and_checkpoints(tmp_path):
    # Real clock: rolled segments are fsynced in a worker thread.
    m = LogManager([tmp_path / "a"], {"log.flush.offset.checkpoint.interval.ms": "100"}, Clock(),
                   flush_check_interval_ms=20)
    checkpoint = tmp_path / "a" / files.RECOVERY_POINT_CHECKPOINT
    async with trio.open_nursery() as nursery:
        await nursery.start(m.run)
        log = m.get_or_create("t", 0, SMALL)
        fill(log)
        assert len(log.segments) > 1 and log.recovery_point == 0
        with trio.fail_after(20):
            while log.recovery_point < log.segments[-1].base_offset:
                await trio.sleep(0.02)
            while not checkpoint.exists() or checkpoint.read_text() != f"0\n1\nt 0 {log.recovery_point}\n":
                await trio.sleep(0.02)
        # The active segment's unflushed tail is not fsynced by default (flush.ms: never).
        assert log.recovery_point == log.segments[-1].base_offset < log.log_end_offset
        nursery.cancel_scope.cancel()
    m.close(clean=True)


def test_truncation_while_a_rolled_flush_runs_keeps_the_recovery_point(tmp_path):
    m = manager(tmp_path)
    log = m.get_or_create("t", 0, SMALL)
    fill(log)
    paths, offset, generation = log.rolled_flush_plan()
    files.fsync_paths(paths)
    log.truncate_to(4)
    log.complete_rolled_flush(offset, generation)
    assert log.recovery_point == 0
    m.close(clean=True)


class TrioWallClock(Clock):
    """Wall time that follows trio's (mock) clock, so flush.ms can elapse in a test."""

    def now_ms(self) -> int:
        return NOW_MS + int(trio.current_time() * 1000)


async def test_flush_ms_forces_an_fsync_of_unflushed_appends(tmp_path, autojump_clock):
    m = LogManager([tmp_path / "a"], {"flush.ms": "1000"}, TrioWallClock())
    async with trio.open_nursery() as nursery:
        await nursery.start(m.run)
        log = m.get_or_create("t", 0, {})
        log.append(make_batch(3), leader_epoch=0, now_ms=NOW_MS)
        assert log.recovery_point == 0
        with trio.fail_after(30):
            while log.recovery_point != 3:
                await trio.sleep(0.5)
        nursery.cancel_scope.cancel()
    m.close(clean=True)


def test_many_partitions_reopen_cleanly_with_few_descriptors(tmp_path):
    import os

    m = manager(tmp_path)
    for p in range(200):
        m.get_or_create("many", p, {}).append(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    m.close(clean=True)
    before = len(os.listdir("/proc/self/fd"))
    again = manager(tmp_path)
    again.load()
    assert len(list(again.all_logs())) == 200
    # One descriptor per partition (the active segment), nothing per index.
    assert len(os.listdir("/proc/self/fd")) - before <= 200 + 5
    again.close(clean=True)
    assert len(os.listdir("/proc/self/fd")) <= before + 5


def test_the_metadata_log_directory_is_left_alone(tmp_path):
    meta = tmp_path / "a" / "__cluster_metadata-0"
    meta.mkdir(parents=True)
    (meta / "00000000000000000000.log").write_bytes(b"\x00" * 100)  # not ours to recover
    m = manager(tmp_path)
    m.load()
    assert list(m.all_logs()) == []
    m.close(clean=True)
    assert (meta / "00000000000000000000.log").read_bytes() == b"\x00" * 100
    assert sorted(p.name for p in meta.iterdir()) == ["00000000000000000000.log"]

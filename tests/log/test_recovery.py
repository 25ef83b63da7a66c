"""Reopening logs: clean and unclean starts, torn tails, corrupt batches, damaged indexes."""

from __future__ import annotations

import os

import pytest

from protocol.records import iter_batches, validate_batch

from kbroker.log import files
from kbroker.log.segment import LogSegment
from tests.log.helpers import NOW_MS, make_batch, open_log, read_all


def fill(directory, batches=30, **kwargs):
    """A log with `batches` two-record batches; returns (log, [(base, bytes)])."""
    log = open_log(directory, **kwargs)
    for i in range(batches):
        log.append(make_batch(2, tag=i, value_size=100), leader_epoch=i // 10, now_ms=NOW_MS)
    return log, read_all(log)


def crash(log):
    """Drop the log without flushing or writing indexes, as a kill -9 would."""
    log._handles.close_all()
    log.closed = True


def assert_all_valid(log):
    for _, _, data in read_all(log):
        validate_batch(data, 0)


def test_clean_reopen_keeps_everything_without_scanning(tmp_path, monkeypatch):
    log, stored = fill(tmp_path / "t-0")
    log.close()
    (tmp_path / files.CLEAN_SHUTDOWN_MARKER).write_text("{}")
    calls = []
    original = LogSegment.recover
    monkeypatch.setattr(LogSegment, "recover", lambda self: calls.append(self) or original(self))
    again = open_log(tmp_path / "t-0")
    assert calls == []
    assert read_all(again) == stored
    assert again.log_end_offset == again.high_watermark == 60
    assert again.append(make_batch(1), leader_epoch=5, now_ms=NOW_MS).base_offset == 60
    again.close()


def test_unclean_reopen_without_checkpoint_recovers_everything(tmp_path):
    log, stored = fill(tmp_path / "t-0")
    crash(log)
    again = open_log(tmp_path / "t-0")
    assert read_all(again) == stored
    assert again.end_offset_for_leader_epoch(1) == (1, 40)
    again.close()


TAILS = {
    "half a batch": lambda batch: batch[: len(batch) // 2],
    "header only": lambda batch: batch[:30],
    "garbage": lambda batch: os.urandom(300),
    "zero-filled": lambda batch: b"\x00" * 4096,
    "bad crc": lambda batch: batch[:-1] + bytes([batch[-1] ^ 0x55]),
}


@pytest.mark.parametrize("tail", TAILS, ids=list(TAILS))
def test_torn_tail_is_truncated_and_everything_before_kept(tmp_path, tail):
    log, stored = fill(tmp_path / "t-0")
    active = log.segments[-1].log_path
    size_before = active.stat().st_size
    crash(log)
    with open(active, "ab") as f:
        f.write(TAILS[tail](make_batch(3, tag=99, value_size=100)))
    again = open_log(tmp_path / "t-0")
    assert again.log_end_offset == 60
    assert read_all(again) == stored
    assert active.stat().st_size == size_before
    assert_all_valid(again)
    # Appends continue without a gap or duplicate.
    assert again.append(make_batch(1), leader_epoch=9, now_ms=NOW_MS).base_offset == 60
    assert [b for b, _, _ in read_all(again)] == list(range(0, 62, 2))
    again.close()


def test_corrupt_batch_in_an_old_segment_truncates_there_and_drops_later_segments(tmp_path):
    log, stored = fill(tmp_path / "t-0")
    segments = log.segments
    assert len(segments) >= 3
    victim = segments[1]
    crash(log)
    # Flip a payload byte of the third batch of the second segment.
    positions = [pos for pos, _ in iter_batches(victim.log_path.read_bytes())]
    with open(victim.log_path, "r+b") as f:
        f.seek(positions[2] + 70)
        byte = f.read(1)
        f.seek(positions[2] + 70)
        f.write(bytes([byte[0] ^ 0xFF]))
    again = open_log(tmp_path / "t-0", recovery_point=0)
    kept = [entry for entry in stored if entry[0] < victim.base_offset + 4]
    assert read_all(again) == kept
    assert again.log_end_offset == victim.base_offset + 4
    assert len(again.segments) == 2
    assert not segments[2].log_path.exists()
    again.close()


def test_recovery_starts_at_the_recovery_point(tmp_path, monkeypatch):
    log, stored = fill(tmp_path / "t-0")
    log.flush()
    recovery_point = log.recovery_point
    log.append(make_batch(1), leader_epoch=3, now_ms=NOW_MS)
    crash(log)
    scanned = []
    original = LogSegment.recover
    monkeypatch.setattr(LogSegment, "recover", lambda self: scanned.append(self.base_offset) or original(self))
    again = open_log(tmp_path / "t-0")
    assert again.log_end_offset == recovery_point + 1
    bases = [s.base_offset for s in again.segments]
    assert scanned == [b for b in bases if b >= max(x for x in bases if x <= recovery_point)]
    again.close()


@pytest.mark.parametrize("damage", ["delete", "garbage", "non-monotonic", "past-the-log", "plausible-but-wrong"])
def test_damaged_index_is_rebuilt(tmp_path, damage):
    log, stored = fill(tmp_path / "t-0")
    log.close()
    (tmp_path / files.CLEAN_SHUTDOWN_MARKER).write_text("{}")
    segment = log.segments[0]
    index = segment.index_path
    assert index.stat().st_size >= 16
    if damage == "delete":
        index.unlink()
        segment.time_index_path.unlink()
    elif damage == "garbage":
        index.write_bytes(os.urandom(13))
    elif damage == "non-monotonic":
        data = index.read_bytes()
        index.write_bytes(data[8:16] + data[0:8] + data[16:])
    elif damage == "plausible-but-wrong":  # passes the load checks, points inside a batch
        index.write_bytes((3).to_bytes(4, "big") + (1).to_bytes(4, "big"))
    else:  # an index pointing past the end of its log
        index.write_bytes(index.read_bytes() + (9999).to_bytes(4, "big") + (10**6).to_bytes(4, "big"))
    again = open_log(tmp_path / "t-0")
    assert read_all(again, max_bytes=1) == stored
    for base, _, data in stored:
        assert again.read(base + 1, 1).records == data
    again.close()
    assert index.stat().st_size % 8 == 0 and index.stat().st_size > 0


def test_leftover_files_are_removed(tmp_path):
    log, stored = fill(tmp_path / "t-0")
    log.close()
    d = tmp_path / "t-0"
    (d / "00000000000000000003.log.deleted").write_bytes(b"x")
    (d / "00000000000000099999.index").write_bytes(b"")  # index without a log
    again = open_log(d)
    assert not (d / "00000000000000000003.log.deleted").exists()
    assert not (d / "00000000000000099999.index").exists()
    assert read_all(again) == stored
    again.close()


def test_checkpoint_files_use_kafkas_text_format(tmp_path):
    log, _ = fill(tmp_path / "t-0", batches=3)
    log.delete_records_before(2)
    log.close()
    assert (tmp_path / files.RECOVERY_POINT_CHECKPOINT).read_text() == "0\n1\nt 0 6\n"
    assert (tmp_path / files.LOG_START_OFFSET_CHECKPOINT).read_text() == "0\n1\nt 0 2\n"
    assert (tmp_path / files.REPLICATION_CHECKPOINT).read_text() == "0\n1\nt 0 6\n"
    again = open_log(tmp_path / "t-0")
    assert again.log_start_offset == 2
    again.close()


def test_truncation_below_the_recovery_point_is_checkpointed_at_once(tmp_path):
    log, _ = fill(tmp_path / "t-0", batches=10)
    log.flush()
    log.truncate_to(6)
    assert (tmp_path / files.RECOVERY_POINT_CHECKPOINT).read_text() == "0\n1\nt 0 6\n"
    # New data after the truncation, torn at the tail: recovery must look at it.
    log.append(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    path = log.segments[-1].log_path
    crash(log)
    with open(path, "ab") as f:
        f.write(make_batch(2)[:40])
    again = open_log(tmp_path / "t-0")
    assert again.log_end_offset == 8
    assert_all_valid(again)
    again.close()


@pytest.mark.parametrize("extra", [0, 12, 30, 60, 61, 200])
def test_recovery_and_reads_across_read_chunk_boundaries(tmp_path, monkeypatch, extra):
    """Read chunks ending inside a batch header or just after a batch must not look torn."""
    from kbroker.log import segment as segment_module

    log, stored = fill(tmp_path / "t-0", batches=12)
    crash(log)
    batch_size = len(stored[0][2])
    chunk = 2 * batch_size + extra
    monkeypatch.setattr(segment_module, "_RECOVERY_READ_BYTES", chunk)
    monkeypatch.setattr(segment_module, "_HEADER_READ_BYTES", chunk)
    again = open_log(tmp_path / "t-0", recovery_point=0)
    assert again.log_end_offset == 24
    assert read_all(again) == stored
    assert read_all(again, max_bytes=1) == stored
    again.close()

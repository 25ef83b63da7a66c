"""PartitionLog: append validation and offset assignment, rolls, reads, timestamps, epochs."""

from __future__ import annotations

import os

import pytest

from protocol.record_codec import decode_batch
from protocol.records import iter_batches, read_batch_header, validate_batch

from kbroker.errors import KafkaError
from kbroker.log import files
from kbroker.log.handles import FileHandleCache
from tests.log.helpers import NOW_MS, make_batch, open_log, read_all, small_config

OFFSET_OUT_OF_RANGE, CORRUPT_MESSAGE, MESSAGE_TOO_LARGE = 1, 2, 10
RECORD_LIST_TOO_LARGE, INVALID_TIMESTAMP, INVALID_RECORD = 18, 32, 87


@pytest.fixture
def log(tmp_path):
    log = open_log(tmp_path / "orders-0")
    yield log
    log.close()


def test_offsets_are_assigned_contiguously_and_bytes_kept(log):
    produced = [make_batch(n, tag=i) for i, n in enumerate([1, 3, 2, 5])]
    results = [log.append(b, leader_epoch=7, now_ms=NOW_MS) for b in produced]
    assert [(r.base_offset, r.last_offset) for r in results] == [(0, 0), (1, 3), (4, 5), (6, 10)]
    assert log.log_end_offset == log.high_watermark == 11
    stored = read_all(log)
    assert [(b, l) for b, l, _ in stored] == [(0, 0), (1, 3), (4, 5), (6, 10)]
    for (base, _, data), original in zip(stored, produced):
        header = validate_batch(data, 0)  # CRC still valid after patching
        assert header.partition_leader_epoch == 7
        # Only base offset (0..8) and leader epoch (12..16) differ from what the client sent.
        assert data[8:12] == original[8:12] and data[16:] == original[16:]
        assert decode_batch(data).records == decode_batch(original).records


def test_more_than_one_batch_is_invalid_record(log):
    with pytest.raises(KafkaError) as err:
        log.append(make_batch(1) + make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    assert err.value.code == INVALID_RECORD
    assert log.log_end_offset == 0


def test_bad_crc_is_corrupt_message_and_nothing_is_written(log):
    data = bytearray(make_batch(2))
    data[-1] ^= 0xFF
    with pytest.raises(KafkaError) as err:
        log.append(data, leader_epoch=0, now_ms=NOW_MS)
    assert err.value.code == CORRUPT_MESSAGE
    assert log.log_end_offset == 0 and log.size_bytes() == 0


def test_short_record_set_is_invalid_record(log):
    with pytest.raises(KafkaError) as err:
        log.append(b"\x00" * 20, leader_epoch=0, now_ms=NOW_MS)
    assert err.value.code == INVALID_RECORD


def test_max_message_bytes_counts_the_log_overhead(tmp_path):
    batch = make_batch(1, value_size=200)
    exact = open_log(tmp_path / "t-0", small_config(max_message_bytes=len(batch)))
    assert exact.append(batch, leader_epoch=0, now_ms=NOW_MS).base_offset == 0
    exact.close()
    smaller = open_log(tmp_path / "t-1", small_config(max_message_bytes=len(batch) - 1))
    with pytest.raises(KafkaError) as err:
        smaller.append(batch, leader_epoch=0, now_ms=NOW_MS)
    assert err.value.code == MESSAGE_TOO_LARGE
    smaller.close()


def test_batch_larger_than_a_segment_is_record_list_too_large(tmp_path):
    log = open_log(tmp_path / "t-0", small_config(segment_bytes=300, max_message_bytes=10_000))
    with pytest.raises(KafkaError) as err:
        log.append(make_batch(1, value_size=400), leader_epoch=0, now_ms=NOW_MS)
    assert err.value.code == RECORD_LIST_TOO_LARGE
    log.close()


def test_log_append_time_stamps_the_batch_and_keeps_crc_valid(tmp_path):
    log = open_log(tmp_path / "t-0", small_config(message_timestamp_type="LogAppendTime"))
    result = log.append(make_batch(2, timestamp=5), leader_epoch=0, now_ms=NOW_MS + 42)
    assert result.log_append_time_ms == NOW_MS + 42
    data = log.read(0, 1000).records
    header = validate_batch(data, 0)
    assert header.timestamp_type == 1 and header.max_timestamp == NOW_MS + 42
    log.close()


def test_create_time_bounds_reject_old_timestamps(tmp_path):
    log = open_log(tmp_path / "t-0", small_config(message_timestamp_before_max_ms=1000))
    with pytest.raises(KafkaError) as err:
        log.append(make_batch(1, timestamp=NOW_MS - 5000), leader_epoch=0, now_ms=NOW_MS)
    assert err.value.code == INVALID_TIMESTAMP
    assert log.append(make_batch(1, timestamp=NOW_MS - 500), leader_epoch=0, now_ms=NOW_MS).base_offset == 0
    log.close()


def test_segments_roll_on_size_with_20_digit_names_and_reads_cross_them(log):
    for i in range(40):
        log.append(make_batch(2, tag=i, value_size=100), leader_epoch=0, now_ms=NOW_MS)
    assert len(log.segments) > 3
    names = sorted(p.name for p in log.directory.iterdir() if p.suffix == ".log")
    assert names == [files.offset_file_prefix(s.base_offset) + ".log" for s in log.segments]
    assert all(len(n) == 24 for n in names)
    assert all(s.size <= 2048 for s in log.segments)
    stored = read_all(log, max_bytes=50)  # forces one batch per read
    assert [b for b, _, _ in stored] == list(range(0, 80, 2))
    # A read from inside a later segment starts at that offset's batch.
    third = log.segments[2].base_offset
    assert read_batch_header(log.read(third + 1, 10).records).base_offset == third


def test_roll_on_segment_ms_uses_record_timestamps(tmp_path):
    log = open_log(tmp_path / "t-0", small_config(segment_bytes=1 << 20, segment_ms=1000))
    log.append(make_batch(1, timestamp=NOW_MS), leader_epoch=0, now_ms=NOW_MS)
    log.append(make_batch(1, timestamp=NOW_MS + 500), leader_epoch=0, now_ms=NOW_MS)
    assert len(log.segments) == 1
    log.append(make_batch(1, timestamp=NOW_MS + 1500), leader_epoch=0, now_ms=NOW_MS)
    assert [s.base_offset for s in log.segments] == [0, 2]
    log.close()


def test_roll_when_the_index_is_full(tmp_path):
    log = open_log(tmp_path / "t-0", small_config(segment_bytes=1 << 20, index_interval_bytes=0,
                                                  segment_index_bytes=8 * 4))
    for i in range(12):
        log.append(make_batch(1, tag=i), leader_epoch=0, now_ms=NOW_MS)
    assert len(log.segments) >= 2
    assert [b for b, _, _ in read_all(log)] == list(range(12))
    log.close()


def test_read_returns_whole_batches_within_max_bytes(log):
    sizes = []
    for i in range(10):
        batch = make_batch(1, tag=i, value_size=50)
        sizes.append(len(batch))
        log.append(batch, leader_epoch=0, now_ms=NOW_MS)
    budget = sizes[0] * 3 + 5
    data = log.read(0, budget).records
    assert len(data) == sizes[0] * 3
    assert [h.base_offset for _, h in iter_batches(data)] == [0, 1, 2]


def test_first_batch_is_whole_even_if_larger_than_max_bytes(log):
    big = make_batch(3, value_size=500)
    log.append(big, leader_epoch=0, now_ms=NOW_MS)
    log.append(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    data = log.read(1, 10).records
    assert len(data) == len(big) and read_batch_header(data).base_offset == 0
    assert log.read(0, 10, min_one_batch=False).records == b""


def test_read_is_bounded_by_max_offset(log):
    for i in range(5):
        log.append(make_batch(2, tag=i), leader_epoch=0, now_ms=NOW_MS)
    data = log.read(0, 1 << 20, max_offset=6).records
    assert [h.last_offset for _, h in iter_batches(data)] == [1, 3, 5]
    assert log.read(6, 1 << 20, max_offset=6).records == b""


def test_out_of_range_offsets(log):
    log.append(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    assert log.read(2, 100).records == b""  # at the LEO: nothing yet
    for offset in (3, -1):
        with pytest.raises(KafkaError) as err:
            log.read(offset, 100)
        assert err.value.code == OFFSET_OUT_OF_RANGE


def test_offset_for_timestamp_finds_the_exact_record(log):
    log.append(make_batch(3, timestamps=[100, 300, 200]), leader_epoch=2, now_ms=NOW_MS)
    log.append(make_batch(2, timestamps=[400, 500]), leader_epoch=3, now_ms=NOW_MS)
    assert log.offset_for_timestamp(0) == (0, 100, 2)
    assert log.offset_for_timestamp(250) == (1, 300, 2)
    assert log.offset_for_timestamp(450) == (4, 500, 3)
    assert log.offset_for_timestamp(501) is None
    assert log.offset_of_max_timestamp() == (4, 500, 3)


def test_offset_for_timestamp_across_segments(log):
    for i in range(30):
        log.append(make_batch(1, tag=i, value_size=200, timestamp=1000 + 10 * i), leader_epoch=0, now_ms=NOW_MS)
    assert len(log.segments) > 2
    for i in (0, 7, 19, 29):
        assert log.offset_for_timestamp(1000 + 10 * i - 5) == (i, 1000 + 10 * i, 0)
    assert log.offset_of_max_timestamp() == (29, 1290, 0)


def test_leader_epochs_answer_offset_for_leader_epoch(log, tmp_path):
    log.append(make_batch(2), leader_epoch=1, now_ms=NOW_MS)
    log.append(make_batch(2), leader_epoch=3, now_ms=NOW_MS)
    log.append(make_batch(1), leader_epoch=3, now_ms=NOW_MS)
    assert log.end_offset_for_leader_epoch(3) == (3, 5)
    assert log.end_offset_for_leader_epoch(1) == (1, 2)
    assert log.end_offset_for_leader_epoch(2) == (1, 2)
    assert log.end_offset_for_leader_epoch(0) == (0, 0)
    assert log.end_offset_for_leader_epoch(4) == (-1, -1)
    # A new epoch on append is written by the next flush, not by the append itself.
    assert not (log.directory / files.LEADER_EPOCH_CHECKPOINT).exists()
    log.flush()
    text = (log.directory / files.LEADER_EPOCH_CHECKPOINT).read_text()
    assert text == "0\n2\n1 0\n3 2\n"


def test_rolled_flush_plan_writes_the_epoch_checkpoint_before_the_recovery_point_moves(tmp_path):
    log = open_log(tmp_path / "t-0", config=small_config(segment_bytes=1000))
    for i in range(12):
        log.append(make_batch(1, tag=i, value_size=200), leader_epoch=2 + i // 6, now_ms=NOW_MS)
    paths, offset, generation = log.rolled_flush_plan()
    checkpoint = log.directory / files.LEADER_EPOCH_CHECKPOINT
    assert checkpoint in paths
    assert checkpoint.read_text() == "0\n2\n2 0\n3 6\n"
    files.fsync_paths(paths)
    log.complete_rolled_flush(offset, generation)
    assert log.recovery_point == offset > 0
    log.close()


def test_truncate_to_removes_the_tail_and_appends_continue(log):
    for i in range(20):
        log.append(make_batch(2, tag=i, value_size=40), leader_epoch=i // 10, now_ms=NOW_MS)
    assert log.truncate_to(15) == 14  # the batch 14..15 goes whole
    assert log.log_end_offset == log.high_watermark == 14
    assert [b for b, _, _ in read_all(log)] == list(range(0, 14, 2))
    assert log.append(make_batch(1), leader_epoch=5, now_ms=NOW_MS).base_offset == 14
    assert [b for b, _, _ in read_all(log)][-1] == 14
    assert log.truncate_to(0) == 0
    assert read_all(log) == [] and log.append(make_batch(1), leader_epoch=5, now_ms=NOW_MS).base_offset == 0


def test_delete_records_moves_the_log_start_and_drops_segments(log):
    for i in range(30):
        log.append(make_batch(1, tag=i, value_size=60), leader_epoch=0, now_ms=NOW_MS)
    before = len(log.segments)
    start = log.delete_records_before(20)
    assert start == log.log_start_offset == 20
    assert len(log.segments) < before and log.segments[0].base_offset <= 20
    with pytest.raises(KafkaError):
        log.read(19, 100)
    assert read_all(log)[0][0] == 20
    with pytest.raises(KafkaError) as err:
        log.delete_records_before(31)
    assert err.value.code == OFFSET_OUT_OF_RANGE
    assert log.offset_for_timestamp(0)[0] == 20


def test_retention_by_bytes_and_time_never_deletes_the_active_segment(tmp_path):
    log = open_log(tmp_path / "t-0", small_config(retention_bytes=3000, retention_ms=-1))
    for i in range(60):
        log.append(make_batch(1, tag=i, value_size=60, timestamp=1000 + i), leader_epoch=0, now_ms=NOW_MS)
    assert log.delete_retention_segments(NOW_MS) > 0
    assert log.size_bytes() - log.segments[0].size < 3000
    assert log.log_start_offset == log.segments[0].base_offset
    log.update_config(small_config(retention_ms=1000))
    log.delete_retention_segments(NOW_MS)
    assert len(log.segments) == 1 and log.log_end_offset == 60
    log.close()


def test_inactive_segments_share_a_bounded_descriptor_cache(tmp_path):
    handles = FileHandleCache(max_open=2)
    log = open_log(tmp_path / "t-0", handles=handles)
    for i in range(60):
        log.append(make_batch(1, tag=i, value_size=200), leader_epoch=0, now_ms=NOW_MS)
    assert len(log.segments) > 5
    assert len(read_all(log, max_bytes=100)) == 60
    assert len(handles) <= 2
    open_fds = len(os.listdir("/proc/self/fd"))
    log.close()
    assert len(os.listdir("/proc/self/fd")) < open_fds
    assert len(handles) == 0


def test_append_fsync_advances_the_recovery_point_checkpoint(tmp_path):
    log = open_log(tmp_path / "t-0")
    log.append(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    assert log.recovery_point == 0
    log.append(make_batch(2), leader_epoch=0, now_ms=NOW_MS, fsync=True)
    assert log.recovery_point == 4
    text = (tmp_path / files.RECOVERY_POINT_CHECKPOINT).read_text()
    assert text == "0\n1\nt 0 4\n"
    log.close()


def test_flush_on_ack_config(tmp_path):
    log = open_log(tmp_path / "t-0", small_config(flush_on_ack=True))
    log.append(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    assert log.recovery_point == 1
    log.close()


def test_append_as_follower_keeps_offsets(log):
    from protocol.record_codec import build_batch

    data = build_batch([(b"k", b"v")] * 3, base_offset=0, partition_leader_epoch=4) + \
        build_batch([(b"k", b"v")], base_offset=3, partition_leader_epoch=4)
    assert log.append_as_follower(data, now_ms=NOW_MS) == 4
    assert [(b, l) for b, l, _ in read_all(log)] == [(0, 2), (3, 3)]
    with pytest.raises(KafkaError):
        log.append_as_follower(build_batch([(b"k", b"v")], base_offset=1), now_ms=NOW_MS)


def test_last_stable_offset_follows_the_producer_state_hook(log):
    for i in range(3):
        log.append(make_batch(2, tag=i), leader_epoch=0, now_ms=NOW_MS)
    assert log.last_stable_offset == log.high_watermark == 6
    log.stable_offset_fn = lambda high_watermark: 2  # an open transaction starting at offset 2
    assert log.last_stable_offset == 2
    assert log.read(0, 1000).last_stable_offset == 2


def test_a_fetch_continuing_where_the_last_one_ended_reads_the_same_batches(tmp_path):
    log = open_log(tmp_path / "t-0", config=small_config(segment_bytes=1 << 20))
    for i in range(40):
        log.append(make_batch(2, tag=i, value_size=60), leader_epoch=0, now_ms=NOW_MS)
    first = log.read(0, 700).records
    offsets = [h.base_offset for _, h in iter_batches(first)]
    next_offset = offsets[-1] + 2
    # The next read starts where the last ended (remembered position) ...
    second = log.read(next_offset, 700).records
    assert read_batch_header(second, 0).base_offset == next_offset
    # ... and the memory is dropped when the log is cut there and written again.
    log.truncate_to(next_offset - 2)
    log.append(make_batch(3, tag=99, value_size=60), leader_epoch=1, now_ms=NOW_MS)
    again = log.read(next_offset - 2, 1 << 20).records
    header = read_batch_header(again, 0)
    assert (header.base_offset, header.records_count) == (next_offset - 2, 3)
    # A fetch inside the new batch gets that batch whole, not what used to follow it.
    assert [h.base_offset for _, h in iter_batches(log.read(next_offset, 1 << 20).records)] == [next_offset - 2]
    log.close()

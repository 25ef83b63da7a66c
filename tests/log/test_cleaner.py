"""Log cleaner (cleanup.policy=compact): what survives a clean, offsets, codecs, tombstones,
transactions, the dirty ratio, and crash safety of the swap."""

from __future__ import annotations

import os

import pytest

from protocol.record_codec import Record, build_batch, build_control_batch, decode_batch
from protocol.records import Compression, compute_crc, iter_batches

from kbroker.log import cleaner, files
from kbroker.log.cleaner import CleanerCheckpoints, clean_log_now, needs_cleaning
from tests.log.helpers import NOW_MS, open_log, small_config

DAY_MS = 86_400_000


def keyed(pairs: list[tuple[bytes | None, bytes | None]], *, timestamp: int = NOW_MS,
          compression: int = Compression.NONE, **kwargs) -> bytes:
    """A produced batch of (key, value) records."""
    records = [Record(i, 0, k, v) for i, (k, v) in enumerate(pairs)]
    return build_batch(records, base_timestamp=timestamp, compression=compression, **kwargs)


def compact_config(**overrides):
    values = dict(cleanup_policy=("compact",), segment_bytes=1024, min_cleanable_dirty_ratio=0.0)
    values.update(overrides)
    return small_config(**values)


def records_of(log) -> list[tuple[int, bytes | None, bytes | None, int]]:
    """(offset, key, value, codec) of every record the log serves, through read()."""
    out = []
    offset = log.log_start_offset
    while offset < log.log_end_offset:
        data = log.read(offset, 1 << 20).records
        assert data
        for pos, header in iter_batches(data):
            assert compute_crc(data, pos, header.size) == header.crc  # intact after re-encoding
            batch = decode_batch(data, pos)
            for record in batch.records:
                out.append((header.base_offset + record.offset_delta, record.key, record.value,
                            header.compression))
            offset = header.next_offset
    return out


def append(log, batch: bytes, now_ms: int = NOW_MS) -> int:
    return log.append(batch, leader_epoch=0, now_ms=now_ms).base_offset


def test_latest_value_per_key_survives_with_offsets(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config())
    expected_offsets = {}
    for round_ in range(30):
        for k in range(4):
            offset = append(log, keyed([(b"k%d" % k, b"v%d-%d" % (k, round_) * 8)]))
            expected_offsets[b"k%d" % k] = offset
    log.roll(NOW_MS)
    assert len(log.segments) > 3
    before = records_of(log)
    size_before = log.size_bytes()
    result = clean_log_now(log, NOW_MS)
    assert result is not None and result.records_removed > 0
    after = records_of(log)
    # Exactly one record per key, the latest, at its original offset.
    assert sorted((o, k, v) for o, k, v, _ in after) == sorted(
        (o, k, v) for o, k, v, _ in before if expected_offsets[k] == o)
    assert log.size_bytes() < size_before
    assert log.log_end_offset == 120
    # The active segment is never touched; appends continue at the same offsets.
    assert append(log, keyed([(b"k0", b"new")])) == 120


def test_active_segment_and_newer_keys_outside_the_clean(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config(segment_bytes=100_000))
    append(log, keyed([(b"a", b"1")]))
    append(log, keyed([(b"a", b"2")]))
    assert clean_log_now(log, NOW_MS) is None  # only the active segment: nothing cleanable
    log.roll(NOW_MS)
    append(log, keyed([(b"a", b"3")]))  # in the active segment: does not supersede the clean
    clean_log_now(log, NOW_MS)
    assert [(o, v) for o, _, v, _ in records_of(log)] == [(1, b"2"), (2, b"3")]


@pytest.mark.parametrize("codec", [Compression.GZIP, Compression.SNAPPY, Compression.LZ4, Compression.ZSTD])
def test_batches_keep_their_codec(tmp_path, codec):
    log = open_log(tmp_path / "c-0", compact_config(segment_bytes=100_000))
    append(log, keyed([(b"a", b"old"), (b"b", b"keep"), (b"a", b"new")], compression=codec))
    append(log, keyed([(b"c", b"x")]))
    log.roll(NOW_MS)
    clean_log_now(log, NOW_MS)
    got = records_of(log)
    assert [(o, k, v) for o, k, v, _ in got] == [(1, b"b", b"keep"), (2, b"a", b"new"), (3, b"c", b"x")]
    assert [c for *_, c in got] == [codec, codec, Compression.NONE]


def test_tombstones_kept_for_delete_retention_then_removed(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config(segment_bytes=100_000, delete_retention_ms=DAY_MS))
    append(log, keyed([(b"a", b"1"), (b"b", b"1")]))
    append(log, keyed([(b"a", None)]))
    log.roll(NOW_MS)
    clean_log_now(log, NOW_MS + DAY_MS - 1)
    assert [(k, v) for _, k, v, _ in records_of(log)] == [(b"b", b"1"), (b"a", None)]
    clean_log_now(log, NOW_MS + DAY_MS)
    assert [(k, v) for _, k, v, _ in records_of(log)] == [(b"b", b"1")]
    assert log.log_end_offset == 3


def test_keyless_records_are_discarded(tmp_path):
    # Written while the topic was cleanup.policy=delete (compacted topics refuse them).
    log = open_log(tmp_path / "c-0", compact_config(segment_bytes=100_000, cleanup_policy=("delete",)))
    append(log, keyed([(None, b"x"), (b"k", b"v")]))
    log.update_config(compact_config(segment_bytes=100_000))
    log.roll(NOW_MS)
    clean_log_now(log, NOW_MS)
    assert [(o, k) for o, k, _, _ in records_of(log)] == [(1, b"k")]


def test_min_compaction_lag_protects_young_segments(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config(segment_bytes=100_000, min_compaction_lag_ms=60_000))
    append(log, keyed([(b"a", b"1")], timestamp=NOW_MS))
    append(log, keyed([(b"a", b"2")], timestamp=NOW_MS))
    log.roll(NOW_MS)
    append(log, keyed([(b"a", b"3")]))
    assert clean_log_now(log, NOW_MS + 59_999) is None
    assert len(records_of(log)) == 3
    clean_log_now(log, NOW_MS + 60_000)
    assert [v for _, _, v, _ in records_of(log)] == [b"2", b"3"]


def test_dirty_ratio_triggers_and_checkpoint_persists(tmp_path):
    config = compact_config(min_cleanable_dirty_ratio=0.5)
    log = open_log(tmp_path / "c-0", config)
    checkpoints = CleanerCheckpoints()
    for i in range(40):
        append(log, keyed([(b"k%d" % (i % 3), b"v" * 50)]))
    log.roll(NOW_MS)
    assert needs_cleaning(log, checkpoints.first_dirty_offset(log), NOW_MS)
    clean_log_now(log, NOW_MS, checkpoints)
    first_dirty = checkpoints.first_dirty_offset(log)
    assert first_dirty == 40
    assert not needs_cleaning(log, first_dirty, NOW_MS)
    # Read back from the file by a fresh instance (Kafka's cleaner-offset-checkpoint format).
    assert CleanerCheckpoints().first_dirty_offset(log) == 40
    assert (tmp_path / cleaner.CLEANER_CHECKPOINT).read_text().splitlines()[2] == "c 0 40"
    # A little more dirt: 1 dirty segment out of several is below the 0.5 ratio.
    for i in range(3):
        append(log, keyed([(b"k%d" % i, b"w" * 50)]))
    log.roll(NOW_MS)
    assert not needs_cleaning(log, first_dirty, NOW_MS)
    log.update_config(compact_config(min_cleanable_dirty_ratio=0.01))
    assert needs_cleaning(log, first_dirty, NOW_MS)


def test_delete_policy_is_not_cleaned(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config(cleanup_policy=("delete",)))
    for i in range(20):
        append(log, keyed([(b"k", b"v" * 80)]))
    log.roll(NOW_MS)
    assert not needs_cleaning(log, 0, NOW_MS)


def test_aborted_transactions_removed_and_markers_expire(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config(segment_bytes=100_000, delete_retention_ms=1000))
    txn = dict(producer_id=7, producer_epoch=0, base_sequence=0, is_transactional=True)
    append(log, keyed([(b"a", b"aborted")], **txn))                                   # 0
    append(log, build_control_batch(False, 7, 0, 0, timestamp=NOW_MS))                 # 1 ABORT
    append(log, keyed([(b"a", b"committed")], **{**txn, "base_sequence": 1}))          # 2
    append(log, build_control_batch(True, 7, 0, 0, timestamp=NOW_MS))                  # 3 COMMIT
    append(log, keyed([(b"b", b"plain")]))                                              # 4
    log.roll(NOW_MS)
    clean_log_now(log, NOW_MS)
    offsets = [o for o, *_ in records_of(log)]
    assert offsets == [1, 2, 3, 4]  # aborted data gone, both markers kept (not expired)
    clean_log_now(log, NOW_MS + 1000)
    # The ABORT marker has no data left and is past delete.retention.ms; the COMMIT marker
    # still guards surviving data.
    assert [o for o, *_ in records_of(log)] == [2, 3, 4]


def test_ongoing_transaction_is_left_alone(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config(segment_bytes=100_000))
    txn = dict(producer_id=9, producer_epoch=0, base_sequence=0, is_transactional=True)
    append(log, keyed([(b"a", b"1")]))
    append(log, keyed([(b"a", b"txn")], **txn))
    log.roll(NOW_MS)
    clean_log_now(log, NOW_MS)
    # The open transaction's record does not supersede the committed value before it.
    assert [v for _, _, v, _ in records_of(log)] == [b"1", b"txn"]


def test_reopen_after_clean_without_clean_shutdown(tmp_path):
    directory = tmp_path / "c-0"
    log = open_log(directory, compact_config())
    for i in range(60):
        append(log, keyed([(b"k%d" % (i % 5), b"v%d" % i * 10)]))
    clean_log_now(log, NOW_MS)
    expected = records_of(log)
    leo = log.log_end_offset
    log.close(flush=True)
    for path in directory.glob("*.index"):
        path.unlink()  # as if the crash came between the two index renames
    reopened = open_log(directory, compact_config(), recovery_point=0, clean_shutdown=False)
    assert records_of(reopened) == expected
    assert reopened.log_end_offset == leo
    for segment in reopened.segments[:-1]:
        assert segment.offset_index is not None
    reopened.close()


def test_leftover_swap_files_are_ignored_on_load(tmp_path):
    directory = tmp_path / "c-0"
    log = open_log(directory, compact_config())
    for i in range(40):
        append(log, keyed([(b"k%d" % (i % 2), b"v" * 60)]))
    log.roll(NOW_MS)
    expected = records_of(log)
    plan = cleaner.plan_clean(log, NOW_MS)
    result = cleaner.clean(plan)  # crash before swap_in: only .swap files exist
    assert any(p.name.endswith(files.SWAP_SUFFIX) for p in directory.iterdir())
    log.close(flush=True)
    reopened = open_log(directory, compact_config(), recovery_point=0, clean_shutdown=False)
    assert records_of(reopened) == expected
    assert not any(p.name.endswith((files.SWAP_SUFFIX, files.CLEANED_SUFFIX)) for p in directory.iterdir())
    assert result.cleaned  # it had produced something
    reopened.close()


def test_segment_deleted_during_clean_is_not_swapped_back(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config(cleanup_policy=("compact", "delete")))
    for i in range(40):
        append(log, keyed([(b"k%d" % (i % 2), b"v" * 60)]))
    log.roll(NOW_MS)
    plan = cleaner.plan_clean(log, NOW_MS)
    result = cleaner.clean(plan)
    first_kept = log.segments[2].base_offset
    log.delete_records_before(first_kept)  # retention/DeleteRecords while the worker ran
    swapped = cleaner.swap_in(result)
    assert swapped == len(plan.segments) - 2
    assert log.segments[0].base_offset == first_kept
    assert not any(p.name.endswith(files.SWAP_SUFFIX) for p in log.directory.iterdir())
    records_of(log)


def test_reads_during_clean_see_the_old_segments(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config())
    for i in range(40):
        append(log, keyed([(b"k%d" % (i % 2), b"v" * 60)]))
    log.roll(NOW_MS)
    before = records_of(log)
    result = cleaner.clean(cleaner.plan_clean(log, NOW_MS))
    assert records_of(log) == before  # the worker's output is invisible until the swap
    append(log, keyed([(b"k0", b"during")]))
    cleaner.swap_in(result)
    after = records_of(log)
    assert after[-1][2] == b"during" and len(after) < len(before)
    assert os.path.exists(log.segments[0].log_path)


def test_emptied_last_batch_is_kept_uncompressed(tmp_path):
    log = open_log(tmp_path / "c-0", compact_config(segment_bytes=100_000))
    append(log, keyed([(b"a", b"1")]))                                                  # 0
    append(log, keyed([(b"b", b"old"), (b"b", b"older")], compression=Compression.GZIP))  # 1-2
    log.roll(NOW_MS)
    append(log, keyed([(b"b", b"new")]))                                                # 3
    log.roll(NOW_MS)
    clean_log_now(log, NOW_MS)
    headers = [h for _, h in log.segments[0].batches_from(0)]
    # The gzip batch lost all its records but, being its segment's last, stays as an empty
    # batch covering offsets 1-2, without a codec (as Kafka's writeEmptyHeader).
    assert [(h.base_offset, h.last_offset, h.records_count) for h in headers] == [(0, 0, 1), (1, 2, 0)]
    assert headers[-1].compression == Compression.NONE
    assert log.segments[0].next_offset == 3
    assert [(o, v) for o, _, v, _ in records_of(log)] == [(0, b"1"), (3, b"new")]


def test_max_compaction_lag_forces_a_clean_below_the_ratio(tmp_path):
    config = compact_config(min_cleanable_dirty_ratio=0.99, max_compaction_lag_ms=60_000)
    log = open_log(tmp_path / "c-0", config)
    for i in range(30):
        append(log, keyed([(b"k%d" % i, b"v" * 80)]))  # distinct keys: nothing to remove
    log.roll(NOW_MS)
    checkpoints = CleanerCheckpoints()
    clean_log_now(log, NOW_MS, checkpoints)
    append(log, keyed([(b"k0", b"w" * 80)]))
    log.roll(NOW_MS)
    first_dirty = checkpoints.first_dirty_offset(log)
    assert not needs_cleaning(log, first_dirty, NOW_MS + 60_000)  # ratio low, lag not exceeded
    assert needs_cleaning(log, first_dirty, NOW_MS + 60_001)

"""The broker-wide segment descriptor cache: bounded, idle descriptors closed, appends survive reopening."""

from __future__ import annotations

import os

import pytest

from kbroker.errors import KafkaError
from kbroker.log.handles import FileHandleCache
from tests.log.helpers import NOW_MS, make_batch, open_log, read_all


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_active_segments_of_many_logs_share_the_bounded_cache(tmp_path):
    handles = FileHandleCache(max_open=4)
    before = _fds()
    logs = [open_log(tmp_path / f"t-{p}", handles=handles) for p in range(12)]
    for round_no in range(3):
        for p, log in enumerate(logs):
            log.append(make_batch(1, tag=round_no * 100 + p), leader_epoch=0, now_ms=NOW_MS)
            assert len(handles) <= 4
    assert _fds() - before <= 4
    for p, log in enumerate(logs):
        assert [base for base, _, _ in read_all(log)] == [0, 1, 2]
        assert log.log_end_offset == 3
    for log in logs:
        log.close()
    assert len(handles) == 0 and _fds() == before


def test_idle_descriptors_are_closed_and_reopened_on_demand(tmp_path):
    handles = FileHandleCache(max_open=100, idle_close_s=10)
    handles.close_idle(now=1000.0)
    busy = open_log(tmp_path / "t-0", handles=handles)
    idle = open_log(tmp_path / "t-1", handles=handles)
    idle.append(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    assert len(handles) == 2
    handles.close_idle(now=1005.0)
    busy.append(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    assert handles.close_idle(now=1011.0) == 1  # `idle` untouched since t=1000
    assert handles.peek(idle.active_segment.log_path) is None
    assert handles.peek(busy.active_segment.log_path) is not None
    # The closed segment appends and reads again through a fresh descriptor.
    assert idle.append(make_batch(1), leader_epoch=0, now_ms=NOW_MS).base_offset == 2
    assert [base for base, _, _ in read_all(idle)] == [0, 2]
    busy.close()
    idle.close()


def test_a_vanished_active_segment_is_not_recreated_empty(tmp_path):
    handles = FileHandleCache(max_open=1)
    log = open_log(tmp_path / "t-0", handles=handles)
    other = open_log(tmp_path / "t-1", handles=handles)  # pushes t-0 out of the cache
    assert handles.peek(log.active_segment.log_path) is None
    os.unlink(log.active_segment.log_path)
    with pytest.raises(KafkaError) as info:
        log.append(make_batch(1), leader_epoch=0, now_ms=NOW_MS)
    assert info.value.code == 56  # KAFKA_STORAGE_ERROR
    assert not log.active_segment.log_path.exists()
    other.close()


def test_a_read_only_descriptor_is_upgraded_for_appends(tmp_path):
    handles = FileHandleCache(max_open=8)
    path = tmp_path / "f.log"
    path.write_bytes(b"abc")
    ro = handles.get(path)
    with pytest.raises(OSError):
        os.write(ro, b"x")
    rw = handles.get(path, writable=True)
    os.write(rw, b"def")
    assert handles.get(path) == rw  # the append descriptor serves reads too
    assert os.pread(rw, 6, 0) == b"abcdef"
    handles.close_all()


def test_a_read_that_cannot_open_its_segment_is_a_storage_error(tmp_path):
    handles = FileHandleCache(max_open=1)
    log = open_log(tmp_path / "t-0", handles=handles)
    log.append(make_batch(2), leader_epoch=0, now_ms=NOW_MS)
    other = open_log(tmp_path / "t-1", handles=handles)  # pushes t-0 out of the cache
    os.unlink(log.active_segment.log_path)
    with pytest.raises(KafkaError) as info:
        log.read(0, 1 << 20)
    assert info.value.code == 56  # KAFKA_STORAGE_ERROR
    other.close()

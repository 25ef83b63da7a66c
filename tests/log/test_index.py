"""OffsetIndex / TimeIndex: lookups, truncation, persistence, damage detection."""

from __future__ import annotations

import struct

import pytest

from kbroker.log.index import CorruptIndexError, OffsetIndex, TimeIndex


def test_offset_index_lookup_is_floor_with_base_default(tmp_path):
    index = OffsetIndex(tmp_path / "x.index", 100, max_entries=10)
    assert index.lookup(150) == (100, 0)
    index.append(110, 500)
    index.append(120, 900)
    assert index.lookup(109) == (100, 0)
    assert index.lookup(110) == (110, 500)
    assert index.lookup(119) == (110, 500)
    assert index.lookup(10_000) == (120, 900)
    assert index.floor_position(899) == 500
    assert index.floor_position(900) == 900
    assert index.floor_position(10) == 0


def test_offset_index_rejects_non_increasing_entries(tmp_path):
    index = OffsetIndex(tmp_path / "x.index", 0, max_entries=10)
    index.append(5, 100)
    with pytest.raises(ValueError):
        index.append(5, 200)
    with pytest.raises(ValueError):
        index.append(6, 100)


def test_offset_index_full_and_persisted_round_trip(tmp_path):
    path = tmp_path / "x.index"
    index = OffsetIndex(path, 0, max_entries=3)
    for i in range(3):
        index.append(10 * (i + 1), 100 * (i + 1))
    assert index.is_full
    index.flush()
    assert path.stat().st_size == 3 * 8
    loaded = OffsetIndex.load(path, 0, 3, log_size=1000)
    assert [loaded.lookup(o) for o in (15, 25, 35)] == [(10, 100), (20, 200), (30, 300)]


def test_offset_index_truncate_rewrites_file(tmp_path):
    path = tmp_path / "x.index"
    index = OffsetIndex(path, 0, max_entries=10)
    for i in range(1, 6):
        index.append(i * 10, i * 100)
    index.flush()
    index.truncate_to(30)  # entries with offset >= 30 go
    assert index.lookup(1000) == (20, 200)
    assert path.stat().st_size == 2 * 8
    index.append(25, 250)
    index.flush()
    assert OffsetIndex.load(path, 0, 10, log_size=1000).lookup(1000) == (25, 250)


@pytest.mark.parametrize(
    "content",
    [
        b"\x00" * 7,  # not a multiple of the entry size
        struct.pack(">ii", 5, 100) + struct.pack(">ii", 4, 200),  # offsets go backwards
        struct.pack(">ii", 5, 100) + struct.pack(">ii", 6, 100),  # positions do not increase
        struct.pack(">ii", 5, 5000),  # position past the end of the log
    ],
)
def test_offset_index_damage_is_detected(tmp_path, content):
    path = tmp_path / "x.index"
    path.write_bytes(content)
    with pytest.raises(CorruptIndexError):
        OffsetIndex.load(path, 0, 100, log_size=1000)


def test_time_index_only_grows_and_looks_up_floor(tmp_path):
    index = TimeIndex(tmp_path / "x.timeindex", 0, max_entries=10)
    assert index.lookup(5) == (-1, 0)
    index.maybe_append(1000, 3)
    index.maybe_append(900, 5)  # not larger: ignored
    index.maybe_append(2000, 8)
    assert index.last_entry == (2000, 8)
    assert index.lookup(999) == (-1, 0)
    assert index.lookup(1500) == (1000, 3)
    assert index.lookup(2000) == (2000, 8)
    index.flush()
    loaded = TimeIndex.load(tmp_path / "x.timeindex", 0, 10)
    assert loaded.last_entry == (2000, 8)
    loaded.truncate_to(8)
    assert loaded.last_entry == (1000, 3)


def test_time_index_damage_is_detected(tmp_path):
    path = tmp_path / "x.timeindex"
    path.write_bytes(struct.pack(">qi", 2000, 1) + struct.pack(">qi", 1000, 2))
    with pytest.raises(CorruptIndexError):
        TimeIndex.load(path, 0, 10)
    path.write_bytes(b"\x01" * 13)
    with pytest.raises(CorruptIndexError):
        TimeIndex.load(path, 0, 10)

"""The on-disk bytecode cache of compiled codecs (protocol/codec_cache.py, issue 8): a hit
skips compile() and behaves exactly as a fresh compile; damaged, foreign or disabled
caches fall back to compiling."""

from __future__ import annotations

import uuid

import pytest

from protocol import codec_cache
from protocol.lower import KMessage, api_spec, lower_struct

METADATA = 3

RESPONSE = {
    "throttle_time_ms": 5,
    "brokers": [{"node_id": 1, "host": "127.0.0.1", "port": 9092, "rack": None}],
    "cluster_id": "c1",
    "controller_id": 1,
    "topics": [{"error_code": 0, "name": "t", "topic_id": uuid.uuid4(), "is_internal": False,
                "partitions": [{"error_code": 0, "partition_index": 0, "leader_id": 1,
                                "leader_epoch": 0, "replica_nodes": [1], "isr_nodes": [1],
                                "offline_replicas": []}],
                "topic_authorized_operations": -2147483648}],
}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private cache directory for this test."""
    monkeypatch.setenv(codec_cache.ENV_VAR, str(tmp_path / "codecs"))
    codec_cache.reset()
    yield tmp_path / "codecs"
    codec_cache.reset()


def _tree():
    spec = api_spec(METADATA, True)
    return KMessage(lower_struct(spec.fields, 12, spec.is_flexible(12)))


def _round_trip(compiled) -> dict:
    from io import BytesIO

    out = BytesIO()
    compiled.buildfunc(RESPONSE, out, None)
    data = out.getvalue()
    return compiled.parsefunc(BytesIO(data), {"_end": len(data), "_frame": memoryview(data)})


def _entries(cache) -> list:
    return sorted(p for p in cache.rglob("*.code"))


def _no_compile(monkeypatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("compile() called despite a cache entry")

    monkeypatch.setattr(codec_cache, "compile", refuse, raising=False)


def test_second_compile_is_served_from_disk_and_behaves_the_same(cache, monkeypatch):
    first = codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
    assert len(_entries(cache)) == 1
    _no_compile(monkeypatch)
    second = codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
    assert second.source == first.source
    assert _round_trip(second) == _round_trip(first)
    assert _round_trip(second)["topics"][0]["name"] == "t"


def test_cache_directory_is_private(cache):
    codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
    (directory,) = {p.parent for p in _entries(cache)}
    assert directory.stat().st_mode & 0o077 == 0


def test_damaged_entry_is_recompiled_and_rewritten(cache):
    codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
    (entry,) = _entries(cache)
    blob = bytearray(entry.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    entry.write_bytes(bytes(blob))
    compiled = codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
    assert _round_trip(compiled)["cluster_id"] == "c1"
    assert entry.read_bytes() != bytes(blob)  # a good copy replaced the damaged one


def test_truncated_entry_is_ignored(cache):
    codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
    (entry,) = _entries(cache)
    entry.write_bytes(entry.read_bytes()[:20])
    assert _round_trip(codec_cache.compile_tree(_tree(), "MetadataResponse_v12"))["controller_id"] == 1


def test_entry_for_another_source_is_never_used(cache):
    codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
    (entry,) = _entries(cache)
    # the same file content under the name of another source's hash: the header says no
    spec = api_spec(METADATA, False)
    other_tree = KMessage(lower_struct(spec.fields, 12, spec.is_flexible(12)))
    first_other = codec_cache.compile_tree(other_tree, "MetadataRequest_v12")
    other_entry = next(p for p in _entries(cache) if p != entry)
    other_entry.write_bytes(entry.read_bytes())
    again = codec_cache.compile_tree(other_tree, "MetadataRequest_v12")
    assert again.source == first_other.source
    from io import BytesIO

    out = BytesIO()
    again.buildfunc({"topics": None, "allow_auto_topic_creation": True}, out, None)
    assert out.getvalue() == b"\x00\x01\x00\x00"  # null topics, auto-create, two false flags, tags


def test_disabled_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(codec_cache.ENV_VAR, "off")
    codec_cache.reset()
    try:
        compiled = codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
        assert codec_cache.cache_dir() is None
        assert _round_trip(compiled)["throttle_time_ms"] == 5
    finally:
        codec_cache.reset()


def test_directory_writable_by_others_is_not_trusted(cache, monkeypatch):
    codec_cache.compile_tree(_tree(), "MetadataResponse_v12")
    (entry,) = _entries(cache)
    entry.parent.chmod(0o777)
    codec_cache.reset()
    assert codec_cache.cache_dir() is None
    _no_compile(monkeypatch)
    with pytest.raises(AssertionError, match="compile"):
        codec_cache.compile_tree(_tree(), "MetadataResponse_v12")

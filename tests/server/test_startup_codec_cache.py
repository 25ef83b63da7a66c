"""The on-disk cache of compiled codecs (protocol/codec_cache.py, issue 8): a hit neither
lowers nor compiles and behaves exactly as a fresh compile; a warm process never imports
construct; damaged, foreign or disabled caches fall back to compiling."""

from __future__ import annotations

import builtins
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from io import BytesIO
from pathlib import Path

import pytest

from protocol import codec_cache, messages
from protocol.lower import api_spec, data_spec, lower_struct
from protocol.primitives import KMessage

ROOT = Path(__file__).resolve().parents[2]
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


def _load(version: int = 12, is_response: bool = True, calls: list | None = None):
    spec = api_spec(METADATA, is_response)

    def make_tree():
        if calls is not None:
            calls.append(version)
        return KMessage(lower_struct(spec.fields, version, spec.is_flexible(version)))

    return codec_cache.load_codec(f"{spec.name}_v{version}", spec, version, make_tree)


def _round_trip(compiled) -> dict:
    out = BytesIO()
    compiled.buildfunc(RESPONSE, out, None)
    data = out.getvalue()
    return compiled.parsefunc(BytesIO(data), {"_end": len(data), "_frame": memoryview(data)})


def _entries(cache) -> list:
    return sorted(cache.rglob("*.code"))


def test_second_load_neither_lowers_nor_compiles_and_behaves_the_same(cache, monkeypatch):
    calls: list = []
    first = _load(calls=calls)
    assert calls == [12] and len(_entries(cache)) == 1

    def refuse(*args, **kwargs):
        raise AssertionError("compile() called despite a cache entry")

    monkeypatch.setattr(codec_cache, "compile", refuse, raising=False)
    second = _load(calls=calls)
    assert calls == [12]  # no lowering either
    assert _round_trip(second) == _round_trip(first)
    assert _round_trip(second)["topics"][0]["name"] == "t"
    assert second.source == first.source  # regenerated on demand for inspection


def test_cache_directories_are_private(cache):
    _load()
    (entry,) = _entries(cache)
    for directory in (cache, entry.parent):
        assert directory.stat().st_mode & 0o077 == 0


def test_damaged_entry_is_recompiled_and_rewritten(cache):
    _load()
    (entry,) = _entries(cache)
    blob = bytearray(entry.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    entry.write_bytes(bytes(blob))
    calls: list = []
    assert _round_trip(_load(calls=calls))["cluster_id"] == "c1"
    assert calls == [12]
    assert entry.read_bytes() != bytes(blob)  # a good copy replaced the damaged one


def test_truncated_entry_is_ignored(cache):
    _load()
    (entry,) = _entries(cache)
    entry.write_bytes(entry.read_bytes()[:20])
    assert _round_trip(_load())["controller_id"] == 1


def test_entry_under_another_key_is_never_used(cache):
    _load()
    (response_entry,) = _entries(cache)
    request = _load(is_response=False)
    request_entry = next(p for p in _entries(cache) if p != response_entry)
    request_entry.write_bytes(response_entry.read_bytes())  # right format, wrong key inside
    again = _load(is_response=False)
    out = BytesIO()
    again.buildfunc({"topics": None, "allow_auto_topic_creation": True}, out, None)
    assert out.getvalue() == b"\x00\x01\x00\x00"  # null topics, auto-create, one flag, no tags
    assert again.source == request.source


def test_each_version_and_direction_has_its_own_entry(cache):
    for version in (9, 10, 11, 12):
        _load(version)
        _load(version, is_response=False)
    assert len(_entries(cache)) == 8


def test_disabled_cache_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(codec_cache.ENV_VAR, "off")
    codec_cache.reset()
    try:
        compiled = _load()
        assert codec_cache.cache_dir() is None
        assert _round_trip(compiled)["throttle_time_ms"] == 5
    finally:
        codec_cache.reset()


def test_directory_writable_by_others_is_not_trusted(cache):
    _load()
    (entry,) = _entries(cache)
    entry.parent.chmod(0o777)
    codec_cache.reset()
    assert codec_cache.cache_dir() is None
    calls: list = []
    _load(calls=calls)
    assert calls == [12]


def test_sets_of_other_fingerprints_are_pruned_when_old(tmp_path, monkeypatch):
    base = tmp_path / "codecs"
    old, recent = base / ("0" * 32), base / ("1" * 32)
    for directory in (old, recent):
        directory.mkdir(parents=True, mode=0o700)
    base.chmod(0o700)
    stale = time.time() - codec_cache.PRUNE_AFTER_S - 60
    os.utime(old, (stale, stale))
    monkeypatch.setenv(codec_cache.ENV_VAR, str(base))
    codec_cache.reset()
    try:
        assert codec_cache.cache_dir() is not None
        assert not old.exists() and recent.exists()
    finally:
        codec_cache.reset()


def test_a_warm_process_does_not_import_construct(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), codec_cache.ENV_VAR: str(tmp_path / "codecs")}
    code = textwrap.dedent("""
        import json, sys
        import protocol
        body = protocol.decode_body(3, 12, False, protocol.encode_body(3, 12, False, {"topics": None}))
        frame = protocol.encode_response(3, 12, 7, {"brokers": [], "topics": []})
        print(json.dumps({"construct": "construct" in sys.modules, "topics": body["topics"],
                          "size": len(frame)}))
    """)
    runs = [json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                      timeout=60, env=env, check=True).stdout) for _ in range(2)]
    assert runs[0]["construct"] is True     # cold: lowered and compiled
    assert runs[1]["construct"] is False    # warm: everything from the cache
    assert runs[0]["topics"] is None and runs[1]["topics"] is None
    assert runs[0]["size"] == runs[1]["size"]


def _all_schemas():
    for api_key in messages.API_MODULES:
        for is_response in (False, True):
            spec = api_spec(api_key, is_response)
            yield spec, spec.versions()
    for name in messages.DATA_MODULES:
        spec = data_spec(name)
        yield spec, spec.versions()


def test_generated_code_of_every_schema_names_nothing_outside_its_prelude():
    """What makes a cached codec safe to run without construct: every global name that any
    generated function uses is defined by the module itself or is a builtin."""

    def names(code):
        found = set(code.co_names)
        for const in code.co_consts:
            if hasattr(const, "co_names"):
                found |= names(const)
        return found

    missing = {}
    for spec, versions in _all_schemas():
        for version in versions:
            tree = KMessage(lower_struct(spec.fields, version, spec.is_flexible(version)))
            source, linked = codec_cache.generate_source(tree)
            assert not linked, spec.name
            code = compile(source, spec.name, "exec")
            namespace: dict = {}
            exec(code, namespace)
            # attribute names (io.read, struct.Struct ...) show up in co_names too: keep
            # only those that are neither defined, builtin, nor an attribute of something
            unresolved = {n for n in names(code) if n not in namespace and not hasattr(builtins, n)
                          and f".{n}" not in source and f"import {n}" not in source
                          and f"from {n} import" not in source}
            if unresolved:
                missing[f"{spec.name} v{version}"] = unresolved
    assert missing == {}

"""Restart rebuilds the same image: from the log, from a snapshot plus the log tail, and after
a torn tail; meta.properties guards the node id."""

from __future__ import annotations

import os

import pytest

from kbroker.clock import Clock
from kbroker.metadata.controller import Controller
from kbroker.metadata.image import to_records
from kbroker.metadata.properties import MetaPropertiesError, read_meta_properties
from kbroker.raft.log import METADATA_DIR_NAME, SEGMENT_NAME

from .conftest import make_config, running_controller


def _summary(image):
    """What a user could observe of an image (everything but the offset)."""
    return to_records(image), image.cluster_id


async def _populate(c):
    await c.register_broker(1, "127.0.0.1", 9999, "PLAINTEXT", None)
    await c.create_topic("one", 3, 1, None, {"retention.ms": "60000"})
    await c.create_topic("two", 1, 1, None, {})
    await c.create_topic("gone", 2, 1, None, {})
    await c.create_partitions("two", 4, None)
    await c.delete_topic("gone")


async def test_restart_from_log(data_dir):
    async with running_controller(data_dir) as c:
        await _populate(c)
        before = _summary(c.image)
        offset = c.image.offset
    async with running_controller(data_dir) as c:
        assert _summary(c.image) == before
        assert c.image.offset == offset
        assert set(c.image.topics_by_name) == {"one", "two"}
        assert len(c.image.topics_by_name["two"].partitions) == 4
        assert c.image.topics_by_name["one"].configs == {"retention.ms": "60000"}
        await c.create_topic("three", 1, 1, None, {})  # the log is writable after replay
    async with running_controller(data_dir) as c:
        assert set(c.image.topics_by_name) == {"one", "two", "three"}


async def test_restart_from_snapshot_and_tail(data_dir):
    async with running_controller(data_dir) as c:
        c.snapshot_bytes = 200  # small: snapshots are written automatically every few commits
        await _populate(c)
        c.write_snapshot()
        snap_offset = c.image.offset
        await c.create_topic("after-snapshot", 2, 1, None, {})
        before = _summary(c.image)
    meta = data_dir / METADATA_DIR_NAME
    snapshots = sorted(p.name for p in meta.glob("*.checkpoint"))
    assert snapshots and len(snapshots) <= 2
    assert snapshots[-1].startswith(f"{snap_offset + 1:020d}-")
    async with running_controller(data_dir) as c:
        assert _summary(c.image) == before


async def test_replay_starts_at_snapshot(data_dir):
    """Replay must start at the snapshot: records it covers are not applied twice."""
    async with running_controller(data_dir) as c:
        await _populate(c)
        c.write_snapshot()
        await c.delete_topic("one")
        await c.create_topic("one", 1, 1, None, {})  # same name, new id, after the snapshot
        before = _summary(c.image)
    async with running_controller(data_dir) as c:
        assert _summary(c.image) == before
        assert len(c.image.topics_by_name["one"].partitions) == 1


@pytest.mark.parametrize("damage", ["partial", "garbage", "bitflip"])
async def test_torn_tail_is_truncated(data_dir, damage):
    async with running_controller(data_dir) as c:
        await c.create_topic("kept", 1, 1, None, {})
        good = _summary(c.image)
        log = data_dir / METADATA_DIR_NAME / SEGMENT_NAME
        good_size = log.stat().st_size
        await c.create_topic("torn", 1, 1, None, {})
    full = log.read_bytes()
    if damage == "partial":
        log.write_bytes(full[: good_size + (len(full) - good_size) // 2])
    elif damage == "garbage":
        log.write_bytes(full[:good_size] + os.urandom(100))
    else:
        corrupt = bytearray(full)
        corrupt[-3] ^= 0xFF  # inside the last batch: its CRC no longer matches
        log.write_bytes(bytes(corrupt))
    async with running_controller(data_dir) as c:
        assert _summary(c.image) == good
        assert log.stat().st_size == good_size
        await c.create_topic("torn", 1, 1, None, {})  # appends continue after the cut
    async with running_controller(data_dir) as c:
        assert set(c.image.topics_by_name) == {"kept", "torn"}


async def test_meta_properties(data_dir, tmp_path):
    second = tmp_path / "data2"
    config_dirs = f"{data_dir},{second}"
    async with running_controller(data_dir, **{"log.dirs": config_dirs}) as c:
        cluster_id = c.image.cluster_id
    for d in (data_dir, second):
        props = read_meta_properties(d)
        assert props["cluster.id"] == cluster_id and props["node.id"] == "1" and props["version"] == "1"
    async with running_controller(data_dir, **{"log.dirs": config_dirs}) as c:
        assert c.image.cluster_id == cluster_id  # kept across restarts
    controller = Controller(make_config(data_dir, **{"node.id": "2"}), Clock())
    with pytest.raises(MetaPropertiesError):
        controller.open()


async def test_snapshot_alone_restores_and_log_continues_after_it(data_dir):
    async with running_controller(data_dir) as c:
        await _populate(c)
        c.write_snapshot()
        before = _summary(c.image)
        end = c.image.offset + 1
    (data_dir / METADATA_DIR_NAME / SEGMENT_NAME).unlink()  # only the snapshot is left
    async with running_controller(data_dir) as c:
        assert _summary(c.image) == before
        assert c.image.offset == end - 1
        await c.create_topic("after", 1, 1, None, {})
        assert c.image.offset > end - 1
        after = _summary(c.image)
    async with running_controller(data_dir) as c:
        assert _summary(c.image) == after


async def test_concurrent_operations_are_serialised(data_dir):
    import trio

    from kbroker.errors import KafkaError

    async with running_controller(data_dir) as c:
        outcomes: list[str] = []

        async def create(name: str) -> None:
            try:
                await c.create_topic(name, 1, 1, None, {})
                outcomes.append("ok")
            except KafkaError as exc:
                outcomes.append(f"error {exc.code}")

        async with trio.open_nursery() as nursery:
            for _ in range(3):
                nursery.start_soon(create, "same")
            for i in range(10):
                nursery.start_soon(create, f"t{i}")
        assert outcomes.count("ok") == 11 and outcomes.count("error 36") == 2  # TOPIC_ALREADY_EXISTS
        assert len(c.image.topics_by_name) == 11
        committed = _summary(c.image)
    async with running_controller(data_dir) as c:
        assert _summary(c.image) == committed

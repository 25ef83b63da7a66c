"""A killed broker restarts over damaged files: a torn or zero-filled segment tail, missing or
corrupt indexes. What was intact is served, the damaged tail is dropped, and new appends
continue at the recovered log end offset."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from kbroker.log import files
from kbroker.testing import KafkaBroker
from tests.crash.crash_cycles import TOPIC, create_topic, fetch_all, produce_sequences

BATCHES = 60
PER_BATCH = 5


@pytest.fixture
def killed_broker(tmp_path):
    """A broker with BATCHES acknowledged batches in partition 0, then SIGKILLed."""
    broker = KafkaBroker({"log.segment.bytes": 8192, "log.index.interval.bytes": 256,
                          "auto.create.topics.enable": "false"}, data_dir=tmp_path / "data")
    try:
        broker.start()
        create_topic(broker.bootstrap_servers)
        for i in range(BATCHES):
            produce_sequences(broker.bootstrap_servers, 0, list(range(i * PER_BATCH, (i + 1) * PER_BATCH)))
        broker.kill()
        yield broker
    finally:
        broker.stop()


def partition_dir(broker: KafkaBroker) -> Path:
    return broker.log_dir / files.partition_dir_name(TOPIC, 0)


def segments(broker: KafkaBroker) -> list[Path]:
    return sorted(partition_dir(broker).glob("*" + files.LOG_SUFFIX))


def restart_and_read(broker: KafkaBroker) -> list[int]:
    broker.start()
    return [sequence for _, sequence in fetch_all(broker.bootstrap_servers, 0)]


def assert_appends_continue(broker: KafkaBroker, stored: list[int]) -> None:
    base = produce_sequences(broker.bootstrap_servers, 0, [10_000, 10_001])
    assert base == len(stored)
    assert [s for _, s in fetch_all(broker.bootstrap_servers, 0)] == stored + [10_000, 10_001]


def test_zero_filled_tail(killed_broker):
    with open(segments(killed_broker)[-1], "ab") as f:
        f.write(b"\0" * 4096)  # preallocated-but-unwritten blocks after a power cut look like this
    stored = restart_and_read(killed_broker)
    assert stored == list(range(BATCHES * PER_BATCH))
    assert_appends_continue(killed_broker, stored)


def test_torn_last_batch(killed_broker):
    last = segments(killed_broker)[-1]
    os.truncate(last, last.stat().st_size - 7)  # the last write reached the disk only in part
    stored = restart_and_read(killed_broker)
    assert stored == list(range((BATCHES - 1) * PER_BATCH))
    assert_appends_continue(killed_broker, stored)


def test_garbage_in_the_middle_of_the_active_segment(killed_broker):
    last = segments(killed_broker)[-1]
    size = last.stat().st_size
    with open(last, "r+b") as f:
        f.seek(size // 2)
        f.write(b"\xff" * 16)  # CRC mismatch: everything from that batch on is dropped
    stored = restart_and_read(killed_broker)
    assert stored == list(range(len(stored)))
    assert len(stored) < BATCHES * PER_BATCH
    assert_appends_continue(killed_broker, stored)


def test_missing_indexes(killed_broker):
    for path in partition_dir(killed_broker).glob("*" + files.INDEX_SUFFIX):
        path.unlink()
    for path in partition_dir(killed_broker).glob("*" + files.TIME_INDEX_SUFFIX):
        path.unlink()
    stored = restart_and_read(killed_broker)
    assert stored == list(range(BATCHES * PER_BATCH))
    assert_appends_continue(killed_broker, stored)


def test_corrupt_indexes(killed_broker):
    indexes = sorted(partition_dir(killed_broker).glob("*" + files.INDEX_SUFFIX))
    assert len(indexes) > 2
    for path in indexes:
        path.write_bytes(os.urandom(61))  # not a whole number of entries, random positions
    stored = restart_and_read(killed_broker)
    assert stored == list(range(BATCHES * PER_BATCH))
    assert_appends_continue(killed_broker, stored)


def test_garbage_checkpoints(killed_broker):
    for name in (files.RECOVERY_POINT_CHECKPOINT, files.LOG_START_OFFSET_CHECKPOINT, files.REPLICATION_CHECKPOINT):
        (killed_broker.log_dir / name).write_text("0\n3\nnot a checkpoint\n")  # malformed: ignored
    stored = restart_and_read(killed_broker)
    assert stored == list(range(BATCHES * PER_BATCH))
    assert_appends_continue(killed_broker, stored)


def test_recovery_point_beyond_the_log(killed_broker):
    (killed_broker.log_dir / files.RECOVERY_POINT_CHECKPOINT).write_text(f"0\n1\n{TOPIC} 0 999999\n")
    stored = restart_and_read(killed_broker)
    assert stored == list(range(BATCHES * PER_BATCH))
    assert_appends_continue(killed_broker, stored)


def test_binary_garbage_checkpoints(killed_broker):
    for name in (files.RECOVERY_POINT_CHECKPOINT, files.LOG_START_OFFSET_CHECKPOINT, files.REPLICATION_CHECKPOINT):
        (killed_broker.log_dir / name).write_bytes(b"\xe4\x00\xff" * 20)  # not even text
    stored = restart_and_read(killed_broker)
    assert stored == list(range(BATCHES * PER_BATCH))
    assert_appends_continue(killed_broker, stored)

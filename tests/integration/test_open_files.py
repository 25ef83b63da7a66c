"""A broker with more partitions than its descriptor cache keeps its open files bounded (issue 8).

Every partition is written and read through the wire protocol; the broker's descriptors are
counted in /proc/<pid>/fd. The records must survive the churn of the cache, a kill -9 included.
"""

from __future__ import annotations

import os
import time

import pytest

from kbroker.log.handles import DEFAULT_MAX_OPEN
from kbroker.testing import KafkaBroker
from protocol.record_codec import build_batch, decode_records
from tests.integration.clients import create_topic, unique_topic
from tests.integration.wire import WireClient

PRODUCE, FETCH, METADATA = 0, 1, 3
PARTITIONS = DEFAULT_MAX_OPEN + 150
# Sockets, the metadata log, the epoll descriptor, pipes: everything but segment files.
OTHER_FDS = 64

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc")


def _open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _segment_fds(pid: int, topic: str) -> int:
    """Descriptors of the topic's ``.log`` segment files (what the cache bounds)."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
        except OSError:
            continue  # closed meanwhile
        if f"/{topic}-" in target and target.endswith(".log"):
            count += 1
    return count


def _produce_all(client: WireClient, topic: str, round_no: int) -> None:
    partition_data = [
        {"index": p, "records": build_batch([(f"k{p}".encode(), f"r{round_no}-p{p}".encode())])}
        for p in range(PARTITIONS)
    ]
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 10000,
            "topic_data": [{"name": topic, "partition_data": partition_data}]}
    response = client.request(PRODUCE, 9, body)
    parts = response["responses"][0]["partition_responses"]
    assert len(parts) == PARTITIONS
    assert all(part["error_code"] == 0 for part in parts), [p for p in parts if p["error_code"]][:3]
    assert sorted(part["base_offset"] for part in parts) == [round_no] * PARTITIONS


def _fetch_all(client: WireClient, topic: str) -> dict[int, list[bytes]]:
    parts = [{"partition": p, "current_leader_epoch": -1, "fetch_offset": 0, "last_fetched_epoch": -1,
              "log_start_offset": -1, "partition_max_bytes": 1 << 16} for p in range(PARTITIONS)]
    body = {"replica_id": -1, "max_wait_ms": 0, "min_bytes": 1, "max_bytes": 50 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "topic_id": None, "partitions": parts}],
            "forgotten_topics_data": [], "rack_id": ""}
    response = client.request(FETCH, 11, body)
    values: dict[int, list[bytes]] = {}
    for part in response["responses"][0]["partitions"]:
        assert part["error_code"] == 0
        values[part["partition_index"]] = [
            record.value for batch in decode_records(bytes(part["records"] or b"")) for record in batch.records
        ]
    return values


def _expected(rounds: int) -> dict[int, list[bytes]]:
    return {p: [f"r{r}-p{p}".encode() for r in range(rounds)] for p in range(PARTITIONS)}


def test_many_partitions_keep_open_files_bounded_through_writes_reads_and_a_crash():
    with KafkaBroker() as broker:
        topic = unique_topic("fds")
        create_topic(broker.bootstrap_servers, topic, PARTITIONS)
        pid = broker.process.pid
        with WireClient(broker.bootstrap_servers) as client:
            for round_no in range(3):
                _produce_all(client, topic, round_no)
                assert _segment_fds(pid, topic) <= DEFAULT_MAX_OPEN
            assert _fetch_all(client, topic) == _expected(3)
            assert _segment_fds(pid, topic) <= DEFAULT_MAX_OPEN
            assert _open_fds(pid) <= DEFAULT_MAX_OPEN + OTHER_FDS < PARTITIONS + OTHER_FDS
            # Appends after the reads: descriptors reopened by the cache append at the end.
            _produce_all(client, topic, 3)
        broker.restart(kill=True)
        pid = broker.process.pid
        with WireClient(broker.bootstrap_servers) as client:
            # Every acknowledged record survived the kill, and reads after recovery stay bounded.
            assert _fetch_all(client, topic) == _expected(4)
            _produce_all(client, topic, 4)
            assert _fetch_all(client, topic) == _expected(5)
            assert _segment_fds(pid, topic) <= DEFAULT_MAX_OPEN
            assert _open_fds(pid) <= DEFAULT_MAX_OPEN + OTHER_FDS

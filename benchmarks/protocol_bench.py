"""Protocol codec benchmark (run by hand: `python benchmarks/protocol_bench.py`; not a test).

Figures printed are medians over many runs:
- decode a Produce v9 request carrying a 1 MiB records blob (target <= 100 us, blob not copied);
- encode a Fetch v12 response carrying a 1 MiB records blob (target <= 100 us, one copy);
- encode a Metadata v12 response with 1,000 partitions (target < 5 ms);
- decode the same Metadata response, and a small Heartbeat round trip for per-call overhead.
"""

from __future__ import annotations

import gc
import statistics
import sys
import time
import uuid
from pathlib import Path
from typing import Callable

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import protocol  # noqa: E402

BLOB = bytes(range(256)) * 4096  # 1 MiB


def median_us(fn: Callable[[], object], runs: int) -> float:
    """Median wall time of `fn` in microseconds (after a warm-up call)."""
    fn()
    samples = []
    for _ in range(runs):
        start = time.perf_counter_ns()
        fn()
        samples.append((time.perf_counter_ns() - start) / 1000)
    return statistics.median(samples)


def produce_frame() -> bytes:
    body = {
        "transactional_id": None,
        "acks": -1,
        "timeout_ms": 30000,
        "topic_data": [{"name": "bench", "partition_data": [{"index": 0, "records": BLOB}]}],
    }
    return protocol.encode_request(0, 9, 1, "bench-client", body)


def fetch_body() -> dict:
    partition = {
        "partition_index": 0,
        "error_code": 0,
        "high_watermark": 1000,
        "last_stable_offset": 1000,
        "log_start_offset": 0,
        "aborted_transactions": None,
        "preferred_read_replica": -1,
        "records": BLOB,
    }
    return {"throttle_time_ms": 0, "error_code": 0, "session_id": 0,
            "responses": [{"topic": "bench", "partitions": [partition]}]}


def metadata_body(partitions: int) -> dict:
    brokers = [{"node_id": 1, "host": "127.0.0.1", "port": 9092, "rack": None}]
    parts = [
        {"error_code": 0, "partition_index": i, "leader_id": 1, "leader_epoch": 0,
         "replica_nodes": [1], "isr_nodes": [1], "offline_replicas": []}
        for i in range(partitions)
    ]
    topic = {"error_code": 0, "name": "bench", "topic_id": uuid.uuid4(), "is_internal": False,
             "partitions": parts, "topic_authorized_operations": -2147483648}
    return {"throttle_time_ms": 0, "brokers": brokers, "cluster_id": "c", "controller_id": 1,
            "topics": [topic]}


def _prefixed(payload: bytes) -> bytes:
    return len(payload).to_bytes(4, "big") + payload


def main() -> None:
    """Run every measurement and print the medians."""
    gc.collect()
    frame = produce_frame()

    def decode_produce() -> None:
        _, body = protocol.decode_request(frame)
        records = body["topic_data"][0]["partition_data"][0]["records"]
        assert records.obj is frame  # a view of the frame, not a copy

    fetch = fetch_body()
    metadata = metadata_body(1000)
    metadata_frame = protocol.encode_response(3, 12, 1, metadata)
    heartbeat = protocol.encode_request(12, 4, 1, "c", {"group_id": "g", "generation_id": 1, "member_id": "m"})

    results = [
        ("decode Produce v9 request, 1 MiB records", median_us(decode_produce, 2000), 100.0),
        ("encode Fetch v12 response, 1 MiB records",
         median_us(lambda: protocol.encode_response(1, 12, 1, fetch), 500), 100.0),
        ("encode_response_frame Fetch v12, 1 MiB (prefixed)",
         median_us(lambda: protocol.encode_response_frame(1, 12, 1, fetch), 500), 100.0),
        ("prefix + encode_response Fetch v12, 1 MiB (2 copies)",
         median_us(lambda: _prefixed(protocol.encode_response(1, 12, 1, fetch)), 200), None),
        ("encode Metadata v12 response, 1,000 partitions",
         median_us(lambda: protocol.encode_response(3, 12, 1, metadata), 100), 5000.0),
        ("decode Metadata v12 response, 1,000 partitions",
         median_us(lambda: protocol.decode_response(3, 12, metadata_frame), 100), None),
        ("decode Heartbeat v4 request", median_us(lambda: protocol.decode_request(heartbeat), 5000), None),
        ("encode Heartbeat v4 response",
         median_us(lambda: protocol.encode_response(12, 4, 1, {"error_code": 0}), 5000), None),
    ]
    for name, value, target in results:
        verdict = "" if target is None else ("  ok" if value <= target else f"  OVER target {target:.0f} us")
        print(f"{name:<50} {value:10.1f} us{verdict}")


if __name__ == "__main__":
    main()

"""Bad frames on some connections while other clients keep working; lifecycle and config."""

from __future__ import annotations

import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from kbroker.testing import BrokerStartError, KafkaBroker
from tests.integration.clients import Rec, create_topic, kp_consume, kp_produce, unique_topic
from tests.integration.wire import WireClient

API_VERSIONS = 18


def _abuse(bootstrap: str, rounds: int) -> list[str]:
    """Send malformed, truncated and oversized frames on fresh connections; returns problems."""
    host, port = bootstrap.rsplit(":", 1)
    problems = []
    frames = [
        struct.pack(">i", 200_000_000),                                    # over socket.request.max.bytes
        struct.pack(">i", -1),                                             # negative size
        struct.pack(">i", 12) + struct.pack(">hhih", 0, 9, 7, 2) + b"\xff\xff",  # body cut short
        struct.pack(">i", 8) + os.urandom(8),                              # garbage
        struct.pack(">i", 50) + b"\x00\x12\x00\x03",                       # truncated, then EOF
    ]
    for i in range(rounds):
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(frames[i % len(frames)])
            sock.shutdown(socket.SHUT_WR)
            try:
                while sock.recv(65536):
                    pass
            except (ConnectionResetError, socket.timeout) as exc:
                if isinstance(exc, socket.timeout):
                    problems.append(f"frame {i % len(frames)}: connection left open")
    return problems


def test_bad_frames_do_not_disturb_other_clients(broker):
    topic = unique_topic("robust")
    create_topic(broker.bootstrap_servers, topic, 2)
    problems: list[str] = []
    abuser = threading.Thread(target=lambda: problems.extend(_abuse(broker.bootstrap_servers, 60)))
    abuser.start()
    records = [Rec(i % 2, None, b"r%d" % i, (), 1_700_000_000_000 + i) for i in range(300)]
    for chunk in range(0, 300, 50):
        kp_produce(broker.bootstrap_servers, topic, records[chunk:chunk + 50])
    consumed = kp_consume(broker.bootstrap_servers, topic, 2, len(records))
    abuser.join(timeout=60)
    assert not problems
    assert sorted(r.value for r in consumed) == sorted(r.value for r in records)
    # The broker still answers on a fresh connection.
    with WireClient(broker.bootstrap_servers) as client:
        body = client.request(API_VERSIONS, 3, {"client_software_name": "t", "client_software_version": "1"})
        assert body["error_code"] == 0
    assert "malformed request" in broker.log_text()
    assert "exceeds socket.request.max.bytes" in broker.log_text()


def test_sigterm_stops_gracefully_with_clean_marker():
    broker = KafkaBroker()
    try:
        broker.start()
        topic = unique_topic("term")
        kp_produce(broker.bootstrap_servers, topic, [Rec(0, None, b"x", (), 1_700_000_000_000)])
        marker = broker.log_dir / ".kafka_cleanshutdown"
        assert not marker.exists()  # only written at a clean stop
        started = time.monotonic()
        broker.process.send_signal(signal.SIGTERM)
        code = broker.process.wait(timeout=10)
        elapsed = time.monotonic() - started
        assert code == 0
        assert elapsed < 5.0
        assert marker.exists()
    finally:
        broker.close()


def test_sigterm_with_connected_clients_and_long_poll():
    broker = KafkaBroker()
    try:
        broker.start()
        topic = unique_topic("poll")
        create_topic(broker.bootstrap_servers, topic, 1)
        client = WireClient(broker.bootstrap_servers)
        part = {"partition": 0, "current_leader_epoch": -1, "fetch_offset": 0, "log_start_offset": -1,
                "partition_max_bytes": 1 << 20}
        client.send(1, 11, {"replica_id": -1, "max_wait_ms": 30_000, "min_bytes": 1, "max_bytes": 1 << 20,
                            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
                            "topics": [{"topic": topic, "partitions": [part]}], "forgotten_topics_data": [],
                            "rack_id": ""})
        idle = WireClient(broker.bootstrap_servers)
        started = time.monotonic()
        broker.process.send_signal(signal.SIGTERM)
        assert broker.process.wait(timeout=10) == 0
        assert time.monotonic() - started < 5.0
        assert (broker.log_dir / ".kafka_cleanshutdown").exists()
        client.close()
        idle.close()
    finally:
        broker.close()


def test_unknown_key_warns_in_broker_log():
    with KafkaBroker({"totally.unknown.key": "1"}) as broker:
        assert "'totally.unknown.key' was supplied but isn't a known config" in broker.log_text()


def test_invalid_value_refuses_to_start():
    broker = KafkaBroker({"log.segment.bytes": "tiny"}, startup_timeout_s=30)
    with pytest.raises(BrokerStartError) as info:
        with broker:
            pass
    assert "log.segment.bytes" in str(info.value)
    assert broker.process.returncode not in (0, None)


def test_port_zero_ready_line_and_metadata_port():
    with KafkaBroker() as broker:
        assert broker.port != 0
        from kafka import KafkaAdminClient

        admin = KafkaAdminClient(bootstrap_servers=broker.bootstrap_servers)
        try:
            nodes = admin.describe_cluster()["brokers"]
            assert [(n["host"], n["port"]) for n in nodes] == [("127.0.0.1", broker.port)]
        finally:
            admin.close()


def test_port_in_use_refuses_to_start(free_port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", free_port))
        taken.listen()
        broker = KafkaBroker(port=free_port)
        with pytest.raises(BrokerStartError) as info:
            with broker:
                pass
    assert "Address already in use" in str(info.value)
    assert broker.process.returncode == 1

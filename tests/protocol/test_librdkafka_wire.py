"""The codec against a real client's bytes: librdkafka (confluent-kafka) talks to a tiny
socket server that answers ApiVersions and Metadata with this codec.

This checks decode_request on frames librdkafka really sends (header v1/v2, stray bytes after
Metadata) and that librdkafka accepts what encode_response writes. Only 127.0.0.1, a free
port, and the server thread always stops.
"""

from __future__ import annotations

import socket
import struct
import threading
from typing import Any

import pytest

import protocol
from protocol import ApiKey, ErrorCode

import confluent_kafka
from confluent_kafka.admin import AdminClient  # noqa: E402

TOPIC = "codec-topic"


class MiniBroker:
    """Answers ApiVersions and Metadata; records every decoded request header."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.headers: list[dict] = []
        self.errors: list[BaseException] = []
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.conns: list[socket.socket] = []
        self.accept_thread = threading.Thread(target=self._accept, daemon=True)
        self.accept_thread.start()

    def _accept(self) -> None:
        while not self.stopping.is_set():
            try:
                conn, _ = self.sock.accept()
            except (socket.timeout, OSError):
                continue
            conn.settimeout(0.2)
            self.conns.append(conn)
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _read_exactly(self, conn: socket.socket, n: int) -> bytes | None:
        buf = b""
        while len(buf) < n:
            if self.stopping.is_set():
                return None
            try:
                chunk = conn.recv(n - len(buf))
            except socket.timeout:
                continue
            except OSError:
                return None
            if not chunk:
                return None
            buf += chunk
        return buf

    def _serve(self, conn: socket.socket) -> None:
        try:
            while True:
                size = self._read_exactly(conn, 4)
                if size is None:
                    return
                frame = self._read_exactly(conn, struct.unpack(">i", size)[0])
                if frame is None:
                    return
                response = self._answer(frame)
                conn.sendall(struct.pack(">i", len(response)) + response)
        except BaseException as exc:  # surfaced by the test, not swallowed
            self.errors.append(exc)
        finally:
            conn.close()

    def _answer(self, frame: bytes) -> bytes:
        try:
            header, body = protocol.decode_request(frame)
        except protocol.UnsupportedVersionError as exc:
            header = exc.header
            self.headers.append(header)
            # Kafka answers an unsupported ApiVersions request with a v0 body
            return protocol.encode_response(
                ApiKey.API_VERSIONS, 0, header["correlation_id"],
                {"error_code": ErrorCode.UNSUPPORTED_VERSION, "api_keys": self._api_keys()},
            )
        self.headers.append(header)
        key, version = header["request_api_key"], header["request_api_version"]
        if key == ApiKey.API_VERSIONS:
            value: dict[str, Any] = {"error_code": 0, "api_keys": self._api_keys()}
        elif key == ApiKey.METADATA:
            value = self._metadata(body)
        else:
            raise AssertionError(f"unexpected request {header}")
        return protocol.encode_response(key, version, header["correlation_id"], value)

    @staticmethod
    def _api_keys() -> list[dict]:
        versions = protocol.api_versions()
        return [
            {"api_key": int(k), "min_version": versions[k][0], "max_version": versions[k][1]}
            for k in (ApiKey.API_VERSIONS, ApiKey.METADATA)
        ]

    def _metadata(self, body: dict) -> dict:
        partitions = [
            {"error_code": 0, "partition_index": i, "leader_id": 1, "leader_epoch": 0,
             "replica_nodes": [1], "isr_nodes": [1], "offline_replicas": []}
            for i in range(2)
        ]
        return {
            "brokers": [{"node_id": 1, "host": "127.0.0.1", "port": self.port, "rack": None}],
            "cluster_id": "codec-cluster",
            "controller_id": 1,
            "topics": [{"error_code": 0, "name": TOPIC, "is_internal": False, "partitions": partitions}],
        }

    def stop(self) -> None:
        self.stopping.set()
        self.sock.close()
        for conn in self.conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self.accept_thread.join(timeout=5)
        for thread in self.threads:
            thread.join(timeout=5)


@pytest.fixture
def mini_broker():
    broker = MiniBroker()
    try:
        yield broker
    finally:
        broker.stop()


def test_librdkafka_reads_our_api_versions_and_metadata(mini_broker: MiniBroker) -> None:
    admin = AdminClient({"bootstrap.servers": f"127.0.0.1:{mini_broker.port}", "socket.timeout.ms": 10000})
    metadata = admin.list_topics(timeout=20)
    assert not mini_broker.errors, mini_broker.errors
    assert metadata.cluster_id == "codec-cluster"
    assert set(metadata.brokers) == {1}
    assert metadata.brokers[1].port == mini_broker.port
    assert TOPIC in metadata.topics
    assert sorted(metadata.topics[TOPIC].partitions) == [0, 1]
    assert metadata.topics[TOPIC].partitions[1].leader == 1
    keys = {h["request_api_key"] for h in mini_broker.headers}
    assert {ApiKey.API_VERSIONS, ApiKey.METADATA} <= keys
    assert all(h["client_id"] for h in mini_broker.headers)  # librdkafka names itself
    metadata_versions = {h["request_api_version"] for h in mini_broker.headers if h["request_api_key"] == 3}
    assert max(metadata_versions) >= 9  # a flexible version: header v2, compact body

"""A minimal blocking Kafka wire client over raw sockets, built on ``protocol``'s codec.

Used where a stock client would hide what is measured: request-rate (hand-built Produce
requests, a fixed number in flight), startup (time to the first answered Metadata) and
connections (many idle connections each answered one ApiVersions).
"""

from __future__ import annotations

import socket
import struct
import uuid
from typing import Any, Mapping

from protocol import ApiKey, decode_response, encode_request

SIZE = struct.Struct(">i")
CLIENT_ID = "kbroker-bench"


def frame(payload: bytes) -> bytes:
    """Prefix a request with its 4-byte size."""
    return SIZE.pack(len(payload)) + payload


class WireConnection:
    """One TCP connection speaking length-prefixed Kafka frames."""

    def __init__(self, host: str, port: int, timeout_s: float = 30.0) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout_s)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._buffer = bytearray()
        self._correlation_id = 0

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> "WireConnection":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def next_correlation_id(self) -> int:
        """A fresh correlation id for this connection."""
        self._correlation_id += 1
        return self._correlation_id

    def send_frame(self, payload: bytes) -> None:
        """Send one request (without size prefix; it is added here)."""
        self.sock.sendall(frame(payload))

    def recv_frame(self) -> bytes:
        """Receive one response frame (size prefix removed); raises on EOF."""
        while True:
            if len(self._buffer) >= 4:
                size = SIZE.unpack_from(self._buffer)[0]
                if len(self._buffer) >= 4 + size:
                    payload = bytes(self._buffer[4:4 + size])
                    del self._buffer[:4 + size]
                    return payload
            chunk = self.sock.recv(1 << 20)
            if not chunk:
                raise ConnectionError("broker closed the connection")
            self._buffer += chunk

    def request(self, api_key: ApiKey, api_version: int, body: Mapping[str, Any]) -> dict:
        """Send one request and wait for its response body."""
        correlation_id = self.next_correlation_id()
        self.send_frame(encode_request(api_key, api_version, correlation_id, CLIENT_ID, body))
        received_id, response = decode_response(api_key, api_version, self.recv_frame())
        if received_id != correlation_id:
            raise ConnectionError(f"correlation id {received_id}, expected {correlation_id}")
        return response


def metadata_body(topics: list[str] | None, version: int = 12) -> dict:
    """A Metadata request body for the named topics (None: all topics)."""
    return {"topics": None if topics is None else [{"topic_id": uuid.UUID(int=0), "name": name}
                                                   for name in topics],
            "allow_auto_topic_creation": False,
            "include_cluster_authorized_operations": False,
            "include_topic_authorized_operations": False}

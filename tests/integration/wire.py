"""A minimal blocking Kafka wire client for tests: one socket, encode/decode via `protocol`."""

from __future__ import annotations

import itertools
import socket
import struct

import protocol


class WireClient:
    """Send requests and read responses on one connection (no pipelining)."""

    def __init__(self, bootstrap: str, timeout_s: float = 15.0) -> None:
        host, port = bootstrap.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=timeout_s)
        self._ids = itertools.count(1)

    def close(self) -> None:
        """Close the socket."""
        self.sock.close()

    def __enter__(self) -> "WireClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send_raw(self, data: bytes) -> None:
        """Write bytes as they are (for malformed frames)."""
        self.sock.sendall(data)

    def send(self, api_key: int, version: int, body: dict) -> int:
        """Send one request; returns its correlation id."""
        correlation_id = next(self._ids)
        payload = protocol.encode_request(api_key, version, correlation_id, "wire-tests", body)
        self.sock.sendall(struct.pack(">i", len(payload)) + payload)
        return correlation_id

    def read_frame(self) -> bytes | None:
        """The next response frame, or None when the broker closed the connection."""
        head = self._read_exactly(4)
        if head is None:
            return None
        return self._read_exactly(struct.unpack(">i", head)[0])

    def receive(self, api_key: int, version: int, correlation_id: int) -> dict:
        """Read and decode the response to `correlation_id`."""
        frame = self.read_frame()
        assert frame is not None, "connection closed by the broker"
        got, body = protocol.decode_response(api_key, version, frame)
        assert got == correlation_id
        return body

    def request(self, api_key: int, version: int, body: dict) -> dict:
        """Send and wait for the response body."""
        return self.receive(api_key, version, self.send(api_key, version, body))

    def is_closed_by_peer(self) -> bool:
        """True when the broker has closed the connection (reads EOF)."""
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return True
        except ConnectionResetError:
            return True

    def _read_exactly(self, size: int) -> bytes | None:
        chunks = bytearray()
        while len(chunks) < size:
            data = self.sock.recv(size - len(chunks))
            if not data:
                return None
            chunks += data
        return bytes(chunks)

"""A TCP proxy for tests that can drop a connection right after a Produce was forwarded.

The broker is started with advertised.listeners pointing at the proxy, so every client
connection goes through it. With `drop_produce_responses = n`, the next n Produce responses
are swallowed and both sides of that connection closed: the broker has written the batch,
the client never hears so, reconnects and retries: exactly what idempotence must absorb.
Threads and blocking sockets only; 127.0.0.1 only; `close()` stops everything.
"""

from __future__ import annotations

import socket
import struct
import threading

PRODUCE = 0


def _read_exact(sock: socket.socket, n: int) -> bytes | None:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def _read_frame(sock: socket.socket) -> bytes | None:
    head = _read_exact(sock, 4)
    if head is None:
        return None
    body = _read_exact(sock, struct.unpack(">i", head)[0])
    return None if body is None else head + body


class DroppingProxy:
    """Forwards 127.0.0.1:<port> to the broker, frame by frame."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.target_port: int | None = None
        self.drop_produce_responses = 0
        self.dropped = 0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
                server.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._sockets += [client, server]
            produce_ids: set[int] = set()
            threading.Thread(target=self._upstream, args=(client, server, produce_ids),
                             daemon=True).start()
            threading.Thread(target=self._downstream, args=(client, server, produce_ids),
                             daemon=True).start()

    def _upstream(self, client: socket.socket, server: socket.socket, produce_ids: set[int]) -> None:
        try:
            while True:
                frame = _read_frame(client)
                if frame is None:
                    break
                api_key, _version, correlation_id = struct.unpack_from(">hhi", frame, 4)
                if api_key == PRODUCE:
                    produce_ids.add(correlation_id)
                server.sendall(frame)
        except OSError:
            pass
        self._close_pair(client, server)

    def _downstream(self, client: socket.socket, server: socket.socket, produce_ids: set[int]) -> None:
        try:
            while True:
                frame = _read_frame(server)
                if frame is None:
                    break
                (correlation_id,) = struct.unpack_from(">i", frame, 4)
                if correlation_id in produce_ids:
                    produce_ids.discard(correlation_id)
                    with self._lock:
                        drop = self.drop_produce_responses > 0
                        if drop:
                            self.drop_produce_responses -= 1
                            self.dropped += 1
                    if drop:
                        break
                client.sendall(frame)
        except OSError:
            pass
        self._close_pair(client, server)

    @staticmethod
    def _close_pair(*socks: socket.socket) -> None:
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()

    def close(self) -> None:
        """Stop accepting and close every proxied connection."""
        self._closed = True
        self.listener.close()
        with self._lock:
            socks, self._sockets = self._sockets, []
        self._close_pair(*socks)
        self._thread.join(timeout=5)

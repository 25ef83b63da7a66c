"""Byte transports under a Connection: a lean one over a raw socket, a generic one over a trio Stream.

A Connection needs three things of its peer: read into a buffer it owns (`recv_into`), write
what the socket takes right now without waiting (`send_now`), and write a list of chunks to
the end, waiting as long as it takes (`send_chunks`).

`SocketTransport` calls the non-blocking socket directly and only parks the task
(`trio.lowlevel.wait_readable` / `wait_writable`) when the kernel says EAGAIN. trio's own
`SocketStream.receive_some` / `send_all` yield to the scheduler on every call even when
data is ready, which on a busy connection costs more than the request itself. Because these
calls do not checkpoint when they need not wait, the Connection checkpoints on its own every
few requests so one busy client cannot starve the others (see connection.py).

`StreamTransport` wraps any `trio.abc.Stream` (the in-memory streams of the tests, TLS
later); it never writes without awaiting, so every response goes through the writer task.
"""

from __future__ import annotations

import socket
from typing import Protocol

import trio

IOV_LIMIT = 64  # buffers handed to one sendmsg (well under IOV_MAX, 1024 on Linux)


class Transport(Protocol):
    """What a Connection needs of its byte stream."""

    async def recv_into(self, view: memoryview) -> int:
        """Read into `view`; the count read, 0 at end of stream. Waits only when nothing is there."""

    def send_now(self, data: bytes | memoryview | list) -> int:
        """Write what the socket accepts without waiting (a list: its buffers in order);
        the count written (maybe 0)."""

    async def send_chunks(self, chunks: list[bytes | memoryview]) -> None:
        """Write every chunk, in order, waiting for the socket as needed."""

    def expect_bytes(self, count: int) -> None:
        """Hint: do not wake the reader before `count` bytes are there (1: any byte wakes it)."""

    async def aclose(self) -> None:
        """Close the stream."""


class SocketTransport:
    """Non-blocking calls on the raw socket of a `trio.SocketStream`; waits only on EAGAIN."""

    def __init__(self, stream: trio.SocketStream, sock: socket.socket) -> None:
        self._stream = stream  # owns the socket: closing goes through it (wakes waiters)
        self._sock = sock
        self._low_water = 1

    def expect_bytes(self, count: int) -> None:
        """Set SO_RCVLOWAT, so epoll reports the socket readable only once `count` bytes
        are queued: a large frame that a slow client sends in small pieces is then read in
        a few wake-ups instead of one per piece. The caller never asks for more than the
        rest of the frame in hand, so a client waiting for its answer is never stalled."""
        if count != self._low_water:
            try:
                self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, count)
            except OSError:
                return  # an optimisation only
            self._low_water = count

    async def recv_into(self, view: memoryview) -> int:
        """Read into `view` (see Transport.recv_into)."""
        sock = self._sock
        while True:
            try:
                return sock.recv_into(view)
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
            except OSError as exc:  # reset by peer, closed under us, ...
                raise trio.BrokenResourceError(str(exc)) from exc

    def send_now(self, data: bytes | memoryview | list) -> int:
        """Write what fits in the socket buffer now (see Transport.send_now)."""
        try:
            if type(data) is list:
                return self._sock.sendmsg(data[:IOV_LIMIT])
            return self._sock.send(data)
        except BlockingIOError:
            return 0
        except OSError as exc:
            raise trio.BrokenResourceError(str(exc)) from exc

    async def send_chunks(self, chunks: list[bytes | memoryview]) -> None:
        """Write every chunk with sendmsg (no join: large responses are not copied again)."""
        sock = self._sock
        pending = list(chunks)
        while pending:
            try:
                sent = sock.sendmsg(pending[:IOV_LIMIT])
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)
                continue
            except OSError as exc:
                raise trio.BrokenResourceError(str(exc)) from exc
            pending = consume(pending, sent)

    async def aclose(self) -> None:
        """Close the socket (through the stream, so a task parked on it is woken)."""
        await self._stream.aclose()


class StreamTransport:
    """Any trio Stream; every write awaits, so `send_now` never writes."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream

    async def recv_into(self, view: memoryview) -> int:
        """Read into `view` (see Transport.recv_into)."""
        data = await self._stream.receive_some(len(view))
        count = len(data)
        view[:count] = data
        return count

    def send_now(self, data: bytes | memoryview | list) -> int:
        """Nothing is written without awaiting on a generic stream."""
        return 0

    def expect_bytes(self, count: int) -> None:
        """No low-water mark on a generic stream."""

    async def send_chunks(self, chunks: list[bytes | memoryview]) -> None:
        """Write the chunks as one send_all."""
        await self._stream.send_all(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    async def aclose(self) -> None:
        """Close the stream."""
        await self._stream.aclose()


def consume(chunks: list[bytes | memoryview], count: int) -> list[bytes | memoryview]:
    """The chunks left once the first `count` bytes of `chunks` have been written."""
    index = 0
    while index < len(chunks) and count >= len(chunks[index]):
        count -= len(chunks[index])
        index += 1
    rest = chunks[index:]
    if count and rest:
        rest[0] = memoryview(rest[0])[count:]
    return rest


def open_transport(stream: trio.abc.Stream) -> Transport:
    """The lean transport when `stream` is a plain socket stream, else the generic one."""
    if isinstance(stream, trio.SocketStream):
        # trio keeps the stdlib socket (non-blocking already) as `_sock`; trio 0.22-0.26 at least
        sock = getattr(stream.socket, "_sock", None)
        if isinstance(sock, socket.socket):
            return SocketTransport(stream, sock)
    return StreamTransport(stream)

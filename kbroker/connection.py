"""One client connection: read size-prefixed frames, dispatch, write responses in order.

Shape (STYLE.md convention 6): the connection's own task is the *reader*; it reads one
frame, decodes it, awaits its handler and puts the encoded response on a bounded memory
channel. A second task, the *writer*, drains that channel to the socket, joining whatever
is queued into one `send_all`. Requests on one connection are handled one at a time, as
Kafka does, so responses leave in request order without sequence numbers; the channel
lets the reader go on with the next request while a large response is still being sent.

Limits: a frame whose size prefix is negative or above `socket.request.max.bytes` closes
the connection before its body is read; a malformed request (protocol.DecodeError) closes
only this connection, with one log line. An unknown API key or an unsupported version is
answered as Kafka does: ApiVersions gets UNSUPPORTED_VERSION in a v0 body listing the
supported keys, any other API closes the connection.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import trio

from kbroker.dispatch import HANDLERS, CloseConnection, RequestContext, supported_versions

if TYPE_CHECKING:
    from kbroker.broker import Broker

logger = logging.getLogger(__name__)

RECEIVE_BYTES = 65536          # bytes asked of the socket per read when idle
RESPONSE_QUEUE_DEFAULT = 32    # responses waiting for the writer before the reader blocks
API_VERSIONS_KEY = 18
UNSUPPORTED_VERSION = 35


class FrameTooLarge(Exception):
    """The size prefix announced a frame above the limit (or a negative size)."""


class FrameReader:
    """Splits a byte stream into frames without reading past a bounded size.

    `next_frame()` returns the frame body (size prefix removed) as bytes, or None at a
    clean end of stream. A size over `max_frame_bytes` raises FrameTooLarge before any of
    the body is read; a stream ending inside a frame returns None (a truncated frame is
    dropped with the connection).
    """

    def __init__(self, stream: trio.abc.ReceiveStream, max_frame_bytes: int) -> None:
        self._stream = stream
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self.truncated_bytes = 0  # bytes of an incomplete frame at end of stream

    async def _fill(self, wanted: int) -> bool:
        """Read until the buffer holds `wanted` bytes; False at end of stream."""
        buffer = self._buffer
        while len(buffer) < wanted:
            data = await self._stream.receive_some(max(RECEIVE_BYTES, wanted - len(buffer)))
            if not data:
                self.truncated_bytes = len(buffer)
                return False
            buffer += data
        return True

    def buffered(self) -> int:
        """Bytes already received and not yet returned."""
        return len(self._buffer)

    async def next_frame(self) -> bytes | None:
        """The next frame body, or None at end of stream."""
        if not await self._fill(4):
            return None
        size = int.from_bytes(self._buffer[:4], "big", signed=True)
        if size < 0 or size > self._max_frame_bytes:
            raise FrameTooLarge(size)
        if not await self._fill(4 + size):
            return None
        with memoryview(self._buffer) as view:
            frame = bytes(view[4:4 + size])
        del self._buffer[:4 + size]
        return frame


class Connection:
    """Serves one accepted stream until the client leaves, a frame is bad, or the broker stops."""

    def __init__(self, broker: "Broker", stream: trio.abc.Stream, peer: str) -> None:
        self.broker = broker
        self.stream = stream
        self.peer = peer
        self.state: dict[str, Any] = {}
        self._idle = True                     # waiting for a frame (safe to cancel at once)
        self._idle_timed_out = False
        self.last_active = trio.current_time()  # when the last request was read
        self._closing = False
        self._read_scope: trio.CancelScope | None = None
        self.requests_handled = 0

    def close_if_idle_since(self, cutoff: float) -> bool:
        """connections.max.idle.ms: close if waiting for a request since before `cutoff`
        (trio time). Called by the server's idle reaper; True if the connection was closed."""
        if self._idle and self.last_active < cutoff and self._read_scope is not None:
            self._idle_timed_out = True
            self._read_scope.cancel()
            return True
        return False

    def close_when_idle(self) -> None:
        """Graceful stop: finish the request in hand (if any), then close."""
        self._closing = True
        if self._idle and self._read_scope is not None:
            self._read_scope.cancel()

    async def run(self) -> None:
        """Serve the connection; returns when it is closed. Never raises for client faults."""
        queue_size = max(1, min(RESPONSE_QUEUE_DEFAULT, self.broker.config.queued_max_requests))
        send_channel, receive_channel = trio.open_memory_channel[bytes](queue_size)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._write_loop, receive_channel)
                async with send_channel:
                    await self._read_loop(send_channel)
        except trio.BrokenResourceError:
            logger.debug("connection reset peer=%s", self.peer)
        finally:
            with trio.CancelScope(shield=True):
                with trio.move_on_after(1):
                    await self.stream.aclose()

    async def _write_loop(self, receive_channel: trio.MemoryReceiveChannel[bytes]) -> None:
        async with receive_channel:
            async for data in receive_channel:
                # Join whatever else is already queued: one syscall for pipelined responses.
                chunks = [data]
                while True:
                    try:
                        chunks.append(receive_channel.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                try:
                    await self.stream.send_all(chunks[0] if len(chunks) == 1 else b"".join(chunks))
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    logger.debug("connection closed while writing peer=%s", self.peer)
                    return

    async def _read_loop(self, send_channel: trio.MemorySendChannel[bytes]) -> None:
        # One cancel scope for the whole loop (not one per frame, and no per-request
        # deadline: each costs ~10-20 us a request). `close_when_idle` and the server's idle
        # reaper cancel it only while the reader waits for a frame, and a frame that arrives
        # as the cancel lands is dropped before any handler runs, so a handler is never
        # cancelled half-way.
        with trio.CancelScope() as scope:
            self._read_scope = scope
            try:
                await self._serve_frames(scope, send_channel)
            finally:
                self._read_scope = None
        if self._idle_timed_out:
            logger.info("closing idle connection peer=%s after connections.max.idle.ms=%d",
                        self.peer, self.broker.config.connections_max_idle_ms)

    async def _serve_frames(self, scope: trio.CancelScope,
                            send_channel: trio.MemorySendChannel[bytes]) -> None:
        reader = FrameReader(self.stream, self.broker.config.socket_request_max_bytes)
        while not self._closing:
            self._idle = reader.buffered() == 0
            try:
                frame = await reader.next_frame()
            except FrameTooLarge as exc:
                logger.warning("closing connection peer=%s: request size %d exceeds "
                               "socket.request.max.bytes=%d", self.peer, exc.args[0],
                               self.broker.config.socket_request_max_bytes)
                return
            self._idle = False
            if scope.cancel_called:  # graceful stop or idle timeout raced with this frame
                return
            self.last_active = trio.current_time()
            if frame is None:
                if reader.truncated_bytes:
                    logger.info("connection peer=%s ended inside a frame (%d bytes dropped)",
                                self.peer, reader.truncated_bytes)
                return
            response = await self._handle(frame)
            if response is CLOSE:
                return
            if response is not None:
                await send_channel.send(response)
            self.requests_handled += 1

    async def _handle(self, frame: bytes) -> bytes | None | object:
        """Decode, dispatch, encode. Returns the size-prefixed response, None, or CLOSE."""
        import protocol  # bound at first use; the module is cached after that

        try:
            header, body = protocol.decode_request(frame)
        except protocol.UnsupportedVersionError as exc:
            return self._unsupported(exc.header, str(exc))
        except protocol.DecodeError as exc:
            api_key, api_version = _peek_api(frame)
            logger.warning("closing connection peer=%s: malformed request api=%s version=%s (%s)",
                           self.peer, api_key, api_version, exc)
            return CLOSE
        api_key = header["request_api_key"]
        api_version = header["request_api_version"]
        entry = HANDLERS.get(api_key)
        if entry is None or not entry.min_version <= api_version <= entry.max_version:
            return self._unsupported(header, "no handler for this version")
        ctx = RequestContext(self.broker, header, api_version, header.get("client_id"),
                             self.peer, self.state)
        try:
            result = await entry.fn(ctx, body)
        except CloseConnection as exc:
            logger.info("closing connection peer=%s api=%d version=%d: %s",
                        self.peer, api_key, api_version, exc)
            return CLOSE
        except (trio.Cancelled, KeyboardInterrupt):
            raise
        except Exception:  # a handler bug: drop this client, keep the broker serving
            logger.exception("handler failed peer=%s api=%d version=%d correlation_id=%d",
                             self.peer, api_key, api_version, header["correlation_id"])
            return CLOSE
        if result is None:
            return None
        payload = protocol.encode_response(api_key, api_version, header["correlation_id"], result)
        return len(payload).to_bytes(4, "big") + payload

    def _unsupported(self, header: dict, reason: str) -> bytes | object:
        """Answer an unknown key/version as Kafka does (see module docstring)."""
        import protocol

        api_key = header.get("request_api_key")
        api_version = header.get("request_api_version")
        if api_key != API_VERSIONS_KEY:
            logger.info("closing connection peer=%s: unsupported api=%s version=%s (%s)",
                        self.peer, api_key, api_version, reason)
            return CLOSE
        body = {
            "error_code": UNSUPPORTED_VERSION,
            "api_keys": [{"api_key": key, "min_version": lo, "max_version": hi}
                         for key, (lo, hi) in supported_versions().items()],
        }
        payload = protocol.encode_response(API_VERSIONS_KEY, 0, header.get("correlation_id", 0), body)
        return len(payload).to_bytes(4, "big") + payload


CLOSE = object()  # sentinel: close the connection after what is already queued


def _peek_api(frame: bytes) -> tuple[int | None, int | None]:
    """The api key and version of a frame too broken to decode (for the log line)."""
    if len(frame) < 4:
        return None, None
    return int.from_bytes(frame[0:2], "big", signed=True), int.from_bytes(frame[2:4], "big", signed=True)

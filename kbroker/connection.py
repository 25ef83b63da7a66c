"""One client connection: read size-prefixed frames, dispatch, write responses in order.

Shape (STYLE.md convention 6): the connection's own task is the *reader*; it reads one
frame, decodes it, awaits its handler and writes the encoded response itself when nothing
is waiting to be written and the socket takes all of it (the common case: no task switch
per request). Otherwise the rest of the response goes on a bounded memory channel drained
by a second task, the *writer*, which sends whatever is queued with one sendmsg; meanwhile
the reader goes on with the next request. Requests on one connection are handled one at a
time, as Kafka does, and a response is written directly only while the channel is empty,
so responses leave in request order without sequence numbers. While the next request is
a Produce already received whole, answers are held (at most COALESCE_MAX) and leave
together in one sendmsg; any other next request (a Fetch may wait) flushes them first.

Frames are read into buffers the connection owns (`FrameReader`): small ones into one
receive buffer that is reused, a large one straight into a buffer of its size, which is
kept for the next large frame. Decoded records are memoryview slices of that buffer; a
buffer is written over only when no slice of it is alive any more (a bytearray refuses to
resize while exported, which is the test), else a new one is taken.

Fairness: the lean transport does not yield when the socket has data, so the reader
checkpoints every `CHECKPOINT_EVERY` requests; a pipelining client cannot starve the rest.

Limits: a frame whose size prefix is negative or above `socket.request.max.bytes` closes
the connection before its body is read; a malformed request (protocol.DecodeError) closes
only this connection, with one log line. An unknown API key or an unsupported version is
answered as Kafka does: ApiVersions gets UNSUPPORTED_VERSION in a v0 body listing the
supported keys, any other API closes the connection.
"""

from __future__ import annotations

import logging
import struct
from typing import TYPE_CHECKING, Any

import trio

import protocol
from kbroker.dispatch import HANDLERS, CloseConnection, RequestContext, supported_versions
from kbroker.transport import Transport, consume, open_transport

if TYPE_CHECKING:
    from kbroker.broker import Broker

logger = logging.getLogger(__name__)

FIRST_BUFFER_BYTES = 4096      # receive buffer of a new connection (idle ones stay small)
RECEIVE_BYTES = 65536          # receive buffer once traffic grows; larger frames get their own
LARGE_KEEP_BYTES = 2 << 20     # a large-frame buffer up to this size is kept for the next one
LOW_WATER_MIN_BYTES = 32768    # rest of a large frame worth waiting for in one wake-up
LOW_WATER_MAX_BYTES = 1 << 20  # at most this much asked of the kernel before a wake-up
RESPONSE_QUEUE_DEFAULT = 32    # responses waiting for the writer before the reader blocks
CHECKPOINT_EVERY = 16          # requests served without yielding before the reader yields
COALESCE_MAX = 16              # responses held for one sendmsg while produces are pipelined
API_VERSIONS_KEY = 18
CHUNKED_RESPONSES = frozenset({1})  # Fetch: records go to the socket as read, not copied
UNSUPPORTED_VERSION = 35
_SIZE = struct.Struct(">i")


class FrameTooLarge(Exception):
    """The size prefix announced a frame above the limit (or a negative size)."""


def _exported(buffer: bytearray) -> bool:
    """True while a memoryview of `buffer` (e.g. a records slice) is still alive."""
    try:
        buffer.append(0)  # a bytearray cannot resize while exported
    except BufferError:
        return True
    del buffer[-1]
    return False


class FrameReader:
    """Splits a byte stream into frames without reading past a bounded size.

    `next_frame()` returns the frame body (size prefix removed) as a memoryview of a
    buffer owned by the reader, or None at a clean end of stream. A size over
    `max_frame_bytes` raises FrameTooLarge before any of the body is read; a stream ending
    inside a frame returns None (a truncated frame is dropped with the connection).
    """

    def __init__(self, transport: Transport, max_frame_bytes: int) -> None:
        self._transport = transport
        self._max_frame_bytes = max_frame_bytes
        self._buffer = bytearray(FIRST_BUFFER_BYTES)
        self._start = 0   # first byte not yet returned
        self._end = 0     # end of the bytes received
        self._large: bytearray | None = None
        self.truncated_bytes = 0  # bytes of an incomplete frame at end of stream

    def buffered(self) -> int:
        """Bytes already received and not yet returned."""
        return self._end - self._start

    def produce_ready(self) -> bool:
        """True when a whole Produce request (api key 0) is already buffered."""
        start = self._start
        available = self._end - start
        if available < 6:
            return False
        buffer = self._buffer
        size = _SIZE.unpack_from(buffer, start)[0]
        return 0 <= size <= available - 4 and buffer[start + 4] == 0 and buffer[start + 5] == 0

    def _make_room(self, wanted: int) -> None:
        """Arrange that `wanted` bytes from `_start` fit in the buffer, moving or growing it."""
        buffer = self._buffer
        pending = self._end - self._start
        if self._start + wanted <= len(buffer):
            return  # room after what is buffered: no move, no check (rewound when full)
        size = len(buffer)
        if wanted > size:
            size = min(RECEIVE_BYTES, max(wanted, size * 4))
        if size != len(buffer) or _exported(buffer):
            fresh = bytearray(size)  # old frames may still be referenced: never write over them
            fresh[:pending] = buffer[self._start:self._end]
            self._buffer = fresh
        elif pending:
            buffer[:pending] = buffer[self._start:self._end]
        self._start, self._end = 0, pending

    async def _fill(self, wanted: int) -> bool:
        """Read until `wanted` bytes from `_start` are buffered; False at end of stream."""
        if self._end - self._start >= wanted:
            return True
        self._make_room(wanted)
        buffer = self._buffer
        while self._end - self._start < wanted:
            with memoryview(buffer) as view:
                count = await self._transport.recv_into(view[self._end:])
            if not count:
                self.truncated_bytes = self._end - self._start
                return False
            self._end += count
            if self._end == len(buffer) and len(buffer) < RECEIVE_BYTES \
                    and self._end - self._start < wanted:
                self._make_room(min(RECEIVE_BYTES, len(buffer) * 4))  # traffic is flowing: grow
                buffer = self._buffer
        return True

    def _large_buffer(self, size: int) -> memoryview:
        """A writable view of exactly `size` bytes for one large frame."""
        large = self._large
        if large is None or len(large) < size or _exported(large):
            large = bytearray(size)
        self._large = large if len(large) <= LARGE_KEEP_BYTES else None
        return memoryview(large)[:size]

    async def next_frame(self) -> memoryview | None:
        """The next frame body, or None at end of stream."""
        if not await self._fill(4):
            return None
        size = _SIZE.unpack_from(self._buffer, self._start)[0]
        if size < 0 or size > self._max_frame_bytes:
            raise FrameTooLarge(size)
        if 4 + size <= RECEIVE_BYTES:
            if not await self._fill(4 + size):
                return None
            begin = self._start + 4
            self._start = begin + size
            return memoryview(self._buffer)[begin:begin + size]
        # A large frame: received straight into its own buffer (no growing, no copy after).
        frame = self._large_buffer(size)
        have = self._end - self._start - 4
        frame[:have] = memoryview(self._buffer)[self._start + 4:self._end]
        self._start = self._end  # consumed; rewinding waits for the export check
        transport = self._transport
        try:
            while have < size:
                missing = size - have
                if missing >= LOW_WATER_MIN_BYTES:
                    transport.expect_bytes(min(missing, LOW_WATER_MAX_BYTES))
                else:
                    transport.expect_bytes(1)
                count = await transport.recv_into(frame[have:])
                if not count:
                    self.truncated_bytes = 4 + have
                    return None
                have += count
        finally:
            transport.expect_bytes(1)
        return frame


class Connection:
    """Serves one accepted stream until the client leaves, a frame is bad, or the broker stops."""

    def __init__(self, broker: "Broker", stream: trio.abc.Stream, peer: str) -> None:
        self.broker = broker
        self.stream = stream
        self.transport = open_transport(stream)
        self.peer = peer
        self.state: dict[str, Any] = {}
        self._idle = True                     # waiting for a frame (safe to cancel at once)
        self._idle_timed_out = False
        self.last_active = trio.current_time()  # when the last request was read
        self._closing = False
        self._read_scope: trio.CancelScope | None = None
        self._queued = 0                      # responses handed to the writer, not yet written
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
        send_channel, receive_channel = trio.open_memory_channel[Any](queue_size)
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
                    await self.transport.aclose()

    async def _write_loop(self, receive_channel: trio.MemoryReceiveChannel[Any]) -> None:
        """Write what the reader could not write at once (backlog only), in order."""
        async with receive_channel:
            async for data in receive_channel:
                items = [data]
                while True:  # whatever else is queued goes in the same sendmsg
                    try:
                        items.append(receive_channel.receive_nowait())
                    except (trio.WouldBlock, trio.EndOfChannel):
                        break
                chunks: list = []
                for item in items:
                    if type(item) is list:
                        chunks.extend(item)
                    else:
                        chunks.append(item)
                try:
                    await self.transport.send_chunks(chunks)
                except (trio.BrokenResourceError, trio.ClosedResourceError):
                    logger.debug("connection closed while writing peer=%s", self.peer)
                    return
                finally:
                    self._queued -= len(items)

    async def _send(self, response: bytes | list, send_channel: trio.MemorySendChannel[Any]) -> None:
        """Write `response` now if nothing is queued before it, else (or the rest) via the writer.

        A response is one buffer or a list of buffers (a large Fetch: records not copied)."""
        if self._queued == 0:
            sent = self.transport.send_now(response)
            if type(response) is list:
                if sent:
                    response = consume(response, sent)
                if not response:
                    return
            elif sent == len(response):
                return
            elif sent:
                response = memoryview(response)[sent:]
        self._queued += 1
        await send_channel.send(response)

    async def _read_loop(self, send_channel: trio.MemorySendChannel[Any]) -> None:
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
                            send_channel: trio.MemorySendChannel[Any]) -> None:
        held: list = []
        await self._serve_loop(scope, send_channel, held)
        if held:  # answers to requests already handled leave before the connection closes
            await self._send(held[0] if len(held) == 1 else held, send_channel)

    async def _serve_loop(self, scope: trio.CancelScope,
                          send_channel: trio.MemorySendChannel[Any], held: list) -> None:
        """Serve frames until the connection should close. Responses are written after each
        request, except that while the next request is a Produce already received whole
        (which is answered without waiting on anything) they are held, up to
        COALESCE_MAX, and leave together in one sendmsg."""
        reader = FrameReader(self.transport, self.broker.config.socket_request_max_bytes)
        unyielded = 0
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
            del frame  # the frame's buffer is reused only once nothing refers to it
            if response is CLOSE:
                return
            if response is not None:
                if type(response) is list:
                    held.extend(response)
                else:
                    held.append(response)
            if held and (len(held) >= COALESCE_MAX or not reader.produce_ready()):
                await self._send(held[0] if len(held) == 1 else held.copy(), send_channel)
                held.clear()
            self.requests_handled += 1
            unyielded += 1
            if unyielded >= CHECKPOINT_EVERY:
                # the lean transport does not yield while data is ready: let others run
                unyielded = 0
                await trio.lowlevel.checkpoint()

    async def _handle(self, frame: memoryview) -> bytes | list | None | object:
        """Decode, dispatch, encode. Returns the size-prefixed response (one buffer or a list
        of buffers), None, or CLOSE."""
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
        ctx = RequestContext(self.broker, header, api_version, header["client_id"],
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
        if api_key in CHUNKED_RESPONSES:
            chunks = protocol.encode_response_chunks(api_key, api_version, header["correlation_id"], result)
            return chunks[0] if len(chunks) == 1 else chunks
        return protocol.encode_response_frame(api_key, api_version, header["correlation_id"], result)

    def _unsupported(self, header: dict, reason: str) -> bytes | object:
        """Answer an unknown key/version as Kafka does (see module docstring)."""
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
        return protocol.encode_response_frame(API_VERSIONS_KEY, 0, header.get("correlation_id", 0), body)


CLOSE = object()  # sentinel: close the connection after what is already queued


def _peek_api(frame: bytes | memoryview) -> tuple[int | None, int | None]:
    """The api key and version of a frame too broken to decode (for the log line)."""
    if len(frame) < 4:
        return None, None
    return int.from_bytes(frame[0:2], "big", signed=True), int.from_bytes(frame[2:4], "big", signed=True)

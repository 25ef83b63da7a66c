"""The request path over real sockets (the lean transport) and the frame buffers.

Connections here run over `trio.socket.socketpair()` wrapped in `trio.SocketStream`, which
is what the server hands them, so responses are written by the reader itself when the
socket takes them and by the writer task when it does not. The stand-in broker answers
ApiVersions only; that is enough to exercise framing, order and back-pressure.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace

import pytest
import trio
import trio.testing

import kbroker.handlers  # noqa: F401  (registers the handlers)
import protocol
from kbroker.config import build_config
from kbroker.connection import RECEIVE_BYTES, Connection, FrameReader, FrameTooLarge
from kbroker.transport import SocketTransport, StreamTransport, consume, open_transport

API_VERSIONS = 18


def _broker(**overrides):
    config = build_config({k.replace("_", "."): str(v) for k, v in overrides.items()})
    image = SimpleNamespace(offset=7, cluster_id="test-cluster")
    return SimpleNamespace(config=config, controller=SimpleNamespace(image=image))


def _request(correlation_id: int, version: int = 3) -> bytes:
    body = {"client_software_name": "kbroker-tests", "client_software_version": "1.0"}
    payload = protocol.encode_request(API_VERSIONS, version, correlation_id, "tests", body)
    return struct.pack(">i", len(payload)) + payload


class _Frames:
    """Reads size-prefixed frames from a client stream."""

    def __init__(self, stream: trio.abc.ReceiveStream) -> None:
        self.stream = stream
        self.buffer = bytearray()

    async def next(self) -> bytes | None:
        while True:
            if len(self.buffer) >= 4:
                size = struct.unpack_from(">i", self.buffer)[0]
                if len(self.buffer) >= 4 + size:
                    frame = bytes(self.buffer[4:4 + size])
                    del self.buffer[:4 + size]
                    return frame
            data = await self.stream.receive_some(65536)
            if not data:
                return None
            self.buffer += data


def _correlation_id(frame: bytes) -> int:
    return protocol.decode_response(API_VERSIONS, 3, frame)[0]


@pytest.fixture
async def socket_serve(nursery):
    """Start a Connection on one end of a socket pair; yields (client stream, connection)."""

    async def start(**overrides):
        left, right = trio.socket.socketpair()
        client, server = trio.SocketStream(left), trio.SocketStream(right)
        connection = Connection(_broker(**overrides), server, "socketpair")
        nursery.start_soon(connection.run)
        return client, connection

    return start


async def test_socket_streams_get_the_lean_transport(socket_serve):
    client, connection = await socket_serve()
    assert isinstance(connection.transport, SocketTransport)
    assert isinstance(open_transport(trio.testing.memory_stream_pair()[0]), StreamTransport)
    await client.send_all(_request(5))
    assert _correlation_id(await _Frames(client).next()) == 5


async def test_pipelined_requests_answered_in_order_over_a_socket(socket_serve):
    client, _ = await socket_serve()
    await client.send_all(b"".join(_request(i) for i in range(200)))
    frames = _Frames(client)
    with trio.fail_after(10):
        assert [_correlation_id(await frames.next()) for _ in range(200)] == list(range(200))


async def test_frame_split_across_many_reads(socket_serve):
    client, _ = await socket_serve()
    data = b"".join(_request(i) for i in range(3))
    frames = _Frames(client)
    for i in range(len(data)):  # one byte per send: every read returns a sliver
        await client.send_all(data[i:i + 1])
        await trio.testing.wait_all_tasks_blocked()
    with trio.fail_after(10):
        assert [_correlation_id(await frames.next()) for _ in range(3)] == [0, 1, 2]


async def test_slow_reader_gets_every_response_in_order(socket_serve):
    """Far more response bytes than the socket buffers hold: the writer's backlog and the
    bounded queue take over, the reader waits, and nothing is lost or reordered."""
    client, connection = await socket_serve()
    count = 3000  # about 1.4 MB of ApiVersions responses
    sender_done = trio.Event()

    async def send_requests() -> None:
        await client.send_all(b"".join(_request(i) for i in range(count)))
        sender_done.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(send_requests)
        with trio.fail_after(10):
            # Do not read: the connection must stall on back-pressure, not buffer without bound.
            while connection._queued == 0:
                await trio.sleep(0.001)
            await trio.testing.wait_all_tasks_blocked()
        assert connection.requests_handled < count
        frames = _Frames(client)
        with trio.fail_after(20):
            ids = [_correlation_id(await frames.next()) for _ in range(count)]
        await sender_done.wait()
    assert ids == list(range(count))


class _EndlessTransport:
    """A client that always has the next request ready and a socket that always takes the
    answer: the lean transport's worst case, where no call ever has to wait."""

    def __init__(self, limit: int) -> None:
        self.request = _request(1)
        self.limit = limit
        self.received = 0
        self.answered = 0

    async def recv_into(self, view: memoryview) -> int:
        if self.received >= self.limit:
            return 0
        self.received += 1
        view[:len(self.request)] = self.request  # one request per read
        return len(self.request)

    def send_now(self, data) -> int:
        self.answered += 1
        return len(data)

    async def send_chunks(self, chunks) -> None:
        self.answered += len(chunks)

    async def aclose(self) -> None:
        pass


async def test_busy_connection_does_not_starve_other_tasks():
    transport = _EndlessTransport(limit=2000)
    connection = Connection(_broker(), trio.testing.memory_stream_pair()[1], "endless")
    connection.transport = transport
    seen_at = []

    async def other_task() -> None:
        await trio.sleep(0)
        seen_at.append(transport.answered)

    async with trio.open_nursery() as inner:
        inner.start_soon(connection.run)
        inner.start_soon(other_task)
    assert transport.answered == 2000
    assert seen_at and seen_at[0] < 100  # the other task ran long before the flood ended


async def test_oversize_frame_refused_over_a_socket(socket_serve):
    client, connection = await socket_serve(socket_request_max_bytes=1000)
    await client.send_all(struct.pack(">i", 1001))  # only the prefix: the body never comes
    with trio.fail_after(5):
        assert await client.receive_some(100) == b""
    assert connection.requests_handled == 0


async def test_large_frame_after_small_ones_in_one_read(socket_serve):
    """A large frame whose start shares a read with small frames is completed in its own buffer."""
    client, _ = await socket_serve()
    body = {"client_software_name": "kbroker-tests", "client_software_version": "1.0"}
    payload = protocol.encode_request(API_VERSIONS, 3, 9, "tests", body)
    big = payload + b"\x00" * (3 * RECEIVE_BYTES)  # trailing bytes after a body are ignored
    data = _request(1) + struct.pack(">i", len(big)) + big + _request(2)
    frames = _Frames(client)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(client.send_all, data)
        with trio.fail_after(10):
            assert [_correlation_id(await frames.next()) for _ in range(3)] == [1, 9, 2]


def _framed(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


async def _reader_over(data: bytes, max_frame_bytes: int = 1 << 24) -> FrameReader:
    client, server = trio.testing.memory_stream_pair()
    await client.send_all(data)
    await client.send_eof()
    return FrameReader(StreamTransport(server), max_frame_bytes)


async def test_held_frames_are_never_overwritten():
    """A frame still referenced (like a records slice after a produce) keeps its bytes even
    when the reader has gone on through many more frames and large ones."""
    small = [bytes([i % 251]) * (100 + i) for i in range(300)]
    large = [bytes([i + 1]) * (RECEIVE_BYTES * 2 + i) for i in range(3)]
    payloads = small[:150] + large + small[150:]
    reader = await _reader_over(b"".join(_framed(p) for p in payloads))
    held = []
    for index, payload in enumerate(payloads):
        frame = await reader.next_frame()
        assert bytes(frame) == payload
        held.append(frame if index % 7 == 0 or len(payload) > RECEIVE_BYTES else None)
    assert await reader.next_frame() is None
    for frame, payload in zip(held, payloads):
        if frame is not None:
            assert bytes(frame) == payload


async def test_released_buffers_are_reused():
    """With nothing holding a frame, large frames land in the same buffer (no per-frame allocation)."""
    payloads = [bytes([i]) * (RECEIVE_BYTES * 2 - i) for i in range(4)]
    reader = await _reader_over(b"".join(_framed(p) for p in payloads))
    owners = set()
    for payload in payloads:
        frame = await reader.next_frame()
        assert bytes(frame) == payload
        owners.add(id(frame.obj))
        del frame
    assert len(owners) == 1


async def test_reader_limits_and_truncation():
    reader = await _reader_over(struct.pack(">i", 5000), max_frame_bytes=4096)
    with pytest.raises(FrameTooLarge):
        await reader.next_frame()
    reader = await _reader_over(_framed(b"x" * 10)[:-3])
    assert await reader.next_frame() is None
    assert reader.truncated_bytes == 11
    reader = await _reader_over(_framed(b"y" * (RECEIVE_BYTES * 3))[:-5])
    assert await reader.next_frame() is None


def test_consume_drops_written_bytes():
    chunks = [b"abc", b"de", b"fghij"]
    assert [bytes(c) for c in consume(chunks, 0)] == [b"abc", b"de", b"fghij"]
    assert [bytes(c) for c in consume(chunks, 4)] == [b"e", b"fghij"]
    assert [bytes(c) for c in consume(chunks, 5)] == [b"fghij"]
    assert consume(chunks, 10) == []


async def test_large_fetch_over_a_socket_to_a_slow_reader(tmp_path):
    """A whole broker: 3 MB produced, fetched in one response that the socket cannot take
    at once; the client reads slowly and gets every batch back byte for byte."""
    from protocol.record_codec import build_batch
    from tests.server.test_broker_inprocess import _fetch, running_broker

    async with running_broker(tmp_path) as broker:
        await broker.controller.create_topic("big", 1, 1)
        left, right = trio.socket.socketpair()
        client = trio.SocketStream(left)
        broker.test_nursery.start_soon(Connection(broker, trio.SocketStream(right), "pair").run)
        batches = [build_batch([(None, bytes([n]) * 1000) for _ in range(1000)]) for n in range(3)]
        for correlation_id, batch in enumerate(batches):
            body = {"transactional_id": None, "acks": -1, "timeout_ms": 1000, "topic_data": [
                {"name": "big", "partition_data": [{"index": 0, "records": batch}]}]}
            payload = protocol.encode_request(0, 9, correlation_id, "t", body)
            await client.send_all(struct.pack(">i", len(payload)) + payload)
        frames = _Frames(client)
        for correlation_id in range(3):
            got, response = protocol.decode_response(0, 9, await frames.next())
            assert got == correlation_id
            assert response["responses"][0]["partition_responses"][0]["error_code"] == 0
        fetch = _fetch("big", 0, 0)
        fetch["max_bytes"] = fetch["topics"][0]["partitions"][0]["partition_max_bytes"] = 1 << 24
        payload = protocol.encode_request(1, 12, 99, "t", fetch)
        await client.send_all(struct.pack(">i", len(payload)) + payload)
        received = bytearray()
        with trio.fail_after(20):
            while len(received) < 4 or len(received) < 4 + struct.unpack_from(">i", received)[0]:
                data = await client.receive_some(4096)  # small reads: the broker must wait on us
                assert data
                received += data
        got, response = protocol.decode_response(1, 12, bytes(received[4:]))
        assert got == 99
        records = bytes(response["responses"][0]["partitions"][0]["records"])
        assert len(records) == sum(len(b) for b in batches)
        from protocol.record_codec import decode_records

        values = [r.value for b in decode_records(records) for r in b.records]
        assert values == [bytes([n]) * 1000 for n in range(3) for _ in range(1000)]
        await client.aclose()


def _produce_frame(topic: str, correlation_id: int, value: bytes) -> bytes:
    from protocol.record_codec import build_batch

    body = {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": build_batch([(None, value)])}]}]}
    payload = protocol.encode_request(0, 9, correlation_id, "t", body)
    return struct.pack(">i", len(payload)) + payload


async def _socket_client(broker) -> trio.SocketStream:
    left, right = trio.socket.socketpair()
    broker.test_nursery.start_soon(Connection(broker, trio.SocketStream(right), "pair").run)
    return trio.SocketStream(left)


async def test_pipelined_produces_answered_in_order(tmp_path):
    """A burst of produces (answers may leave together) comes back complete and in order."""
    from tests.server.test_broker_inprocess import running_broker

    async with running_broker(tmp_path) as broker:
        await broker.controller.create_topic("burst", 1, 1)
        client = await _socket_client(broker)
        await client.send_all(b"".join(_produce_frame("burst", i, b"v%d" % i) for i in range(100)))
        frames = _Frames(client)
        with trio.fail_after(20):
            for i in range(100):
                got, response = protocol.decode_response(0, 9, await frames.next())
                partition = response["responses"][0]["partition_responses"][0]
                assert (got, partition["error_code"], partition["base_offset"]) == (i, 0, i)
        await client.aclose()


async def test_produce_answer_not_held_behind_a_long_poll(tmp_path):
    """A produce followed at once by a fetch that will wait: the produce's answer leaves
    before the fetch starts waiting, not when it ends."""
    from tests.server.test_broker_inprocess import _fetch, running_broker

    async with running_broker(tmp_path) as broker:
        await broker.controller.create_topic("data", 1, 1)
        await broker.controller.create_topic("empty", 1, 1)
        client = await _socket_client(broker)
        fetch = protocol.encode_request(1, 12, 2, "t", _fetch("empty", 0, 60_000))
        await client.send_all(_produce_frame("data", 1, b"x") + struct.pack(">i", len(fetch)) + fetch)
        with trio.fail_after(10):  # the fetch would answer only after 60 s
            got, response = protocol.decode_response(0, 9, await _Frames(client).next())
        assert got == 1
        assert response["responses"][0]["partition_responses"][0]["error_code"] == 0
        await client.aclose()


async def test_large_frame_in_small_pieces_over_tcp(nursery):
    """A slow client's large frame: the reader asks the kernel to wake it only once the rest
    of the frame is there (SO_RCVLOWAT), never for more than the rest, and drops the mark
    again once the frame is complete, so the answer comes and small frames flow after it."""
    import socket as stdlib_socket

    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    client = await trio.open_tcp_stream("127.0.0.1", port)
    server = await listeners[0].accept()
    connection = Connection(_broker(), server, "tcp")
    nursery.start_soon(connection.run)
    server_sock = connection.transport._sock

    def low_water() -> int:
        return server_sock.getsockopt(stdlib_socket.SOL_SOCKET, stdlib_socket.SO_RCVLOWAT)

    body = {"client_software_name": "kbroker-tests", "client_software_version": "1.0"}
    payload = protocol.encode_request(API_VERSIONS, 3, 7, "tests", body)
    big = struct.pack(">i", len(payload) + 4 * RECEIVE_BYTES) + payload + b"\x00" * (4 * RECEIVE_BYTES)
    frames = _Frames(client)
    with trio.fail_after(10):
        await client.send_all(big[:RECEIVE_BYTES // 2])
        while low_water() == 1:  # the reader parks with a mark of the rest of the frame
            await trio.sleep(0.001)
        assert 1 < low_water() <= len(big) - RECEIVE_BYTES // 2
        position = RECEIVE_BYTES // 2
        while position < len(big):  # the rest in pieces; the last one smaller than the minimum
            await client.send_all(big[position:position + 20000])
            position += 20000
        assert _correlation_id(await frames.next()) == 7
        assert low_water() == 1
        await client.send_all(_request(8))
        assert _correlation_id(await frames.next()) == 8
    await client.aclose()
    for listener in listeners:
        await listener.aclose()

"""A whole Broker in-process under trio's MockClock, clients on in-memory streams.

Time is virtual (autojump), so the long-poll timings are exact and the tests take no real
waiting: an empty fetch returns at exactly max_wait_ms; a fetch woken by an append returns
at the virtual instant of the append.
"""

from __future__ import annotations

import struct
from contextlib import asynccontextmanager
from typing import AsyncIterator

import pytest
import trio
import trio.testing

import protocol
from kbroker.broker import Broker
from kbroker.config import build_config
from kbroker.connection import Connection
from protocol.record_codec import build_batch

PRODUCE, FETCH, API_VERSIONS = 0, 1, 18


class MemoryClient:
    """Requests over one end of a memory stream pair served by a Connection."""

    def __init__(self, stream) -> None:
        self.stream = stream
        self.correlation_id = 0
        self.buffer = bytearray()

    async def send(self, api_key: int, version: int, body: dict) -> int:
        self.correlation_id += 1
        payload = protocol.encode_request(api_key, version, self.correlation_id, "mem", body)
        await self.stream.send_all(struct.pack(">i", len(payload)) + payload)
        return self.correlation_id

    async def receive(self, api_key: int, version: int) -> tuple[int, dict]:
        while len(self.buffer) < 4 or len(self.buffer) < 4 + struct.unpack_from(">i", self.buffer)[0]:
            data = await self.stream.receive_some(65536)
            assert data, "connection closed"
            self.buffer += data
        size = struct.unpack_from(">i", self.buffer)[0]
        frame = bytes(self.buffer[4:4 + size])
        del self.buffer[:4 + size]
        return protocol.decode_response(api_key, version, frame)

    async def request(self, api_key: int, version: int, body: dict) -> dict:
        correlation_id = await self.send(api_key, version, body)
        got, response = await self.receive(api_key, version)
        assert got == correlation_id
        return response


def _fetch(topic: str, offset: int, max_wait_ms: int) -> dict:
    part = {"partition": 0, "current_leader_epoch": -1, "fetch_offset": offset, "log_start_offset": -1,
            "partition_max_bytes": 1 << 20}
    return {"replica_id": -1, "max_wait_ms": max_wait_ms, "min_bytes": 1, "max_bytes": 1 << 20,
            "isolation_level": 0, "session_id": 0, "session_epoch": -1,
            "topics": [{"topic": topic, "partitions": [part]}], "forgotten_topics_data": [], "rack_id": ""}


def _produce(topic: str, value: bytes) -> dict:
    return {"transactional_id": None, "acks": 1, "timeout_ms": 1000, "topic_data": [
        {"name": topic, "partition_data": [{"index": 0, "records": build_batch([(None, value)])}]}]}


@asynccontextmanager
async def running_broker(data_dir, **overrides: str) -> AsyncIterator[Broker]:
    """A Broker running in a nursery of its own; stopped (gracefully) on exit."""
    config = build_config({"listeners": "PLAINTEXT://127.0.0.1:0", "log.dirs": str(data_dir), **overrides})
    broker = Broker(config)
    async with trio.open_nursery() as nursery:
        await nursery.start(broker.run)
        broker.test_nursery = nursery
        try:
            yield broker
        finally:
            broker.request_stop()


async def _client(broker) -> MemoryClient:
    client_stream, server_stream = trio.testing.memory_stream_pair()
    broker.test_nursery.start_soon(Connection(broker, server_stream, "memory").run)
    return MemoryClient(client_stream)


async def test_empty_fetch_waits_exactly_max_wait(tmp_path, autojump_clock):
    async with running_broker(tmp_path) as broker:
        await broker.controller.create_topic("quiet", 1, 1)
        client = await _client(broker)
        started = trio.current_time()
        response = await client.request(FETCH, 12, _fetch("quiet", 0, 7_000))
        assert trio.current_time() - started == pytest.approx(7.0, abs=0.01)
        assert response["responses"][0]["partitions"][0]["records"] in (b"", None)
        await client.stream.aclose()

async def test_append_wakes_long_poll_at_once(tmp_path, autojump_clock):
    async with running_broker(tmp_path) as broker:
        await broker.controller.create_topic("busy", 1, 1)
        fetcher, producer = await _client(broker), await _client(broker)
        started = trio.current_time()
        await fetcher.send(FETCH, 12, _fetch("busy", 0, 30_000))
        await trio.sleep(3)  # virtual time: the fetch is parked for 3 s before the append
        assert (await producer.request(PRODUCE, 9, _produce("busy", b"wake")))["responses"][0][
            "partition_responses"][0]["error_code"] == 0
        _, response = await fetcher.receive(FETCH, 12)
        assert trio.current_time() - started == pytest.approx(3.0, abs=0.01)
        assert b"wake" in bytes(response["responses"][0]["partitions"][0]["records"])
        await fetcher.stream.aclose()
        await producer.stream.aclose()

async def test_stop_wakes_long_poll(tmp_path, autojump_clock):
    async with running_broker(tmp_path) as broker:
        await broker.controller.create_topic("stopping", 1, 1)
        client = await _client(broker)
        started = trio.current_time()
        await client.send(FETCH, 12, _fetch("stopping", 0, 60_000))
        await trio.testing.wait_all_tasks_blocked()
        broker.request_stop()
        _, response = await client.receive(FETCH, 12)
        assert trio.current_time() - started < 1.0
        assert response["responses"][0]["partitions"][0]["error_code"] == 0
        await client.stream.aclose()


async def test_idle_connections_are_closed(tmp_path, autojump_clock):
    """connections.max.idle.ms: a TCP client silent that long is disconnected (within a
    tenth more), one that keeps talking is not."""
    async with running_broker(tmp_path, **{"connections.max.idle.ms": "60000"}) as broker:
        port = broker.bound_endpoints[0].port
        silent = MemoryClient(await trio.open_tcp_stream("127.0.0.1", port))
        chatty = MemoryClient(await trio.open_tcp_stream("127.0.0.1", port))
        body = {"client_software_name": "t", "client_software_version": "1"}
        await silent.request(API_VERSIONS, 3, body)
        await chatty.request(API_VERSIONS, 3, body)
        started = trio.current_time()

        async def keep_talking() -> None:  # 100 s of activity, one request every 10 s
            for _ in range(10):
                await trio.sleep(10)
                assert (await chatty.request(API_VERSIONS, 3, body))["error_code"] == 0

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_talking)
            assert await silent.stream.receive_some(100) == b""  # closed by the broker
            assert 60 <= trio.current_time() - started <= 66.01
        await silent.stream.aclose()
        await chatty.stream.aclose()

"""Connection handling over in-memory streams: framing, order, limits, bad input.

The broker is a stand-in with only what ApiVersions needs, so these tests exercise the
server layer alone (no storage or metadata).
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
from kbroker.connection import Connection
from kbroker.dispatch import supported_versions

API_VERSIONS = 18


def _broker(**overrides):
    config = build_config({k.replace("_", "."): str(v) for k, v in overrides.items()})
    image = SimpleNamespace(offset=7, cluster_id="test-cluster")
    return SimpleNamespace(config=config, controller=SimpleNamespace(image=image))


def _frame(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _api_versions_request(version: int, correlation_id: int) -> bytes:
    body = {"client_software_name": "kbroker-tests", "client_software_version": "1.0"}
    return _frame(protocol.encode_request(API_VERSIONS, version, correlation_id, "tests", body))


async def _read_frame(stream) -> bytes | None:
    buffer = bytearray()
    while len(buffer) < 4:
        data = await stream.receive_some(4 - len(buffer))
        if not data:
            return None
        buffer += data
    size = struct.unpack(">i", buffer)[0]
    body = bytearray()
    while len(body) < size:
        data = await stream.receive_some(size - len(body))
        if not data:
            return None
        body += data
    return bytes(body)


async def _closed(stream) -> bool:
    """True once the server side has closed (EOF), reading and discarding anything else."""
    with trio.fail_after(5):
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return True


@pytest.fixture
async def serve(nursery):
    """Start a Connection on one end of a memory stream pair; yields the client end."""

    async def start(**overrides):
        client, server = trio.testing.memory_stream_pair()
        connection = Connection(_broker(**overrides), server, "memory")
        nursery.start_soon(connection.run)
        return client, connection

    return start


async def test_api_versions_lists_every_handler(serve):
    client, _ = await serve()
    await client.send_all(_api_versions_request(3, 11))
    frame = await _read_frame(client)
    correlation_id, body = protocol.decode_response(API_VERSIONS, 3, frame)
    assert correlation_id == 11
    assert body["error_code"] == 0
    served = {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}
    assert served == supported_versions()
    assert served[0] == (0, 11) and served[1] == (0, 17) and served[2] == (0, 9)
    assert {f["name"] for f in body["finalized_features"]} == {"metadata.version"}


async def test_pipelined_requests_answered_in_order(serve):
    client, _ = await serve()
    await client.send_all(b"".join(_api_versions_request(v, 100 + v) for v in (0, 1, 2, 3, 4)))
    ids = []
    for version in (0, 1, 2, 3, 4):
        correlation_id, _ = protocol.decode_response(API_VERSIONS, version, await _read_frame(client))
        ids.append(correlation_id)
    assert ids == [100, 101, 102, 103, 104]


async def test_unsupported_api_versions_version_gets_v0_error(serve):
    client, _ = await serve()
    # A version newer than any we know: header v2 layout, body unknown to us.
    header = struct.pack(">hhih", API_VERSIONS, 99, 5, 5) + b"tests" + b"\x00"
    await client.send_all(_frame(header))
    correlation_id, body = protocol.decode_response(API_VERSIONS, 0, await _read_frame(client))
    assert correlation_id == 5
    assert body["error_code"] == 35  # UNSUPPORTED_VERSION
    assert {k["api_key"] for k in body["api_keys"]} == set(supported_versions())


async def test_unknown_api_key_closes_connection(serve):
    client, _ = await serve()
    await client.send_all(_frame(struct.pack(">hhih", 9999, 0, 1, -1)))
    assert await _closed(client)


async def test_oversized_frame_refused_before_reading(serve):
    client, _ = await serve(socket_request_max_bytes=1000)
    await client.send_all(struct.pack(">i", 1001))  # only the prefix: the body never comes
    assert await _closed(client)


async def test_negative_size_closes(serve):
    client, _ = await serve()
    await client.send_all(struct.pack(">i", -4))
    assert await _closed(client)


async def test_malformed_request_closes_only_that_connection(serve, caplog):
    bad, _ = await serve()
    good, _ = await serve()
    # A Produce v9 header followed by a body that ends mid-field.
    await bad.send_all(_frame(struct.pack(">hhih", 0, 9, 1, -1) + b"\x00\x05\xff"))
    assert await _closed(bad)
    await good.send_all(_api_versions_request(3, 1))
    correlation_id, body = protocol.decode_response(API_VERSIONS, 3, await _read_frame(good))
    assert (correlation_id, body["error_code"]) == (1, 0)
    assert sum("malformed request" in r.getMessage() for r in caplog.records) == 1


async def test_truncated_frame_then_eof(serve):
    client, connection = await serve()
    await client.send_all(struct.pack(">i", 100) + b"\x00" * 10)
    await client.send_eof()
    assert await _closed(client)


async def test_invalid_client_software_name(serve):
    client, _ = await serve()
    body = {"client_software_name": "bad name!", "client_software_version": "1"}
    await client.send_all(_frame(protocol.encode_request(API_VERSIONS, 3, 9, "t", body)))
    _, response = protocol.decode_response(API_VERSIONS, 3, await _read_frame(client))
    assert response["error_code"] == 42  # INVALID_REQUEST


async def test_close_when_idle_closes_an_idle_connection(serve):
    client, connection = await serve()
    await client.send_all(_api_versions_request(3, 1))
    await _read_frame(client)
    await trio.testing.wait_all_tasks_blocked()
    connection.close_when_idle()
    assert await _closed(client)


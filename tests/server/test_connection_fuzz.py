"""Random frames never escape a Connection: it answers or closes, and the task ends cleanly."""

from __future__ import annotations

import struct
from types import SimpleNamespace

import trio
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import kbroker.handlers  # noqa: F401
import protocol
from kbroker.config import build_config
from kbroker.connection import Connection

CONFIG = build_config({"socket.request.max.bytes": "4096"})


def _broker():
    # ApiVersions is all this stand-in can serve; other handlers fail on it and the
    # connection must then close, not crash.
    return SimpleNamespace(config=CONFIG, controller=SimpleNamespace(image=SimpleNamespace(offset=0)))


async def _exchange(payload: bytes) -> bytes:
    client, server = trio.testing.memory_stream_pair()
    received = bytearray()
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(Connection(_broker(), server, "fuzz").run)
            await client.send_all(payload)
            await client.send_eof()
            while True:
                data = await client.receive_some(65536)
                if not data:
                    break
                received += data
    return bytes(received)


def _valid_header(api_key: int, version: int) -> bytes:
    return protocol.encode_request(api_key, version, 1, "fuzz", {})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_frame_is_answered_or_closed(body):
    trio.run(_exchange, struct.pack(">i", len(body)) + body)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([0, 1, 2, 3, 18, 23, 35]), st.integers(0, 11), st.data())
def test_mutated_valid_request(api_key, version, data):
    low, high = protocol.api_versions()[api_key]
    frame = bytearray(_valid_header(api_key, min(max(version, low), high)))
    for _ in range(data.draw(st.integers(0, 4))):
        if frame:
            frame[data.draw(st.integers(0, len(frame) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(frame)))
    frame = frame[:cut] if data.draw(st.booleans()) else frame
    trio.run(_exchange, struct.pack(">i", len(frame)) + bytes(frame))

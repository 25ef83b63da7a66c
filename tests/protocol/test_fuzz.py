"""Fuzzing decode_request / decode_response: only DecodeError may escape."""

from __future__ import annotations

import functools
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from protocol import DecodeError, messages
from protocol.lower import api_spec

from tests.protocol.strategies import message_values

SETTINGS = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)

_KEYS = sorted(messages.VALID_VERSIONS)


def _decode_request_or_error(frame: bytes) -> None:
    try:
        header, body = protocol.decode_request(frame)
    except DecodeError:
        return
    assert isinstance(header, dict) and isinstance(body, dict)


@SETTINGS
@given(frame=st.binary(max_size=200))
def test_random_frames(frame: bytes) -> None:
    _decode_request_or_error(frame)


@SETTINGS
@given(
    api_key=st.sampled_from(_KEYS),
    version=st.integers(0, 20),
    rest=st.binary(max_size=120),
)
def test_random_bodies_behind_a_valid_header(api_key: int, version: int, rest: bytes) -> None:
    """A plausible header makes the body decoder run on garbage."""
    frame = api_key.to_bytes(2, "big") + version.to_bytes(2, "big") + b"\x00\x00\x00\x01\x00\x00"
    if version >= 1 and rest[:1] == b"\x00":
        frame += rest  # also reaches the v2 header's tag section
    _decode_request_or_error(frame + rest)


@functools.cache
def _frame_strategy(api_key: int, version: int) -> st.SearchStrategy:
    return message_values(api_spec(api_key, False), version).map(
        lambda value: protocol.encode_request(api_key, version, 3, "fuzz", value)
    )


@st.composite
def _mutated_frames(draw: st.DrawFn) -> bytes:
    api_key = draw(st.sampled_from(_KEYS))
    low, high = messages.VALID_VERSIONS[api_key]
    version = draw(st.integers(low, high))
    frame = bytearray(draw(_frame_strategy(api_key, version)))
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 4))):
        action = rng.randrange(4)
        pos = rng.randrange(len(frame) + 1)
        if action == 0 and frame:  # flip a byte
            frame[min(pos, len(frame) - 1)] = rng.randrange(256)
        elif action == 1:  # truncate
            del frame[pos:]
        elif action == 2:  # insert junk
            frame[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 6)))
        else:  # extreme length-like value
            frame[pos:pos + 4] = rng.choice([b"\x7f\xff\xff\xff", b"\xff\xff\xff\xfe", b"\xff\xff\xff\xff\x0f"])
    return bytes(frame)


@SETTINGS
@given(frame=_mutated_frames())
def test_mutated_valid_frames(frame: bytes) -> None:
    _decode_request_or_error(frame)


@SETTINGS
@given(api_key=st.sampled_from(_KEYS), data=st.data())
def test_mutated_responses(api_key: int, data: st.DataObject) -> None:
    low, high = messages.VALID_VERSIONS[api_key]
    version = data.draw(st.integers(low, high))
    value = data.draw(message_values(api_spec(api_key, True), version))
    frame = bytearray(protocol.encode_response(api_key, version, 1, value))
    cut = data.draw(st.integers(0, len(frame)))
    flip = data.draw(st.integers(0, 255))
    if cut < len(frame):
        frame[cut] ^= flip
    try:
        protocol.decode_response(api_key, version, bytes(frame[: data.draw(st.integers(cut, len(frame)))]))
    except DecodeError:
        pass


@pytest.mark.parametrize("length", [0, 1, 7, 8, 9, 10])
def test_short_frames(length: int) -> None:
    frame = b"\x00\x03\x00\x01\x00\x00\x00\x01\x00\x01"[:length]
    with pytest.raises(DecodeError):
        protocol.decode_request(frame)

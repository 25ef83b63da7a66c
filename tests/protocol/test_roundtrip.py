"""Round trips for every (API key, version, direction) and every data schema.

encode -> decode gives the value back (all fields of the version, tagged ones and unknown
tags included) and decode -> encode gives the bytes back; every byte is consumed.
"""

from __future__ import annotations

import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from protocol import messages
from protocol.lower import api_spec, data_spec

from tests.protocol.strategies import message_values

CASES = [
    (api_key, version, is_response)
    for api_key, (low, high) in sorted(messages.VALID_VERSIONS.items())
    for version in range(low, high + 1)
    for is_response in (False, True)
]
DATA_CASES = [
    (name, version) for name in sorted(messages.DATA_MODULES) for version in data_spec(name).versions()
]

FAST = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
EXHAUSTIVE = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _case_id(case: tuple) -> str:
    api_key, version, is_response = case
    return f"{messages.API_NAMES[api_key]}-v{version}-{'resp' if is_response else 'req'}"


@functools.cache
def _strategy(api_key: int, version: int, is_response: bool) -> st.SearchStrategy:
    return message_values(api_spec(api_key, is_response), version)


@functools.cache
def _data_strategy(name: str, version: int) -> st.SearchStrategy:
    return message_values(data_spec(name), version)


def check_body(api_key: int, version: int, is_response: bool, value: dict) -> None:
    encoded = protocol.encode_body(api_key, version, is_response, value)
    decoded = protocol.decode_body(api_key, version, is_response, encoded)
    assert decoded == value
    assert protocol.encode_body(api_key, version, is_response, decoded) == encoded


def check_frame(api_key: int, version: int, is_response: bool, value: dict) -> None:
    if is_response:
        frame = protocol.encode_response(api_key, version, 12345, value)
        correlation_id, decoded = protocol.decode_response(api_key, version, frame)
        assert correlation_id == 12345
        assert decoded == value
        assert protocol.encode_response(api_key, version, 12345, decoded) == frame
    else:
        frame = protocol.encode_request(api_key, version, -7, "client-\u00e9", value)
        header, decoded = protocol.decode_request(frame)
        assert header["request_api_key"] == api_key
        assert header["request_api_version"] == version
        assert header["correlation_id"] == -7
        # header v0 (ControlledShutdown v0 only) has no client id
        expected_client = None if (api_key, version) == (7, 0) else "client-\u00e9"
        assert header["client_id"] == expected_client
        assert decoded == value
        body = protocol.encode_body(api_key, version, False, value)
        assert frame.endswith(body)


@pytest.mark.parametrize("case", CASES, ids=_case_id)
@FAST
@given(data=st.data())
def test_message_round_trip(case: tuple, data: st.DataObject) -> None:
    value = data.draw(_strategy(*case))
    check_body(*case, value)
    check_frame(*case, value)


@pytest.mark.parametrize("case", DATA_CASES, ids=lambda c: f"{c[0]}-v{c[1]}")
@FAST
@given(data=st.data())
def test_data_round_trip(case: tuple, data: st.DataObject) -> None:
    name, version = case
    value = data.draw(_data_strategy(name, version))
    encoded = protocol.encode_data(name, version, value)
    decoded = protocol.decode_data(name, version, encoded)
    assert decoded == value
    assert protocol.encode_data(name, version, decoded) == encoded


@pytest.mark.slow
@pytest.mark.parametrize("case", CASES, ids=_case_id)
@EXHAUSTIVE
@given(data=st.data())
def test_message_round_trip_exhaustive(case: tuple, data: st.DataObject) -> None:
    value = data.draw(_strategy(*case))
    check_body(*case, value)
    check_frame(*case, value)


@pytest.mark.slow
@pytest.mark.parametrize("case", DATA_CASES, ids=lambda c: f"{c[0]}-v{c[1]}")
@EXHAUSTIVE
@given(data=st.data())
def test_data_round_trip_exhaustive(case: tuple, data: st.DataObject) -> None:
    name, version = case
    value = data.draw(_data_strategy(name, version))
    encoded = protocol.encode_data(name, version, value)
    assert protocol.decode_data(name, version, encoded) == value


@pytest.mark.parametrize("case", CASES, ids=_case_id)
def test_empty_value_takes_defaults(case: tuple) -> None:
    """Missing keys take the spec defaults; decoding reports every field of the version."""
    api_key, version, is_response = case
    encoded = protocol.encode_body(api_key, version, is_response, {})
    decoded = protocol.decode_body(api_key, version, is_response, encoded)
    spec = api_spec(api_key, is_response)
    assert set(decoded) == {f.name for f in spec.fields if f.present(version)}
    assert protocol.encode_body(api_key, version, is_response, decoded) == encoded

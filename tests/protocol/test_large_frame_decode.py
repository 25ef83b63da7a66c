"""decode_request reads a large non-bytes frame in place: the same result as from bytes.

The broker receives large frames into a bytearray and hands a memoryview to
decode_request, which then parses through a small stream over the view instead of copying
the frame into BytesIO. Every request schema must decode identically either way, malformed
input must fail the same way, and records must stay slices of the caller's buffer.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from protocol.lower import api_spec
from tests.protocol.strategies import message_values

PAD = b"\x00" * protocol.VIEW_STREAM_MIN_BYTES  # requests may carry trailing bytes (ignored)
API_KEYS = sorted(protocol.api_versions())


def _plain(value):
    """Comparable form: memoryviews (records) become bytes."""
    if isinstance(value, memoryview):
        return value.tobytes()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def _outcome(frame):
    try:
        return _plain(protocol.decode_request(frame))
    except protocol.UnsupportedVersionError as exc:
        return ("unsupported", exc.header)
    except protocol.DecodeError:
        return "DecodeError"


@st.composite
def _requests(draw):
    api_key = draw(st.sampled_from(API_KEYS))
    low, high = protocol.api_versions()[api_key]
    version = draw(st.integers(low, high))
    body = draw(message_values(api_spec(api_key, False), version, unknown_tags=False))
    return protocol.encode_request(api_key, version, draw(st.integers(0, 2**31 - 1)), "t", body)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests())
def test_view_decode_equals_bytes_decode(frame):
    framed = frame + PAD
    buffer = bytearray(framed)
    assert _outcome(memoryview(buffer)) == _outcome(framed)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_requests(), st.data())
def test_damaged_frames_fail_the_same_way(frame, data):
    damaged = bytearray(frame)
    for _ in range(data.draw(st.integers(1, 4))):
        damaged[data.draw(st.integers(0, len(damaged) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(damaged)))
    # A big declared length near the end must not read past the frame in either path.
    framed = bytes(damaged[:cut]) + PAD
    assert _outcome(memoryview(bytearray(framed))) == _outcome(framed)


def test_records_are_slices_of_the_callers_buffer():
    records = bytes(range(256)) * 1024
    body = {"transactional_id": None, "acks": -1, "timeout_ms": 1000,
            "topic_data": [{"name": "t", "partition_data": [{"index": 0, "records": records}]}]}
    buffer = bytearray(protocol.encode_request(0, 9, 1, "c", body))
    _, decoded = protocol.decode_request(memoryview(buffer))
    view = decoded["topic_data"][0]["partition_data"][0]["records"]
    assert view.obj is buffer and view.tobytes() == records


@st.composite
def _responses(draw):
    api_key = draw(st.sampled_from(API_KEYS))
    low, high = protocol.api_versions()[api_key]
    version = draw(st.integers(low, high))
    body = draw(message_values(api_spec(api_key, True), version))
    return api_key, version, body


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_responses(), st.integers(-(2**31), 2**31 - 1))
def test_response_chunks_equal_the_frame(response, correlation_id):
    api_key, version, body = response
    chunks = protocol.encode_response_chunks(api_key, version, correlation_id, body)
    assert b"".join(chunks) == protocol.encode_response_frame(api_key, version, correlation_id, body)


def test_large_records_are_sent_as_given():
    records = [bytes([i]) * (protocol.CHUNK_MIN_BYTES + i) for i in range(3)]
    partitions = [{"partition_index": i, "error_code": 0, "high_watermark": 10,
                   "last_stable_offset": 10, "log_start_offset": 0, "aborted_transactions": [],
                   "preferred_read_replica": -1, "records": r} for i, r in enumerate(records)]
    body = {"throttle_time_ms": 0, "error_code": 0, "session_id": 0,
            "responses": [{"topic": "t", "partitions": partitions}]}
    chunks = protocol.encode_response_chunks(1, 11, 5, body)
    for r in records:
        assert any(chunk is r for chunk in chunks)
    frame = b"".join(chunks)
    assert frame == protocol.encode_response_frame(1, 11, 5, body)
    correlation_id, decoded = protocol.decode_response(1, 11, frame[4:])
    assert correlation_id == 5
    assert [bytes(p["records"]) for p in decoded["responses"][0]["partitions"]] == records

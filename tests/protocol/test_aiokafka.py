"""Cross-check against aiokafka 0.14's hand-written message structs (aiokafka.protocol).

For every request/response struct aiokafka defines and we know: our encoding of a generated
value is read by aiokafka completely, gives the same values (positionally) and aiokafka
encodes its decoded struct back into exactly our bytes.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import pkgutil
from io import BytesIO

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import protocol
from protocol import messages
from protocol.lower import api_spec

from tests.protocol.legacy_compare import SchemaTypes, assert_same_plain, plain_ours, plain_theirs
from tests.protocol.strategies import message_values

import aiokafka.protocol as aiokafka_protocol
from aiokafka.protocol.api import RequestStruct, Response  # noqa: E402
from aiokafka.protocol.types import Array, CompactArray, Schema, TaggedFields  # noqa: E402

TYPES = SchemaTypes(schema=Schema, array=Array, tagged=TaggedFields)
assert issubclass(CompactArray, Array)

#: aiokafka structs that contradict Kafka's spec (checked by hand against the JSON); skipped.
KNOWN_DEFECTS = {
    "DescribeAclsRequest_v2": "declared flexible but reuses the v1 (non-compact) schema",
    "DescribeAclsResponse_v2": "declared flexible but reuses the v1 (non-compact) schema",
    "OffsetRequest_v4": "current_leader_epoch is Int64, the spec says int32 (aiokafka never sends v4)",
    "OffsetRequest_v5": "current_leader_epoch is Int64, the spec says int32 (aiokafka never sends v5)",
}

SETTINGS = settings(
    max_examples=3,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


def _classes() -> list[type]:
    found: dict[str, type] = {}
    for info in pkgutil.iter_modules(aiokafka_protocol.__path__):
        module = importlib.import_module(f"aiokafka.protocol.{info.name}")
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(cls, (RequestStruct, Response))
                and isinstance(getattr(cls, "API_KEY", None), int)
                and isinstance(getattr(cls, "API_VERSION", None), int)
                and isinstance(getattr(cls, "SCHEMA", None), Schema)
            ):
                found[name] = cls
    return [found[name] for name in sorted(found)]


CASES = [
    cls
    for cls in _classes()
    if cls.API_KEY in messages.VALID_VERSIONS
    and messages.VALID_VERSIONS[cls.API_KEY][0] <= cls.API_VERSION <= messages.VALID_VERSIONS[cls.API_KEY][1]
]


def test_cases_cover_aiokafka() -> None:
    assert len(CASES) > 150


@functools.cache
def _values(api_key: int, version: int, is_response: bool) -> st.SearchStrategy:
    return message_values(api_spec(api_key, is_response), version, unknown_tags=False)


def check(cls: type, data: st.DataObject) -> None:
    """Our bytes -> aiokafka struct: all consumed, same values, same bytes back."""
    if cls.__name__ in KNOWN_DEFECTS:
        pytest.skip(f"aiokafka defect: {KNOWN_DEFECTS[cls.__name__]}")
    api_key, version = cls.API_KEY, cls.API_VERSION
    is_response = issubclass(cls, Response)
    spec = api_spec(api_key, is_response)
    value = data.draw(_values(api_key, version, is_response))
    ours = protocol.encode_body(api_key, version, is_response, value)
    stream = BytesIO(ours)
    decoded = cls.decode(stream)
    assert stream.read() == b"", "aiokafka did not consume the whole body"
    assert decoded.encode() == ours
    theirs = plain_theirs([decoded.get_item(n) for n in cls.SCHEMA.names], cls.SCHEMA, TYPES)
    assert_same_plain(plain_ours(value, spec.fields, version, spec.is_flexible(version)), theirs)


@pytest.mark.parametrize("cls", CASES, ids=lambda c: c.__name__)
@SETTINGS
@given(data=st.data())
def test_aiokafka_structs(cls: type, data: st.DataObject) -> None:
    check(cls, data)


@pytest.mark.slow
@pytest.mark.parametrize("cls", CASES, ids=lambda c: c.__name__)
@settings(SETTINGS, max_examples=100)
@given(data=st.data())
def test_aiokafka_structs_exhaustive(cls: type, data: st.DataObject) -> None:
    check(cls, data)

"""Comparing our values with hand-written Struct/Schema codecs (kafka-python's legacy
`kafka.protocol.old` and aiokafka's `aiokafka.protocol`), which decode into positional tuples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.spec import FieldSpec


@dataclass(frozen=True)
class SchemaTypes:
    """The classes one library uses for schemas, arrays, tag sections and bit fields."""

    schema: type
    array: type
    tagged: Any
    bitfield: Any = None


def normalise(value: Any) -> Any:
    """memoryviews to bytes, tuples to lists, recursively."""
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, dict):
        return {k: normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    return value


def bitfield(value: int) -> set[int] | None:
    """The set-of-bits view of an authorized-operations int32 (None for only bit 31)."""
    bits = {i for i in range(32) if (value & 0xFFFFFFFF) >> i & 1}
    return None if bits == {31} else bits


def collapse(item: list) -> Any:
    """Legacy schemas write a one-field struct array as a plain array: compare them so."""
    return item[0] if len(item) == 1 else item


def plain_theirs(value: Any, field: Any, types: SchemaTypes) -> Any:
    """Decoded legacy tuples -> nested lists, nested groups inlined, tag sections dropped."""
    if isinstance(field, types.schema):
        out: list = []
        for v, f in zip(value, field.fields):
            if f is types.tagged:
                continue
            if isinstance(f, types.schema):
                out.extend(plain_theirs(v, f, types))  # a group of fields, inline on the wire
            else:
                out.append(plain_theirs(v, f, types))
        return out
    if isinstance(field, types.array):
        if value is None:
            return None
        items = [plain_theirs(v, field.array_of, types) for v in value]
        if isinstance(field.array_of, types.schema):
            items = [collapse(item) for item in items]
        return items
    if types.bitfield is not None and field is types.bitfield:
        return value
    return normalise(value)


def plain_ours(value: dict, fields: tuple[FieldSpec, ...], version: int, flexible: bool) -> list:
    """Our value -> the same positional shape (tagged fields left out)."""
    out = []
    for f in fields:
        if not f.present(version) or (flexible and f.is_tagged(version)):
            continue
        v = value[f.name]
        if f.fields is not None and v is not None:
            if f.array:
                v = [collapse(plain_ours(item, f.fields, version, flexible)) for item in v]
            else:
                v = plain_ours(v, f.fields, version, flexible)
        out.append(normalise(v))
    return out


def assert_same_plain(ours: Any, theirs: Any) -> None:
    """Positional comparison; int32 bit fields compare through their set-of-bits view."""
    if isinstance(ours, list) and isinstance(theirs, list):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same_plain(a, b)
    elif isinstance(ours, int) and not isinstance(ours, bool) and (theirs is None or isinstance(theirs, set)):
        assert bitfield(ours) == theirs
    else:
        assert ours == theirs

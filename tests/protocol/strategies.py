"""Hypothesis strategies that build message values from the generated field tables.

A value holds every field the version has (tagged ones included), so that decoding its
encoding must give back exactly the same mapping.
"""

from __future__ import annotations

from hypothesis import strategies as st

from protocol.spec import FieldSpec, MessageSpec

_INT_RANGES = {
    "int8": (-(2**7), 2**7 - 1),
    "int16": (-(2**15), 2**15 - 1),
    "int32": (-(2**31), 2**31 - 1),
    "int64": (-(2**63), 2**63 - 1),
    "uint16": (0, 2**16 - 1),
    "uint32": (0, 2**32 - 1),
}

MAX_ARRAY = 3
MAX_TEXT = 12


def _primitive(spec: FieldSpec, nullable: bool) -> st.SearchStrategy:
    t = spec.type
    if t in _INT_RANGES:
        low, high = _INT_RANGES[t]
        base = st.integers(low, high)
    elif t == "float64":
        base = st.floats(allow_nan=False)
    elif t == "bool":
        base = st.booleans()
    elif t == "uuid":
        base = st.uuids()
    elif t == "string":
        base = st.text(max_size=MAX_TEXT)
    elif t in ("bytes", "records"):
        base = st.binary(max_size=MAX_TEXT)
    else:
        raise AssertionError(f"unknown type {t}")
    return st.none() | base if nullable else base


def _known_tags(fields: tuple[FieldSpec, ...], version: int) -> set[int]:
    return {f.tag for f in fields if f.present(version) and f.is_tagged(version)}


def struct_values(
    fields: tuple[FieldSpec, ...], version: int, flexible: bool, unknown_tags: bool = True
) -> st.SearchStrategy:
    """Values of a struct at `version`, optionally with unknown tagged fields."""
    members = {}
    for f in fields:
        if not f.present(version):
            continue
        members[f.name] = field_values(f, version, flexible, unknown_tags)
    strategy = st.fixed_dictionaries(members)
    if flexible and unknown_tags:
        known = _known_tags(fields, version)
        tags = st.integers(0, 2**31 - 1).filter(lambda t: t not in known)
        unknown = st.dictionaries(tags, st.binary(max_size=6), max_size=2)

        def add_unknown(pair: tuple[dict, dict]) -> dict:
            value, extra = pair
            if extra:
                value["_unknown_tagged_fields"] = extra
            return value

        strategy = st.tuples(strategy, unknown).map(add_unknown)
    return strategy


def field_values(
    f: FieldSpec, version: int, flexible: bool, unknown_tags: bool = True
) -> st.SearchStrategy:
    """Values of one field at `version`."""
    nullable = f.is_nullable(version)
    if f.fields is not None:
        element = struct_values(f.fields, version, flexible, unknown_tags)
    else:
        element = _primitive(f, nullable and not f.array)
    if f.array:
        items = st.lists(element, max_size=MAX_ARRAY)
        return st.none() | items if nullable else items
    if f.fields is not None and nullable:
        return st.none() | element
    return element


def message_values(spec: MessageSpec, version: int, unknown_tags: bool = True) -> st.SearchStrategy:
    """Values of a whole message at `version`."""
    return struct_values(spec.fields, version, spec.is_flexible(version), unknown_tags)

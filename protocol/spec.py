"""Parsed message specs: the declarative field tables that protocol/messages/ is made of.

The generator (protocol/generate.py) writes these tables from Kafka's JSON specs; the lowering
(protocol/lower.py) turns one table plus one version into a codec. Nothing here does I/O.

Version ranges are `(low, high)` tuples with `high=None` for an open range ("3+"); a missing
range ("none") is `None`.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

VersionRange = tuple[int, int | None]

#: Types with a fixed wire width (flexible versions do not change them).
FIXED_TYPES = frozenset(
    {"int8", "int16", "int32", "int64", "uint16", "uint32", "float64", "bool", "uuid"}
)
#: Every primitive type name the spec uses; anything else is a struct name.
PRIMITIVE_TYPES = FIXED_TYPES | {"string", "bytes", "records"}

ZERO_UUID = uuid.UUID(int=0)

_NO_DEFAULT = object()


def in_range(version: int, versions: VersionRange | None) -> bool:
    """Whether `version` lies in `versions` (None means no version)."""
    if versions is None:
        return False
    low, high = versions
    return version >= low and (high is None or version <= high)


@dataclass(frozen=True, slots=True)
class FieldSpec:
    """One field of a message or struct, as the spec declares it.

    `type` is the spec's type string without the array marker; `array` says "[]".
    `fields` holds the struct's own fields when the type is a struct (common structs are
    resolved inline by the generator). `default` is the parsed explicit default or absent.
    `flexible` overrides the message's flexibleVersions for this one field (RequestHeader's
    ClientId uses "none").
    """

    name: str
    type: str
    versions: VersionRange | None
    array: bool = False
    nullable: VersionRange | None = None
    tagged: VersionRange | None = None
    tag: int | None = None
    default: Any = _NO_DEFAULT
    flexible: VersionRange | None | str = "inherit"
    fields: tuple["FieldSpec", ...] | None = None

    @property
    def is_struct(self) -> bool:
        """True for struct-typed fields (arrays of structs included)."""
        return self.fields is not None

    @property
    def has_explicit_default(self) -> bool:
        """True when the spec gives a default for this field."""
        return self.default is not _NO_DEFAULT

    def present(self, version: int) -> bool:
        """Whether the field exists at `version`."""
        return in_range(version, self.versions)

    def is_nullable(self, version: int) -> bool:
        """Whether the field may be null at `version`."""
        return in_range(version, self.nullable)

    def is_tagged(self, version: int) -> bool:
        """Whether the field is carried in the tagged-fields section at `version`."""
        return self.tag is not None and in_range(version, self.tagged)


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """A whole spec file: a request, response, data, metadata or coordinator record schema."""

    name: str
    kind: str
    api_key: int | None
    valid_versions: VersionRange | None
    flexible_versions: VersionRange | None
    fields: tuple[FieldSpec, ...]
    latest_version_unstable: bool = False
    extra: tuple[tuple[str, Any], ...] = field(default=())

    def versions(self) -> range:
        """Every valid version of this message, in order."""
        if self.valid_versions is None:
            return range(0)
        low, high = self.valid_versions
        return range(low, (high if high is not None else low) + 1)

    def is_flexible(self, version: int) -> bool:
        """Whether `version` uses compact encodings and tagged fields."""
        return in_range(version, self.flexible_versions)


def type_default(spec: FieldSpec) -> Any:
    """The value a field takes when neither the value nor the spec says otherwise.

    Kafka's generated defaults: numbers 0, bool false, strings "", bytes empty, uuid zero,
    records null, arrays empty. Struct defaults depend on the version and are built by lower.py.
    """
    if spec.has_explicit_default:
        return spec.default
    if spec.array:
        return []
    t = spec.type
    if t in ("int8", "int16", "int32", "int64", "uint16", "uint32"):
        return 0
    if t == "float64":
        return 0.0
    if t == "bool":
        return False
    if t == "string":
        return ""
    if t == "bytes":
        return b""
    if t == "uuid":
        return ZERO_UUID
    if t == "records":
        return None
    return None

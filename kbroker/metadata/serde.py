"""Encoding of KRaft metadata records: Kafka's ApiMessageAndVersion framing over spec schemas.

A metadata record value in the log is
    frame version (unsigned varint, 1) | api key (unsigned varint) | version (unsigned varint) | data
where data is the record encoded per its schema in `protocol/metadata_records/` (all of them
are flexible from version 0). This is the one module that knows the byte layout; the rest of
the metadata code deals in (record name, dict) pairs.

The record data is encoded by `protocol.encode_data` / `decode_data` (the codec generates
them from the same JSON files). A small interpreter of those JSON specs below is kept as the
fallback for a schema the generated tables lack, and as an independent cross-check in tests.
"""

from __future__ import annotations

import json
import re
import struct
import uuid
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import protocol
from protocol.errors import DecodeError

FRAME_VERSION = 1
SPEC_DIR = Path(__file__).resolve().parents[2] / "protocol" / "metadata_records"
MAX_ARRAY_LENGTH = 1 << 20  # a bound on every length read, so garbage cannot allocate gigabytes


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _in_range(spec: str | None, version: int) -> bool:
    """Whether `version` is inside a spec version range like "0+", "1-3", "2" or "none"."""
    if spec is None or spec == "none":
        return False
    if spec.endswith("+"):
        return version >= int(spec[:-1])
    low, _, high = spec.partition("-")
    return int(low) <= version <= int(high or low)


@dataclass(frozen=True, slots=True)
class RecordSpec:
    """A parsed metadata record schema."""

    name: str
    api_key: int
    min_version: int
    max_version: int
    fields: list[dict]


@cache
def specs() -> dict[str, RecordSpec]:
    """All metadata record schemas by record name."""
    out: dict[str, RecordSpec] = {}
    for path in sorted(SPEC_DIR.glob("*.json")):
        raw = json.loads(path.read_text())
        low, _, high = raw["validVersions"].partition("-")
        out[raw["name"]] = RecordSpec(raw["name"], raw["apiKey"], int(low), int(high or low), raw["fields"])
    return out


@cache
def spec_by_key() -> dict[int, RecordSpec]:
    """All metadata record schemas by api key."""
    return {s.api_key: s for s in specs().values()}


# ---------------------------------------------------------------------------- primitives

def _write_uvarint(out: bytearray, value: int) -> None:
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)


def _read_uvarint(buf: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    for i in range(5):
        if pos >= len(buf):
            raise DecodeError("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    raise DecodeError("varint longer than 5 bytes")


_FIXED = {"int8": struct.Struct(">b"), "int16": struct.Struct(">h"), "int32": struct.Struct(">i"),
          "int64": struct.Struct(">q"), "uint16": struct.Struct(">H"), "bool": struct.Struct(">?"),
          "float64": struct.Struct(">d")}


def _default(field: dict) -> Any:
    type_ = field["type"]
    default = field.get("default")
    if default == "null":
        return None
    if type_.startswith("[]"):
        return []
    if type_ == "bool":
        return default == "true"
    if type_ in _FIXED:
        return int(default) if default is not None else 0
    if type_ == "string":
        return default or ""
    if type_ == "uuid":
        return uuid.UUID(int=0)
    return None


class _Writer:
    def __init__(self) -> None:
        self.out = bytearray()

    def value(self, type_: str, value: Any, field: dict, version: int) -> None:
        out = self.out
        if type_.startswith("[]"):
            if value is None:
                out.append(0)
                return
            _write_uvarint(out, len(value) + 1)
            item_type = type_[2:]
            for item in value:
                self.value(item_type, item, field, version)
            return
        if type_ in _FIXED:
            out += _FIXED[type_].pack(value)
        elif type_ == "string":
            if value is None:
                out.append(0)
            else:
                data = value.encode()
                _write_uvarint(out, len(data) + 1)
                out += data
        elif type_ == "uuid":
            out += (value or uuid.UUID(int=0)).bytes
        elif type_ == "bytes":
            if value is None:
                out.append(0)
            else:
                _write_uvarint(out, len(value) + 1)
                out += value
        else:  # a struct type: `field` carries its sub-fields
            self.struct(field["fields"], value, version)

    def struct(self, fields: list[dict], value: dict, version: int) -> None:
        tagged: list[tuple[int, dict]] = []
        for field in fields:
            if not _in_range(field["versions"], version):
                continue
            key = _snake(field["name"])
            item = value.get(key, _default(field)) if value is not None else _default(field)
            if _in_range(field.get("taggedVersions"), version):
                if item != _default(field):
                    tagged.append((field["tag"], field))
                continue
            self.value(field["type"], item, field, version)
        _write_uvarint(self.out, len(tagged))
        for tag, field in sorted(tagged, key=lambda t: t[0]):
            inner = _Writer()
            inner.value(field["type"], value[_snake(field["name"])], field, version)
            _write_uvarint(self.out, tag)
            _write_uvarint(self.out, len(inner.out))
            self.out += inner.out


class _Reader:
    def __init__(self, buf: memoryview) -> None:
        self.buf = buf
        self.pos = 0

    def _take(self, n: int) -> memoryview:
        if n < 0 or self.pos + n > len(self.buf):
            raise DecodeError("truncated metadata record")
        chunk = self.buf[self.pos:self.pos + n]
        self.pos += n
        return chunk

    def _length(self) -> int:
        n, self.pos = _read_uvarint(self.buf, self.pos)
        if n - 1 > MAX_ARRAY_LENGTH:
            raise DecodeError("length out of bounds")
        return n - 1

    def value(self, type_: str, field: dict, version: int) -> Any:
        if type_.startswith("[]"):
            n = self._length()
            if n < 0:
                return None
            return [self.value(type_[2:], field, version) for _ in range(n)]
        if type_ in _FIXED:
            fmt = _FIXED[type_]
            return fmt.unpack(self._take(fmt.size))[0]
        if type_ == "string":
            n = self._length()
            if n < 0:
                return None
            try:
                return bytes(self._take(n)).decode()
            except UnicodeDecodeError as exc:
                raise DecodeError("bad utf-8 in string") from exc
        if type_ == "uuid":
            return uuid.UUID(bytes=bytes(self._take(16)))
        if type_ == "bytes":
            n = self._length()
            return None if n < 0 else bytes(self._take(n))
        return self.struct(field["fields"], version)

    def struct(self, fields: list[dict], version: int) -> dict:
        value: dict[str, Any] = {}
        by_tag: dict[int, dict] = {}
        for field in fields:
            key = _snake(field["name"])
            if not _in_range(field["versions"], version):
                continue
            if _in_range(field.get("taggedVersions"), version):
                by_tag[field["tag"]] = field
                value[key] = _default(field)
                continue
            value[key] = self.value(field["type"], field, version)
        count, self.pos = _read_uvarint(self.buf, self.pos)
        for _ in range(count):
            tag, self.pos = _read_uvarint(self.buf, self.pos)
            size, self.pos = _read_uvarint(self.buf, self.pos)
            end = self.pos + size
            field = by_tag.get(tag)
            if field is None:
                self._take(size)  # unknown tag from a newer writer: skip it
                continue
            value[_snake(field["name"])] = self.value(field["type"], field, version)
            if self.pos != end:
                raise DecodeError(f"tagged field {tag} has a wrong size")
        return value


def _encode_local(name: str, version: int, value: dict) -> bytes:
    writer = _Writer()
    writer.struct(specs()[name].fields, value, version)
    return bytes(writer.out)


def _decode_local(name: str, version: int, data: memoryview) -> dict:
    reader = _Reader(data)
    value = reader.struct(specs()[name].fields, version)
    if reader.pos != len(data):
        raise DecodeError(f"{len(data) - reader.pos} bytes left after {name}")
    return value


def _encode_data(name: str, version: int, value: dict) -> bytes:
    codec = _codec_knows(name, version)
    return protocol.encode_data(name, version, value) if codec else _encode_local(name, version, value)


def _decode_data(name: str, version: int, data: memoryview) -> dict:
    codec = _codec_knows(name, version)
    return protocol.decode_data(name, version, data) if codec else _decode_local(name, version, data)


@cache
def _codec_knows(name: str, version: int) -> bool:
    try:
        protocol.data_codec(name, version)
    except (KeyError, ValueError, AttributeError):
        return False
    return True


# ---------------------------------------------------------------------------- public

def encode_record(name: str, value: dict, version: int = 0) -> bytes:
    """Frame one metadata record as the value of a metadata log record."""
    spec = specs()[name]
    if not spec.min_version <= version <= spec.max_version:
        raise ValueError(f"{name} has no version {version}")
    out = bytearray()
    _write_uvarint(out, FRAME_VERSION)
    _write_uvarint(out, spec.api_key)
    _write_uvarint(out, version)
    out += _encode_data(name, version, value)
    return bytes(out)


def decode_record(data: bytes | memoryview) -> tuple[str, int, dict]:
    """Unframe a metadata log record value into (record name, version, fields).

    Raises DecodeError for an unknown frame version or api key or malformed data.
    """
    buf = memoryview(data)
    frame, pos = _read_uvarint(buf, 0)
    if frame != FRAME_VERSION:
        raise DecodeError(f"unknown metadata frame version {frame}")
    api_key, pos = _read_uvarint(buf, pos)
    version, pos = _read_uvarint(buf, pos)
    spec = spec_by_key().get(api_key)
    if spec is None:
        raise DecodeError(f"unknown metadata record api key {api_key}")
    if not spec.min_version <= version <= spec.max_version:
        raise DecodeError(f"{spec.name} has no version {version}")
    return spec.name, version, _decode_data(spec.name, version, buf[pos:])

"""The helpers generated codecs call at run time: varints, strings, bytes, arrays, uuids,
tagged fields, each checking lengths and counts against the bytes left (compiled construct
code skips those checks).

This module imports nothing from construct, so a codec whose bytecode comes from the disk
cache (protocol/codec_cache.py) runs without construct being imported at all; construct is
needed only to generate a codec (protocol/primitives.py, protocol/lower.py).
"""

from __future__ import annotations

import struct
import uuid
from io import BytesIO
from typing import Any

from protocol.errors import DecodeError, EncodeError

#: struct format characters of the fixed-width numeric types.
FIXED_FORMATS = {
    "int8": "b",
    "int16": "h",
    "int32": "i",
    "int64": "q",
    "uint16": "H",
    "uint32": "I",
    "float64": "d",
    "bool": "?",
}

UVARINT_MAX_BYTES = 5  # Kafka's unsigned varint (int32 range, 7 bits per byte)
VARLONG_MAX_BYTES = 10
STRING_MAX_BYTES = 0x7FFF  # int16 length prefix

_S_h = struct.Struct(">h")
_S_i = struct.Struct(">i")
_S_b = struct.Struct(">b")
_SMALL_UVARINTS = [bytes([n]) for n in range(128)]


# ---------------------------------------------------------------------------------------------
# varints


def _read_raw_varint(io: Any, max_bytes: int) -> int:
    """Read an unsigned LEB128 value of at most `max_bytes` bytes."""
    result = 0
    shift = 0
    for _ in range(max_bytes):
        b = io.read(1)
        if not b:
            raise DecodeError("truncated varint")
        v = b[0]
        result |= (v & 0x7F) << shift
        if v < 0x80:
            return result
        shift += 7
    raise DecodeError(f"varint longer than {max_bytes} bytes")


def k_read_uvarint(io: Any) -> int:
    """Kafka unsigned varint: at most 5 bytes, value within 32 bits."""
    b = io.read(1)
    if not b:
        raise DecodeError("truncated varint")
    v = b[0]
    if v < 0x80:
        return v  # the common case: small compact lengths and tag counts
    io.seek(-1, 1)
    value = _read_raw_varint(io, UVARINT_MAX_BYTES)
    if value > 0xFFFFFFFF:
        raise DecodeError("unsigned varint exceeds 32 bits")
    return value


def k_read_varint(io: Any) -> int:
    """Zig-zag int32 varint (record fields)."""
    raw = _read_raw_varint(io, UVARINT_MAX_BYTES)
    if raw > 0xFFFFFFFF:
        raise DecodeError("varint exceeds 32 bits")
    return (raw >> 1) ^ -(raw & 1)


def k_read_varlong(io: Any) -> int:
    """Zig-zag int64 varint."""
    raw = _read_raw_varint(io, VARLONG_MAX_BYTES)
    if raw > 0xFFFFFFFFFFFFFFFF:
        raise DecodeError("varlong exceeds 64 bits")
    return (raw >> 1) ^ -(raw & 1)


def encode_uvarint(n: int) -> bytes:
    """Encode an unsigned varint (0 <= n < 2**32)."""
    if 0 <= n < 0x80:
        return _SMALL_UVARINTS[n]
    if n < 0 or n > 0xFFFFFFFF:
        raise EncodeError(f"unsigned varint out of range: {n}")
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _encode_raw(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def k_write_uvarint(io: Any, n: int) -> None:
    """Write an unsigned varint."""
    io.write(encode_uvarint(n))


def k_write_varint(io: Any, n: int) -> None:
    """Write a zig-zag int32 varint."""
    if not -0x80000000 <= n <= 0x7FFFFFFF:
        raise EncodeError(f"varint out of int32 range: {n}")
    io.write(_encode_raw(((n << 1) ^ (n >> 31)) & 0xFFFFFFFF))


def k_write_varlong(io: Any, n: int) -> None:
    """Write a zig-zag int64 varint."""
    if not -0x8000000000000000 <= n <= 0x7FFFFFFFFFFFFFFF:
        raise EncodeError(f"varlong out of int64 range: {n}")
    io.write(_encode_raw(((n << 1) ^ (n >> 63)) & 0xFFFFFFFFFFFFFFFF))


# ---------------------------------------------------------------------------------------------
# lengths, strings, bytes, records


def k_read_len16(io: Any, nullable: bool) -> int:
    """int16 string length: -1 is null (when allowed), other negatives are errors."""
    n = _S_h.unpack(io.read(2))[0]
    if n < 0 and not (n == -1 and nullable):
        raise DecodeError(f"bad string length {n}")
    return n


def k_read_len32(io: Any, nullable: bool) -> int:
    """int32 bytes / array length."""
    n = _S_i.unpack(io.read(4))[0]
    if n < 0 and not (n == -1 and nullable):
        raise DecodeError(f"bad length {n}")
    return n


def k_read_clen(io: Any, nullable: bool) -> int:
    """Compact length: unsigned varint N means N-1; 0 is null."""
    n = k_read_uvarint(io) - 1
    if n < 0 and not nullable:
        raise DecodeError("null in a non-nullable field")
    return n


def _read_exact(io: Any, n: int) -> bytes:
    data = io.read(n)  # BytesIO.read never allocates more than what is left
    if len(data) != n:
        raise DecodeError(f"length {n} exceeds the bytes left")
    return data


def k_read_string(io: Any) -> str:
    """Non-nullable int16-prefixed string."""
    return _read_exact(io, k_read_len16(io, False)).decode("utf-8")


def k_read_nstring(io: Any) -> str | None:
    """Nullable int16-prefixed string."""
    n = k_read_len16(io, True)
    return None if n < 0 else _read_exact(io, n).decode("utf-8")


def k_read_cstring(io: Any) -> str:
    """Non-nullable compact string."""
    return _read_exact(io, k_read_clen(io, False)).decode("utf-8")


def k_read_ncstring(io: Any) -> str | None:
    """Nullable compact string."""
    n = k_read_clen(io, True)
    return None if n < 0 else _read_exact(io, n).decode("utf-8")


def k_read_bytes(io: Any, compact: bool, nullable: bool) -> bytes | None:
    """Bytes field (a copy: these are small, e.g. group metadata)."""
    n = k_read_clen(io, nullable) if compact else k_read_len32(io, nullable)
    return None if n < 0 else _read_exact(io, n)


def k_read_records(io: Any, this: Any, compact: bool, nullable: bool) -> memoryview | None:
    """Records field: a memoryview slice of the frame, never copied."""
    n = k_read_clen(io, nullable) if compact else k_read_len32(io, nullable)
    if n < 0:
        return None
    pos = io.tell()
    if n > this["_end"] - pos:
        raise DecodeError(f"records length {n} exceeds the bytes left")
    io.seek(pos + n)
    return this["_frame"][pos : pos + n]


def k_encode_str(s: Any) -> bytes:
    """UTF-8 bytes of a string value."""
    if not isinstance(s, str):
        raise EncodeError(f"expected str, got {type(s).__name__}")
    return s.encode("utf-8")


def k_write_string(io: Any, s: Any, compact: bool, nullable: bool) -> None:
    """Write a string (compact or int16-prefixed)."""
    if s is None:
        if not nullable:
            raise EncodeError("null in a non-nullable string")
        io.write(b"\x00" if compact else b"\xff\xff")
        return
    b = k_encode_str(s)
    if compact:
        io.write(encode_uvarint(len(b) + 1) + b)
    else:
        if len(b) > STRING_MAX_BYTES:
            raise EncodeError("string longer than 32767 bytes")
        io.write(_S_h.pack(len(b)) + b)


def k_write_bytes(io: Any, b: Any, compact: bool, nullable: bool) -> None:
    """Write bytes or records (never copied: written as given)."""
    if b is None:
        if not nullable:
            raise EncodeError("null in a non-nullable bytes field")
        io.write(b"\x00" if compact else b"\xff\xff\xff\xff")
        return
    n = len(b) if isinstance(b, (bytes, bytearray)) else memoryview(b).nbytes
    io.write(encode_uvarint(n + 1) if compact else _S_i.pack(n))
    io.write(b)


def k_write_records(io: Any, b: Any, compact: bool, nullable: bool) -> None:
    """Records: None in a non-nullable version is written as empty."""
    if b is None and not nullable:
        b = b""
    k_write_bytes(io, b, compact, nullable)


def k_read_array_len(io: Any, this: Any, compact: bool, nullable: bool) -> int:
    """Array count, checked against the bytes left (each element takes >= 1 byte in practice)."""
    n = k_read_clen(io, nullable) if compact else k_read_len32(io, nullable)
    if n > this["_end"] - io.tell():
        raise DecodeError(f"array count {n} exceeds the bytes left")
    return n


def k_write_array_len(io: Any, items: Any, compact: bool, nullable: bool) -> int:
    """Write an array count (or null); returns the count, -1 for null."""
    if items is None:
        if not nullable:
            raise EncodeError("null in a non-nullable array")
        io.write(b"\x00" if compact else b"\xff\xff\xff\xff")
        return -1
    n = len(items)
    io.write(encode_uvarint(n + 1) if compact else _S_i.pack(n))
    return n


def k_read_uuid(io: Any) -> Any:
    """16-byte UUID."""
    return uuid.UUID(bytes=_read_exact(io, 16))


def k_write_uuid(io: Any, u: Any) -> None:
    """Write a UUID (uuid.UUID, or 16 raw bytes)."""
    if isinstance(u, (bytes, bytearray)) and len(u) == 16:
        io.write(u)
    else:
        io.write(u.bytes)


def k_read_struct_marker(io: Any) -> bool:
    """Nullable struct prefix: int8, negative means null."""
    return _S_b.unpack(io.read(1))[0] >= 0


def k_read_tag_header(io: Any, this: Any) -> tuple[int, int]:
    """One tagged field's (tag, size), with size checked against the bytes left."""
    tag = k_read_uvarint(io)
    size = k_read_uvarint(io)
    if size > this["_end"] - io.tell():
        raise DecodeError("tagged field size exceeds the bytes left")
    return tag, size


def k_check_tag_end(io: Any, end: int) -> None:
    """A known tagged field must consume exactly its declared size."""
    if io.tell() != end:
        raise DecodeError("tagged field size does not match its content")


def k_write_tagged(io: Any, fields: list[tuple[int, bytes]], unknown: Any) -> None:
    """Write the tagged-field section: known and unknown tags merged in ascending order."""
    if unknown:
        fields = fields + [(int(t), bytes(v)) for t, v in unknown.items()]
        fields.sort(key=lambda item: item[0])
    io.write(encode_uvarint(len(fields)))
    for tag, data in fields:
        io.write(encode_uvarint(tag))
        io.write(encode_uvarint(len(data)))
        io.write(data)


def k_fresh_io() -> BytesIO:
    """A scratch buffer for a tagged field's content."""
    return BytesIO()


#: The names generated code imports from this module.
_RUNTIME_NAMES = (
    "DecodeError",
    "EncodeError",
    "k_read_uvarint",
    "k_read_varint",
    "k_read_varlong",
    "k_write_uvarint",
    "k_write_varint",
    "k_write_varlong",
    "k_read_string",
    "k_read_nstring",
    "k_read_cstring",
    "k_read_ncstring",
    "k_read_bytes",
    "k_read_records",
    "k_write_string",
    "k_write_bytes",
    "k_write_records",
    "k_read_array_len",
    "k_write_array_len",
    "k_read_uuid",
    "k_write_uuid",
    "k_read_struct_marker",
    "k_read_tag_header",
    "k_check_tag_end",
    "k_write_tagged",
    "k_fresh_io",
    "encode_uvarint",
)

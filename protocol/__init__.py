"""kbroker's Kafka wire codec (sans-I/O): bytes in, plain values out, and back.

Public API (docs/contracts.md):
    decode_request(frame) -> (header, body)
    encode_response(api_key, api_version, correlation_id, body) -> bytes
    encode_response_frame(...)  -> the same with the 4-byte size prefix, in one buffer
    encode_response_chunks(...) -> the same as a list of buffers whose large values
                                   (records) are the caller's objects, not copies
    encode_request(api_key, api_version, correlation_id, client_id, body) -> bytes
    decode_response(api_key, api_version, frame) -> (correlation_id, body)
    decode_body / encode_body, decode_data / encode_data, api_versions()
    DecodeError, UnsupportedVersionError, EncodeError, ApiKey, ErrorCode
Frames never include the 4-byte size prefix (except encode_response_frame's output).
"""

from __future__ import annotations

import struct
from io import BytesIO
from typing import Mapping

from protocol import messages as _messages
from protocol.enums import ApiKey, ErrorCode
from protocol.errors import DecodeError, EncodeError, InvalidRecordError, UnsupportedVersionError
from protocol.headers import (
    encode_request_header,
    encode_response_header,
    read_request_header,
    read_response_header,
)
from protocol.lower import data_codec, message_codec, open_frame
from protocol.spec import in_range

_HEAD = struct.Struct(">hhi")
_SIZE = struct.Struct(">i")

__all__ = [
    "decode_request",
    "encode_response",
    "encode_response_frame",
    "encode_response_chunks",
    "decode_body",
    "encode_body",
    "encode_request",
    "decode_response",
    "encode_data",
    "decode_data",
    "api_versions",
    "DecodeError",
    "EncodeError",
    "InvalidRecordError",
    "UnsupportedVersionError",
    "ApiKey",
    "ErrorCode",
]


def _supported(api_key: int, api_version: int) -> bool:
    versions = _messages.VALID_VERSIONS.get(api_key)
    return versions is not None and in_range(api_version, versions)


def _raise_if_unsupported(frame: bytes | bytearray | memoryview) -> None:
    """A broken header of an unsupported request still gets the unsupported-version answer."""
    if len(frame) < 8:
        return
    api_key, api_version, correlation_id = _HEAD.unpack_from(frame, 0)
    if not _supported(api_key, api_version):
        raise UnsupportedVersionError(
            f"unsupported api key {api_key} version {api_version}",
            {
                "request_api_key": api_key,
                "request_api_version": api_version,
                "correlation_id": correlation_id,
                "client_id": None,
            },
        )


class _ViewStream:
    """The part of BytesIO the decoders use (read, seek, tell), over a memoryview.

    BytesIO copies any frame that is not `bytes`; for a large frame received into a
    bytearray (a 1 MB produce) that copy, and the allocator churn of a fresh 1 MB object
    per request, cost more than these Python-level calls, of which a request makes a few
    dozen at most (records are slices, never read through the stream).
    """

    __slots__ = ("_view", "_pos", "_end")

    def __init__(self, view: memoryview) -> None:
        self._view = view
        self._pos = 0
        self._end = len(view)

    def read(self, size: int = -1) -> bytes:
        """Up to `size` bytes from the position (all that is left if negative)."""
        pos = self._pos
        end = self._end if size < 0 else min(self._end, pos + size)
        if end <= pos:
            return b""
        self._pos = end
        return self._view[pos:end].tobytes()

    def seek(self, offset: int, whence: int = 0) -> int:
        """Move as BytesIO.seek does (past the end is allowed, before the start is not)."""
        pos = offset if whence == 0 else self._pos + offset if whence == 1 else self._end + offset
        if pos < 0:
            raise ValueError(f"negative seek position {pos}")
        self._pos = pos
        return pos

    def tell(self) -> int:
        """The position."""
        return self._pos


VIEW_STREAM_MIN_BYTES = 65536  # below this, one copy into BytesIO is cheaper than _ViewStream


def decode_request(frame: bytes | bytearray | memoryview) -> tuple[dict, dict]:
    """Decode a request frame (no size prefix) into (header, body).

    Records fields are memoryview slices of `frame`. Bytes after the body are ignored, as
    Kafka does (some clients send stray bytes). Raises UnsupportedVersionError for an unknown
    api key or a version outside the spec's validVersions, DecodeError for malformed input.
    A large frame that is not `bytes` is read in place, never copied whole.
    """
    if type(frame) is not bytes and len(frame) >= VIEW_STREAM_MIN_BYTES:
        view = memoryview(frame).cast("B")
        io, ctx = _ViewStream(view), {"_end": len(view), "_frame": view}
    else:
        io, ctx = open_frame(frame)
    try:
        header = read_request_header(io, ctx)
    except DecodeError:
        _raise_if_unsupported(frame)
        raise
    api_key = header["request_api_key"]
    api_version = header["request_api_version"]
    if not _supported(api_key, api_version):
        raise UnsupportedVersionError(
            f"unsupported api key {api_key} version {api_version}", header
        )
    body = message_codec(api_key, api_version, False).read(io, ctx)
    return header, body


def encode_response(api_key: int, api_version: int, correlation_id: int, body: Mapping) -> bytes:
    """Response header + body (no size prefix). ApiVersions always uses response header v0."""
    codec = message_codec(api_key, api_version, True)
    io = BytesIO()
    io.write(encode_response_header(api_key, api_version, correlation_id))
    codec.write(io, body)
    return io.getvalue()


def encode_response_frame(
    api_key: int, api_version: int, correlation_id: int, body: Mapping
) -> bytes:
    """Like encode_response, with the 4-byte size prefix, built in the same buffer.

    Saves the extra copy of `prefix + payload` for large (Fetch) responses.
    """
    codec = message_codec(api_key, api_version, True)
    io = BytesIO()
    io.write(b"\x00\x00\x00\x00")
    io.write(encode_response_header(api_key, api_version, correlation_id))
    codec.write(io, body)
    with io.getbuffer() as view:  # patch the size in place; released before getvalue()
        _SIZE.pack_into(view, 0, len(view) - 4)
    return io.getvalue()


CHUNK_MIN_BYTES = 32768  # values at least this large are passed through, not copied


class _ChunkWriter:
    """The `write` the encoders call, gathering small pieces and keeping large ones as given."""

    __slots__ = ("chunks", "_small", "size")

    def __init__(self) -> None:
        self._small = bytearray(4)  # starts with room for the size prefix
        self.chunks: list = [self._small]
        self.size = 0

    def write(self, data) -> int:
        """Append `data`: copied into the current small buffer, or referenced when large."""
        count = len(data)
        if count >= CHUNK_MIN_BYTES:
            self.chunks.append(data)
            self._small = bytearray()
            self.chunks.append(self._small)
        else:
            self._small += data
        self.size += count
        return count


def encode_response_chunks(
    api_key: int, api_version: int, correlation_id: int, body: Mapping
) -> list:
    """Like encode_response_frame, as a list of buffers to write in order (writev / sendmsg).

    Values of CHUNK_MIN_BYTES or more (a Fetch response's records) are the body's own
    objects, so a large response is never copied into one buffer before the socket.
    """
    codec = message_codec(api_key, api_version, True)
    writer = _ChunkWriter()
    writer.write(encode_response_header(api_key, api_version, correlation_id))
    codec.write(writer, body)
    chunks = writer.chunks
    _SIZE.pack_into(chunks[0], 0, writer.size)
    return [chunk for chunk in chunks if len(chunk)]


def encode_request(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None, body: Mapping
) -> bytes:
    """Request header + body (no size prefix), for tests, tools and inter-broker clients."""
    codec = message_codec(api_key, api_version, False)
    io = BytesIO()
    io.write(encode_request_header(api_key, api_version, correlation_id, client_id))
    codec.write(io, body)
    return io.getvalue()


def decode_response(
    api_key: int, api_version: int, frame: bytes | bytearray | memoryview
) -> tuple[int, dict]:
    """Decode a response frame (no size prefix) into (correlation_id, body); exact length."""
    if not _supported(api_key, api_version):
        raise UnsupportedVersionError(
            f"unsupported api key {api_key} version {api_version}",
            {"request_api_key": api_key, "request_api_version": api_version},
        )
    io, ctx = open_frame(frame)
    correlation_id = read_response_header(io, ctx, api_key, api_version)
    body = message_codec(api_key, api_version, True).read(io, ctx)
    if io.tell() != ctx["_end"]:
        raise DecodeError(f"{ctx['_end'] - io.tell()} bytes left after the response")
    return correlation_id, body


def decode_body(
    api_key: int, api_version: int, is_response: bool, data: bytes | bytearray | memoryview
) -> dict:
    """Decode a request or response body (no header); the data must be consumed exactly."""
    if not _supported(api_key, api_version):
        raise UnsupportedVersionError(
            f"unsupported api key {api_key} version {api_version}",
            {"request_api_key": api_key, "request_api_version": api_version},
        )
    return message_codec(api_key, api_version, is_response).decode(data)


def encode_body(api_key: int, api_version: int, is_response: bool, value: Mapping) -> bytes:
    """Encode a request or response body (no header)."""
    if not _supported(api_key, api_version):
        raise EncodeError(f"unsupported api key {api_key} version {api_version}")
    return message_codec(api_key, api_version, is_response).encode(value)


def _data_codec(name: str, version: int):
    try:
        return data_codec(name, version)
    except KeyError:
        raise EncodeError(f"unknown data schema {name}") from None
    except ValueError as exc:
        raise EncodeError(str(exc)) from None


def encode_data(name: str, version: int, value: Mapping) -> bytes:
    """Encode a "data" schema by spec name (e.g. "ConsumerProtocolAssignment", "TopicRecord")."""
    return _data_codec(name, version).encode(value)


def decode_data(name: str, version: int, data: bytes | bytearray | memoryview) -> dict:
    """Decode a "data" schema by spec name; the data must be consumed exactly."""
    try:
        codec = data_codec(name, version)
    except (KeyError, ValueError):
        raise DecodeError(f"unknown data schema {name} v{version}") from None
    return codec.decode(data)


def api_versions() -> dict[ApiKey, tuple[int, int]]:
    """The spec's validVersions of every request, by ApiKey."""
    result: dict[ApiKey, tuple[int, int]] = {}
    for key, (low, high) in _messages.VALID_VERSIONS.items():
        result[ApiKey(key)] = (low, high if high is not None else low)
    return result

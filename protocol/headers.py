"""Request and response headers, hand-written with struct (fixed layout, hot path).

Header versions are chosen as Kafka does (RequestHeader.json / ResponseHeader.json and
ApiMessageType.requestHeaderVersion/responseHeaderVersion):
- request header v2 for flexible request versions, v1 otherwise, v0 only for
  ControlledShutdown v0;
- response header v1 for flexible response versions, v0 otherwise, and always v0 for
  ApiVersions (a client must read it before it knows which versions the broker speaks).
The client id is an int16-prefixed nullable string in every header version.
"""

from __future__ import annotations

import struct
from io import BytesIO

from protocol import messages
from protocol.errors import DecodeError
from protocol.codec_runtime import encode_uvarint, k_read_tag_header, k_read_uvarint
from protocol.spec import in_range

_HEAD = struct.Struct(">hhi")
_S_h = struct.Struct(">h")
_S_i = struct.Struct(">i")

API_VERSIONS_KEY = 18
CONTROLLED_SHUTDOWN_KEY = 7


def request_header_version(api_key: int, api_version: int) -> int:
    """Request header version Kafka uses for this request."""
    if api_key == CONTROLLED_SHUTDOWN_KEY and api_version == 0:
        return 0
    flexible = messages.FLEXIBLE_VERSIONS.get(api_key)
    if flexible is not None and in_range(api_version, flexible[0]):
        return 2
    return 1


def response_header_version(api_key: int, api_version: int) -> int:
    """Response header version Kafka uses for this response."""
    if api_key == API_VERSIONS_KEY:
        return 0
    flexible = messages.FLEXIBLE_VERSIONS.get(api_key)
    if flexible is not None and in_range(api_version, flexible[1]):
        return 1
    return 0


def read_request_header(io: BytesIO, ctx: dict, header_version: int | None = None) -> dict:
    """Parse a request header; with no `header_version` it is chosen from api key and version.

    For an unknown API key the header is read as v1 (api key, version, correlation id,
    client id), which is all the broker needs to answer.
    """
    head = io.read(8)
    if len(head) != 8:
        raise DecodeError("truncated request header")
    api_key, api_version, correlation_id = _HEAD.unpack(head)
    header = {
        "request_api_key": api_key,
        "request_api_version": api_version,
        "correlation_id": correlation_id,
        "client_id": None,
    }
    if header_version is None:
        header_version = request_header_version(api_key, api_version)
    if header_version >= 1:
        raw = io.read(2)
        if len(raw) != 2:
            raise DecodeError("truncated client id")
        n = _S_h.unpack(raw)[0]
        if n < -1:
            raise DecodeError(f"bad client id length {n}")
        if n >= 0:
            data = io.read(n)
            if len(data) != n:
                raise DecodeError("client id exceeds the frame")
            try:
                header["client_id"] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise DecodeError("client id is not UTF-8") from None
    if header_version >= 2:
        # the request header defines no tagged fields; unknown ones are skipped
        for _ in range(k_read_uvarint(io)):
            _tag, size = k_read_tag_header(io, ctx)
            io.seek(size, 1)
    return header


def encode_request_header(
    api_key: int, api_version: int, correlation_id: int, client_id: str | None
) -> bytes:
    """Request header bytes for this api key and version."""
    version = request_header_version(api_key, api_version)
    out = _HEAD.pack(api_key, api_version, correlation_id)
    if version >= 1:
        if client_id is None:
            out += b"\xff\xff"
        else:
            raw = client_id.encode("utf-8")
            out += _S_h.pack(len(raw)) + raw
    if version >= 2:
        out += b"\x00"
    return out


def encode_response_header(api_key: int, api_version: int, correlation_id: int) -> bytes:
    """Response header bytes (correlation id, plus an empty tagged-field section in v1)."""
    if response_header_version(api_key, api_version) >= 1:
        return _S_i.pack(correlation_id) + b"\x00"
    return _S_i.pack(correlation_id)


def read_response_header(io: BytesIO, ctx: dict, api_key: int, api_version: int) -> int:
    """Parse a response header; returns the correlation id."""
    raw = io.read(4)
    if len(raw) != 4:
        raise DecodeError("truncated response header")
    correlation_id = _S_i.unpack(raw)[0]
    if response_header_version(api_key, api_version) >= 1:
        for _ in range(k_read_uvarint(io)):
            _tag, size = k_read_tag_header(io, ctx)
            io.seek(size, 1)
    return correlation_id


__all__ = [
    "request_header_version",
    "response_header_version",
    "read_request_header",
    "encode_request_header",
    "encode_response_header",
    "read_response_header",
    "encode_uvarint",
]

"""Compression codecs for record payloads (gzip, snappy, lz4, zstd) through cramjam.

Used only where records must actually be read or written (tests, compaction, conversion of
old clients' message sets); the produce and fetch paths never call it.

Wire formats, as the Java client and librdkafka produce them:

- gzip: an RFC 1952 gzip stream.
- snappy: usually xerial framing (the Java client's ``SnappyOutputStream``): an 8-byte magic
  ``\\x82SNAPPY\\x00``, int32 version, int32 compatible version, then ``[int32 length][raw
  snappy block]`` chunks. Some clients send a single raw snappy block; both are decoded.
  Encoding uses xerial framing with 32 KiB blocks, as Java does.
- lz4: the LZ4 frame format. Kafka 0.8/0.9 (magic 0) computed the frame header checksum
  over the magic number too; `decompress` accepts that variant for legacy message sets.
- zstd: a zstd frame.
"""

from __future__ import annotations

import struct
import zlib
from typing import Union

import cramjam

from protocol.errors import DecodeError
from protocol.records import Compression

Buffer = Union[bytes, bytearray, memoryview]

UNSUPPORTED_COMPRESSION_TYPE = 76

XERIAL_MAGIC = b"\x82SNAPPY\x00"
XERIAL_HEADER = struct.Struct(">8sii")  # magic, version, compatible version
XERIAL_VERSION = 1
XERIAL_COMPATIBLE_VERSION = 1
XERIAL_BLOCK_SIZE = 32 * 1024
_I32 = struct.Struct(">i")

LZ4_FRAME_MAGIC = b"\x04\x22\x4d\x18"


class UnsupportedCompressionError(DecodeError):
    """A codec id outside 0..4; `error_code` is UNSUPPORTED_COMPRESSION_TYPE (76)."""

    def __init__(self, codec: int) -> None:
        super().__init__(f"unsupported compression codec id {codec}")
        self.codec = codec
        self.error_code = UNSUPPORTED_COMPRESSION_TYPE


def compress(codec: int, data: Buffer) -> bytes:
    """Compress `data` with `codec` (a `Compression` value) in Kafka's wire format."""
    if codec == Compression.NONE:
        return bytes(data)
    if codec == Compression.GZIP:
        return bytes(cramjam.gzip.compress(data))
    if codec == Compression.SNAPPY:
        return xerial_snappy_compress(data)
    if codec == Compression.LZ4:
        return bytes(cramjam.lz4.compress(data))
    if codec == Compression.ZSTD:
        return bytes(cramjam.zstd.compress(data))
    raise UnsupportedCompressionError(codec)


class DecompressedSizeError(DecodeError):
    """Decompressed data would exceed the caller's `max_size` (a decompression bomb guard)."""

    def __init__(self, codec: int, max_size: int) -> None:
        super().__init__(f"{_codec_name(codec)} data decompresses to more than {max_size} bytes")
        self.max_size = max_size


def _codec_name(codec: int) -> str:
    try:
        return Compression(codec).name.lower()
    except ValueError:
        return f"codec {codec}"


def decompress(codec: int, data: Buffer, max_size: int | None = None) -> bytes:
    """Decompress `data` compressed with `codec`; raises DecodeError on malformed input.

    With `max_size`, output beyond that many bytes raises DecompressedSizeError without
    materialising it (gzip streams with a bound, snappy checks its length headers first,
    lz4/zstd decode into a buffer of max_size + 1 bytes).
    """
    if codec == Compression.NONE:
        if max_size is not None and len(data) > max_size:
            raise DecompressedSizeError(codec, max_size)
        return bytes(data)
    try:
        if codec == Compression.GZIP:
            if max_size is not None:
                return _gunzip_bounded(data, max_size)
            return bytes(cramjam.gzip.decompress(data))
        if codec == Compression.SNAPPY:
            return snappy_decompress(data, max_size)
        if codec == Compression.LZ4:
            return lz4_decompress(data, max_size)
        if codec == Compression.ZSTD:
            if max_size is not None:
                return _decompress_into(cramjam.zstd, codec, data, max_size)
            return bytes(cramjam.zstd.decompress(data))
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"{_codec_name(codec)} data is corrupt: {exc}") from None
    raise UnsupportedCompressionError(codec)


def _gunzip_bounded(data: Buffer, max_size: int) -> bytes:
    """gzip (possibly several members, as GZIPInputStream reads) with an output bound."""
    out = bytearray()
    pending = bytes(data)
    try:
        while True:
            stream = zlib.decompressobj(wbits=31)
            out += stream.decompress(pending, max_size + 1 - len(out))
            if len(out) > max_size or stream.unconsumed_tail:
                raise DecompressedSizeError(Compression.GZIP, max_size)
            out += stream.flush(max_size + 1 - len(out)) if not stream.eof else b""
            if len(out) > max_size:
                raise DecompressedSizeError(Compression.GZIP, max_size)
            if not stream.eof:
                raise DecodeError("gzip data is corrupt: unexpected end of stream")
            pending = stream.unused_data
            if not pending:
                return bytes(out)
    except zlib.error as exc:
        raise DecodeError(f"gzip data is corrupt: {exc}") from None


def _decompress_into(module, codec: int, data: Buffer, max_size: int) -> bytes:
    """Decode into a bounded buffer; cramjam cannot tell "too big" from "corrupt" here."""
    out = bytearray(max_size + 1)
    try:
        written = module.decompress_into(data, out)
    except cramjam.DecompressionError as exc:
        raise DecodeError(
            f"{_codec_name(codec)} data is corrupt or larger than {max_size} bytes: {exc}"
        ) from None
    if written > max_size:
        raise DecompressedSizeError(codec, max_size)
    del out[written:]
    return bytes(out)


def xerial_snappy_compress(data: Buffer, block_size: int = XERIAL_BLOCK_SIZE) -> bytes:
    """Snappy in xerial framing, as the Java client writes it."""
    view = memoryview(data).cast("B")
    parts = [XERIAL_HEADER.pack(XERIAL_MAGIC, XERIAL_VERSION, XERIAL_COMPATIBLE_VERSION)]
    for start in range(0, len(view), block_size):
        block = bytes(cramjam.snappy.compress_raw(view[start : start + block_size]))
        parts.append(_I32.pack(len(block)))
        parts.append(block)
    return b"".join(parts)


def snappy_decompress(data: Buffer, max_size: int | None = None) -> bytes:
    """Decode xerial-framed or raw snappy (detected by the xerial magic).

    Raw snappy blocks state their decompressed length up front, so `max_size` is checked
    before anything is decompressed.
    """
    view = memoryview(data).cast("B")
    if len(view) < XERIAL_HEADER.size or bytes(view[:8]) != XERIAL_MAGIC:
        _check_snappy_len(view, 0, max_size)
        return bytes(cramjam.snappy.decompress_raw(view))
    pos = XERIAL_HEADER.size
    blocks = []
    total = 0
    end = len(view)
    while pos < end:
        if end - pos < 4:
            raise DecodeError("xerial snappy chunk length is truncated")
        (length,) = _I32.unpack_from(view, pos)
        pos += 4
        if length < 0 or length > end - pos:
            raise DecodeError(f"xerial snappy chunk of {length} bytes exceeds the data")
        block = view[pos : pos + length]
        total = _check_snappy_len(block, total, max_size)
        blocks.append(block)
        pos += length
    return b"".join(bytes(cramjam.snappy.decompress_raw(block)) for block in blocks)


def _check_snappy_len(block: memoryview, total: int, max_size: int | None) -> int:
    """Add a raw block's declared length to `total`, enforcing `max_size`."""
    if max_size is None:
        return total
    total += cramjam.snappy.decompress_raw_len(block)
    if total > max_size:
        raise DecompressedSizeError(Compression.SNAPPY, max_size)
    return total


def lz4_decompress(data: Buffer, max_size: int | None = None) -> bytes:
    """Decode an LZ4 frame; falls back to fixing Kafka 0.8's broken header checksum."""
    try:
        return _lz4_frame(data, max_size)
    except DecodeError:
        fixed = fix_legacy_lz4_header_checksum(data)
        if fixed is None or fixed == bytes(data):
            raise
        return _lz4_frame(fixed, max_size)


def _lz4_frame(data: Buffer, max_size: int | None) -> bytes:
    if max_size is not None:
        return _decompress_into(cramjam.lz4, Compression.LZ4, data, max_size)
    try:
        return bytes(cramjam.lz4.decompress(data))
    except cramjam.DecompressionError as exc:
        raise DecodeError(f"lz4 data is corrupt: {exc}") from None


def _lz4_descriptor_end(view: memoryview) -> int | None:
    """Index of the header-checksum byte of an LZ4 frame, or None if not a frame."""
    if len(view) < 7 or bytes(view[:4]) != LZ4_FRAME_MAGIC:
        return None
    flg = view[4]
    end = 6  # magic + FLG + BD
    if flg & 0x08:  # content size present
        end += 8
    if flg & 0x01:  # dictionary id present
        end += 4
    return end if end < len(view) else None


def fix_legacy_lz4_header_checksum(data: Buffer) -> bytes | None:
    """Return `data` with the frame header checksum computed as the LZ4 spec says.

    Kafka 0.8/0.9 clients hashed the 4-byte magic as well as the descriptor; the spec
    hashes only the descriptor (FLG .. dictionary id). None when `data` is not an LZ4 frame.
    """
    view = memoryview(data).cast("B")
    hc_pos = _lz4_descriptor_end(view)
    if hc_pos is None:
        return None
    fixed = bytearray(view)
    fixed[hc_pos] = (xxh32(bytes(view[4:hc_pos])) >> 8) & 0xFF
    return bytes(fixed)


def break_lz4_header_checksum(data: Buffer) -> bytes:
    """The reverse of `fix_legacy_lz4_header_checksum`: Kafka 0.8's checksum over magic too.

    Only needed to write magic 0 LZ4 message sets that Kafka 0.8-era readers accept.
    """
    view = memoryview(data).cast("B")
    hc_pos = _lz4_descriptor_end(view)
    if hc_pos is None:
        raise ValueError("not an LZ4 frame")
    broken = bytearray(view)
    broken[hc_pos] = (xxh32(bytes(view[:hc_pos])) >> 8) & 0xFF
    return bytes(broken)


_PRIME32_1 = 2654435761
_PRIME32_2 = 2246822519
_PRIME32_3 = 3266489917
_PRIME32_4 = 668265263
_PRIME32_5 = 374761393
_MASK32 = 0xFFFFFFFF


def _rotl32(value: int, bits: int) -> int:
    return ((value << bits) | (value >> (32 - bits))) & _MASK32


def xxh32(data: bytes, seed: int = 0) -> int:
    """XXH32 of a short input (LZ4 frame header checksums only: a few bytes, pure Python)."""
    length = len(data)
    pos = 0
    if length >= 16:
        v1 = (seed + _PRIME32_1 + _PRIME32_2) & _MASK32
        v2 = (seed + _PRIME32_2) & _MASK32
        v3 = seed & _MASK32
        v4 = (seed - _PRIME32_1) & _MASK32
        lanes = [v1, v2, v3, v4]
        while pos + 16 <= length:
            for i in range(4):
                lane = int.from_bytes(data[pos : pos + 4], "little")
                mixed = _rotl32((lanes[i] + lane * _PRIME32_2) & _MASK32, 13)
                lanes[i] = (mixed * _PRIME32_1) & _MASK32
                pos += 4
        acc = (_rotl32(lanes[0], 1) + _rotl32(lanes[1], 7) + _rotl32(lanes[2], 12)
               + _rotl32(lanes[3], 18)) & _MASK32
    else:
        acc = (seed + _PRIME32_5) & _MASK32
    acc = (acc + length) & _MASK32
    while pos + 4 <= length:
        lane = int.from_bytes(data[pos : pos + 4], "little")
        acc = (_rotl32((acc + lane * _PRIME32_3) & _MASK32, 17) * _PRIME32_4) & _MASK32
        pos += 4
    while pos < length:
        acc = (_rotl32((acc + data[pos] * _PRIME32_5) & _MASK32, 11) * _PRIME32_1) & _MASK32
        pos += 1
    acc ^= acc >> 15
    acc = (acc * _PRIME32_2) & _MASK32
    acc ^= acc >> 13
    acc = (acc * _PRIME32_3) & _MASK32
    acc ^= acc >> 16
    return acc

"""protocol.compression: each codec round-trips and interoperates with kafka-python's codecs."""

from __future__ import annotations

import struct

import cramjam
import kafka.codec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.compression import (
    DecompressedSizeError,
    XERIAL_MAGIC,
    UnsupportedCompressionError,
    break_lz4_header_checksum,
    compress,
    decompress,
    fix_legacy_lz4_header_checksum,
    xxh32,
)
from protocol.errors import DecodeError
from protocol.records import Compression

needs_snappy = pytest.mark.skipif(not kafka.codec.has_snappy(), reason="python-snappy missing")
needs_lz4 = pytest.mark.skipif(not kafka.codec.has_lz4(), reason="lz4 missing")
needs_zstd = pytest.mark.skipif(not kafka.codec.has_zstd(), reason="zstandard missing")

# Compressible but not trivial: repeated text plus a counter.
PAYLOAD = b"".join(b"record %06d: the quick brown fox\n" % i for i in range(4_000))


@pytest.mark.parametrize("codec", list(Compression))
def test_round_trip_each_codec(codec: int) -> None:
    for data in (b"", b"x", PAYLOAD):
        assert decompress(codec, compress(codec, data)) == data
    if codec != Compression.NONE:
        assert len(compress(codec, PAYLOAD)) < len(PAYLOAD) // 2


@pytest.mark.parametrize("codec", list(Compression))
def test_accepts_memoryview(codec: int) -> None:
    view = memoryview(PAYLOAD)[10:5_000]
    assert decompress(codec, memoryview(compress(codec, view))) == PAYLOAD[10:5_000]


@settings(max_examples=25, deadline=None)
@given(data=st.binary(max_size=2_000), codec=st.sampled_from(list(Compression)))
def test_round_trip_property(data: bytes, codec: int) -> None:
    assert decompress(codec, compress(codec, data)) == data


def test_xerial_framing_as_java_writes_it() -> None:
    data = PAYLOAD[:100_000]
    framed = compress(Compression.SNAPPY, data)
    magic, version, compatible = struct.unpack_from(">8sii", framed)
    assert (magic, version, compatible) == (XERIAL_MAGIC, 1, 1)
    # Blocks of 32 KiB of input, each [int32 length][raw snappy block].
    pos, chunks = 16, []
    while pos < len(framed):
        (length,) = struct.unpack_from(">i", framed, pos)
        chunks.append(bytes(cramjam.snappy.decompress_raw(framed[pos + 4 : pos + 4 + length])))
        pos += 4 + length
    assert pos == len(framed)
    assert [len(c) for c in chunks] == [32_768, 32_768, 32_768, 100_000 - 3 * 32_768]
    assert b"".join(chunks) == data


def test_raw_snappy_is_decoded() -> None:
    raw = bytes(cramjam.snappy.compress_raw(PAYLOAD))
    assert decompress(Compression.SNAPPY, raw) == PAYLOAD


def test_gzip_cross_kafka_python() -> None:
    assert decompress(Compression.GZIP, kafka.codec.gzip_encode(PAYLOAD)) == PAYLOAD
    assert kafka.codec.gzip_decode(compress(Compression.GZIP, PAYLOAD)) == PAYLOAD


@needs_snappy
def test_snappy_cross_kafka_python() -> None:
    for xerial in (True, False):
        encoded = kafka.codec.snappy_encode(PAYLOAD, xerial_compatible=xerial)
        assert decompress(Compression.SNAPPY, encoded) == PAYLOAD
    assert kafka.codec.snappy_decode(compress(Compression.SNAPPY, PAYLOAD)) == PAYLOAD


@needs_lz4
def test_lz4_cross_kafka_python() -> None:
    assert decompress(Compression.LZ4, kafka.codec.lz4_encode(PAYLOAD)) == PAYLOAD
    assert kafka.codec.lz4_decode(compress(Compression.LZ4, PAYLOAD)) == PAYLOAD


@needs_lz4
def test_lz4_old_kafka_broken_checksum() -> None:
    import xxhash  # noqa: F401
    old = kafka.codec.lz4_encode_old_kafka(PAYLOAD)
    assert decompress(Compression.LZ4, old) == PAYLOAD
    assert break_lz4_header_checksum(compress(Compression.LZ4, PAYLOAD)) != compress(
        Compression.LZ4, PAYLOAD)
    assert kafka.codec.lz4_decode_old_kafka(
        break_lz4_header_checksum(compress(Compression.LZ4, PAYLOAD))) == PAYLOAD


def test_lz4_checksum_fix_and_break_are_inverse() -> None:
    frame = compress(Compression.LZ4, PAYLOAD)
    broken = break_lz4_header_checksum(frame)
    assert fix_legacy_lz4_header_checksum(broken) == frame
    assert decompress(Compression.LZ4, broken) == PAYLOAD
    assert fix_legacy_lz4_header_checksum(b"not a frame") is None


@needs_zstd
def test_zstd_cross_kafka_python() -> None:
    assert decompress(Compression.ZSTD, kafka.codec.zstd_encode(PAYLOAD)) == PAYLOAD
    assert kafka.codec.zstd_decode(compress(Compression.ZSTD, PAYLOAD)) == PAYLOAD


@pytest.mark.parametrize(
    ("data", "expected"),
    # Published XXH32 (seed 0) test values.
    [(b"", 0x02CC5D05), (b"a", 0x550D7456), (b"abc", 0x32D153FF)],
)
def test_xxh32_known_values(data: bytes, expected: int) -> None:
    assert xxh32(data) == expected


def test_xxh32_matches_xxhash_package() -> None:
    import xxhash
    for size in (0, 1, 3, 4, 7, 15, 16, 17, 33, 100):
        data = bytes(range(size))
        assert xxh32(data) == xxhash.xxh32_intdigest(data)


def test_unsupported_codec() -> None:
    for codec in (5, 7):
        with pytest.raises(UnsupportedCompressionError) as info:
            decompress(codec, b"abc")
        assert info.value.error_code == 76
        with pytest.raises(UnsupportedCompressionError):
            compress(codec, b"abc")


@pytest.mark.parametrize("codec", [c for c in Compression if c != Compression.NONE])
def test_corrupt_input_raises_decode_error(codec: int) -> None:
    good = compress(codec, PAYLOAD)
    for bad in (b"garbage!" * 4, good[: len(good) // 2]):
        with pytest.raises(DecodeError):
            decompress(codec, bad)


def test_truncated_xerial_chunk() -> None:
    framed = compress(Compression.SNAPPY, PAYLOAD)
    with pytest.raises(DecodeError):
        decompress(Compression.SNAPPY, framed[:18])
    with pytest.raises(DecodeError):
        decompress(Compression.SNAPPY, framed[:-5])


@pytest.mark.parametrize("codec", list(Compression))
def test_max_size_bounds_output(codec: int) -> None:
    bomb = compress(codec, b"\x00" * 2_000_000)
    assert decompress(codec, bomb, max_size=2_000_000) == b"\x00" * 2_000_000
    with pytest.raises(DecodeError) as info:
        decompress(codec, bomb, max_size=1_999_999)
    assert isinstance(info.value, DecompressedSizeError)


def test_bounded_gzip_reads_concatenated_members_and_rejects_truncation() -> None:
    two = compress(Compression.GZIP, b"first ") + compress(Compression.GZIP, b"second")
    assert decompress(Compression.GZIP, two, max_size=100) == b"first second"
    with pytest.raises(DecompressedSizeError):
        decompress(Compression.GZIP, two, max_size=8)
    with pytest.raises(DecodeError):
        decompress(Compression.GZIP, compress(Compression.GZIP, PAYLOAD)[:-10], max_size=10**7)

"""compression.type on append (re-encoding only when the codec differs) and keyless records
refused by compacted topics."""

from __future__ import annotations

import pytest

from protocol.record_codec import Record, build_batch, decode_batch
from protocol.records import Compression, read_batch_header, validate_batch

from kbroker.errors import KafkaError
from kbroker.log.recompression import prepare_for_append

TS = 1_700_000_000_000


def batch(codec: int = Compression.NONE, keys=(b"a", b"b"), **kwargs) -> bytes:
    records = [Record(i, i * 5, k, b"value-%d" % i, [("h", b"x")]) for i, k in enumerate(keys)]
    return build_batch(records, base_timestamp=TS, compression=codec, **kwargs)


@pytest.mark.parametrize("topic_type,codec", [("gzip", Compression.GZIP), ("snappy", Compression.SNAPPY),
                                              ("lz4", Compression.LZ4), ("zstd", Compression.ZSTD),
                                              ("uncompressed", Compression.NONE)])
def test_recompressed_to_the_topic_codec(topic_type, codec):
    source = batch(Compression.ZSTD if codec != Compression.ZSTD else Compression.GZIP,
                   producer_id=5, producer_epoch=2, base_sequence=10, is_transactional=True)
    stored = prepare_for_append(source, compression_type=topic_type, compacted=False, topic_partition="t-0")
    header = validate_batch(stored)  # a valid produced batch: CRC, counts
    assert header.compression == codec
    before, after = decode_batch(source), decode_batch(stored)
    assert after.records == before.records
    assert (after.producer_id, after.producer_epoch, after.base_sequence, after.is_transactional) == (5, 2, 10, True)
    assert (after.base_timestamp, after.max_timestamp) == (before.base_timestamp, before.max_timestamp)


@pytest.mark.parametrize("topic_type", ["producer", "gzip"])
def test_same_codec_or_producer_is_kept_byte_for_byte(topic_type):
    source = batch(Compression.GZIP)
    assert prepare_for_append(source, compression_type=topic_type, compacted=False, topic_partition="t-0") is source


def test_compacted_topic_refuses_keyless_records():
    with pytest.raises(KafkaError) as raised:
        prepare_for_append(batch(keys=(b"a", None)), compression_type="producer", compacted=True, topic_partition="t-0")
    assert raised.value.code == 87 and "without key" in raised.value.message
    keyed = batch(keys=(b"a", b"b"))
    assert prepare_for_append(keyed, compression_type="producer", compacted=True, topic_partition="t-0") is keyed


def test_undecodable_records_are_corrupt():
    source = bytearray(batch(Compression.GZIP))
    source[-8:] = b"\xff" * 8
    with pytest.raises(KafkaError) as raised:
        prepare_for_append(source, compression_type="lz4", compacted=False, topic_partition="t-0")
    assert raised.value.code == 2
    assert read_batch_header(bytes(source)).compression == Compression.GZIP

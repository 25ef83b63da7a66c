"""The only place the append path reads records: topic compression.type and compacted keys.

Kafka's LogValidator keeps a produced batch as it is unless the topic's ``compression.type``
names a codec other than the batch's (``producer`` keeps whatever the producer used), in
which case the records are decompressed and written again with the topic's codec, keeping
the producer id/epoch/sequence, the transactional flag, the timestamps and every record's
key, value, headers and offset delta. A compacted topic also refuses records without a key
(INVALID_RECORD, "Compacted topic cannot accept message without key ..."), which needs the
records decoded too. Everything else on the append path stays header-only.

Compression levels (``compression.gzip.level`` and friends) are accepted as configs but the
codec's default level is used (protocol.compression takes none).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from protocol.errors import DecodeError
from protocol.records import Compression, read_batch_header

from kbroker.errors import KafkaError

if TYPE_CHECKING:
    from protocol.record_codec import RecordBatch

INVALID_RECORD = 87
CORRUPT_MESSAGE = 2

# compression.type values -> codec ids; "producer" is absent on purpose (keep the batch's codec)
CODECS: dict[str, int] = {
    "uncompressed": Compression.NONE,
    "gzip": Compression.GZIP,
    "snappy": Compression.SNAPPY,
    "lz4": Compression.LZ4,
    "zstd": Compression.ZSTD,
}
_CODEC_MASK = 0x07


def target_codec(compression_type: str, batch_codec: int) -> int:
    """The codec a batch must be stored with under the topic's compression.type."""
    return CODECS.get(compression_type, batch_codec)


def needs_decoding(batch: bytes | bytearray | memoryview, *, compression_type: str, compacted: bool) -> bool:
    """Whether `prepare_for_append` must read records (cheap header check)."""
    if not compacted and compression_type not in CODECS:
        return False  # "producer" (the default): the batch is kept as sent, header unread
    header = read_batch_header(batch, 0)
    if header.is_control:
        return False
    codec = header.attributes & _CODEC_MASK
    return compacted or target_codec(compression_type, codec) != codec


def prepare_for_append(
    batch: bytes | bytearray | memoryview, *, compression_type: str, compacted: bool, topic_partition: str,
    max_decompressed_bytes: int | None = None,
) -> bytes | bytearray | memoryview:
    """The batch to store: `batch` itself, or a copy re-encoded with the topic's codec.

    Raises KafkaError(INVALID_RECORD) for a keyless record in a compacted topic and
    KafkaError(CORRUPT_MESSAGE) when the records cannot be decoded.
    """
    if not needs_decoding(batch, compression_type=compression_type, compacted=compacted):
        return batch
    # imported only for batches that must be read, so broker start-up (and the usual append)
    # never loads the record codec and cramjam behind it (issue 8)
    from protocol.record_codec import decode_batch, encode_batch

    try:
        decoded: RecordBatch = decode_batch(batch, max_decompressed_bytes=max_decompressed_bytes)
    except DecodeError as exc:
        raise KafkaError(CORRUPT_MESSAGE, f"records cannot be read: {exc}") from None
    if compacted and any(record.key is None for record in decoded.records):
        raise KafkaError(
            INVALID_RECORD, f"Compacted topic cannot accept message without key in topic partition {topic_partition}."
        )
    codec = target_codec(compression_type, decoded.compression)
    if codec == decoded.compression:
        return batch
    decoded.attributes = (decoded.attributes & ~_CODEC_MASK) | codec
    return encode_batch(decoded)

"""__transaction_state records: framing of TransactionLogKey/Value and their partition.

Key: int16 version (0) + TransactionLogKey; value: int16 version + TransactionLogValue
(version 0 written, 0-1 read), null for a tombstone. The partition of a transactional id is
Utils.abs(String.hashCode) % transaction.state.log.num.partitions, as Kafka.
"""

from __future__ import annotations

import struct

from kbroker.coordinator.records import partition_for as _abs_hash_partition
from kbroker.txn.coordinator import TxnMetadata, TxnRecord, TxnState

TRANSACTION_STATE_TOPIC = "__transaction_state"
KEY_VERSION = 0
VALUE_VERSION = 0
_VERSION = struct.Struct(">h")


def partition_for(transactional_id: str, num_partitions: int) -> int:
    """The __transaction_state partition of `transactional_id`."""
    return _abs_hash_partition(transactional_id, num_partitions)


def encode_record(record: TxnRecord) -> tuple[bytes, bytes | None]:
    """(key, value) bytes of one record."""
    from protocol import encode_data

    key = _VERSION.pack(KEY_VERSION) + encode_data(
        "TransactionLogKey", KEY_VERSION, {"transactional_id": record.transactional_id})
    meta = record.value
    if meta is None:
        return key, None
    by_topic: dict[str, list[int]] = {}
    for topic, partition in sorted(meta.partitions):
        by_topic.setdefault(topic, []).append(partition)
    value = {
        "producer_id": meta.producer_id,
        "producer_epoch": meta.producer_epoch,
        "transaction_timeout_ms": meta.txn_timeout_ms,
        "transaction_status": int(meta.state),
        "transaction_partitions": [{"topic": t, "partition_ids": ps} for t, ps in by_topic.items()],
        "transaction_last_update_timestamp_ms": meta.txn_last_update_timestamp_ms,
        "transaction_start_timestamp_ms": meta.txn_start_timestamp_ms,
    }
    return key, _VERSION.pack(VALUE_VERSION) + encode_data("TransactionLogValue", VALUE_VERSION, value)


def decode_record(key: bytes, value: bytes | None, *, last_producer_epoch: int = -1) -> TxnRecord | None:
    """The record of a (key, value) pair; None for keys that are not TransactionLogKey v0."""
    from protocol import decode_data

    if key is None or len(key) < 2:
        return None
    (key_version,) = _VERSION.unpack_from(key, 0)
    if key_version != KEY_VERSION:
        return None
    txn_id = decode_data("TransactionLogKey", key_version, bytes(key[2:]))["transactional_id"]
    if value is None:
        return TxnRecord(txn_id, None)
    (value_version,) = _VERSION.unpack_from(value, 0)
    v = decode_data("TransactionLogValue", value_version, bytes(value[2:]))
    partitions = frozenset((p["topic"], i) for p in v["transaction_partitions"] or ()
                           for i in p["partition_ids"])
    meta = TxnMetadata(txn_id, v["producer_id"], v["producer_epoch"], v["transaction_timeout_ms"],
                       TxnState(v["transaction_status"]), partitions,
                       v["transaction_start_timestamp_ms"], v["transaction_last_update_timestamp_ms"],
                       last_producer_epoch=last_producer_epoch)
    return TxnRecord(txn_id, meta)

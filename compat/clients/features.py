"""Feature tags per client (see compat/scenarios/__init__.py); kept apart from the drivers so
that a missing client library still lists, and fails, its scenarios."""

from __future__ import annotations

_CODECS = frozenset(f"compression:{c}" for c in ("none", "gzip", "snappy", "lz4", "zstd"))
_COMMON = frozenset({"admin", "list_offsets", "headers", "timestamps", "acks0", "idempotent",
                     "groups"}) | _CODECS

FEATURES: dict[str, frozenset[str]] = {
    "kafka-python": _COMMON | {"configs", "delete_records", "groups_admin", "committed",
                               "static_membership", "txn"},
    "confluent": _COMMON | {"configs", "delete_records", "groups_admin", "committed",
                            "static_membership", "cooperative", "consumer_protocol", "txn"},
    "aiokafka": _COMMON | {"configs", "delete_records", "groups_admin", "committed",
                           "static_membership", "txn"},
    "kcat": frozenset({"cli"}),
    "kafkajs": _COMMON | {"configs", "delete_records", "groups_admin", "committed", "txn"},
    "java": _COMMON | {"configs", "delete_records", "groups_admin", "committed",
                       "static_membership", "cooperative", "consumer_protocol", "txn"},
}

"""Feature tags per client (see compat/scenarios/__init__.py); kept apart from the drivers so
that a missing client library still lists, and fails, its scenarios."""

from __future__ import annotations

_CODECS = frozenset(f"compression:{c}" for c in ("none", "gzip", "snappy", "lz4", "zstd"))
_COMMON = frozenset({"data", "admin", "list_offsets", "headers", "timestamps", "acks0", "idempotent",
                     "groups"}) | _CODECS

FEATURES: dict[str, frozenset[str]] = {
    "kafka-python": _COMMON | {"configs", "incremental_alter", "delete_records", "groups_admin",
                               "committed", "static_membership", "cooperative", "txn"},
    "confluent": _COMMON | {"configs", "incremental_alter", "delete_records", "groups_admin", "committed",
                            "static_membership", "cooperative", "consumer_protocol", "txn"},
    # aiokafka's admin has neither IncrementalAlterConfigs nor DeleteGroups
    "aiokafka": _COMMON | {"configs", "delete_records", "committed", "static_membership", "txn"},
    "kcat": frozenset({"cli"}),
    # kafkajs: no IncrementalAlterConfigs, no static membership or cooperative assignor
    # and only gzip built in (snappy through kafkajs-snappy; lz4/zstd codecs are native add-ons)
    "kafkajs": (_COMMON - {"compression:lz4", "compression:zstd"})
    | {"configs", "delete_records", "groups_admin", "committed", "txn"},
    "java": _COMMON | {"configs", "incremental_alter", "delete_records", "groups_admin", "committed",
                       "static_membership", "cooperative", "consumer_protocol", "txn"},
}

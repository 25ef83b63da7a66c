"""Kafka error codes used by metadata code: `protocol.ErrorCode`, or the same numbers locally
while the codec package is still being built (so metadata can be tested on its own)."""

from __future__ import annotations

from enum import IntEnum

try:
    from protocol import ErrorCode
except ImportError:  # pragma: no cover - only before protocol exports ErrorCode

    class ErrorCode(IntEnum):  # type: ignore[no-redef]
        """The subset of Kafka's error codes metadata code raises (same names and numbers)."""

        UNKNOWN_SERVER_ERROR = -1
        NONE = 0
        UNKNOWN_TOPIC_OR_PARTITION = 3
        LEADER_NOT_AVAILABLE = 5
        INVALID_TOPIC_EXCEPTION = 17
        TOPIC_AUTHORIZATION_FAILED = 29
        UNSUPPORTED_VERSION = 35
        TOPIC_ALREADY_EXISTS = 36
        INVALID_PARTITIONS = 37
        INVALID_REPLICATION_FACTOR = 38
        INVALID_REPLICA_ASSIGNMENT = 39
        INVALID_CONFIG = 40
        NOT_CONTROLLER = 41
        INVALID_REQUEST = 42
        POLICY_VIOLATION = 44
        TOPIC_DELETION_DISABLED = 73
        UNKNOWN_TOPIC_ID = 100
        INCONSISTENT_TOPIC_ID = 103

__all__ = ["ErrorCode"]

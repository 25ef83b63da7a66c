"""Storage: segments, indexes, partition logs, checkpoints (synchronous file I/O).

See docs/storage.md for the on-disk format and recovery. Public entry points:
`PartitionLog`, `LogConfig`, and (trio side) `kbroker.log.manager.LogManager`.
"""

from kbroker.log.log_config import TOPIC_CONFIGS, LogConfig, validate_topic_config
from kbroker.log.partition_log import AppendResult, PartitionLog, ReadResult

__all__ = ["TOPIC_CONFIGS", "AppendResult", "LogConfig", "PartitionLog", "ReadResult", "validate_topic_config"]

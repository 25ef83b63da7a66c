"""DescribeLogDirs (key 35): each log directory with the size of its partitions.

`topics` null asks for every partition. A partition is reported under the log dir that
holds its directory; offset_lag is 0 (no future replicas or reassignment here).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from kbroker.dispatch import RequestContext, handler

DESCRIBE_LOG_DIRS = 35
KAFKA_STORAGE_ERROR = 56


def _log_dir_of(log: Any, log_dirs: list[Path]) -> Path:
    directory = getattr(log, "directory", None) or getattr(log, "dir", None)
    if directory is not None:
        parent = Path(directory).resolve().parent
        for candidate in log_dirs:
            if candidate.resolve() == parent:
                return candidate
    return log_dirs[0]


def _wanted(request: dict) -> dict[str, set[int]] | None:
    if request.get("topics") is None:
        return None
    return {t["topic"]: set(t["partitions"]) for t in request["topics"]}


@handler(DESCRIBE_LOG_DIRS, 0, 4)
async def handle_describe_log_dirs(ctx: RequestContext, request: dict) -> dict:
    """Report partition sizes per log dir (and, v4+, the dir's total and usable bytes)."""
    broker = ctx.broker
    log_dirs = [Path(d) for d in broker.config.log_dirs]
    wanted = _wanted(request)
    per_dir: dict[Path, dict[str, list[dict]]] = {d: {} for d in log_dirs}
    for log in broker.logs.all_logs():
        if wanted is not None and log.partition not in wanted.get(log.topic, ()):
            continue
        if log.topic.startswith("__cluster_metadata"):
            continue  # Kafka does not list the metadata log
        topics = per_dir[_log_dir_of(log, log_dirs)]
        topics.setdefault(log.topic, []).append({
            "partition_index": log.partition, "partition_size": log.size_bytes(),
            "offset_lag": 0, "is_future_key": False})
    results = []
    for directory, topics in per_dir.items():
        entry: dict = {"error_code": 0, "log_dir": str(directory.resolve()),
                       "topics": [{"name": name, "partitions": sorted(parts, key=lambda p: p["partition_index"])}
                                  for name, parts in sorted(topics.items())]}
        if ctx.api_version >= 4:
            try:
                usage = shutil.disk_usage(directory)
                entry["total_bytes"], entry["usable_bytes"] = usage.total, usage.free
            except OSError:
                entry["error_code"] = KAFKA_STORAGE_ERROR
                entry["total_bytes"] = entry["usable_bytes"] = -1
        results.append(entry)
    return {"throttle_time_ms": 0, "error_code": 0, "results": results}

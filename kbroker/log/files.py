"""File and directory names of the log store (Kafka's LogFileUtils / UnifiedLog naming).

A partition lives in ``<log dir>/<topic>-<partition>``; each segment is a set of files named
after its base offset zero-padded to 20 digits: ``00000000000000000000.log`` plus the sparse
``.index`` and ``.timeindex``. Per log dir, Kafka's checkpoint files and the clean-shutdown
marker sit beside the partition directories.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

LOG_SUFFIX = ".log"
INDEX_SUFFIX = ".index"
TIME_INDEX_SUFFIX = ".timeindex"
# Left behind by an interrupted delete or clean; removed when a partition is opened.
DELETED_SUFFIX = ".deleted"
CLEANED_SUFFIX = ".cleaned"
SWAP_SUFFIX = ".swap"
# A partition directory renamed for asynchronous deletion: "<topic>-<partition>.<uuid>-delete".
DELETE_DIR_SUFFIX = "-delete"

RECOVERY_POINT_CHECKPOINT = "recovery-point-offset-checkpoint"
REPLICATION_CHECKPOINT = "replication-offset-checkpoint"
LOG_START_OFFSET_CHECKPOINT = "log-start-offset-checkpoint"
CLEAN_SHUTDOWN_MARKER = ".kafka_cleanshutdown"
LEADER_EPOCH_CHECKPOINT = "leader-epoch-checkpoint"

_OFFSET_DIGITS = 20
_SEGMENT_FILE = re.compile(r"^(\d{20})(\.[a-z]+)$")
_PARTITION_DIR = re.compile(r"^(.+)-(\d+)$")


def offset_file_prefix(offset: int) -> str:
    """The 20-digit, zero-padded base offset used as every segment file's stem."""
    if offset < 0:
        raise ValueError(f"negative base offset {offset}")
    return f"{offset:0{_OFFSET_DIGITS}d}"


def log_file(directory: Path, base_offset: int) -> Path:
    """Path of the segment's record file."""
    return directory / (offset_file_prefix(base_offset) + LOG_SUFFIX)


def index_file(directory: Path, base_offset: int) -> Path:
    """Path of the segment's offset index."""
    return directory / (offset_file_prefix(base_offset) + INDEX_SUFFIX)


def time_index_file(directory: Path, base_offset: int) -> Path:
    """Path of the segment's time index."""
    return directory / (offset_file_prefix(base_offset) + TIME_INDEX_SUFFIX)


def parse_segment_file_name(name: str) -> tuple[int, str] | None:
    """(base offset, suffix) for a segment file name, None for anything else."""
    match = _SEGMENT_FILE.match(name)
    if match is None:
        return None
    return int(match.group(1)), match.group(2)


def partition_dir_name(topic: str, partition: int) -> str:
    """Directory name of a partition: ``<topic>-<partition>``."""
    return f"{topic}-{partition}"


def parse_partition_dir_name(name: str) -> tuple[str, int] | None:
    """(topic, partition) from ``<topic>-<partition>``; None for other names (incl. -delete)."""
    if name.endswith(DELETE_DIR_SUFFIX) or name.startswith("."):
        return None
    match = _PARTITION_DIR.match(name)
    if match is None:
        return None
    return match.group(1), int(match.group(2))


def fsync_dir(directory: Path) -> None:
    """fsync a directory so that creations, renames and unlinks inside it are durable."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes, *, fsync: bool = True) -> None:
    """Replace `path` with `data`: write a temporary file, fsync it, rename, fsync the dir.

    A crash leaves either the old or the new content, never a mix (Kafka's CheckpointFile).
    Without `fsync` the rename still replaces the file whole, but the new content may be lost
    in a crash until the caller fsyncs the file and its directory (`fsync_paths`).
    """
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            written = os.write(fd, view)
            view = view[written:]
        if fsync:
            os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    if fsync:
        fsync_dir(path.parent)


def fsync_paths(paths: list[Path]) -> None:
    """fsync each file or directory by path (own descriptors; safe in a worker thread).

    Paths that vanished meanwhile (deleted segments) are skipped.
    """
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            continue
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

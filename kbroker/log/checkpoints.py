"""Checkpoint files, in Kafka's text format, replaced atomically (tmp + fsync + rename).

Per log dir (Kafka's OffsetCheckpointFile)::

    0                       <- version
    2                       <- number of entries
    orders 0 1234           <- topic partition offset
    orders 1 99

used for ``recovery-point-offset-checkpoint``, ``replication-offset-checkpoint`` (high
watermarks) and ``log-start-offset-checkpoint``. Per partition, ``leader-epoch-checkpoint``
has the same header with ``<epoch> <start offset>`` lines (LeaderEpochCheckpointFile).
A malformed file is logged and treated as empty, which is always safe for the recovery point
(everything gets recovered).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Iterable, Mapping

from kbroker.log.files import write_atomically

logger = logging.getLogger(__name__)

CHECKPOINT_VERSION = 0


def write_offsets(path: Path, offsets: Mapping[tuple[str, int], int]) -> None:
    """Write an offset checkpoint: one ``topic partition offset`` line per entry."""
    lines = [str(CHECKPOINT_VERSION), str(len(offsets))]
    lines += [f"{topic} {partition} {offset}" for (topic, partition), offset in sorted(offsets.items())]
    write_atomically(path, ("\n".join(lines) + "\n").encode())


def read_offsets(path: Path) -> dict[tuple[str, int], int]:
    """Read an offset checkpoint; a missing file is empty, a malformed one is logged and empty."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:  # binary garbage (disk damage): as malformed
        logger.warning("ignoring malformed checkpoint file=%s error=%s", path, exc)
        return {}
    try:
        entries = _parse(text, 3)
        return {(fields[0], int(fields[1])): int(fields[2]) for fields in entries}
    except ValueError as exc:
        logger.warning("ignoring malformed checkpoint file=%s error=%s", path, exc)
        return {}


def write_epochs(path: Path, epochs: Iterable[tuple[int, int]], *, fsync: bool = True) -> None:
    """Write a leader-epoch checkpoint: ``epoch start_offset`` lines in epoch order."""
    entries = list(epochs)
    lines = [str(CHECKPOINT_VERSION), str(len(entries))] + [f"{e} {o}" for e, o in entries]
    write_atomically(path, ("\n".join(lines) + "\n").encode(), fsync=fsync)


def read_epochs(path: Path) -> list[tuple[int, int]]:
    """Read a leader-epoch checkpoint; missing or malformed files give an empty list."""
    try:
        text = path.read_text()
    except FileNotFoundError:
        return []
    try:
        return [(int(a), int(b)) for a, b in _parse(text, 2)]
    except ValueError as exc:
        logger.warning("ignoring malformed leader epoch checkpoint file=%s error=%s", path, exc)
        return []


def _parse(text: str, width: int) -> list[list[str]]:
    """Split a checkpoint into entry fields, checking version, count and field counts."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if len(lines) < 2:
        raise ValueError("missing header")
    if int(lines[0]) != CHECKPOINT_VERSION:
        raise ValueError(f"unsupported version {lines[0]}")
    count = int(lines[1])
    body = lines[2:]
    if count != len(body):
        raise ValueError(f"expected {count} entries, found {len(body)}")
    entries = [line.split(" ") for line in body]
    for fields in entries:
        if len(fields) != width:
            raise ValueError(f"malformed line {' '.join(fields)!r}")
    return entries

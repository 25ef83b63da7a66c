"""The interface between the metadata controller and the quorum that stores its log.

Today one implementation exists, `driver.SingleVoterQuorum` (this node is the only voter, so a
record is committed once it is fsynced). A multi-voter Raft (KRaft) implements the same
methods: `append` returns once a majority holds the records, and committed records reach the
listeners in offset order on every node, leader or follower.
"""

from __future__ import annotations

from typing import Callable, Protocol

# (base_offset, record values): a committed batch, delivered in offset order, once.
CommitListener = Callable[[int, list[bytes]], None]


class QuorumLog(Protocol):
    """A replicated, totally ordered log of metadata records."""

    node_id: int
    leader_epoch: int

    @property
    def end_offset(self) -> int:
        """The offset the next appended record will get (records are numbered from 0)."""

    def add_listener(self, fn: CommitListener) -> None:
        """Call `fn` for every batch committed from now on."""

    async def append(self, values: list[bytes]) -> int:
        """Append one batch; returns its last offset once it is committed.

        Offsets are assigned before the first checkpoint, so calls made one after another
        get increasing offsets in call order.
        """

    def read_committed(self, start_offset: int) -> list[tuple[int, list[bytes]]]:
        """Committed batches at or after `start_offset`, for replay at start-up."""

    def latest_snapshot(self) -> tuple[int, list[bytes]] | None:
        """(end offset, record values) of the newest snapshot, or None."""

    def save_snapshot(self, end_offset: int, values: list[bytes]) -> None:
        """Persist a snapshot of the state produced by every record below `end_offset`."""

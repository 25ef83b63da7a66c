"""Incremental fetch sessions (KIP-227), broker-wide, bounded by a slot count.

A Fetch request names a session by (session_id, session_epoch):

    epoch -1 (FINAL)    sessionless full fetch; a non-zero session_id is closed first
    epoch  0 (INITIAL)  full fetch that opens a new session (closing session_id if given);
                        the response carries the new id, or 0 when no slot is free
    epoch  n > 0        incremental fetch in session_id: FETCH_SESSION_ID_NOT_FOUND when the
                        id is unknown, INVALID_FETCH_SESSION_EPOCH when n is not the epoch the
                        broker expects; otherwise the request's partitions are added/updated,
                        the forgotten ones removed, and the epoch moves on by one.

A full response lists every partition; an incremental one lists only partitions with
records, an error, or a changed high watermark / last stable offset / log start offset.

The cache holds `max.incremental.fetch.session.cache.slots` sessions; when it is full a
new session may evict the least recently used session idle for at least
`EVICTION_IDLE_S` (Kafka's min.incremental.fetch.session.eviction.ms), else the fetch
proceeds without a session (id 0), as Kafka does.
"""

from __future__ import annotations

import random
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Hashable

FINAL_EPOCH = -1
INITIAL_EPOCH = 0
EVICTION_IDLE_S = 120.0
FETCH_SESSION_ID_NOT_FOUND = 70
INVALID_FETCH_SESSION_EPOCH = 71

PartitionKey = tuple[Hashable, int]  # (topic name or topic id, partition)


@dataclass(slots=True)
class CachedPartition:
    """What the session remembers of one partition between requests."""

    fetch_offset: int
    partition_max_bytes: int
    current_leader_epoch: int = -1
    log_start_offset: int = -1          # follower's, as sent
    high_watermark: int = -1            # last values sent to the client, to spot changes
    last_stable_offset: int = -1
    sent_log_start_offset: int = -1

    def changed(self, high_watermark: int, last_stable_offset: int, log_start_offset: int) -> bool:
        """Record the values about to be sent; True if any differs from the last response."""
        different = (high_watermark != self.high_watermark
                     or last_stable_offset != self.last_stable_offset
                     or log_start_offset != self.sent_log_start_offset)
        self.high_watermark = high_watermark
        self.last_stable_offset = last_stable_offset
        self.sent_log_start_offset = log_start_offset
        return different


@dataclass(slots=True)
class FetchSession:
    """One session: its id, the epoch expected next, and its partitions in fetch order."""

    session_id: int
    epoch: int
    partitions: "OrderedDict[PartitionKey, CachedPartition]" = field(default_factory=OrderedDict)
    last_used_s: float = 0.0


class FetchSessionError(Exception):
    """The request's session id / epoch cannot be served; `code` is the top-level error."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


class FetchSessionCache:
    """Sessions by id, least recently used first."""

    def __init__(self, max_slots: int, clock: Any, *, rng: random.Random | None = None) -> None:
        self.max_slots = max_slots
        self.clock = clock
        self._sessions: "OrderedDict[int, FetchSession]" = OrderedDict()
        self._rng = rng or random.Random()

    def __len__(self) -> int:
        return len(self._sessions)

    def get(self, session_id: int) -> FetchSession | None:
        """The session with this id, or None."""
        return self._sessions.get(session_id)

    def close(self, session_id: int) -> None:
        """Forget a session (client sent epoch -1 or opened a new one)."""
        self._sessions.pop(session_id, None)

    def forget_topic(self, topic: Hashable) -> None:
        """Drop a deleted topic's partitions from every session."""
        for session in self._sessions.values():
            for key in [k for k in session.partitions if k[0] == topic]:
                del session.partitions[key]

    def _new_id(self) -> int:
        while True:
            session_id = self._rng.randint(1, 2**31 - 1)
            if session_id not in self._sessions:
                return session_id

    def create(self, partitions: "OrderedDict[PartitionKey, CachedPartition]") -> FetchSession | None:
        """Open a session over `partitions`; None when no slot is free."""
        now = self.clock.monotonic()
        if self.max_slots <= 0:
            return None
        if len(self._sessions) >= self.max_slots:
            oldest_id, oldest = next(iter(self._sessions.items()))
            if now - oldest.last_used_s < EVICTION_IDLE_S:
                return None
            del self._sessions[oldest_id]
        session = FetchSession(self._new_id(), 1, partitions, now)
        self._sessions[session.session_id] = session
        return session

    def resume(self, session_id: int, epoch: int) -> FetchSession:
        """The session for an incremental request; raises FetchSessionError."""
        session = self._sessions.get(session_id)
        if session is None:
            raise FetchSessionError(FETCH_SESSION_ID_NOT_FOUND)
        if epoch != session.epoch:
            raise FetchSessionError(INVALID_FETCH_SESSION_EPOCH)
        session.epoch = session.epoch + 1 if session.epoch < 2**31 - 1 else 1
        session.last_used_s = self.clock.monotonic()
        self._sessions.move_to_end(session_id)
        return session

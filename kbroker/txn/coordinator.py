"""The transaction coordinator as a pure, replayable state machine (no trio, no I/O).

One `TxnMetadata` per transactional id. States (Kafka's ``TransactionState``, with the ids
written in ``TransactionLogValue.TransactionStatus``) and the transitions they allow, as
"state <- states it may be entered from":

    Empty (0)             <- Empty, CompleteCommit, CompleteAbort   (InitProducerId)
    Ongoing (1)           <- Ongoing, Empty, CompleteCommit, CompleteAbort (AddPartitions/Offsets)
    PrepareCommit (2)     <- Ongoing                                  (EndTxn commit)
    PrepareAbort (3)      <- Ongoing, PrepareEpochFence               (EndTxn abort, timeout,
                                                                       fencing InitProducerId)
    CompleteCommit (4)    <- PrepareCommit                            (markers written)
    CompleteAbort (5)     <- PrepareAbort                             (markers written)
    Dead (6)              <- Empty, CompleteCommit, CompleteAbort     (transactional id expired)
    PrepareEpochFence (7) <- Ongoing                                  (epoch bumped before an
                                                                       abort it forces)

Every operation returns a `Result`: the records to append to __transaction_state (each a full
`TxnMetadata` snapshot of one id, or a tombstone), the answer, and the markers to write. The
runtime appends the records, calls `replay` for each (the only way state changes, which is
also how the state is loaded), writes the markers, and then runs `complete_markers`, whose
record moves PrepareCommit/PrepareAbort to CompleteCommit/CompleteAbort. A coordinator that
restarts with an id in a Prepare state writes that id's markers again (`pending_markers`).
PrepareEpochFence is never persisted: the bump it stands for is written together with
PrepareAbort.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Callable, Iterable

logger = logging.getLogger(__name__)

NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
INVALID_PRODUCER_EPOCH = 47
INVALID_TXN_STATE = 48
INVALID_PRODUCER_ID_MAPPING = 49
INVALID_TRANSACTION_TIMEOUT = 50
CONCURRENT_TRANSACTIONS = 51
TRANSACTIONAL_ID_NOT_FOUND = 105
PRODUCER_FENCED = 90

NO_PRODUCER_ID = -1
NO_PRODUCER_EPOCH = -1
MAX_PRODUCER_EPOCH = 32767          # Short.MAX_VALUE; a bump past MAX - 1 takes a new id


class TxnState(IntEnum):
    """Kafka's TransactionState ids."""

    EMPTY = 0
    ONGOING = 1
    PREPARE_COMMIT = 2
    PREPARE_ABORT = 3
    COMPLETE_COMMIT = 4
    COMPLETE_ABORT = 5
    DEAD = 6
    PREPARE_EPOCH_FENCE = 7

    @property
    def kafka_name(self) -> str:
        """The name Kafka's admin APIs use (DescribeTransactions, ListTransactions)."""
        return "".join(part.capitalize() for part in self.name.split("_"))


VALID_PREVIOUS: dict[TxnState, frozenset[TxnState]] = {
    TxnState.EMPTY: frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}),
    TxnState.ONGOING: frozenset({TxnState.ONGOING, TxnState.EMPTY, TxnState.COMPLETE_COMMIT,
                                 TxnState.COMPLETE_ABORT}),
    TxnState.PREPARE_COMMIT: frozenset({TxnState.ONGOING}),
    TxnState.PREPARE_ABORT: frozenset({TxnState.ONGOING, TxnState.PREPARE_EPOCH_FENCE}),
    TxnState.COMPLETE_COMMIT: frozenset({TxnState.PREPARE_COMMIT}),
    TxnState.COMPLETE_ABORT: frozenset({TxnState.PREPARE_ABORT}),
    TxnState.DEAD: frozenset({TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT}),
    TxnState.PREPARE_EPOCH_FENCE: frozenset({TxnState.ONGOING}),
}

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class TxnMetadata:
    """Everything the coordinator knows about one transactional id (immutable snapshot)."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    txn_timeout_ms: int
    state: TxnState
    partitions: frozenset[TopicPartition] = frozenset()
    txn_start_timestamp_ms: int = -1
    txn_last_update_timestamp_ms: int = -1
    last_producer_epoch: int = NO_PRODUCER_EPOCH   # for KIP-360 retries of InitProducerId
    previous_producer_id: int = NO_PRODUCER_ID

    def to(self, state: TxnState, **changes) -> "TxnMetadata":
        """A copy in `state`; asserts the transition is allowed (a bug otherwise)."""
        assert self.state in VALID_PREVIOUS[state], (self.transactional_id, self.state, state)
        return dataclasses.replace(self, state=state, **changes)


@dataclass(frozen=True, slots=True)
class TxnRecord:
    """One __transaction_state record: an id's new metadata, or None (tombstone)."""

    transactional_id: str
    value: TxnMetadata | None


@dataclass(frozen=True, slots=True)
class MarkerRequest:
    """Markers the runtime must write: one per partition of the transaction."""

    transactional_id: str
    producer_id: int
    producer_epoch: int
    commit: bool
    partitions: frozenset[TopicPartition]


@dataclass(slots=True)
class Result:
    """What an operation decided: records to persist, the answer, markers to write."""

    records: list[TxnRecord] = field(default_factory=list)
    response: object = None
    markers: MarkerRequest | None = None


@dataclass(frozen=True, slots=True)
class TxnConfig:
    """Broker settings the coordinator obeys (Kafka names in comments)."""

    max_timeout_ms: int = 900_000                  # transaction.max.timeout.ms
    transactional_id_expiration_ms: int = 604_800_000  # transactional.id.expiration.ms


class TransactionCoordinator:
    """All transactional ids of this broker (every __transaction_state partition)."""

    def __init__(self, config: TxnConfig | None = None) -> None:
        self.config = config or TxnConfig()
        self.transactions: dict[str, TxnMetadata] = {}

    # ------------------------------------------------------------------ replay

    def replay(self, record: TxnRecord) -> None:
        """Apply one record (live results and loading alike)."""
        if record.value is None:
            self.transactions.pop(record.transactional_id, None)
        else:
            self.transactions[record.transactional_id] = record.value

    @staticmethod
    def _write(meta: TxnMetadata, response: object = None,
               markers: MarkerRequest | None = None) -> Result:
        return Result([TxnRecord(meta.transactional_id, meta)], response, markers)

    # ------------------------------------------------------------------ InitProducerId

    def init_producer_id(self, transactional_id: str, txn_timeout_ms: int, producer_id: int,
                         producer_epoch: int, *, now_ms: int,
                         new_producer_id: Callable[[], int]) -> Result:
        """InitProducerId with a transactional id; response: (error, producer id, epoch).

        A fresh id gets a new producer id and epoch 0; a known one gets its epoch bumped
        (fencing older producers), or a new producer id once the epoch is exhausted. An
        ongoing transaction is aborted first (with a bumped epoch) and the client is told
        CONCURRENT_TRANSACTIONS, so it retries once the abort is done, as Kafka does.
        """
        def answer(error: int, pid: int = NO_PRODUCER_ID, epoch: int = NO_PRODUCER_EPOCH) -> tuple:
            return (error, pid, epoch)

        if txn_timeout_ms <= 0 or txn_timeout_ms > self.config.max_timeout_ms:
            return Result(response=answer(INVALID_TRANSACTION_TIMEOUT))
        meta = self.transactions.get(transactional_id)
        if meta is None:
            meta = TxnMetadata(transactional_id, new_producer_id(), 0, txn_timeout_ms,
                               TxnState.EMPTY, txn_last_update_timestamp_ms=now_ms)
            return self._write(meta, answer(NONE, meta.producer_id, 0))
        if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT,
                          TxnState.PREPARE_EPOCH_FENCE):
            return Result(response=answer(CONCURRENT_TRANSACTIONS))
        if producer_id != NO_PRODUCER_ID:
            # KIP-360: the client names the id/epoch it had; only the current one may bump,
            # a retry of the bump we already did gets the same answer again.
            if producer_id == meta.producer_id and producer_epoch == meta.producer_epoch:
                pass
            elif (producer_id == meta.previous_producer_id or producer_id == meta.producer_id) \
                    and producer_epoch == meta.last_producer_epoch and meta.state is TxnState.EMPTY:
                return Result(response=answer(NONE, meta.producer_id, meta.producer_epoch))
            else:
                return Result(response=answer(PRODUCER_FENCED))
        if meta.state is TxnState.ONGOING:
            result = self._abort(meta, now_ms, bump_epoch=True)
            result.response = answer(CONCURRENT_TRANSACTIONS)
            return result
        if meta.state is TxnState.DEAD:
            return Result(response=answer(CONCURRENT_TRANSACTIONS))
        if meta.producer_epoch >= MAX_PRODUCER_EPOCH - 1:
            new = meta.to(TxnState.EMPTY, producer_id=new_producer_id(), producer_epoch=0,
                          previous_producer_id=meta.producer_id,
                          last_producer_epoch=NO_PRODUCER_EPOCH)
        else:
            new = meta.to(TxnState.EMPTY, producer_epoch=meta.producer_epoch + 1,
                          last_producer_epoch=meta.producer_epoch)
        new = dataclasses.replace(new, txn_timeout_ms=txn_timeout_ms, partitions=frozenset(),
                                  txn_start_timestamp_ms=-1, txn_last_update_timestamp_ms=now_ms)
        return self._write(new, answer(NONE, new.producer_id, new.producer_epoch))

    # ------------------------------------------------------------------ validation

    def _check(self, transactional_id: str, producer_id: int, producer_epoch: int
               ) -> tuple[int, TxnMetadata | None]:
        meta = self.transactions.get(transactional_id)
        if meta is None or meta.state is TxnState.DEAD or meta.producer_id != producer_id:
            return INVALID_PRODUCER_ID_MAPPING, meta
        if producer_epoch != meta.producer_epoch:
            return PRODUCER_FENCED, meta
        return NONE, meta

    # ------------------------------------------------------------------ AddPartitions / Offsets

    def add_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                       partitions: Iterable[TopicPartition], *, now_ms: int) -> Result:
        """AddPartitionsToTxn / AddOffsetsToTxn: the answer is one error code."""
        error, meta = self._check(transactional_id, producer_id, producer_epoch)
        if error:
            return Result(response=error)
        assert meta is not None
        if meta.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT,
                          TxnState.PREPARE_EPOCH_FENCE):
            return Result(response=CONCURRENT_TRANSACTIONS)
        wanted = frozenset(partitions)
        if meta.state is TxnState.ONGOING and wanted <= meta.partitions:
            return Result(response=NONE)
        start = meta.txn_start_timestamp_ms if meta.state is TxnState.ONGOING else now_ms
        new = meta.to(TxnState.ONGOING, partitions=meta.partitions | wanted,
                      txn_start_timestamp_ms=start, txn_last_update_timestamp_ms=now_ms)
        return self._write(new, NONE)

    def verify_partitions(self, transactional_id: str, producer_id: int, producer_epoch: int,
                          partitions: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """AddPartitionsToTxn v4 verify_only: which partitions are already in the transaction."""
        error, meta = self._check(transactional_id, producer_id, producer_epoch)
        result = {}
        for tp in partitions:
            if error:
                result[tp] = error
            else:
                assert meta is not None
                ongoing = meta.state is TxnState.ONGOING and tp in meta.partitions
                result[tp] = NONE if ongoing else INVALID_TXN_STATE
        return result

    def check_txn_offset_commit(self, transactional_id: str, producer_id: int,
                                producer_epoch: int) -> int:
        """TxnOffsetCommit may only come from the current producer of an ongoing txn."""
        error, meta = self._check(transactional_id, producer_id, producer_epoch)
        if error:
            return error
        assert meta is not None
        return NONE if meta.state is TxnState.ONGOING else INVALID_TXN_STATE

    # ------------------------------------------------------------------ EndTxn

    def end_txn(self, transactional_id: str, producer_id: int, producer_epoch: int,
                commit: bool, *, now_ms: int) -> Result:
        """EndTxn: Ongoing -> PrepareCommit/PrepareAbort plus markers; retries are idempotent."""
        error, meta = self._check(transactional_id, producer_id, producer_epoch)
        if error:
            return Result(response=error)
        assert meta is not None
        state = meta.state
        if state is TxnState.ONGOING:
            if commit:
                new = meta.to(TxnState.PREPARE_COMMIT, txn_last_update_timestamp_ms=now_ms)
                return self._write(new, NONE, self._markers(new, True))
            return self._abort(meta, now_ms, bump_epoch=False)
        if state is TxnState.COMPLETE_COMMIT:
            return Result(response=NONE if commit else INVALID_TXN_STATE)
        if state is TxnState.COMPLETE_ABORT:
            return Result(response=INVALID_TXN_STATE if commit else NONE)
        if state is TxnState.PREPARE_COMMIT:
            return Result(response=CONCURRENT_TRANSACTIONS if commit else INVALID_TXN_STATE)
        if state is TxnState.PREPARE_ABORT:
            return Result(response=INVALID_TXN_STATE if commit else CONCURRENT_TRANSACTIONS)
        if state is TxnState.PREPARE_EPOCH_FENCE:
            return Result(response=CONCURRENT_TRANSACTIONS)
        return Result(response=INVALID_TXN_STATE)   # Empty, Dead

    def _abort(self, meta: TxnMetadata, now_ms: int, *, bump_epoch: bool) -> Result:
        if bump_epoch and meta.producer_epoch < MAX_PRODUCER_EPOCH - 1:
            # PrepareEpochFence: the bump that fences the producer is carried by PrepareAbort.
            fenced = meta.to(TxnState.PREPARE_EPOCH_FENCE, producer_epoch=meta.producer_epoch + 1,
                             last_producer_epoch=meta.producer_epoch)
        else:
            fenced = meta
        new = fenced.to(TxnState.PREPARE_ABORT, txn_last_update_timestamp_ms=now_ms)
        return self._write(new, NONE, self._markers(new, False))

    @staticmethod
    def _markers(meta: TxnMetadata, commit: bool) -> MarkerRequest:
        return MarkerRequest(meta.transactional_id, meta.producer_id, meta.producer_epoch, commit,
                             meta.partitions)

    def complete_markers(self, transactional_id: str, *, now_ms: int) -> Result:
        """All markers are written: PrepareCommit/PrepareAbort -> CompleteCommit/CompleteAbort."""
        meta = self.transactions.get(transactional_id)
        if meta is None or meta.state not in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT):
            return Result()
        target = (TxnState.COMPLETE_COMMIT if meta.state is TxnState.PREPARE_COMMIT
                  else TxnState.COMPLETE_ABORT)
        return self._write(meta.to(target, partitions=frozenset(), txn_last_update_timestamp_ms=now_ms))

    def pending_markers(self) -> list[MarkerRequest]:
        """Markers of ids left in a Prepare state (e.g. by a crash): to be written again."""
        return [self._markers(m, m.state is TxnState.PREPARE_COMMIT)
                for m in self.transactions.values()
                if m.state in (TxnState.PREPARE_COMMIT, TxnState.PREPARE_ABORT)]

    # ------------------------------------------------------------------ timers

    def timed_out(self, now_ms: int) -> list[str]:
        """Ids whose ongoing transaction is older than its timeout."""
        return [m.transactional_id for m in self.transactions.values()
                if m.state is TxnState.ONGOING
                and m.txn_start_timestamp_ms + m.txn_timeout_ms < now_ms]

    def abort_timed_out(self, transactional_id: str, *, now_ms: int) -> Result:
        """Abort a timed-out transaction, bumping the epoch so its producer is fenced."""
        meta = self.transactions.get(transactional_id)
        if meta is None or meta.state is not TxnState.ONGOING \
                or meta.txn_start_timestamp_ms + meta.txn_timeout_ms >= now_ms:
            return Result()
        logger.info("aborting timed-out transaction transactional_id=%s producer_id=%d epoch=%d",
                    transactional_id, meta.producer_id, meta.producer_epoch)
        return self._abort(meta, now_ms, bump_epoch=True)

    def expire(self, now_ms: int) -> Result:
        """Tombstones for ids idle longer than transactional.id.expiration.ms."""
        result = Result()
        for meta in list(self.transactions.values()):
            if meta.state in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT) \
                    and meta.txn_last_update_timestamp_ms + \
                    self.config.transactional_id_expiration_ms <= now_ms:
                result.records.append(TxnRecord(meta.transactional_id, None))
        return result

    def next_deadline_ms(self) -> int | None:
        """The earliest transaction timeout or expiry, None when nothing is pending."""
        deadlines = []
        for m in self.transactions.values():
            if m.state is TxnState.ONGOING:
                deadlines.append(m.txn_start_timestamp_ms + m.txn_timeout_ms + 1)
            elif m.state in (TxnState.EMPTY, TxnState.COMPLETE_COMMIT, TxnState.COMPLETE_ABORT):
                deadlines.append(m.txn_last_update_timestamp_ms
                                 + self.config.transactional_id_expiration_ms)
        return min(deadlines) if deadlines else None

    # ------------------------------------------------------------------ admin queries

    def describe(self, transactional_id: str, *, now_ms: int) -> dict:
        """DescribeTransactions' TransactionState for one id."""
        meta = self.transactions.get(transactional_id)
        if meta is None or meta.state is TxnState.DEAD:
            return {"error_code": TRANSACTIONAL_ID_NOT_FOUND, "transactional_id": transactional_id,
                    "transaction_state": "", "transaction_timeout_ms": 0,
                    "transaction_start_time_ms": -1, "producer_id": -1, "producer_epoch": -1,
                    "topics": []}
        by_topic: dict[str, list[int]] = {}
        for topic, partition in sorted(meta.partitions):
            by_topic.setdefault(topic, []).append(partition)
        return {"error_code": NONE, "transactional_id": transactional_id,
                "transaction_state": meta.state.kafka_name,
                "transaction_timeout_ms": meta.txn_timeout_ms,
                "transaction_start_time_ms": meta.txn_start_timestamp_ms,
                "producer_id": meta.producer_id, "producer_epoch": meta.producer_epoch,
                "topics": [{"topic": t, "partitions": ps} for t, ps in by_topic.items()]}

    def list(self, state_filters: Iterable[str] = (), producer_id_filters: Iterable[int] = (),
             duration_filter_ms: int = -1, *, now_ms: int) -> tuple[list[dict], list[str]]:
        """ListTransactions: (matching ids, unknown state filters)."""
        known = {s.kafka_name for s in TxnState}
        states = set(state_filters)
        unknown = sorted(states - known)
        pids = set(producer_id_filters)
        out = []
        for meta in sorted(self.transactions.values(), key=lambda m: m.transactional_id):
            if meta.state is TxnState.DEAD:
                continue
            if states and meta.state.kafka_name not in states:
                continue
            if pids and meta.producer_id not in pids:
                continue
            if duration_filter_ms >= 0 and (meta.state is not TxnState.ONGOING
                                            or now_ms - meta.txn_start_timestamp_ms
                                            < duration_filter_ms):
                continue
            out.append({"transactional_id": meta.transactional_id, "producer_id": meta.producer_id,
                        "transaction_state": meta.state.kafka_name})
        return out, unknown

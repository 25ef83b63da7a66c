"""TransactionCoordinatorRuntime under trio's MockClock with real partition logs.

The broker is a stand-in: an image with __transaction_state (2 partitions) and one data
topic, real PartitionLogs in a temporary directory, and a producer id allocator.
"""

from __future__ import annotations

import ast
import uuid
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio
import trio.testing

import kbroker.txn
from kbroker.clock import Clock
from kbroker.log.producer_state import guarded_append
from kbroker.txn.coordinator import TxnState
from kbroker.txn.records import TRANSACTION_STATE_TOPIC
from kbroker.txn.runtime import TransactionCoordinatorRuntime
from protocol.record_codec import build_batch, decode_records
from tests.log.helpers import open_log

T0 = 1_700_000_000_000


class MockWallClock(Clock):
    """Wall time that follows trio's (mock) clock."""

    def now_ms(self) -> int:
        return T0 + int(trio.current_time() * 1000)


def _topic(name: str, count: int) -> SimpleNamespace:
    return SimpleNamespace(name=name, topic_id=uuid.uuid4(), configs={},
                           partitions={p: SimpleNamespace(leader_epoch=0) for p in range(count)})


class FakeBroker:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        topics = {TRANSACTION_STATE_TOPIC: _topic(TRANSACTION_STATE_TOPIC, 2), "data": _topic("data", 1)}
        self._next_block = 0

        async def allocate_producer_ids(broker_id: int, broker_epoch: int = -1):
            start = self._next_block
            self._next_block += 1000
            return start, 1000

        self.controller = SimpleNamespace(image=SimpleNamespace(topics_by_name=topics),
                                          allocate_producer_ids=allocate_producer_ids)
        self.config = SimpleNamespace(transaction_state_log_num_partitions=2,
                                      transaction_abort_timed_out_transaction_cleanup_interval_ms=1000)
        self.node_id = 1
        self.clock = MockWallClock()
        self.groups = None
        self.producers = None
        self._logs: dict[tuple[str, int], object] = {}

    def partition_log(self, topic, partition: int):
        key = (topic.name, partition)
        if key not in self._logs:
            self._logs[key] = open_log(self.directory / f"{topic.name}-{partition}")
        return self._logs[key]

    def log_appended(self, topic: str, partition: int) -> None:
        pass

    def close(self) -> None:
        for log in self._logs.values():
            log.close()


@pytest.fixture
def broker(tmp_path):
    b = FakeBroker(tmp_path)
    yield b
    b.close()


def data_log(broker: FakeBroker):
    return broker.partition_log(broker.controller.image.topics_by_name["data"], 0)


def produce_txn(broker: FakeBroker, pid: int, epoch: int, seq: int, value: bytes):
    batch = build_batch([(None, value)], base_timestamp=broker.clock.now_ms(), producer_id=pid,
                        producer_epoch=epoch, base_sequence=seq, is_transactional=True)
    return guarded_append(broker.producers, data_log(broker), batch, leader_epoch=0,
                          now_ms=broker.clock.now_ms())


async def init(runtime: TransactionCoordinatorRuntime, txn_id: str = "t", timeout_ms: int = 60_000):
    return await runtime.execute(lambda now: runtime.coordinator.init_producer_id(
        txn_id, timeout_ms, -1, -1, now_ms=now, new_producer_id=runtime.new_id_for_op))


async def add(runtime, pid, epoch, txn_id="t"):
    return await runtime.execute(lambda now: runtime.coordinator.add_partitions(
        txn_id, pid, epoch, [("data", 0)], now_ms=now))


async def test_commit_writes_marker_and_moves_the_lso(broker, autojump_clock):
    async with trio.open_nursery() as nursery:
        runtime = TransactionCoordinatorRuntime(broker)
        await nursery.start(runtime.run)
        error, pid, epoch = await init(runtime)
        assert (error, pid, epoch) == (0, 0, 0)
        assert await add(runtime, pid, epoch) == 0
        produce_txn(broker, pid, epoch, 0, b"a")
        produce_txn(broker, pid, epoch, 1, b"b")
        log = data_log(broker)
        state = broker.producers.for_log(log)
        assert state.last_stable_offset(log.high_watermark) == 0 and log.high_watermark == 2
        assert log.last_stable_offset == 0        # the log asks its producer state
        assert await runtime.execute(lambda now: runtime.coordinator.end_txn(
            "t", pid, epoch, True, now_ms=now)) == 0
        assert log.log_end_offset == 3 and log.last_stable_offset == 3
        marker = decode_records(log.read(2, 1 << 20).records)[0]
        assert marker.is_control and marker.producer_id == pid
        assert runtime.coordinator.transactions["t"].state is TxnState.COMPLETE_COMMIT
        nursery.cancel_scope.cancel()


async def test_timeout_aborts_fences_and_indexes_the_abort(broker, autojump_clock):
    async with trio.open_nursery() as nursery:
        runtime = TransactionCoordinatorRuntime(broker)
        await nursery.start(runtime.run)
        _, pid, epoch = await init(runtime, timeout_ms=5000)
        await add(runtime, pid, epoch)
        produce_txn(broker, pid, epoch, 0, b"x")
        await trio.sleep(4)
        assert runtime.coordinator.transactions["t"].state is TxnState.ONGOING
        await trio.sleep(3)       # mock time: past the timeout and a cleanup tick
        meta = runtime.coordinator.transactions["t"]
        assert meta.state is TxnState.COMPLETE_ABORT and meta.producer_epoch == epoch + 1
        state = broker.producers.for_log(data_log(broker))
        assert [(t.producer_id, t.first_offset, t.last_offset) for t in state.all_aborted()] == [(pid, 0, 1)]
        assert data_log(broker).last_stable_offset == 2
        fenced = await runtime.execute(lambda now: runtime.coordinator.end_txn(
            "t", pid, epoch, True, now_ms=now))
        assert fenced == 90
        nursery.cancel_scope.cancel()


async def test_state_is_reloaded_and_ids_are_not_reused(broker, autojump_clock):
    async with trio.open_nursery() as nursery:
        runtime = TransactionCoordinatorRuntime(broker)
        await nursery.start(runtime.run)
        _, pid, epoch = await init(runtime)
        await add(runtime, pid, epoch)
        nursery.cancel_scope.cancel()
    async with trio.open_nursery() as nursery:
        again = TransactionCoordinatorRuntime(broker)
        await nursery.start(again.run)
        meta = again.coordinator.transactions["t"]
        assert (meta.producer_id, meta.state, meta.partitions) == (pid, TxnState.ONGOING,
                                                                  frozenset({("data", 0)}))
        assert await again.new_producer_id() == 1000     # a fresh block from the metadata log
        nursery.cancel_scope.cancel()


def test_pure_modules_do_not_import_trio():
    """STYLE section 4, convention 1: only runtime.py does I/O with trio."""
    root = Path(kbroker.txn.__file__).parent
    paths = [p for p in root.glob("*.py") if p.name != "runtime.py"]
    paths += [root.parent / "log" / "producer_state.py", root.parent / "log" / "txn_index.py"]
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module] if isinstance(node, ast.ImportFrom) and node.module else [])
            assert not any(n.split(".")[0] == "trio" for n in names), f"{path.name} imports trio"

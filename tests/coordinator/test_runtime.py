"""GroupCoordinatorRuntime under trio's MockClock: timers, delayed answers, load by replay.

The broker is a stand-in: an image holding __consumer_offsets and in-memory partition logs
that keep appended batches (offsets assigned as a real log would).
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import trio

from kbroker.clock import Clock
from kbroker.coordinator.coordinator import CommitPartition
from kbroker.coordinator.group import GroupState
from kbroker.coordinator.runtime import OFFSETS_TOPIC, GroupCoordinatorRuntime
from protocol.records import iter_batches, set_base_offset

T0 = 1_700_000_000_000
PARTITIONS = 3


class MockWallClock(Clock):
    """Wall time that follows trio's (mock) clock, so timers and timestamps agree."""

    def now_ms(self) -> int:
        return T0 + int(trio.current_time() * 1000)


class MemoryLog:
    """Just enough of PartitionLog: append whole batches, read them back from an offset."""

    def __init__(self) -> None:
        self.batches: list[tuple[int, bytes]] = []
        self.log_start_offset = 0
        self.log_end_offset = 0

    def append(self, records: bytes, *, leader_epoch: int, now_ms: int) -> None:
        buf = bytearray(records)
        set_base_offset(buf, 0, self.log_end_offset)
        header = next(iter_batches(bytes(buf)))[1]
        self.batches.append((self.log_end_offset, bytes(buf)))
        self.log_end_offset = header.next_offset

    def read(self, offset: int, max_bytes: int) -> SimpleNamespace:
        data = b"".join(b for base, b in self.batches if base >= offset)
        return SimpleNamespace(records=data)


class FakeBroker:
    def __init__(self, logs: dict[int, MemoryLog] | None = None) -> None:
        self.logs = logs if logs is not None else {p: MemoryLog() for p in range(PARTITIONS)}
        partitions = {p: SimpleNamespace(leader_epoch=0) for p in range(PARTITIONS)}
        topic = SimpleNamespace(name=OFFSETS_TOPIC, topic_id=uuid.uuid4(), partitions=partitions)
        self.controller = SimpleNamespace(image=SimpleNamespace(
            topics_by_name={OFFSETS_TOPIC: topic}))
        self.config = SimpleNamespace(offsets_topic_num_partitions=PARTITIONS,
                                      group_initial_rebalance_delay_ms=0)
        self.clock = MockWallClock()
        self.appended: list[int] = []

    def partition_log(self, topic, partition: int) -> MemoryLog:
        return self.logs[partition]

    def log_appended(self, topic: str, partition: int) -> None:
        self.appended.append(partition)


def join_request(member_id: str = "") -> dict:
    return {"group_id": "g", "session_timeout_ms": 10_000, "rebalance_timeout_ms": 20_000,
            "member_id": member_id, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b"m"}]}


async def join(runtime: GroupCoordinatorRuntime, member_id: str = "") -> dict:
    return await runtime.execute(lambda now: runtime.coordinator.join_group(
        join_request(member_id), client_id="c", client_host="/h", api_version=3, now_ms=now))


async def test_session_timeout_fires_and_state_reloads(autojump_clock):
    broker = FakeBroker()
    runtime = GroupCoordinatorRuntime(broker)
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        answer = await join(runtime)
        member, gen = answer["member_id"], answer["generation_id"]
        await runtime.execute(lambda now: runtime.coordinator.sync_group(
            {"group_id": "g", "generation_id": gen, "member_id": member,
             "assignments": [{"member_id": member, "assignment": b"A"}]}, now_ms=now))
        errors = await runtime.execute(lambda now: runtime.coordinator.offset_commit(
            "g", generation_id=gen, member_id=member, group_instance_id=None, retention_ms=-1,
            partitions=[CommitPartition("t", 0, 42, 1, "meta")], now_ms=now))
        assert errors == {("t", 0): 0}
        assert runtime.coordinator.groups["g"].state is GroupState.STABLE
        # the member goes silent: the timer task removes it after the session timeout
        await trio.sleep(9)
        assert runtime.coordinator.groups["g"].members
        await trio.sleep(2)
        assert runtime.coordinator.groups["g"].state is GroupState.EMPTY
        nursery.cancel_scope.cancel()

    # a new runtime over the same logs replays them: offsets and the emptied group
    reloaded = GroupCoordinatorRuntime(FakeBroker(broker.logs))
    async with trio.open_nursery() as nursery:
        await nursery.start(reloaded.run)
        group = reloaded.coordinator.groups["g"]
        assert group.state is GroupState.EMPTY and group.generation_id == gen + 1
        offset = group.offsets[("t", 0)]
        assert (offset.offset, offset.leader_epoch, offset.metadata) == (42, 1, "meta")
        nursery.cancel_scope.cancel()
    assert set(broker.appended) == {runtime.partition_for("g")}


async def test_delayed_join_is_answered_when_the_rebalance_completes(autojump_clock):
    runtime = GroupCoordinatorRuntime(FakeBroker())
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        first = await join(runtime)
        await runtime.execute(lambda now: runtime.coordinator.sync_group(
            {"group_id": "g", "generation_id": 1, "member_id": first["member_id"],
             "assignments": []}, now_ms=now))
        answers: dict[str, dict] = {}

        async def second_join() -> None:
            answers["second"] = await join(runtime)

        nursery.start_soon(second_join)
        await trio.sleep(1)
        assert "second" not in answers, "waits for the first member to rejoin"
        answers["first"] = await join(runtime, first["member_id"])
        await trio.sleep(0)
        assert answers["first"]["generation_id"] == answers["second"]["generation_id"] == 2
        nursery.cancel_scope.cancel()


async def test_rebalance_timeout_answers_the_waiting_join(autojump_clock):
    runtime = GroupCoordinatorRuntime(FakeBroker())
    async with trio.open_nursery() as nursery:
        await nursery.start(runtime.run)
        first = await join(runtime)
        await runtime.execute(lambda now: runtime.coordinator.sync_group(
            {"group_id": "g", "generation_id": 1, "member_id": first["member_id"],
             "assignments": []}, now_ms=now))
        start = trio.current_time()
        # the first member keeps quiet; the newcomer's join completes at the rebalance
        # timeout (20 s) at the latest, without the first member (its session also ran out)
        second = await join(runtime)
        assert trio.current_time() - start <= 20.5
        assert second["generation_id"] == 2
        assert [m["member_id"] for m in second["members"]] == [second["member_id"]]
        nursery.cancel_scope.cancel()

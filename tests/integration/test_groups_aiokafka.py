"""Consumer groups with aiokafka consumers (asyncio, run inside a plain test)."""

from __future__ import annotations

import asyncio

import pytest

from kbroker.testing import KafkaBroker
from tests.integration.groups_support import (GROUP_BROKER_OVERRIDES, SESSION_MS, create_topic,
                                              produce, unique)

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker(GROUP_BROKER_OVERRIDES) as running:
        yield running


async def _consume_group(bootstrap: str, topic: str, group: str, values: list[bytes],
                         members: int) -> tuple[list[set[int]], list[bytes]]:
    """Start `members` aiokafka consumers of `group`; once they share the 6 partitions,
    produce `values` and consume until as many records are committed."""
    from aiokafka import AIOKafkaConsumer

    consumers = [AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                  enable_auto_commit=False, auto_offset_reset="earliest",
                                  session_timeout_ms=SESSION_MS, heartbeat_interval_ms=300,
                                  max_poll_interval_ms=8000)
                 for _ in range(members)]
    got: list[bytes] = []
    for c in consumers:
        await c.start()
    total = len(values)
    try:
        async def settled() -> None:
            while True:
                await asyncio.gather(*(c.getmany(timeout_ms=50) for c in consumers))
                held = [{tp.partition for tp in c.assignment()} for c in consumers]
                if all(held) and sorted(p for h in held for p in h) == list(range(6)):
                    return

        await asyncio.wait_for(settled(), 60)
        await asyncio.to_thread(produce, bootstrap, topic, values, 6)

        async def run(c) -> None:
            while len(got) < total:
                batch = await c.getmany(timeout_ms=200)
                values = [m.value for ms in batch.values() for m in ms]
                if values:
                    await c.commit()
                    got.extend(values)

        await asyncio.wait_for(asyncio.gather(*(run(c) for c in consumers)), 60)
        return [{tp.partition for tp in c.assignment()} for c in consumers], got
    finally:
        for c in consumers:
            await c.stop()


def test_aiokafka_group_splits_and_resumes(broker):
    topic, group = unique("t"), unique("g")
    bootstrap = broker.bootstrap_servers
    create_topic(bootstrap, topic, 6)
    values = [b"%d" % i for i in range(60)]
    assignments, got = asyncio.run(_consume_group(bootstrap, topic, group, values, 2))
    assert sorted(got) == sorted(values)
    assert sorted(p for a in assignments for p in a) == list(range(6))
    assert all(assignments)
    # a new consumer of the same group starts after the committed offsets
    more = [b"n%d" % i for i in range(12)]
    _, got = asyncio.run(_consume_group(bootstrap, topic, group, more, 1))
    assert sorted(got) == sorted(more)

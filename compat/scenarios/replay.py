"""Replay: seek to an offset, to earliest/latest, offsets for a timestamp."""

from __future__ import annotations

import time

from compat.clients.base import Client
from compat.scenarios import Context, scenario
from compat.scenarios.checks import expect_equal, numbered


@scenario("seek_offset", timeout_s=60)
def seek_offset(client: Client, ctx: Context) -> None:
    """Reading from offset 20 returns offsets 20..49 and their values."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    client.produce(topic, numbered(50))
    got = client.consume(topic, count=30, partitions=[0], start={0: 20})
    expect_equal([r["offset"] for r in got], list(range(20, 50)), "offsets read after seek")
    expect_equal([r["value"] for r in got], [f"v{i}".encode() for i in range(20, 50)], "values")


@scenario("seek_earliest_latest", requires=("list_offsets",), timeout_s=60)
def seek_earliest_latest(client: Client, ctx: Context) -> None:
    """Earliest is 0, latest is the end; reading from latest returns nothing old."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    client.produce(topic, numbered(25))
    expect_equal(client.list_offsets(topic, 0, "earliest"), 0, "earliest offset")
    expect_equal(client.list_offsets(topic, 0, "latest"), 25, "latest offset")
    got = client.consume(topic, count=25, partitions=[0], start="earliest")
    expect_equal([r["offset"] for r in got], list(range(25)), "offsets from earliest")
    got = client.consume(topic, count=1, partitions=[0], start="latest", timeout_s=3)
    expect_equal(got, [], "records read from latest with nothing new produced")


@scenario("offsets_for_times", requires=("list_offsets", "timestamps"), timeout_s=60)
def offsets_for_times(client: Client, ctx: Context) -> None:
    """The offset for a timestamp is the first record at or after it."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    base = (int(time.time()) - 7200) * 1000
    records = numbered(40)
    for i, r in enumerate(records):
        r["timestamp"] = base + i * 1000
    client.produce(topic, records)
    expect_equal(client.list_offsets(topic, 0, base + 10_500), 11, "offset for a timestamp between records")
    expect_equal(client.list_offsets(topic, 0, base + 20_000), 20, "offset for an exact timestamp")
    expect_equal(client.list_offsets(topic, 0, base + 999_999), -1, "offset for a timestamp after the end")
    got = client.consume(topic, count=5, partitions=[0], start={"timestamp": base + 30_000})
    # the client may hand back more than the 5 asked for; the first ones must start at 30
    expect_equal([r["offset"] for r in got[:5]], [30, 31, 32, 33, 34], "offsets read from a timestamp")

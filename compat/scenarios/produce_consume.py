"""Produce and consume round trips: fields byte for byte, order, volume, one large record."""

from __future__ import annotations

import os
import time

from compat.clients.base import Client
from compat.scenarios import Context, scenario
from compat.scenarios.checks import check_exactly_once_in_order, expect, expect_equal, numbered


@scenario("roundtrip", requires=("headers", "timestamps"), timeout_s=90)
def roundtrip(client: Client, ctx: Context) -> None:
    """Keys, values, headers and timestamps come back byte for byte, on 3 partitions."""
    topic = ctx.topic()
    client.create_topic(topic, 3)
    base_ts = (int(time.time()) - 3600) * 1000  # an hour ago: CreateTime must be kept as sent
    records = []
    for i in range(30):
        key = None if i % 10 == 9 else bytes([i, 0, 255]) + f"key-{i}".encode()
        value = b"" if i % 10 == 8 else os.urandom(16) + f"value-{i}".encode()
        headers = [("h-ascii", f"x{i}".encode()), ("h-bin", bytes([0, i, 255])), ("h-dup", b"1"),
                   ("h-dup", b"2")]
        records.append({"partition": i % 3, "key": key, "value": value, "headers": headers,
                        "timestamp": base_ts + i})
    acked = client.produce(topic, records)
    expect_equal([p for p, _ in acked], [r["partition"] for r in records], "acked partitions")
    got = client.consume(topic, count=len(records), partitions=[0, 1, 2])
    check_exactly_once_in_order(records, got)
    by_offset = {(r["partition"], r["offset"]): r for r in got}
    for sent, (partition, offset) in zip(records, acked):
        r = by_offset.get((partition, offset))
        expect(r is not None, f"no record at acked position {partition}/{offset}")
        expect_equal(r["key"], sent["key"], f"key at {partition}/{offset}")
        expect_equal(r["value"], sent["value"], f"value at {partition}/{offset}")
        expect_equal(list(map(tuple, r["headers"])), sent["headers"], f"headers at {partition}/{offset}")
        expect_equal(r["timestamp"], sent["timestamp"], f"timestamp at {partition}/{offset}")


@scenario("order_3_partitions", timeout_s=90)
def order_3_partitions(client: Client, ctx: Context) -> None:
    """1,500 records over 3 partitions come back once each, in order, offsets from 0."""
    topic = ctx.topic()
    client.create_topic(topic, 3)
    records = numbered(1500, partitions=3)
    client.produce(topic, records)
    got = client.consume(topic, count=len(records), partitions=[0, 1, 2])
    check_exactly_once_in_order(records, got)
    for p in range(3):
        offsets = [r["offset"] for r in got if r["partition"] == p]
        expect_equal(offsets, list(range(500)), f"offsets of partition {p}")


@scenario("records_100k", timeout_s=300)
def records_100k(client: Client, ctx: Context) -> None:
    """100,000 small records counted exactly (no loss, no duplicates)."""
    topic = ctx.topic()
    client.create_topic(topic, 3)
    records = numbered(100_000, partitions=3)
    client.produce(topic, records)
    got = client.consume(topic, count=len(records), partitions=[0, 1, 2], timeout_s=180)
    check_exactly_once_in_order(records, got)
    if "list_offsets" in client.features:
        total = sum(client.list_offsets(topic, p, "latest") for p in range(3))
        expect_equal(total, 100_000, "sum of log end offsets")


@scenario("large_record_900k", timeout_s=90)
def large_record(client: Client, ctx: Context) -> None:
    """One 900 KB record round trips intact."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    value = os.urandom(900 * 1024)
    client.produce(topic, [{"partition": 0, "key": b"big", "value": value, "headers": []}])
    got = client.consume(topic, count=1, partitions=[0])
    expect_equal(len(got), 1, "records consumed")
    expect_equal(len(got[0]["value"]), len(value), "value length")
    expect(got[0]["value"] == value, "900 KB value differs")

"""Transactions: read_committed visibility, aborts, consume-transform-produce, fencing."""

from __future__ import annotations

from compat.clients.base import Client
from compat.errors import ClientError
from compat.scenarios import Context, scenario
from compat.scenarios.checks import expect, expect_equal, numbered
from compat.scenarios.groups import poll_members


@scenario("txn_commit_visible", requires=("txn",), timeout_s=120)
def txn_commit_visible(client: Client, ctx: Context) -> None:
    """Records of a committed transaction are visible to read_committed, in order."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    client.txn_open("p", ctx.group("txn"))
    client.txn_begin("p")
    client.txn_produce("p", topic, numbered(10, prefix="committed-"))
    client.txn_commit("p")
    got = client.consume(topic, count=10, partitions=[0], isolation="read_committed")
    expect_equal([r["value"] for r in got], [f"committed-{i}".encode() for i in range(10)],
                 "values read committed")


@scenario("txn_abort_invisible", requires=("txn",), timeout_s=120)
def txn_abort_invisible(client: Client, ctx: Context) -> None:
    """An aborted transaction is invisible to read_committed, visible to read_uncommitted."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    client.txn_open("p", ctx.group("txn"))
    client.txn_begin("p")
    client.txn_produce("p", topic, numbered(10, prefix="aborted-"))
    client.txn_abort("p")
    client.txn_begin("p")
    client.txn_produce("p", topic, numbered(5, prefix="committed-"))
    client.txn_commit("p")
    got = client.consume(topic, count=15, partitions=[0], isolation="read_committed", timeout_s=8)
    expect_equal([r["value"] for r in got], [f"committed-{i}".encode() for i in range(5)],
                 "values read committed")
    got = client.consume(topic, count=15, partitions=[0], isolation="read_uncommitted", timeout_s=15)
    expect_equal(len(got), 15, "records read uncommitted (aborted ones included)")


@scenario("txn_consume_transform_produce", requires=("txn", "groups"), timeout_s=180)
def txn_consume_transform_produce(client: Client, ctx: Context) -> None:
    """Read from a group, produce results and commit the input offsets in one transaction."""
    source, sink, group = ctx.topic("in"), ctx.topic("out"), ctx.group()
    client.create_topic(source, 1)
    client.create_topic(sink, 1)
    client.produce(source, numbered(20, prefix="in-"))
    client.group_open("c", group, [source])
    reads = poll_members(client, ["c"], lambda reads: len(reads["c"]) >= 20, 60, "20 input records")
    client.txn_open("p", ctx.group("txn"))
    client.txn_begin("p")
    out = [{"partition": 0, "key": r["key"], "value": r["value"].upper(), "headers": []} for r in reads["c"]]
    client.txn_produce("p", sink, out)
    client.txn_send_offsets("p", "c", {(source, 0): max(r["offset"] for r in reads["c"]) + 1})
    client.txn_commit("p")
    got = client.consume(sink, count=20, partitions=[0], isolation="read_committed")
    expect_equal([r["value"] for r in got], [f"IN-{i}".encode() for i in range(20)], "transformed values")
    client.group_close("c")
    if "committed" in client.features:
        expect_equal(client.committed(group, source, 1), {0: 20}, "offsets committed in the transaction")
    else:
        # a new member must start after the transactionally committed offsets
        client.produce(source, numbered(1, prefix="later-"))
        client.group_open("d", group, [source])
        reads = poll_members(client, ["d"], lambda reads: len(reads["d"]) >= 1, 60, "the new record")
        expect_equal([r["value"] for r in reads["d"]], [b"later-0"], "records after the transactional commit")


@scenario("txn_fencing", requires=("txn",), timeout_s=120)
def txn_fencing(client: Client, ctx: Context) -> None:
    """A second producer with the same transactional id fences the first."""
    topic, txn_id = ctx.topic(), ctx.group("txn")
    client.create_topic(topic, 1)
    client.txn_open("old", txn_id)
    client.txn_begin("old")
    client.txn_produce("old", topic, numbered(3, prefix="zombie-"))
    client.txn_open("new", txn_id)
    fenced = False
    try:
        client.txn_commit("old")
    except ClientError as exc:
        fenced = True
        expect(exc.kind in ("fenced", "error"), f"unexpected error kind {exc.kind}")
    expect(fenced, "the fenced producer could still commit")
    client.txn_begin("new")
    client.txn_produce("new", topic, numbered(2, prefix="fresh-"))
    client.txn_commit("new")
    got = client.consume(topic, count=5, partitions=[0], isolation="read_committed", timeout_s=8)
    expect_equal([r["value"] for r in got], [b"fresh-0", b"fresh-1"], "values read committed")

"""Consumer groups: sharing, rebalancing, commit and resume, static membership, cooperative
assignment and the KIP-848 consumer protocol."""

from __future__ import annotations

import time

from compat.clients.base import Client, Record
from compat.scenarios import Context, scenario
from compat.scenarios.checks import expect, expect_equal, numbered
from compat.errors import Mismatch

POLL_S = 1.0


def poll_members(client: Client, handles: list[str], until, timeout_s: float, what: str) -> dict[str, list[Record]]:
    """Poll every member in turn (members must keep polling to take part in rebalances)
    until ``until(reads)`` is true; reads maps handle -> records read so far."""
    reads: dict[str, list[Record]] = {h: [] for h in handles}
    deadline = time.monotonic() + timeout_s
    while True:
        for h, records in client.group_poll_many(handles, POLL_S).items():
            reads[h].extend(records)
        if until(reads):
            return reads
        if time.monotonic() > deadline:
            counts = {h: len(r) for h, r in reads.items()}
            assignments = {h: client.group_assignment(h) for h in handles}
            raise Mismatch(f"timed out after {timeout_s:.0f}s waiting for {what}; read {counts}, "
                           f"assignments {assignments}")


def split_ok(client: Client, handles: list[str], partitions: int) -> bool:
    """True when every member owns some partitions and together they own each exactly once."""
    owned = [sorted(p for _, p in client.group_assignment(h)) for h in handles]
    flat = sorted(p for o in owned for p in o)
    return all(owned) and flat == list(range(partitions))


def check_no_double_reads(reads: dict[str, list[Record]], total: int) -> None:
    """Each record read by exactly one member."""
    positions = [(r["partition"], r["offset"]) for rs in reads.values() for r in rs]
    expect(len(positions) == len(set(positions)), "a record was read by two members (or twice)")
    expect_equal(len(positions), total, "records read by the group")


@scenario("group_share", requires=("groups",), timeout_s=150)
def group_share(client: Client, ctx: Context) -> None:
    """Two members of a group split 4 partitions; 400 records are read once in total."""
    topic, group = ctx.topic(), ctx.group()
    client.create_topic(topic, 4)
    client.group_open("a", group, [topic])
    client.group_open("b", group, [topic])
    poll_members(client, ["a", "b"], lambda reads: split_ok(client, ["a", "b"], 4), 90,
                 "both members to share the 4 partitions")
    client.produce(topic, numbered(400, partitions=4))
    reads = poll_members(client, ["a", "b"], lambda reads: sum(map(len, reads.values())) >= 400, 45,
                         "400 records")
    check_no_double_reads(reads, 400)
    for h in ("a", "b"):
        mine = {p for _, p in client.group_assignment(h)}
        expect(all(r["partition"] in mine for r in reads[h]), f"member {h} read a partition it does not own")


@scenario("group_rebalance", requires=("groups",), timeout_s=180)
def group_rebalance(client: Client, ctx: Context) -> None:
    """A joining member takes half of the partitions; when it leaves, the other gets all back."""
    topic, group = ctx.topic(), ctx.group()
    client.create_topic(topic, 4)
    client.group_open("a", group, [topic])
    poll_members(client, ["a"], lambda reads: split_ok(client, ["a"], 4), 60, "a alone to own 4 partitions")
    client.group_open("b", group, [topic])
    poll_members(client, ["a", "b"], lambda reads: split_ok(client, ["a", "b"], 4), 60,
                 "rebalance on join")
    client.group_close("b")
    poll_members(client, ["a"], lambda reads: split_ok(client, ["a"], 4), 60, "rebalance on leave")


@scenario("group_commit_resume", requires=("groups",), timeout_s=150)
def group_commit_resume(client: Client, ctx: Context) -> None:
    """After a commit, a new member of the group resumes exactly after the committed records."""
    topic, group = ctx.topic(), ctx.group()
    client.create_topic(topic, 2)
    client.produce(topic, numbered(100, partitions=2, prefix="old-"))
    client.group_open("a", group, [topic])
    reads = poll_members(client, ["a"], lambda reads: len(reads["a"]) >= 100, 60, "100 records")
    check_no_double_reads(reads, 100)
    client.group_commit("a")
    client.group_close("a")
    client.produce(topic, numbered(50, partitions=2, prefix="new-"))
    client.group_open("b", group, [topic])
    reads = poll_members(client, ["b"], lambda reads: len(reads["b"]) >= 50, 60, "50 new records")
    # give a late duplicate a chance to show up
    reads["b"].extend(client.group_poll("b", 2.0))
    values = sorted(r["value"] for r in reads["b"])
    expect(all(v.startswith(b"new-") for v in values), "records before the committed offset read again")
    expect_equal(len(values), 50, "records read after resume")


@scenario("static_membership", requires=("groups", "static_membership"), timeout_s=180)
def static_membership(client: Client, ctx: Context) -> None:
    """A static member that restarts with the same instance id gets its partitions back."""
    topic, group = ctx.topic(), ctx.group()
    client.create_topic(topic, 4)
    client.group_open("a", group, [topic], instance_id="inst-a")
    client.group_open("b", group, [topic], instance_id="inst-b")
    poll_members(client, ["a", "b"], lambda reads: split_ok(client, ["a", "b"], 4), 90, "static split")
    before_a = sorted(client.group_assignment("a"))
    before_b = sorted(client.group_assignment("b"))
    client.group_close("b")
    client.group_open("b", group, [topic], instance_id="inst-b")
    poll_members(client, ["a", "b"], lambda reads: split_ok(client, ["a", "b"], 4), 60, "static rejoin")
    expect_equal(sorted(client.group_assignment("b")), before_b, "assignment of the restarted static member")
    expect_equal(sorted(client.group_assignment("a")), before_a, "assignment of the other static member")


@scenario("cooperative_sticky", requires=("groups", "cooperative"), timeout_s=180)
def cooperative_sticky(client: Client, ctx: Context) -> None:
    """Cooperative-sticky: a joiner takes partitions from the first member, who keeps the rest."""
    topic, group = ctx.topic(), ctx.group()
    client.create_topic(topic, 4)
    client.group_open("a", group, [topic], assignor="cooperative-sticky")
    poll_members(client, ["a"], lambda reads: split_ok(client, ["a"], 4), 60, "a alone to own 4 partitions")
    client.group_open("b", group, [topic], assignor="cooperative-sticky")
    poll_members(client, ["a", "b"], lambda reads: split_ok(client, ["a", "b"], 4), 90,
                 "cooperative rebalance on join")
    kept = sorted(client.group_assignment("a"))
    client.produce(topic, numbered(200, partitions=4))
    reads = poll_members(client, ["a", "b"], lambda reads: sum(map(len, reads.values())) >= 200, 45,
                         "200 records")
    check_no_double_reads(reads, 200)
    expect_equal(sorted(client.group_assignment("a")), kept, "a's partitions stay put (sticky)")


@scenario("consumer_protocol", requires=("groups", "consumer_protocol"), timeout_s=180)
def consumer_protocol(client: Client, ctx: Context) -> None:
    """KIP-848 (group.protocol=consumer): two members share 4 partitions, records read once."""
    topic, group = ctx.topic(), ctx.group()
    client.create_topic(topic, 4)
    client.group_open("a", group, [topic], protocol="consumer")
    client.group_open("b", group, [topic], protocol="consumer")
    poll_members(client, ["a", "b"], lambda reads: split_ok(client, ["a", "b"], 4), 60,
                 "both members to share the 4 partitions")
    client.produce(topic, numbered(200, partitions=4))
    reads = poll_members(client, ["a", "b"], lambda reads: sum(map(len, reads.values())) >= 200, 45,
                         "200 records")
    check_no_double_reads(reads, 200)

"""Producer acknowledgement modes and the idempotent producer."""

from __future__ import annotations

from compat.clients.base import Client
from compat.scenarios import Context, scenario
from compat.scenarios.checks import check_exactly_once_in_order, expect, numbered


def _make(acks: str):
    def run(client: Client, ctx: Context) -> None:
        topic = ctx.topic()
        client.create_topic(topic, 2)
        records = numbered(300, partitions=2, prefix=f"acks{acks}-")
        acked = client.produce(topic, records, acks=acks)
        if acks != "0":
            expect(all(offset >= 0 for _, offset in acked), "acknowledged offsets must be >= 0")
        got = client.consume(topic, count=len(records), partitions=[0, 1])
        check_exactly_once_in_order(records, got)
    run.__doc__ = f"300 records with acks={acks} are all stored once, in order."
    return run


scenario("acks_0", requires=("acks0",), timeout_s=60)(_make("0"))
scenario("acks_1", timeout_s=60)(_make("1"))
scenario("acks_all", timeout_s=60)(_make("all"))


@scenario("idempotent", requires=("idempotent",), timeout_s=40)
def idempotent(client: Client, ctx: Context) -> None:
    """An idempotent producer's 1,000 records are stored once each, in order."""
    topic = ctx.topic()
    client.create_topic(topic, 2)
    records = numbered(1000, partitions=2, prefix="idem-")
    client.produce(topic, records, idempotent=True)
    got = client.consume(topic, count=len(records), partitions=[0, 1])
    check_exactly_once_in_order(records, got)

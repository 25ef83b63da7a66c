"""kcat's command line: -L (metadata), -P (produce), -C -e (consume to the end)."""

from __future__ import annotations

import json

from compat.clients.base import Client
from compat.scenarios import Context, scenario
from compat.scenarios.checks import expect, expect_equal


@scenario("kcat_list", requires=("cli",), timeout_s=60)
def kcat_list(client: Client, ctx: Context) -> None:
    """`kcat -L -J` shows the broker and a topic's 3 partitions."""
    topic = ctx.topic()
    client.create_topic(topic, 3)
    code, out, err = client.cli(["-L", "-J", "-t", topic])
    expect_equal(code, 0, f"kcat -L exit status ({err.decode(errors='replace')[-200:]})")
    md = json.loads(out)
    expect(len(md.get("brokers", [])) >= 1, f"no brokers listed: {md!r}")
    topics = {t["topic"]: t for t in md.get("topics", [])}
    expect(topic in topics, f"topic missing from kcat -L: {sorted(topics)}")
    expect_equal(topics[topic].get("error"), None, "topic error")
    expect_equal(sorted(p["partition"] for p in topics[topic]["partitions"]), [0, 1, 2], "partitions")


@scenario("kcat_produce_consume", requires=("cli",), timeout_s=60)
def kcat_produce_consume(client: Client, ctx: Context) -> None:
    """`kcat -P` then `kcat -C -e` returns keys, values and headers in order."""
    topic = ctx.topic()
    client.create_topic(topic, 1)
    lines = [f"k{i}:value {i}" for i in range(100)]
    code, _, err = client.cli(["-P", "-t", topic, "-p", "0", "-K", ":", "-H", "origin=kcat", "-z", "gzip"],
                              stdin=("\n".join(lines) + "\n").encode())
    expect_equal(code, 0, f"kcat -P exit status ({err.decode(errors='replace')[-200:]})")
    code, out, err = client.cli(["-C", "-t", topic, "-p", "0", "-o", "beginning", "-e",
                                 "-f", "%o|%k|%s|%h\\n"])
    expect_equal(code, 0, f"kcat -C exit status ({err.decode(errors='replace')[-200:]})")
    got = out.decode().splitlines()
    want = [f"{i}|k{i}|value {i}|origin=kcat" for i in range(100)]
    expect_equal(got, want, "kcat -C output")

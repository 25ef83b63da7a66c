"""Group coordinator APIs on the wire: versions, error codes and delayed responses."""

from __future__ import annotations

import threading

import pytest

from kbroker.testing import KafkaBroker
from protocol import ApiKey, ErrorCode
from tests.integration.groups_support import (GROUP_BROKER_OVERRIDES, create_topic, unique,
                                              wait_until)
from tests.integration.wire import WireClient

pytestmark = pytest.mark.timeout(120)


@pytest.fixture(scope="module")
def broker():
    with KafkaBroker(GROUP_BROKER_OVERRIDES) as running:
        yield running


def join_body(group: str, member_id: str = "", session_ms: int = 6000, **extra) -> dict:
    body = {"group_id": group, "session_timeout_ms": session_ms, "rebalance_timeout_ms": 10000,
            "member_id": member_id, "group_instance_id": None, "protocol_type": "consumer",
            "protocols": [{"name": "range", "metadata": b"meta"}]}
    body.update(extra)
    return body


def join(client: WireClient, group: str, version: int = 9) -> dict:
    """Join as a new member (KIP-394 round trip) and return the final answer."""
    first = client.request(ApiKey.JOIN_GROUP, version, join_body(group))
    assert first["error_code"] == ErrorCode.MEMBER_ID_REQUIRED
    assert first["member_id"]
    return client.request(ApiKey.JOIN_GROUP, version, join_body(group, first["member_id"]))


def test_find_coordinator_versions(broker):
    host, port = broker.bootstrap_servers.rsplit(":", 1)
    with WireClient(broker.bootstrap_servers) as c:
        for version in (0, 1, 2, 3):
            r = c.request(ApiKey.FIND_COORDINATOR, version, {"key": "g", "key_type": 0})
            assert r["error_code"] == ErrorCode.NONE
            assert (r["node_id"], r["host"], r["port"]) == (1, host, int(port))
        r = c.request(ApiKey.FIND_COORDINATOR, 4,
                      {"key_type": 0, "coordinator_keys": ["a", "b"]})
        assert [(x["key"], x["error_code"], x["port"]) for x in r["coordinators"]] == [
            ("a", 0, int(port)), ("b", 0, int(port))]
        # issue 7: the transaction coordinator answers key_type 1 (this broker)
        r = c.request(ApiKey.FIND_COORDINATOR, 4,
                      {"key_type": 1, "coordinator_keys": ["txn"]})
        assert [(x["key"], x["error_code"], x["port"]) for x in r["coordinators"]] == [
            ("txn", 0, int(port))]


def test_join_sync_heartbeat_leave_on_the_wire(broker):
    group = unique("g")
    with WireClient(broker.bootstrap_servers) as c:
        assert c.request(ApiKey.JOIN_GROUP, 5, join_body(group, session_ms=999))["error_code"] \
            == ErrorCode.INVALID_SESSION_TIMEOUT
        j = join(c, group)
        assert j["error_code"] == ErrorCode.NONE and j["generation_id"] == 1
        assert j["leader"] == j["member_id"] and j["protocol_name"] == "range"
        assert j["protocol_type"] == "consumer"
        assert [m["metadata"] for m in j["members"]] == [b"meta"]
        me, gen = j["member_id"], j["generation_id"]
        s = c.request(ApiKey.SYNC_GROUP, 5, {
            "group_id": group, "generation_id": gen, "member_id": me, "protocol_type": "consumer",
            "protocol_name": "range", "assignments": [{"member_id": me, "assignment": b"A"}]})
        assert (s["error_code"], s["assignment"]) == (ErrorCode.NONE, b"A")
        hb = {"group_id": group, "generation_id": gen, "member_id": me}
        assert c.request(ApiKey.HEARTBEAT, 4, hb)["error_code"] == ErrorCode.NONE
        assert c.request(ApiKey.HEARTBEAT, 0, dict(hb, generation_id=gen + 1))["error_code"] \
            == ErrorCode.ILLEGAL_GENERATION
        assert c.request(ApiKey.HEARTBEAT, 0, dict(hb, member_id="x"))["error_code"] \
            == ErrorCode.UNKNOWN_MEMBER_ID
        d = c.request(ApiKey.DESCRIBE_GROUPS, 5, {"groups": [group],
                                                  "include_authorized_operations": False})
        g = d["groups"][0]
        assert (g["group_state"], g["protocol_data"]) == ("Stable", "range")
        assert g["members"][0]["client_id"] == "wire-tests"
        assert g["members"][0]["member_assignment"] == b"A"
        r = c.request(ApiKey.LEAVE_GROUP, 5, {"group_id": group, "members": [
            {"member_id": me, "group_instance_id": None, "reason": "done"},
            {"member_id": "ghost", "group_instance_id": None, "reason": None}]})
        assert [m["error_code"] for m in r["members"]] == [ErrorCode.NONE,
                                                          ErrorCode.UNKNOWN_MEMBER_ID]
        r = c.request(ApiKey.LEAVE_GROUP, 0, {"group_id": group, "member_id": me})
        assert r["error_code"] == ErrorCode.UNKNOWN_MEMBER_ID


def test_delayed_join_does_not_block_other_connections(broker):
    group = unique("g")
    with WireClient(broker.bootstrap_servers) as a, WireClient(broker.bootstrap_servers) as b, \
            WireClient(broker.bootstrap_servers) as other:
        ja = join(a, group)
        me, gen = ja["member_id"], ja["generation_id"]
        a.request(ApiKey.SYNC_GROUP, 3, {"group_id": group, "generation_id": gen,
                                         "member_id": me, "group_instance_id": None,
                                         "assignments": []})
        first = b.request(ApiKey.JOIN_GROUP, 9, join_body(group))
        b_id = first["member_id"]
        # b's join waits for a to rejoin; meanwhile the broker answers everyone else
        pending = b.send(ApiKey.JOIN_GROUP, 9, join_body(group, b_id))

        def preparing() -> bool:
            listed = other.request(ApiKey.LIST_GROUPS, 4,
                                   {"states_filter": ["PreparingRebalance"]})
            return group in [g["group_id"] for g in listed["groups"]]

        wait_until(preparing, 10, "b's join to start a rebalance (answers keep coming)")
        hb = a.request(ApiKey.HEARTBEAT, 4, {"group_id": group, "generation_id": gen,
                                             "member_id": me, "group_instance_id": None})
        assert hb["error_code"] == ErrorCode.REBALANCE_IN_PROGRESS
        answer_a = a.request(ApiKey.JOIN_GROUP, 9, join_body(group, me))
        answer_b = b.receive(ApiKey.JOIN_GROUP, 9, pending)
        assert answer_a["generation_id"] == answer_b["generation_id"] == gen + 1
        assert answer_a["leader"] == me and len(answer_a["members"]) == 2
        assert answer_b["members"] == []


def test_follower_sync_waits_for_leader(broker):
    group = unique("g")
    with WireClient(broker.bootstrap_servers) as a, WireClient(broker.bootstrap_servers) as b:
        ja = join(a, group)
        a.request(ApiKey.SYNC_GROUP, 0, {"group_id": group, "generation_id": 1,
                                         "member_id": ja["member_id"], "assignments": []})
        b_id = b.request(ApiKey.JOIN_GROUP, 9, join_body(group))["member_id"]
        pending_b = b.send(ApiKey.JOIN_GROUP, 9, join_body(group, b_id))
        ja2 = a.request(ApiKey.JOIN_GROUP, 9, join_body(group, ja["member_id"]))
        jb = b.receive(ApiKey.JOIN_GROUP, 9, pending_b)
        gen = ja2["generation_id"]
        sync_b = b.send(ApiKey.SYNC_GROUP, 5, {"group_id": group, "generation_id": gen,
                                               "member_id": jb["member_id"],
                                               "assignments": []})
        result: dict = {}
        reader = threading.Thread(
            target=lambda: result.update(b.receive(ApiKey.SYNC_GROUP, 5, sync_b)))
        reader.start()
        reader.join(0.3)
        assert reader.is_alive(), "the follower is answered only after the leader syncs"
        a.request(ApiKey.SYNC_GROUP, 5, {"group_id": group, "generation_id": gen,
                                         "member_id": ja2["member_id"], "assignments": [
                                             {"member_id": ja2["member_id"], "assignment": b"x"},
                                             {"member_id": jb["member_id"], "assignment": b"y"}]})
        reader.join(10)
        assert result["error_code"] == ErrorCode.NONE and result["assignment"] == b"y"


def test_offset_commit_and_fetch_rules(broker):
    topic, group, other = unique("t"), unique("g"), unique("g")
    create_topic(broker.bootstrap_servers, topic, 2)
    with WireClient(broker.bootstrap_servers) as c:
        def commit(version: int, group_id: str, parts: list[tuple[str, int, int, str | None]],
                   **extra) -> dict:
            topics: dict[str, list] = {}
            for t, p, o, meta in parts:
                topics.setdefault(t, []).append({"partition_index": p, "committed_offset": o,
                                                 "committed_leader_epoch": 4,
                                                 "committed_metadata": meta})
            body = {"group_id": group_id, "generation_id_or_member_epoch": -1, "member_id": "",
                    "topics": [{"name": t, "partitions": ps} for t, ps in topics.items()]}
            body.update(extra)
            r = c.request(ApiKey.OFFSET_COMMIT, version, body)
            return {(t["name"], p["partition_index"]): p["error_code"]
                    for t in r["topics"] for p in t["partitions"]}

        assert commit(8, group, [(topic, 0, 5, "m"), (topic, 1, 6, None), (topic, 9, 1, ""),
                                 ("nope", 0, 1, "")]) == {
            (topic, 0): 0, (topic, 1): 0, (topic, 9): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
            ("nope", 0): ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}
        assert commit(8, group, [(topic, 0, 7, "x" * 4097)]) == {
            (topic, 0): ErrorCode.OFFSET_METADATA_TOO_LARGE}
        assert commit(2, other, [(topic, 1, 3, "")], retention_time_ms=60000) == {(topic, 1): 0}
        assert commit(8, unique("g"), [(topic, 0, 1, "")], generation_id_or_member_epoch=4,
                      member_id="m") == {(topic, 0): ErrorCode.ILLEGAL_GENERATION}

        # v1-7: one group; null topics = every committed partition
        r = c.request(ApiKey.OFFSET_FETCH, 7, {"group_id": group, "topics": None,
                                               "require_stable": False})
        rows = {(t["name"], p["partition_index"]): (p["committed_offset"],
                                                    p["committed_leader_epoch"], p["metadata"])
                for t in r["topics"] for p in t["partitions"]}
        assert rows == {(topic, 0): (5, 4, "m"), (topic, 1): (6, 4, "")}
        # v8+: several groups at once; unknown partitions answer -1
        r = c.request(ApiKey.OFFSET_FETCH, 8, {"groups": [
            {"group_id": group, "topics": [{"name": topic, "partition_indexes": [0, 1]}]},
            {"group_id": other, "topics": None},
            {"group_id": unique("none"), "topics": [{"name": topic, "partition_indexes": [0]}]},
        ], "require_stable": False})
        got = [[(p["partition_index"], p["committed_offset"]) for t in g["topics"]
                for p in t["partitions"]] for g in r["groups"]]
        assert got == [[(0, 5), (1, 6)], [(1, 3)], [(0, -1)]]


def test_list_describe_delete_and_offset_delete(broker):
    topic, simple, active = unique("t"), unique("g"), unique("g")
    create_topic(broker.bootstrap_servers, topic, 1)
    with WireClient(broker.bootstrap_servers) as c:
        c.request(ApiKey.OFFSET_COMMIT, 8, {
            "group_id": simple, "generation_id_or_member_epoch": -1, "member_id": "",
            "topics": [{"name": topic, "partitions": [{"partition_index": 0,
                                                        "committed_offset": 3}]}]})
        join(c, active)
        r = c.request(ApiKey.LIST_GROUPS, 5, {"states_filter": [], "types_filter": []})
        listed = {g["group_id"]: (g["group_state"], g["protocol_type"], g["group_type"])
                  for g in r["groups"]}
        assert listed[simple] == ("Empty", "", "classic")
        assert listed[active] == ("CompletingRebalance", "consumer", "classic")
        r = c.request(ApiKey.LIST_GROUPS, 4, {"states_filter": ["Empty"]})
        assert simple in {g["group_id"] for g in r["groups"]}
        assert active not in {g["group_id"] for g in r["groups"]}
        r = c.request(ApiKey.DESCRIBE_GROUPS, 3, {"groups": [unique("none")],
                                                  "include_authorized_operations": True})
        assert r["groups"][0]["group_state"] == "Dead"
        assert r["groups"][0]["authorized_operations"] > 0

        r = c.request(ApiKey.OFFSET_DELETE, 0, {"group_id": unique("none"), "topics": []})
        assert r["error_code"] == ErrorCode.GROUP_ID_NOT_FOUND
        r = c.request(ApiKey.OFFSET_DELETE, 0, {"group_id": simple, "topics": [
            {"name": topic, "partitions": [{"partition_index": 0}]}]})
        assert r["error_code"] == 0 and r["topics"][0]["partitions"][0]["error_code"] == 0

        missing = unique("none")
        r = c.request(ApiKey.DELETE_GROUPS, 2, {"groups_names": [simple, active, missing]})
        assert [x["error_code"] for x in r["results"]] == [
            ErrorCode.NONE, ErrorCode.NON_EMPTY_GROUP, ErrorCode.GROUP_ID_NOT_FOUND]
        r = c.request(ApiKey.LIST_GROUPS, 0, {})
        assert simple not in {g["group_id"] for g in r["groups"]}


def test_consumer_group_heartbeat_v0_converges_and_describes(broker):
    """KIP-848 on the wire: two members split a topic; a leave hands its partitions back."""
    topic, group = unique("t"), unique("g")
    create_topic(broker.bootstrap_servers, topic, 4)
    with WireClient(broker.bootstrap_servers) as c:
        def hb(member_id: str = "", epoch: int = 0, owned: dict | None = None,
               topics: list[str] | None = None) -> dict:
            r = c.request(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, {
                "group_id": group, "member_id": member_id, "member_epoch": epoch,
                "rebalance_timeout_ms": 5000, "subscribed_topic_names": topics,
                "topic_partitions": ([] if epoch == 0 else None) if owned is None else [
                    {"topic_id": t, "partitions": sorted(ps)} for t, ps in owned.items()]})
            assert r["error_code"] == ErrorCode.NONE, r
            return r

        def owned_of(r: dict) -> dict:
            return {tp["topic_id"]: set(tp["partitions"])
                    for tp in r["assignment"]["topic_partitions"]}

        a = hb(topics=[topic])
        assert a["member_epoch"] == 1 and sum(len(p) for p in owned_of(a).values()) == 4
        mine = owned_of(a)
        b = hb(topics=[topic])
        a2 = hb(a["member_id"], 1, owned=mine)               # told to revoke half
        mine = owned_of(a2)
        assert sum(len(p) for p in mine.values()) == 2
        a3 = hb(a["member_id"], 1, owned=mine)               # confirms: new epoch
        assert a3["member_epoch"] == b["member_epoch"] == 2
        b2 = hb(b["member_id"], 2, owned={})
        assert sum(len(p) for p in owned_of(b2).values()) == 2

        d = c.request(ApiKey.CONSUMER_GROUP_DESCRIBE, 0, {"group_ids": [group],
                                                          "include_authorized_operations": False})
        g = d["groups"][0]
        assert (g["error_code"], g["group_state"], g["group_epoch"]) == (0, "Stable", 2)
        names = {tp["topic_name"] for m in g["members"]
                 for tp in m["assignment"]["topic_partitions"]}
        assert names == {topic}
        listed = c.request(ApiKey.LIST_GROUPS, 5, {"states_filter": [],
                                                   "types_filter": ["consumer"]})
        assert [(x["group_id"], x["group_type"]) for x in listed["groups"]
                if x["group_id"] == group] == [(group, "consumer")]

        left = hb(b["member_id"], -1)
        assert left["member_epoch"] == -1
        a4 = hb(a["member_id"], 2, owned=mine)
        assert sum(len(p) for p in owned_of(a4).values()) == 4
        unknown = c.request(ApiKey.CONSUMER_GROUP_HEARTBEAT, 0, {
            "group_id": group, "member_id": b["member_id"], "member_epoch": 2,
            "rebalance_timeout_ms": -1, "subscribed_topic_names": None, "topic_partitions": None})
        assert unknown["error_code"] == ErrorCode.UNKNOWN_MEMBER_ID


def test_consumer_group_heartbeat_v1_on_the_wire(broker):
    """v1 (Kafka 4.0): client member ids, regex subscriptions and their errors, static rejoin."""
    prefix = unique("rx").replace("-", "")
    create_topic(broker.bootstrap_servers, f"{prefix}-a", 2)
    group = unique("g")
    invalid_regular_expression = 131     # Kafka 4.0's code; not in the 3.9 error table

    with WireClient(broker.bootstrap_servers) as c:
        def hb(member_id: str, epoch: int = 0, **fields) -> dict:
            body = {"group_id": group, "member_id": member_id, "member_epoch": epoch,
                    "rebalance_timeout_ms": 5000 if epoch == 0 else -1,
                    "subscribed_topic_names": None, "subscribed_topic_regex": None,
                    "topic_partitions": [] if epoch == 0 else None, **fields}
            return c.request(ApiKey.CONSUMER_GROUP_HEARTBEAT, 1, body)

        assert hb("", subscribed_topic_regex="x")["error_code"] == ErrorCode.INVALID_REQUEST
        bad = hb("m-bad", subscribed_topic_regex=r"(a)\1")
        assert bad["error_code"] == invalid_regular_expression and bad["error_message"]

        r = hb("m-regex", subscribed_topic_regex=f"^{prefix}-.*", instance_id="i1")
        assert (r["error_code"], r["member_id"], r["member_epoch"]) == (0, "m-regex", 1)
        assert sum(len(tp["partitions"]) for tp in r["assignment"]["topic_partitions"]) == 2
        # a second process with the same instance id while the first is alive
        dup = hb("m-dup", subscribed_topic_regex=f"^{prefix}-.*", instance_id="i1")
        assert dup["error_code"] == ErrorCode.UNRELEASED_INSTANCE_ID
        # a topic created later is picked up at the next heartbeat
        create_topic(broker.bootstrap_servers, f"{prefix}-b", 3)
        owned = [{"topic_id": tp["topic_id"], "partitions": tp["partitions"]}
                 for tp in r["assignment"]["topic_partitions"]]
        r2 = hb("m-regex", 1, topic_partitions=owned, instance_id="i1")
        assert r2["member_epoch"] == 2
        assert sum(len(tp["partitions"]) for tp in r2["assignment"]["topic_partitions"]) == 5
        # temporary leave, then the instance comes back under a new member id
        left = hb("m-regex", -2, instance_id="i1")
        assert (left["error_code"], left["member_epoch"]) == (0, -2)
        back = hb("m-back", subscribed_topic_regex=f"^{prefix}-.*", instance_id="i1")
        assert (back["error_code"], back["member_epoch"]) == (0, 2)
        assert sum(len(tp["partitions"]) for tp in back["assignment"]["topic_partitions"]) == 5
        fenced = hb("m-regex", 2, instance_id="i1")
        assert fenced["error_code"] == ErrorCode.FENCED_INSTANCE_ID

        d = c.request(ApiKey.CONSUMER_GROUP_DESCRIBE, 1, {"group_ids": [group],
                                                          "include_authorized_operations": False})
        m = d["groups"][0]["members"]
        assert [(x["member_id"], x["instance_id"], x["subscribed_topic_regex"], x["member_type"])
                for x in m] == [("m-back", "i1", f"^{prefix}-.*", 1)]

"""KIP-848 consumer groups on the pure GroupCoordinator: epochs, assignors, reconciliation."""

from __future__ import annotations

import uuid

import pytest

from kbroker.coordinator import consumer_group as cg
from kbroker.coordinator import coordinator as c
from kbroker.coordinator.consumer_group import TopicInfo
from kbroker.coordinator.coordinator import CommitPartition, GroupConfig, GroupCoordinator

T0 = 1_700_000_000_000
TOPICS = {"a": TopicInfo("a", uuid.UUID(int=1), 6), "b": TopicInfo("b", uuid.UUID(int=2), 2)}


class Group:
    """Drives consumer-group heartbeats like clients do."""

    def __init__(self, **config) -> None:
        self.gc = GroupCoordinator(GroupConfig(**config))
        self.now = T0
        self.topics = dict(TOPICS)

    def hb(self, member_id="", epoch=0, topics=("a",), owned=None, assignor=None,
           group="g") -> dict:
        req = {"group_id": group, "member_id": member_id, "member_epoch": epoch,
               "instance_id": None, "rack_id": None, "rebalance_timeout_ms": 10000,
               "subscribed_topic_names": list(topics) if topics is not None else None,
               "server_assignor": assignor,
               "topic_partitions": ([] if epoch == 0 else None) if owned is None else [
                   {"topic_id": t, "partitions": sorted(ps)} for t, ps in owned.items()]}
        res = self.gc.consumer_group_heartbeat(req, client_id="cli", client_host="/h",
                                               topic_info=self.topics.get, now_ms=self.now)
        for r in res.records:
            self.gc.replay(r, now_ms=self.now)
        return res.response


def parts(resp: dict) -> dict:
    """{topic id: set(partitions)} of a heartbeat response's assignment."""
    return {tp["topic_id"]: set(tp["partitions"]) for tp in resp["assignment"]["topic_partitions"]}


A = TOPICS["a"].topic_id


def test_first_member_gets_everything():
    g = Group()
    r = g.hb()
    assert r["error_code"] == 0 and r["member_id"] and r["member_epoch"] == 1
    assert parts(r) == {A: set(range(6))}
    assert r["heartbeat_interval_ms"] == 5000
    assert g.gc.consumer_groups["g"].state() == "Stable"


def test_second_member_waits_for_revocation_then_both_converge():
    g = Group()
    one = g.hb()
    m1, e1 = one["member_id"], one["member_epoch"]
    two = g.hb()
    m2 = two["member_id"]
    # the newcomer moves to the new epoch but its partitions are still held by m1
    assert two["member_epoch"] == 2 and parts(two) == {}
    assert g.gc.consumer_groups["g"].state() == "Reconciling"
    # m1 is told to give up half; its epoch stays until it confirms
    r1 = g.hb(m1, e1, topics=None, owned={A: set(range(6))})
    kept = parts(r1)[A]
    assert len(kept) == 3 and r1["member_epoch"] == e1
    # m1 confirms by reporting only what it kept
    r1 = g.hb(m1, e1, topics=None, owned={A: kept})
    assert r1["member_epoch"] == 2
    r2 = g.hb(m2, 2, topics=None, owned={})
    assert parts(r2)[A] == set(range(6)) - kept
    assert g.gc.consumer_groups["g"].state() == "Stable"


def test_epoch_checks():
    g = Group()
    r = g.hb()
    m, e = r["member_id"], r["member_epoch"]
    assert g.hb(m, e + 1, topics=None)["error_code"] == cg.FENCED_MEMBER_EPOCH
    assert g.hb("ghost", 1, topics=None)["error_code"] == c.UNKNOWN_MEMBER_ID
    assert g.hb("ghost", 1, topics=None, group="nope")["error_code"] == c.UNKNOWN_MEMBER_ID
    assert g.hb(m, e, topics=None)["error_code"] == 0


@pytest.mark.parametrize("change,message", [
    (dict(member_id="", epoch=3), "MemberId can't be empty."),
    (dict(topics=None), "SubscribedTopicNames must be set in first request."),
    (dict(group=""), "GroupId can't be empty."),
])
def test_invalid_requests(change, message):
    r = Group().hb(**change)
    assert (r["error_code"], r["error_message"]) == (cg.INVALID_REQUEST, message)


def test_unknown_assignor():
    assert Group().hb(assignor="sticky")["error_code"] == cg.UNSUPPORTED_ASSIGNOR


def test_leave_gives_partitions_back():
    g = Group()
    m1 = g.hb()
    m2 = g.hb()
    r1 = g.hb(m1["member_id"], 1, topics=None, owned={A: set(range(6))})
    g.hb(m1["member_id"], 1, topics=None, owned={A: parts(r1)[A]})
    left = g.hb(m2["member_id"], cg.LEAVE_EPOCH, topics=None)
    assert left["member_epoch"] == cg.LEAVE_EPOCH
    r1 = g.hb(m1["member_id"], 2, topics=None, owned={A: parts(r1)[A]})
    assert parts(r1) == {A: set(range(6))}


def test_session_timeout_removes_member():
    g = Group(consumer_session_timeout_ms=1000)
    m1 = g.hb()
    assert g.gc.next_deadline_ms() == T0 + 1000
    g.now += 1000
    g.gc.tick(g.now)
    assert g.gc.consumer_groups["g"].members == {}
    assert g.gc.consumer_groups["g"].state() == "Empty"
    assert g.hb(m1["member_id"], 1, topics=None)["error_code"] == c.UNKNOWN_MEMBER_ID


def test_range_assignor_and_topic_growth():
    g = Group()
    r1 = g.hb(topics=("a", "b"), assignor="range")
    r2 = g.hb(topics=("a", "b"), assignor="range")
    ids = sorted([r1["member_id"], r2["member_id"]])
    target = g.gc.consumer_groups["g"].target
    assert target[ids[0]][A] == {0, 1, 2} and target[ids[1]][A] == {3, 4, 5}
    # a topic gaining partitions bumps the group epoch and the target
    epoch = g.gc.consumer_groups["g"].group_epoch
    g.topics["b"] = TopicInfo("b", TOPICS["b"].topic_id, 4)
    g.hb(r1["member_id"], r1["member_epoch"], topics=None)
    assert g.gc.consumer_groups["g"].group_epoch == epoch + 1
    b = TOPICS["b"].topic_id
    targets = g.gc.consumer_groups["g"].target.values()
    assert sorted(p for t in targets for p in t[b]) == [0, 1, 2, 3]


def test_uniform_assignor_balances_and_is_sticky():
    members = [cg.ConsumerMember(f"m{i}", None, None, "c", "h", 1000, ["a"], None)
               for i in range(3)]
    topics = {"a": TOPICS["a"]}
    first = cg.uniform_assign(members[:2], topics, {})
    assert sorted(len(v[A]) for v in first.values()) == [3, 3]
    second = cg.uniform_assign(members, topics, first)
    assert sorted(len(v[A]) for v in second.values()) == [2, 2, 2]
    for mid in ("m0", "m1"):
        assert second[mid][A] <= first[mid][A], "members keep partitions they had"


def test_offset_commit_checks_member_epoch():
    g = Group()
    r = g.hb()
    commit = lambda member, epoch: g.gc.offset_commit(  # noqa: E731
        "g", generation_id=epoch, member_id=member, group_instance_id=None, retention_ms=-1,
        partitions=[CommitPartition("a", 0, 5)], now_ms=g.now)
    res = commit(r["member_id"], r["member_epoch"])
    assert res.response == {("a", 0): 0}
    for rec in res.records:
        g.gc.replay(rec, now_ms=g.now)
    stale = commit(r["member_id"], r["member_epoch"] + 1)
    assert stale.response == {("a", 0): c.STALE_MEMBER_EPOCH}
    assert commit("x", 1).response == {("a", 0): c.UNKNOWN_MEMBER_ID}
    assert g.gc.offset_fetch("g", [("a", 0)])[0][2].offset == 5
    listed = g.gc.list_groups()
    assert listed == [{"group_id": "g", "protocol_type": "consumer", "group_state": "Stable",
                       "group_type": "consumer"}]
    assert g.gc.list_groups(types=["classic"]) == []


def test_classic_join_rejected_for_active_consumer_group():
    g = Group()
    g.hb()
    req = {"group_id": "g", "session_timeout_ms": 10000, "member_id": "",
           "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}]}
    res = g.gc.join_group(req, client_id="c", client_host="h", api_version=5, now_ms=g.now)
    assert res.response["error_code"] == c.INCONSISTENT_GROUP_PROTOCOL


def test_describe():
    g = Group()
    r = g.hb()
    d = g.gc.consumer_group_describe("g", lambda t: "a" if t == A else None)
    assert (d["group_state"], d["group_epoch"], d["assignor_name"]) == ("Stable", 1, "uniform")
    member = d["members"][0]
    assert member["member_id"] == r["member_id"]
    assert member["assignment"]["topic_partitions"][0]["topic_name"] == "a"
    assert g.gc.consumer_group_describe("x", lambda t: None)["error_code"] == c.GROUP_ID_NOT_FOUND


def test_offset_fetch_member_check():
    g = Group()
    r = g.hb()
    assert g.gc.check_fetch_member("g", r["member_id"], r["member_epoch"]) == 0
    assert g.gc.check_fetch_member("g", r["member_id"], 0) == c.STALE_MEMBER_EPOCH
    assert g.gc.check_fetch_member("g", "x", 1) == c.UNKNOWN_MEMBER_ID
    assert g.gc.check_fetch_member("g", None, -1) == 0       # admin fetch

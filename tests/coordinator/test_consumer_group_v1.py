"""KIP-848 on the pure GroupCoordinator: ConsumerGroupHeartbeat v1 (client member ids, regex
subscriptions), static membership, and the group state written to and rebuilt from
__consumer_offsets records (types 3-8)."""

from __future__ import annotations

import uuid

import pytest

from kbroker.coordinator import consumer_group as cg
from kbroker.coordinator import coordinator as c
from kbroker.coordinator.consumer_group import TopicInfo
from kbroker.coordinator.coordinator import GroupConfig, GroupCoordinator
from kbroker.coordinator.records import ConsumerGroupRecord, decode_record, encode_record
from kbroker.coordinator.topic_regex import InvalidRegex, compile_topic_regex

T0 = 1_700_000_000_000
SESSION_MS = 45000


class Cluster:
    """A coordinator plus a metadata image (topic name -> TopicInfo) that tests can change."""

    def __init__(self) -> None:
        self.gc = GroupCoordinator(GroupConfig())
        self.now = T0
        self.topics: dict[str, TopicInfo] = {}
        self.log: list[tuple[bytes, bytes | None]] = []    # what __consumer_offsets holds

    def create(self, name: str, partitions: int) -> uuid.UUID:
        tid = uuid.uuid4()
        self.topics[name] = TopicInfo(name, tid, partitions)
        return tid

    def hb(self, member_id: str, epoch: int = 0, *, version: int = 1, topics=None, regex=None,
           owned=None, instance_id=None, group: str = "g", first: bool | None = None) -> dict:
        first = epoch == 0 if first is None else first
        req = {"group_id": group, "member_id": member_id, "member_epoch": epoch,
               "instance_id": instance_id, "rack_id": None,
               "rebalance_timeout_ms": 10000 if first else -1,
               "subscribed_topic_names": (list(topics) if topics is not None
                                          else ([] if first and regex is None else None)),
               "subscribed_topic_regex": regex, "server_assignor": None,
               "topic_partitions": ([] if first else None) if owned is None else [
                   {"topic_id": t, "partitions": sorted(ps)} for t, ps in owned.items()]}
        res = self.gc.consumer_group_heartbeat(
            req, client_id="cli", client_host="/h", topic_info=self.topics.get, now_ms=self.now,
            api_version=version, topic_names=lambda: list(self.topics))
        for r in res.records:
            self.log.append(encode_record(r))
            self.gc.replay(r, now_ms=self.now)
        return res.response

    def converge(self, members: dict[str, int], rounds: int = 6) -> dict[str, dict]:
        """Heartbeat every member (reporting what it was told) until nothing changes."""
        owned: dict[str, dict] = {m: {} for m in members}
        for _ in range(rounds):
            for m in members:
                r = self.hb(m, members[m], owned=owned[m])
                assert r["error_code"] == 0, r
                members[m] = r["member_epoch"]
                if r["assignment"] is not None:
                    owned[m] = {tp["topic_id"]: set(tp["partitions"])
                                for tp in r["assignment"]["topic_partitions"]}
        return owned

    def reload(self) -> GroupCoordinator:
        """A fresh coordinator that replays everything written so far (a broker restart)."""
        fresh = GroupCoordinator(GroupConfig())
        for key, value in self.log:
            record = decode_record(key, value)
            if record is not None:
                fresh.replay(record, now_ms=self.now, loading=True)
        fresh.finish_load(self.now)
        return fresh


def held(owned: dict[str, dict]) -> list[tuple]:
    return sorted((t, p) for a in owned.values() for t, ps in a.items() for p in ps)


# ---------------------------------------------------------------------- v1 member ids

def test_v1_member_keeps_the_id_it_chose():
    k = Cluster()
    k.create("a", 3)
    r = k.hb("my-own-id", topics=["a"])
    assert (r["error_code"], r["member_id"], r["member_epoch"]) == (0, "my-own-id", 1)


def test_v1_refuses_an_empty_member_id_but_v0_generates_one():
    k = Cluster()
    k.create("a", 3)
    r = k.hb("", topics=["a"])
    assert (r["error_code"], r["error_message"]) == (cg.INVALID_REQUEST, "MemberId can't be empty.")
    r0 = k.hb("", topics=["a"], version=0)
    assert r0["error_code"] == 0 and len(r0["member_id"]) > 10


def test_v1_join_needs_names_or_regex():
    k = Cluster()
    req_missing = k.gc.consumer_group_heartbeat(
        {"group_id": "g", "member_id": "m", "member_epoch": 0, "rebalance_timeout_ms": 1000,
         "subscribed_topic_names": None, "subscribed_topic_regex": None,
         "topic_partitions": []},
        client_id="c", client_host="/h", topic_info=k.topics.get, now_ms=k.now, api_version=1)
    assert req_missing.response["error_code"] == cg.INVALID_REQUEST
    assert "SubscribedTopicRegex" in req_missing.response["error_message"]


# ---------------------------------------------------------------------- regex

@pytest.mark.parametrize("pattern", [r"(a)\1", "a(?=b)", "(?<!x)y", "(?>ab)", "a*+", "(",
                                     "(?(1)a|b)", "x{2}+"])
def test_patterns_re2_refuses_answer_invalid_regular_expression(pattern):
    with pytest.raises(InvalidRegex):
        compile_topic_regex(pattern)
    k = Cluster()
    r = k.hb("m", regex=pattern)
    assert r["error_code"] == cg.INVALID_REGULAR_EXPRESSION == 131
    assert "g" not in k.gc.consumer_groups or not k.gc.consumer_groups["g"].members


@pytest.mark.parametrize("pattern", ["^topic-.*", "t[0-9]+", r"[\1(?=]x", "(?P<n>a)|b", "a|b"])
def test_patterns_re2_accepts_compile(pattern):
    compile_topic_regex(pattern)


def test_regex_picks_up_created_topics_and_drops_deleted_ones():
    k = Cluster()
    a = k.create("topic-a", 2)
    k.create("other", 2)
    k.create("__consumer_offsets", 5)
    r = k.hb("m", regex="^topic-.*")
    assert {tp["topic_id"] for tp in r["assignment"]["topic_partitions"]} == {a}
    epoch = r["member_epoch"]
    b = k.create("topic-b", 3)
    r = k.hb("m", epoch, owned={a: {0, 1}})
    assert r["member_epoch"] == epoch + 1
    assert {tp["topic_id"]: set(tp["partitions"]) for tp in r["assignment"]["topic_partitions"]} \
        == {a: {0, 1}, b: {0, 1, 2}}
    described = k.gc.consumer_group_describe("g", lambda t: None)
    assert described["members"][0]["subscribed_topic_regex"] == "^topic-.*"
    del k.topics["topic-a"]
    r = k.hb("m", epoch + 1, owned={a: {0, 1}, b: {0, 1, 2}})
    assert {tp["topic_id"] for tp in r["assignment"]["topic_partitions"]} == {b}


def test_regex_and_names_members_share_a_topic():
    k = Cluster()
    k.create("topic-a", 4)
    members = {"x": 0, "y": 0}
    k.hb("x", regex="topic-.*")
    k.hb("y", topics=["topic-a"])
    members = {"x": 1, "y": 2}
    owned = k.converge(members)
    assert len(held(owned)) == 4 and len(set(held(owned))) == 4
    assert all(len(held({m: o})) == 2 for m, o in owned.items())


# ---------------------------------------------------------------------- static members

def test_static_member_leaving_temporarily_keeps_its_partitions_for_its_return():
    k = Cluster()
    a = k.create("a", 4)
    k.hb("s1", topics=["a"], instance_id="i1")
    k.hb("s2", topics=["a"], instance_id="i2")
    owned = k.converge({"s1": 1, "s2": 2})
    group = k.gc.consumer_groups["g"]
    epoch_before = group.group_epoch
    s1_parts = owned["s1"]
    r = k.hb("s1", group.members["s1"].member_epoch, instance_id="i1", first=False)
    left = k.hb("s1", -2, instance_id="i1", first=False)
    assert (left["error_code"], left["member_epoch"]) == (0, -2)
    assert group.group_epoch == epoch_before, "a temporary leave is no rebalance"
    # the other member is not handed the partitions
    r = k.hb("s2", group.members["s2"].member_epoch, owned=owned["s2"])
    assert r["assignment"] is None or {tp["topic_id"]: set(tp["partitions"]) for tp in
                                       r["assignment"]["topic_partitions"]} == owned["s2"]
    # back with a new member id and the same instance id: same partitions, no new epoch
    back = k.hb("s1-new", topics=["a"], instance_id="i1")
    assert back["error_code"] == 0 and back["member_id"] == "s1-new"
    assert {tp["topic_id"]: set(tp["partitions"]) for tp in
            back["assignment"]["topic_partitions"]} == s1_parts
    assert group.group_epoch == epoch_before
    assert "s1" not in group.members
    # the old id is fenced now
    old = k.hb("s1", back["member_epoch"], instance_id="i1", first=False)
    assert old["error_code"] == c.FENCED_INSTANCE_ID
    assert a in s1_parts


def test_static_instance_in_use_is_unreleased_and_expires_with_the_session():
    k = Cluster()
    k.create("a", 2)
    k.hb("s1", topics=["a"], instance_id="i1")
    r = k.hb("other", topics=["a"], instance_id="i1")
    assert r["error_code"] == c.UNRELEASED_INSTANCE_ID == 111
    k.hb("s1", 1, instance_id="i1", first=False)
    k.hb("s1", -2, instance_id="i1", first=False)
    k.now += SESSION_MS + 1
    records = k.gc.tick(k.now).records
    for rec in records:
        k.log.append(encode_record(rec))
        k.gc.replay(rec, now_ms=k.now)
    assert not k.gc.consumer_groups["g"].members, "session timeout removes the static member"
    assert ConsumerGroupRecord("g", 5, "s1", None) in records
    assert not k.reload().consumer_groups["g"].members
    assert k.gc.tick(k.now + 1).records == [], "an idle timer writes nothing"


def test_static_leave_needs_an_instance_id():
    k = Cluster()
    k.create("a", 2)
    k.hb("s1", topics=["a"])
    r = k.hb("s1", -2, first=False)
    assert (r["error_code"], r["error_message"]) == (cg.INVALID_REQUEST,
                                                     "InstanceId can't be null.")


# ---------------------------------------------------------------------- persistence

def test_records_use_kafka_key_versions_and_round_trip():
    k = Cluster()
    k.create("a", 3)
    k.hb("m", topics=["a"], instance_id="i")
    versions = sorted({int.from_bytes(key[:2], "big") for key, _ in k.log})
    assert versions == [3, 4, 5, 6, 7, 8]
    for key, value in k.log:
        assert encode_record(decode_record(key, value)) == (key, value)


def test_restart_keeps_members_epochs_and_assignments():
    k = Cluster()
    k.create("a", 6)
    k.hb("m1", topics=["a"])
    k.hb("m2", topics=["a"])
    members = {"m1": 1, "m2": 2}
    owned = k.converge(members)
    before = k.gc.consumer_groups["g"]
    fresh = k.reload()
    after = fresh.consumer_groups["g"]
    assert (after.group_epoch, after.assignment_epoch) == (before.group_epoch,
                                                           before.assignment_epoch)
    assert {m: (x.member_epoch, x.assigned) for m, x in after.members.items()} == \
        {m: (x.member_epoch, x.assigned) for m, x in before.members.items()}
    assert after.state() == "Stable"
    # a heartbeat with the old epoch is accepted and changes nothing
    k.gc = fresh
    for m, epoch in members.items():
        r = k.hb(m, epoch, owned=owned[m])
        assert (r["error_code"], r["member_epoch"]) == (0, epoch)
    assert k.gc.consumer_groups["g"].group_epoch == before.group_epoch


def test_restart_mid_revocation_resumes_reconciling():
    k = Cluster()
    a = k.create("a", 4)
    k.hb("m1", topics=["a"])
    k.hb("m2", topics=["a"])                 # m1 must now give up two partitions
    r = k.hb("m1", 1, owned={a: {0, 1, 2, 3}})
    kept = {tp["topic_id"]: set(tp["partitions"]) for tp in r["assignment"]["topic_partitions"]}
    k.gc = k.reload()
    assert k.gc.consumer_groups["g"].members["m1"].state is cg.MemberState.UNREVOKED_PARTITIONS
    r = k.hb("m1", 1, owned=kept)
    assert r["member_epoch"] == 2
    r = k.hb("m2", 2, owned={})
    assert {tp["topic_id"]: set(tp["partitions"]) for tp in r["assignment"]["topic_partitions"]} \
        == {a: {0, 1, 2, 3} - kept[a]}


def test_leaving_member_is_tombstoned_and_stays_gone_after_restart():
    k = Cluster()
    k.create("a", 2)
    k.hb("m1", topics=["a"])
    k.hb("m2", topics=["a"])
    k.hb("m2", -1, first=False)
    tombstoned = {(decode_record(key, None).record_type, decode_record(key, None).member_id)
                  for key, value in k.log if value is None}
    assert {(5, "m2"), (7, "m2"), (8, "m2")} <= tombstoned
    fresh = k.reload()
    assert set(fresh.consumer_groups["g"].members) == {"m1"}


def test_deleted_group_is_gone_after_restart():
    k = Cluster()
    k.create("a", 2)
    k.hb("m1", topics=["a"])
    k.hb("m1", -1, first=False)
    res = k.gc.delete_groups(["g"], now_ms=k.now)
    assert res.response == {"g": 0}
    for r in res.records:
        k.log.append(encode_record(r))
        k.gc.replay(r, now_ms=k.now)
    assert "g" not in k.gc.consumer_groups
    assert "g" not in k.reload().consumer_groups
    assert any(isinstance(r, ConsumerGroupRecord) and r.record_type == 3 and r.value is None
               for r in res.records)


def test_unchanged_heartbeat_writes_nothing():
    k = Cluster()
    k.create("a", 2)
    k.hb("m1", topics=["a"])
    n = len(k.log)
    k.hb("m1", 1, owned={k.topics["a"].topic_id: {0, 1}})
    assert len(k.log) == n


def test_expired_empty_group_tombstones_its_kip848_records():
    from kbroker.coordinator.coordinator import CommitPartition

    k = Cluster()
    k.gc = GroupCoordinator(GroupConfig(offsets_retention_ms=1000,
                                        offsets_retention_check_interval_ms=100))
    k.create("a", 1)
    k.hb("m1", topics=["a"])
    res = k.gc.offset_commit("g", generation_id=1, member_id="m1", group_instance_id=None,
                             retention_ms=-1, partitions=[CommitPartition("a", 0, 5)],
                             now_ms=k.now)
    for r in res.records:
        k.log.append(encode_record(r))
        k.gc.replay(r, now_ms=k.now)
    k.hb("m1", -1, first=False)
    for step in range(3):
        k.now += 1000
        for r in k.gc.tick(k.now).records:
            k.log.append(encode_record(r))
            k.gc.replay(r, now_ms=k.now)
    assert "g" not in k.gc.consumer_groups
    # even without the classic group tombstone (compacted away) nothing comes back
    k.log = [(key, value) for key, value in k.log if int.from_bytes(key[:2], "big") != 2]
    assert "g" not in k.reload().consumer_groups


def test_describe_names_why_a_group_is_not_found():
    k = Cluster()
    res = k.gc.join_group({"group_id": "classic", "member_id": "", "session_timeout_ms": 10000,
                           "rebalance_timeout_ms": 10000, "protocol_type": "consumer",
                           "protocols": [{"name": "range", "metadata": b""}]},
                          client_id="c", client_host="/h", api_version=3, now_ms=k.now)
    for r in res.records:
        k.gc.replay(r, now_ms=k.now)
    d = k.gc.consumer_group_describe("classic", lambda t: None)
    assert (d["error_code"], d["error_message"]) == (c.GROUP_ID_NOT_FOUND,
                                                     "Group classic is not a consumer group.")
    d = k.gc.consumer_group_describe("nope", lambda t: None)
    assert (d["error_code"], d["error_message"]) == (c.GROUP_ID_NOT_FOUND, "Group nope not found.")


def test_join_needs_an_empty_not_a_null_partition_list():
    k = Cluster()
    k.create("a", 2)
    r = k.hb("m", topics=["a"], owned=None, first=True)
    assert r["error_code"] == 0
    res = k.gc.consumer_group_heartbeat(
        {"group_id": "g", "member_id": "n", "member_epoch": 0, "rebalance_timeout_ms": 1000,
         "subscribed_topic_names": ["a"], "topic_partitions": None},
        client_id="c", client_host="/h", topic_info=k.topics.get, now_ms=k.now, api_version=1)
    assert (res.response["error_code"], res.response["error_message"]) == (
        cg.INVALID_REQUEST, "TopicPartitions must be empty when (re-)joining.")

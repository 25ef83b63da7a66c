"""Classic group protocol on the pure GroupCoordinator: no sockets, time passed explicitly."""

from __future__ import annotations

import itertools

import pytest

from kbroker.coordinator import coordinator as c
from kbroker.coordinator.coordinator import GroupConfig, GroupCoordinator, Result
from kbroker.coordinator.group import GroupState
from kbroker.coordinator.records import GroupMetadataRecord, OffsetCommitRecord

T0 = 1_700_000_000_000
SESSION = 10_000
REBALANCE = 30_000


class Harness:
    """Drives a GroupCoordinator like the runtime does: replays records, collects answers."""

    def __init__(self, **config) -> None:
        ids = itertools.count(1)
        cfg = dict(initial_rebalance_delay_ms=0)
        cfg.update(config)
        self.gc = GroupCoordinator(GroupConfig(**cfg), new_member_suffix=lambda: f"m{next(ids)}")
        self.now = T0
        self.answers: dict[int, dict] = {}
        self.records: list = []

    def apply(self, result: Result):
        for r in result.records:
            self.gc.replay(r, now_ms=self.now)
        self.records.extend(result.records)
        for pid, resp in result.completions:
            assert pid not in self.answers, "a request answered twice"
            self.answers[pid] = resp
        return result

    def join(self, member_id="", *, group="g", protocols=(("range", b"r"),), version=5,
             instance=None, session=SESSION, protocol_type="consumer") -> Result:
        req = {"group_id": group, "session_timeout_ms": session,
               "rebalance_timeout_ms": REBALANCE, "member_id": member_id,
               "group_instance_id": instance, "protocol_type": protocol_type,
               "protocols": [{"name": n, "metadata": m} for n, m in protocols]}
        return self.apply(self.gc.join_group(req, client_id="cli", client_host="/127.0.0.1",
                                             api_version=version, now_ms=self.now))

    def join_new(self, **kw) -> tuple[str, Result]:
        """First join (KIP-394 round trip included); returns (member_id, pending result)."""
        first = self.join(**kw)
        assert first.response["error_code"] == c.MEMBER_ID_REQUIRED
        member_id = first.response["member_id"]
        return member_id, self.join(member_id, **kw)

    def answer(self, result: Result) -> dict:
        if result.response is not None:
            return result.response
        return self.answers[result.pending_id]

    def sync(self, member_id, generation, assignments=None, group="g", instance=None) -> Result:
        req = {"group_id": group, "generation_id": generation, "member_id": member_id,
               "group_instance_id": instance,
               "assignments": [{"member_id": m, "assignment": a}
                               for m, a in (assignments or {}).items()]}
        return self.apply(self.gc.sync_group(req, now_ms=self.now))

    def heartbeat(self, member_id, generation, group="g") -> int:
        return self.apply(self.gc.heartbeat({"group_id": group, "generation_id": generation,
                                             "member_id": member_id}, now_ms=self.now)).response

    def advance(self, ms: int) -> None:
        self.now += ms
        self.apply(self.gc.tick(self.now))

    def state(self, group="g") -> GroupState:
        return self.gc.groups[group].state


def test_first_join_requires_member_id_then_completes_alone():
    h = Harness()
    first = h.join()
    assert first.response["error_code"] == c.MEMBER_ID_REQUIRED
    assert first.response["member_id"].startswith("cli-")
    second = h.join(first.response["member_id"])
    resp = h.answer(second)
    assert resp["error_code"] == c.NONE
    assert resp["generation_id"] == 1
    assert resp["leader"] == resp["member_id"] == first.response["member_id"]
    assert resp["protocol_name"] == "range"
    assert [m["metadata"] for m in resp["members"]] == [b"r"]
    assert h.state() is GroupState.COMPLETING_REBALANCE


def test_old_versions_get_a_member_id_without_the_extra_round_trip():
    h = Harness()
    resp = h.answer(h.join(version=3))
    assert resp["error_code"] == c.NONE and resp["member_id"]


def test_two_members_rebalance_and_sync_assignments():
    h = Harness()
    a, ja = h.join_new()
    gen1 = h.answer(ja)["generation_id"]
    assert h.answer(h.sync(a, gen1, {a: b"all"}))["assignment"] == b"all"
    assert h.state() is GroupState.STABLE

    b, jb = h.join_new()
    assert jb.response is None, "the new member waits for the old one to rejoin"
    assert h.heartbeat(a, gen1) == c.REBALANCE_IN_PROGRESS
    ja2 = h.join(a)
    ra, rb = h.answer(ja2), h.answer(jb)
    assert ra["generation_id"] == rb["generation_id"] == gen1 + 1
    assert ra["leader"] == a and len(ra["members"]) == 2 and rb["members"] == []

    follower = h.sync(b, gen1 + 1)
    assert follower.response is None, "the follower waits for the leader's assignment"
    leader = h.sync(a, gen1 + 1, {a: b"p0", b: b"p1"})
    assert h.answer(leader)["assignment"] == b"p0"
    assert h.answer(follower)["assignment"] == b"p1"
    assert h.state() is GroupState.STABLE
    snapshots = [r for r in h.records if isinstance(r, GroupMetadataRecord)]
    assert snapshots[-1].value.generation_id == gen1 + 1
    assert {m.assignment for m in snapshots[-1].value.members} == {b"p0", b"p1"}


def stable_group(h: Harness, n: int) -> tuple[list[str], int]:
    """n members joined and synced; returns (member ids, generation)."""
    members = []
    pending = []
    for _ in range(n):
        m, r = h.join_new()
        members.append(m)
        pending.append(r)
        # existing members rejoin so the rebalance completes
        for old in members[:-1]:
            pending.append(h.join(old))
    answers = [h.answer(r) for r in pending[-n:]]
    gen = answers[0]["generation_id"]
    leader = answers[0]["leader"]
    syncs = [h.sync(m, gen) for m in members if m != leader]
    h.sync(leader, gen, {m: m.encode() for m in members})
    for s in syncs:
        assert h.answer(s)["error_code"] == c.NONE
    assert h.state() is GroupState.STABLE
    return members, gen


def test_leave_triggers_rebalance_and_survivor_continues():
    h = Harness()
    (a, b), gen = stable_group(h, 2)
    top, errs = h.apply(h.gc.leave_group("g", [(b, None)], now_ms=h.now)).response
    assert (top, errs) == (c.NONE, [c.NONE])
    assert h.state() is GroupState.PREPARING_REBALANCE
    resp = h.answer(h.join(a))
    assert resp["generation_id"] == gen + 1 and [m["member_id"] for m in resp["members"]] == [a]


def test_session_timeout_removes_silent_member():
    h = Harness()
    (a, b), gen = stable_group(h, 2)
    for _ in range(3):
        h.advance(SESSION // 2)
        assert h.heartbeat(a, gen) in (c.NONE, c.REBALANCE_IN_PROGRESS)
    assert b not in h.gc.groups["g"].members
    assert h.state() is GroupState.PREPARING_REBALANCE
    assert h.answer(h.join(a))["generation_id"] == gen + 1


def test_rebalance_timeout_drops_members_that_do_not_rejoin():
    h = Harness()
    (a, b), gen = stable_group(h, 2)
    c_id, jc = h.join_new()
    ja = h.join(a)
    # b keeps heartbeating but never rejoins
    for _ in range(REBALANCE // 5000):
        h.advance(5000)
        h.heartbeat(b, gen)
    ra = h.answer(ja)
    assert ra["generation_id"] == gen + 1
    assert {m["member_id"] for m in ra["members"]} == {a, c_id}
    assert h.heartbeat(b, gen) == c.UNKNOWN_MEMBER_ID


def test_generation_and_member_checks():
    h = Harness()
    (a,), gen = stable_group(h, 1)
    assert h.heartbeat(a, gen) == c.NONE
    assert h.heartbeat(a, gen + 7) == c.ILLEGAL_GENERATION
    assert h.heartbeat("nobody", gen) == c.UNKNOWN_MEMBER_ID
    assert h.heartbeat(a, gen, group="other") == c.UNKNOWN_MEMBER_ID
    assert h.answer(h.sync(a, gen + 1))["error_code"] == c.ILLEGAL_GENERATION
    assert h.answer(h.join("nobody"))["error_code"] == c.UNKNOWN_MEMBER_ID


def test_inconsistent_protocols_rejected():
    h = Harness()
    stable_group(h, 1)
    r = h.join(protocols=(("roundrobin", b"x"),), version=3)
    assert h.answer(r)["error_code"] == c.INCONSISTENT_GROUP_PROTOCOL
    r = h.join(protocol_type="connect", version=3)
    assert h.answer(r)["error_code"] == c.INCONSISTENT_GROUP_PROTOCOL


def test_protocol_selection_by_vote():
    h = Harness()
    a, ja = h.join_new(protocols=(("cooperative-sticky", b"c"), ("range", b"r")))
    gen = h.answer(ja)["generation_id"]
    h.sync(a, gen, {a: b""})
    b, jb = h.join_new(protocols=(("range", b"r"), ("cooperative-sticky", b"c")))
    c_id, jc = h.join_new(protocols=(("range", b"r"),))
    resp = h.answer(h.join(a, protocols=(("cooperative-sticky", b"c"), ("range", b"r"))))
    assert resp["protocol_name"] == "range"     # the only protocol all three support


def test_session_timeout_bounds():
    h = Harness()
    assert h.answer(h.join(session=5999))["error_code"] == c.INVALID_SESSION_TIMEOUT
    assert h.answer(h.join(session=1_800_001))["error_code"] == c.INVALID_SESSION_TIMEOUT
    assert "g" not in h.gc.groups


def test_group_max_size():
    h = Harness(max_size=1)
    stable_group(h, 1)
    assert h.answer(h.join(version=3))["error_code"] == c.GROUP_MAX_SIZE_REACHED


def test_initial_rebalance_delay_collects_members():
    h = Harness(initial_rebalance_delay_ms=3000)
    a, ja = h.join_new()
    assert ja.response is None
    h.advance(1000)
    b, jb = h.join_new()
    h.advance(2000)      # first delay over, a member arrived meanwhile: wait once more
    assert jb.pending_id not in h.answers
    h.advance(3000)
    ra, rb = h.answer(ja), h.answer(jb)
    assert ra["generation_id"] == rb["generation_id"] == 1
    assert len(ra["members"] or rb["members"]) == 2


def test_pending_member_id_expires():
    h = Harness()
    first = h.join()
    assert first.response["member_id"] in h.gc.groups["g"].pending_members
    h.advance(SESSION)
    assert h.gc.groups["g"].pending_members == {}


def test_static_member_rejoin_keeps_assignment_without_rebalance():
    h = Harness()
    r = h.join(instance="i-1")          # static members get their id at once
    a = h.answer(r)["member_id"]
    gen = h.answer(r)["generation_id"]
    h.sync(a, gen, {a: b"mine"})
    # the process restarts: same instance id, no member id
    r2 = h.join(instance="i-1")
    resp = h.answer(r2)
    assert resp["error_code"] == c.NONE and resp["generation_id"] == gen
    new_id = resp["member_id"]
    assert new_id != a
    assert h.state() is GroupState.STABLE
    assert h.answer(h.sync(new_id, gen, instance="i-1"))["assignment"] == b"mine"
    # the old incarnation is fenced
    req = {"group_id": "g", "generation_id": gen, "member_id": a, "group_instance_id": "i-1"}
    assert h.gc.heartbeat(req, now_ms=h.now).response == c.FENCED_INSTANCE_ID


def test_leave_by_instance_id():
    h = Harness()
    r = h.join(instance="i-1")
    gen = h.answer(r)["generation_id"]
    h.sync(h.answer(r)["member_id"], gen, {})
    top, errs = h.apply(h.gc.leave_group("g", [("", "i-1"), ("", "i-2")],
                                         now_ms=h.now)).response
    assert errs == [c.NONE, c.UNKNOWN_MEMBER_ID]
    assert h.state() is GroupState.EMPTY


def test_join_while_completing_rebalance_cancels_pending_sync():
    h = Harness()
    (a, b), gen = stable_group(h, 2)
    c_id, jc = h.join_new()
    ja = h.join(a)
    h.join(b)
    gen2 = h.answer(ja)["generation_id"]
    leader = h.answer(ja)["leader"]
    followers = [m for m in (a, b, c_id) if m != leader]
    waiting = h.sync(followers[0], gen2)
    h.join_new()                                  # a fourth member arrives before the leader syncs
    assert h.answer(waiting)["error_code"] == c.REBALANCE_IN_PROGRESS
    assert h.state() is GroupState.PREPARING_REBALANCE


def _commit(h, group="g", generation=-1, member="", parts=(("t", 0, 5),), metadata="m"):
    ps = [c.CommitPartition(t, p, o, 3, metadata) for t, p, o in parts]
    return h.apply(h.gc.offset_commit(group, generation_id=generation, member_id=member,
                                      group_instance_id=None, retention_ms=-1, partitions=ps,
                                      now_ms=h.now)).response


def test_simple_commit_creates_empty_group_and_fetch_returns_it():
    h = Harness()
    assert _commit(h, parts=(("t", 0, 5), ("t", 1, 9))) == {("t", 0): c.NONE, ("t", 1): c.NONE}
    assert h.state() is GroupState.EMPTY
    got = h.gc.offset_fetch("g", [("t", 0), ("t", 2)])
    assert got[0][2].offset == 5 and got[0][2].leader_epoch == 3 and got[0][2].metadata == "m"
    assert got[1][2] is None
    assert [(t, p, o.offset) for t, p, o in h.gc.offset_fetch("g", None)] == [("t", 0, 5),
                                                                             ("t", 1, 9)]
    assert h.gc.list_groups() == [{"group_id": "g", "protocol_type": "", "group_state": "Empty",
                                   "group_type": "classic"}]


def test_commit_checks_member_and_generation():
    h = Harness()
    (a,), gen = stable_group(h, 1)
    assert _commit(h, generation=gen, member=a) == {("t", 0): c.NONE}
    assert _commit(h, generation=gen + 1, member=a) == {("t", 0): c.ILLEGAL_GENERATION}
    assert _commit(h, generation=gen, member="x") == {("t", 0): c.UNKNOWN_MEMBER_ID}
    assert _commit(h) == {("t", 0): c.UNKNOWN_MEMBER_ID}     # admin commit to an active group
    assert _commit(h, group="new", generation=3, member="x") == {("t", 0): c.ILLEGAL_GENERATION}


def test_commit_metadata_too_large():
    h = Harness(offset_metadata_max_bytes=10)
    assert _commit(h, metadata="x" * 11) == {("t", 0): c.OFFSET_METADATA_TOO_LARGE}
    assert h.gc.offset_fetch("g", [("t", 0)])[0][2] is None


def test_delete_groups_rules_and_tombstones():
    h = Harness()
    _commit(h, group="simple")
    stable_group(h, 1)
    res = h.apply(h.gc.delete_groups(["simple", "g", "missing"], now_ms=h.now))
    assert res.response == {"simple": c.NONE, "g": c.NON_EMPTY_GROUP,
                            "missing": c.GROUP_ID_NOT_FOUND}
    assert [r.value for r in res.records] == [None, None]
    assert "simple" not in h.gc.groups
    assert h.gc.offset_fetch("simple", [("t", 0)])[0][2] is None


def test_offset_delete_respects_subscriptions():
    h = Harness()
    # consumer protocol subscription: version 0, topics ["t"]
    sub = b"\x00\x00" + b"\x00\x00\x00\x01" + b"\x00\x01t" + b"\xff\xff\xff\xff"
    m, r = h.join_new(protocols=(("range", sub),))
    gen = h.answer(r)["generation_id"]
    h.sync(m, gen, {m: b""})
    _commit(h, generation=gen, member=m, parts=(("t", 0, 1), ("u", 0, 2)))
    top, errs = h.apply(h.gc.offset_delete("g", [("t", 0), ("u", 0)], now_ms=h.now)).response
    assert top == c.NONE
    assert errs == {("t", 0): c.GROUP_SUBSCRIBED_TO_TOPIC, ("u", 0): c.NONE}
    assert [(t, p) for t, p, _ in h.gc.offset_fetch("g", None)] == [("t", 0)]
    assert h.apply(h.gc.offset_delete("nope", [("t", 0)], now_ms=h.now)).response[0] == \
        c.GROUP_ID_NOT_FOUND


def test_describe_and_list_with_state_filter():
    h = Harness()
    (a,), gen = stable_group(h, 1)
    _commit(h, group="simple")
    d = h.gc.describe_group("g")
    assert d["group_state"] == "Stable" and d["protocol_data"] == "range"
    assert d["members"][0]["member_assignment"] == a.encode()
    assert h.gc.describe_group("missing")["group_state"] == "Dead"
    assert [g["group_id"] for g in h.gc.list_groups(states=["stable"])] == ["g"]
    assert [g["group_id"] for g in h.gc.list_groups(states=["Empty"])] == ["simple"]
    assert h.gc.list_groups(types=["consumer"]) == []


def test_offsets_of_empty_group_expire_after_retention():
    h = Harness(offsets_retention_ms=60_000, offsets_retention_check_interval_ms=1000)
    (a,), gen = stable_group(h, 1)
    _commit(h, generation=gen, member=a)
    h.advance(1000)
    h.heartbeat(a, gen)
    h.apply(h.gc.leave_group("g", [(a, None)], now_ms=h.now))
    assert h.state() is GroupState.EMPTY
    h.advance(30_000)
    assert h.gc.offset_fetch("g", [("t", 0)])[0][2] is not None
    h.advance(31_000)
    assert h.gc.offset_fetch("g", [("t", 0)])[0][2] is None
    assert "g" not in h.gc.groups


def test_active_group_offsets_do_not_expire():
    h = Harness(offsets_retention_ms=5_000, offsets_retention_check_interval_ms=1000)
    (a,), gen = stable_group(h, 1)
    _commit(h, generation=gen, member=a)
    for _ in range(10):
        h.advance(1000)
        assert h.heartbeat(a, gen) == c.NONE
    assert h.gc.offset_fetch("g", [("t", 0)])[0][2].offset == 5


def test_replay_on_load_rebuilds_groups_and_offsets():
    h = Harness()
    (a, b), gen = stable_group(h, 2)
    _commit(h, generation=gen, member=a, parts=(("t", 0, 7),))
    _commit(h, group="gone")
    h.apply(h.gc.delete_groups(["gone"], now_ms=h.now))

    fresh = GroupCoordinator(GroupConfig(initial_rebalance_delay_ms=0))
    for r in h.records:
        fresh.replay(r, now_ms=h.now, loading=True)
    g = fresh.groups["g"]
    assert g.state is GroupState.STABLE and g.generation_id == gen
    assert set(g.members) == {a, b} and g.members[b].assignment == b.encode()
    assert g.offsets[("t", 0)].offset == 7
    assert "gone" not in fresh.groups
    # a loaded member keeps working; a silent one times out
    assert fresh.heartbeat({"group_id": "g", "generation_id": gen, "member_id": a},
                           now_ms=h.now).response == c.NONE


def test_next_deadline_tracks_session_timeouts():
    h = Harness()
    (a,), gen = stable_group(h, 1)
    deadline = h.gc.next_deadline_ms()
    assert deadline is not None and h.now < deadline <= h.now + SESSION


@pytest.mark.parametrize("group_id", ["", None])
def test_invalid_group_id_on_join(group_id):
    h = Harness()
    req = {"group_id": group_id, "session_timeout_ms": SESSION, "member_id": "",
           "protocol_type": "consumer", "protocols": [{"name": "range", "metadata": b""}]}
    res = h.gc.join_group(req, client_id="c", client_host="h", api_version=5, now_ms=T0)
    assert res.response["error_code"] == c.INVALID_GROUP_ID


def test_records_are_for_offsets_and_group_metadata_only():
    h = Harness()
    (a,), gen = stable_group(h, 1)
    _commit(h, generation=gen, member=a)
    assert all(isinstance(r, (OffsetCommitRecord, GroupMetadataRecord)) for r in h.records)

"""Random operation sequences on the classic coordinator, checking invariants after each step.

Invariants:
  * a waiting request is answered at most once, and requests only wait in the states that
    allow it (joins in PreparingRebalance, syncs in CompletingRebalance);
  * generations never go back; Stable and CompletingRebalance groups have a leader that is
    a member; Empty groups have no members;
  * replaying every record written so far into a fresh coordinator gives the same offsets.
"""

from __future__ import annotations

import itertools

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from kbroker.coordinator.coordinator import CommitPartition, GroupConfig, GroupCoordinator
from kbroker.coordinator.group import GroupState

T0 = 1_700_000_000_000
GROUPS = ("g1", "g2")


class ClassicGroups(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        ids = itertools.count(1)
        self.gc = GroupCoordinator(
            GroupConfig(initial_rebalance_delay_ms=1000, offsets_retention_ms=50_000,
                        offsets_retention_check_interval_ms=5_000),
            new_member_suffix=lambda: str(next(ids)))
        self.now = T0
        self.records: list = []
        self.answered: set[int] = set()
        self.known: dict[str, list[str]] = {g: [] for g in GROUPS}
        self.generations: dict[str, int] = {}

    def _apply(self, result):
        for r in result.records:
            self.gc.replay(r, now_ms=self.now)
        self.records.extend(result.records)
        for pending_id, _ in result.completions:
            assert pending_id not in self.answered, "answered twice"
            self.answered.add(pending_id)
        return result

    def _member(self, data, group: str) -> str:
        return data.draw(st.sampled_from(self.known[group] + ["unknown"]))

    @rule(group=st.sampled_from(GROUPS), version=st.sampled_from([3, 9]),
          session=st.sampled_from([6000, 10000]))
    def join_new(self, group, version, session):
        req = {"group_id": group, "session_timeout_ms": session, "rebalance_timeout_ms": 8000,
               "member_id": "", "protocol_type": "consumer",
               "protocols": [{"name": "range", "metadata": b"m"}]}
        res = self._apply(self.gc.join_group(req, client_id="c", client_host="h",
                                             api_version=version, now_ms=self.now))
        member_id = res.response["member_id"] if res.response else None
        if member_id is None:
            g = self.gc.groups[group]
            member_id = next(m for m in g.members.values()
                             if m.join_request_id == res.pending_id).member_id
        self.known[group].append(member_id)

    @rule(group=st.sampled_from(GROUPS), data=st.data())
    def rejoin(self, group, data):
        req = {"group_id": group, "session_timeout_ms": 6000, "rebalance_timeout_ms": 8000,
               "member_id": self._member(data, group), "protocol_type": "consumer",
               "protocols": [{"name": "range", "metadata": b"m"}]}
        self._apply(self.gc.join_group(req, client_id="c", client_host="h", api_version=9,
                                       now_ms=self.now))

    @rule(group=st.sampled_from(GROUPS), data=st.data())
    def sync(self, group, data):
        g = self.gc.groups.get(group)
        gen = g.generation_id if g is not None else 0
        member = self._member(data, group)
        req = {"group_id": group, "generation_id": gen, "member_id": member,
               "assignments": [{"member_id": m, "assignment": b"a"}
                               for m in self.known[group]]}
        self._apply(self.gc.sync_group(req, now_ms=self.now))

    @rule(group=st.sampled_from(GROUPS), data=st.data())
    def heartbeat(self, group, data):
        g = self.gc.groups.get(group)
        req = {"group_id": group, "generation_id": g.generation_id if g else 0,
               "member_id": self._member(data, group)}
        self._apply(self.gc.heartbeat(req, now_ms=self.now))

    @rule(group=st.sampled_from(GROUPS), data=st.data())
    def leave(self, group, data):
        self._apply(self.gc.leave_group(group, [(self._member(data, group), None)],
                                        now_ms=self.now))

    @rule(group=st.sampled_from(GROUPS), data=st.data(), offset=st.integers(0, 100),
          partition=st.integers(0, 2), simple=st.booleans())
    def commit(self, group, data, offset, partition, simple):
        g = self.gc.groups.get(group)
        gen = -1 if simple or g is None else g.generation_id
        member = "" if simple else self._member(data, group)
        self._apply(self.gc.offset_commit(
            group, generation_id=gen, member_id=member, group_instance_id=None,
            retention_ms=-1, partitions=[CommitPartition("t", partition, offset)],
            now_ms=self.now))

    @rule(group=st.sampled_from(GROUPS))
    def delete(self, group):
        self._apply(self.gc.delete_groups([group], now_ms=self.now))

    @rule(ms=st.sampled_from([100, 1000, 3000, 7000, 20000]))
    def advance(self, ms):
        self.now += ms
        self._apply(self.gc.tick(self.now))

    @invariant()
    def group_invariants(self):
        for group in self.gc.groups.values():
            previous = self.generations.get(group.group_id, 0)
            if group.generation_id < previous:
                # only a deleted and re-created group may start over
                assert group.generation_id <= 1 or previous == 0
            self.generations[group.group_id] = group.generation_id
            for m in group.members.values():
                if m.join_request_id is not None:
                    assert group.state is GroupState.PREPARING_REBALANCE
                if m.sync_request_id is not None:
                    assert group.state is GroupState.COMPLETING_REBALANCE
            if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
                assert group.leader_id in group.members
            if group.state is GroupState.EMPTY:
                assert not group.members

    @invariant()
    def replay_gives_same_offsets(self):
        fresh = GroupCoordinator(GroupConfig())
        for r in self.records:
            fresh.replay(r, now_ms=self.now, loading=True)
        for gid in GROUPS:
            live = {tp: o.offset for tp, o in getattr(self.gc.groups.get(gid), "offsets",
                                                       {}).items()}
            loaded = {tp: o.offset for tp, o in getattr(fresh.groups.get(gid), "offsets",
                                                         {}).items()}
            assert live == loaded


ClassicGroups.TestCase.settings = settings(max_examples=40, stateful_step_count=40,
                                           deadline=None)
TestClassicGroups = ClassicGroups.TestCase

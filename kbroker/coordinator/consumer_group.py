"""KIP-848 consumer groups (ConsumerGroupHeartbeat), pure and I/O-free.

The broker computes assignments; members converge by heartbeating. Epochs:

    group epoch        bumped when membership, a subscription or a subscribed topic's
                       partition count changes
    assignment epoch   the group epoch the target assignment was computed for (computed at
                       once when the group epoch moves, so the group is never left Assigning)
    member epoch       the assignment epoch the member has caught up with

Member states (Kafka's CurrentAssignmentBuilder), on every heartbeat of a member whose epoch
is behind the assignment epoch:

    STABLE                 member epoch == assignment epoch; it owns its target partitions
    UNREVOKED_PARTITIONS   it still owns partitions the target gives to others: it is told
                           its assignment without them and keeps its epoch until a heartbeat
                           shows it released them (or its rebalance timeout fences it)
    UNRELEASED_PARTITIONS  it moved to the new epoch but some of its target partitions are
                           still held by members revoking them; they are added as they free up

Group states reported: Empty (no members), Reconciling (a member is not yet STABLE at the
assignment epoch), Stable.

Error rules: epoch 0 joins (v0: the broker picks the member id when none is given; v1: the
consumer must send the id it chose, KIP-1082), -1 leaves, -2 is a static member's temporary
leave: the member and its assignment stay (epoch -2) until it rejoins with the same instance id
(new member id, same partitions, no new group epoch) or its session timeout removes it. An
instance id held by a live member -> UNRELEASED_INSTANCE_ID; a heartbeat naming an instance id
now bound to another member id -> FENCED_INSTANCE_ID. A member id the group does not know ->
UNKNOWN_MEMBER_ID; an epoch ahead of the member's, or behind it without being the previous
epoch with owned partitions within the assignment -> FENCED_MEMBER_EPOCH.

A member subscribes by names, by a regex (v1, `topic_regex.py`), or both; the regex is resolved
against the metadata image on each of its heartbeats, so created and deleted topics move the
group epoch. The group's state is persisted by the coordinator as Kafka's records 3-8
(coordinator.py `_sync_consumer_group`) and rebuilt at load (`finish_load`).
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from uuid import UUID

# Kafka error codes used here
NONE = 0
INVALID_REQUEST = 42
INVALID_REGULAR_EXPRESSION = 131
UNKNOWN_MEMBER_ID = 25
FENCED_MEMBER_EPOCH = 110
UNSUPPORTED_ASSIGNOR = 112
GROUP_MAX_SIZE_REACHED = 81

LEAVE_EPOCH = -1
STATIC_LEAVE_EPOCH = -2

Assignment = dict[UUID, frozenset[int]]     # topic id -> partitions


class MemberState(enum.Enum):
    """Reconciliation state of one member."""

    STABLE = "stable"
    UNREVOKED_PARTITIONS = "unrevoked_partitions"
    UNRELEASED_PARTITIONS = "unreleased_partitions"


@dataclass(frozen=True, slots=True)
class TopicInfo:
    """What the assignors need to know about a subscribed topic."""

    name: str
    topic_id: UUID
    partitions: int


@dataclass(slots=True)
class ConsumerMember:
    """One KIP-848 member."""

    member_id: str
    instance_id: str | None
    rack_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    subscribed_topic_names: list[str]
    server_assignor: str | None
    subscribed_topic_regex: str | None = None
    # topics the regex matched at the member's last heartbeat (re-resolved on every one)
    resolved_regex_topics: frozenset[str] = frozenset()
    member_epoch: int = 0
    previous_member_epoch: int = -1
    state: MemberState = MemberState.STABLE
    assigned: Assignment = field(default_factory=dict)
    pending_revocation: Assignment = field(default_factory=dict)
    session_deadline_ms: int = 0
    revocation_deadline_ms: int | None = None

    def topics(self) -> set[str]:
        """Subscribed topic names plus the topics the regex currently matches."""
        return set(self.subscribed_topic_names) | self.resolved_regex_topics

    def left_temporarily(self) -> bool:
        """A static member that sent epoch -2: its assignment waits for its return."""
        return self.member_epoch == STATIC_LEAVE_EPOCH


@dataclass(slots=True)
class ConsumerGroup:
    """A KIP-848 consumer group."""

    group_id: str
    group_epoch: int = 0
    assignment_epoch: int = 0
    members: dict[str, ConsumerMember] = field(default_factory=dict)
    target: dict[str, Assignment] = field(default_factory=dict)
    subscription_metadata: dict[str, tuple[UUID, int]] = field(default_factory=dict)
    assignor_name: str = "uniform"
    # what __consumer_offsets holds for this group: (record type, member id) -> value
    # (kept by GroupCoordinator.replay; writes are the difference to the live state)
    persisted: dict[tuple[int, str | None], object] = field(default_factory=dict)

    def state(self) -> str:
        """Kafka's state name for ListGroups/ConsumerGroupDescribe."""
        if not self.members:
            return "Empty"
        if self.group_epoch != self.assignment_epoch:
            return "Assigning"
        if any((m.member_epoch != self.assignment_epoch or m.state is not MemberState.STABLE)
               and not m.left_temporarily() for m in self.members.values()):
            return "Reconciling"
        return "Stable"

    def subscribed_topics(self) -> set[str]:
        """Union of the members' subscriptions."""
        out: set[str] = set()
        for m in self.members.values():      # runs on every heartbeat: no per-member sets
            out.update(m.subscribed_topic_names)
            if m.resolved_regex_topics:
                out.update(m.resolved_regex_topics)
        return out

    def owner_elsewhere(self, member_id: str, topic_id: UUID, partition: int) -> bool:
        """True if another member still holds (or is revoking) the partition."""
        for other in self.members.values():
            if other.member_id == member_id:
                continue
            if partition in other.assigned.get(topic_id, ()) or \
                    partition in other.pending_revocation.get(topic_id, ()):
                return True
        return False


# ---------------------------------------------------------------------- assignors

def _eligible(members: list[ConsumerMember], topics: dict[str, TopicInfo]
              ) -> dict[tuple[UUID, int], list[str]]:
    out: dict[tuple[UUID, int], list[str]] = {}
    for name in sorted({t for m in members for t in m.topics()}):
        info = topics.get(name)
        if info is None:
            continue
        subs = [m.member_id for m in members if name in m.topics()]
        for p in range(info.partitions):
            out[(info.topic_id, p)] = subs
    return out


def _to_assignment(owned: dict[str, set[tuple[UUID, int]]]) -> dict[str, Assignment]:
    result: dict[str, Assignment] = {}
    for member_id, tps in owned.items():
        by_topic: dict[UUID, set[int]] = {}
        for topic_id, p in tps:
            by_topic.setdefault(topic_id, set()).add(p)
        result[member_id] = {t: frozenset(ps) for t, ps in by_topic.items()}
    return result


def uniform_assign(members: list[ConsumerMember], topics: dict[str, TopicInfo],
                   current: dict[str, Assignment]) -> dict[str, Assignment]:
    """Balanced and sticky: keep what members hold, fill the least loaded, then even out."""
    eligible = _eligible(members, topics)
    owned: dict[str, set[tuple[UUID, int]]] = {m.member_id: set() for m in members}
    taken: set[tuple[UUID, int]] = set()
    for m in members:
        for topic_id, parts in current.get(m.member_id, {}).items():
            for p in parts:
                tp = (topic_id, p)
                if tp in eligible and m.member_id in eligible[tp] and tp not in taken:
                    owned[m.member_id].add(tp)
                    taken.add(tp)
    for tp in sorted(eligible, key=lambda x: (str(x[0]), x[1])):
        if tp in taken:
            continue
        best = min(eligible[tp], key=lambda mid: (len(owned[mid]), mid))
        owned[best].add(tp)
        taken.add(tp)
    # even out: move partitions from the most to the least loaded eligible member
    moved = True
    while moved:
        moved = False
        for tp in sorted(taken, key=lambda x: (str(x[0]), x[1])):
            holder = next(mid for mid, s in owned.items() if tp in s)
            target = min(eligible[tp], key=lambda mid: (len(owned[mid]), mid))
            if len(owned[holder]) > len(owned[target]) + 1:
                owned[holder].discard(tp)
                owned[target].add(tp)
                moved = True
    return _to_assignment(owned)


def range_assign(members: list[ConsumerMember], topics: dict[str, TopicInfo],
                 current: dict[str, Assignment]) -> dict[str, Assignment]:
    """Per topic, contiguous ranges to the subscribed members in member id order."""
    owned: dict[str, set[tuple[UUID, int]]] = {m.member_id: set() for m in members}
    for name in sorted({t for m in members for t in m.topics()}):
        info = topics.get(name)
        if info is None:
            continue
        subs = sorted(m.member_id for m in members if name in m.topics())
        per, extra = divmod(info.partitions, len(subs))
        start = 0
        for i, mid in enumerate(subs):
            count = per + (1 if i < extra else 0)
            owned[mid].update((info.topic_id, p) for p in range(start, start + count))
            start += count
    return _to_assignment(owned)


ASSIGNORS = {"uniform": uniform_assign, "range": range_assign}


# ---------------------------------------------------------------------- heartbeat

def _union(a: Assignment, b: Assignment) -> Assignment:
    out = dict(a)
    for t, ps in b.items():
        out[t] = frozenset(out.get(t, frozenset()) | ps)
    return {t: ps for t, ps in out.items() if ps}


def _clean(a: dict[UUID, set[int] | frozenset[int]]) -> Assignment:
    return {t: frozenset(ps) for t, ps in a.items() if ps}


def owned_from_request(topic_partitions: list[dict] | None) -> Assignment | None:
    """The request's TopicPartitions as an Assignment (None when the field is null)."""
    if topic_partitions is None:
        return None
    return _clean({tp["topic_id"]: frozenset(tp["partitions"] or []) for tp in topic_partitions})


def is_subset(a: Assignment, b: Assignment) -> bool:
    """Every partition of `a` is in `b`."""
    return all(ps <= b.get(t, frozenset()) for t, ps in a.items())


def reconcile(group: ConsumerGroup, member: ConsumerMember, owned: Assignment | None,
              now_ms: int) -> None:
    """Move `member` towards its target assignment (CurrentAssignmentBuilder)."""
    target_epoch = group.assignment_epoch
    if member.state is MemberState.UNREVOKED_PARTITIONS:
        still_owned = owned is None or any(
            ps & owned.get(t, frozenset()) for t, ps in member.pending_revocation.items())
        if still_owned:
            return
        member.pending_revocation = {}
        member.revocation_deadline_ms = None
        member.state = MemberState.STABLE
    if member.member_epoch == target_epoch and member.state is MemberState.STABLE:
        return
    target = group.target.get(member.member_id, {})
    kept: dict[UUID, set[int]] = {}
    revoking: dict[UUID, set[int]] = {}
    pending: dict[UUID, set[int]] = {}
    for t in set(target) | set(member.assigned):
        cur = member.assigned.get(t, frozenset())
        tgt = target.get(t, frozenset())
        kept[t] = set(cur & tgt)
        revoking[t] = set(cur - tgt)
        pending[t] = set(tgt - cur)
    revoking_c = _clean(revoking)
    if revoking_c and (owned is None or any(ps & owned.get(t, frozenset())
                                            for t, ps in revoking_c.items())):
        member.assigned = _clean(kept)
        member.pending_revocation = revoking_c
        member.state = MemberState.UNREVOKED_PARTITIONS
        member.revocation_deadline_ms = now_ms + max(member.rebalance_timeout_ms, 0)
        return
    unreleased = False
    for t, ps in pending.items():
        for p in sorted(ps):
            if group.owner_elsewhere(member.member_id, t, p):
                unreleased = True
            else:
                kept[t].add(p)
    member.assigned = _clean(kept)
    member.pending_revocation = {}
    member.previous_member_epoch = member.member_epoch
    member.member_epoch = target_epoch
    member.state = (MemberState.UNRELEASED_PARTITIONS if unreleased else MemberState.STABLE)


def compute_target(group: ConsumerGroup, topics: dict[str, TopicInfo]) -> None:
    """Recompute the target assignment for the current group epoch."""
    members = sorted(group.members.values(), key=lambda m: m.member_id)
    assignor_name = next((m.server_assignor for m in members if m.server_assignor),
                         group.assignor_name)
    group.assignor_name = assignor_name
    assign = ASSIGNORS[assignor_name]
    current = {m.member_id: _union(m.assigned, m.pending_revocation) for m in members}
    group.target = assign(members, topics, current) if members else {}
    group.assignment_epoch = group.group_epoch


def new_member_id() -> str:
    """A fresh member id (the broker picks it in ConsumerGroupHeartbeat v0)."""
    return str(uuid.uuid4())

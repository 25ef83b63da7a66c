"""The classic consumer-group state machine (JoinGroup/SyncGroup protocol), pure and I/O-free.

States (Kafka's names, as DescribeGroups/ListGroups report them):

    Empty                no members; offsets may still be committed (simple/admin commits)
    PreparingRebalance   a rebalance started; waiting for every known member to (re)join
    CompletingRebalance  joins answered; waiting for the leader's SyncGroup with assignments
    Stable               assignments handed out; members heartbeat
    Dead                 the group was deleted (or emptied and removed); nothing is accepted

Transitions (the only ones `ClassicGroup.transition_to` allows):

    Empty               -> PreparingRebalance   a member joins
    Empty               -> Dead                 group deleted / offsets expired and no members
    PreparingRebalance  -> CompletingRebalance  all members rejoined, or the rebalance timeout
                                                (or initial delay) expired with >= 1 member
    PreparingRebalance  -> Empty                join phase ended with no members left
    PreparingRebalance  -> Dead                 group deleted
    CompletingRebalance -> Stable               the leader's SyncGroup stored the assignment
    CompletingRebalance -> PreparingRebalance   a member joins/leaves/changes protocols/dies,
                                                or the sync phase timed out
    Stable              -> PreparingRebalance   a member joins/leaves/changes protocols/dies
    Stable              -> Dead                 group deleted
    (Dead is final.)

Member rules (Kafka's GroupCoordinator):
  * A member awaiting a JoinGroup or SyncGroup response is kept alive; others must heartbeat
    within their session timeout or are removed (which rebalances the group).
  * Members that got MEMBER_ID_REQUIRED (KIP-394) are "pending": they block join completion
    until they rejoin or their session timeout passes.
  * Static members (KIP-345) are keyed by group.instance.id; a rejoin with an unknown member id
    replaces the old member id without a rebalance when the group is Stable and its protocols
    are unchanged; the old id is fenced (FENCED_INSTANCE_ID).

This module holds the data and the per-group transitions; `coordinator.py` drives it from
requests and timers and produces the records to persist.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from kbroker.coordinator.offsets import OffsetAndMetadata


class GroupState(enum.Enum):
    """Classic group states; `.value` is the name Kafka reports."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


_VALID_PREVIOUS: dict[GroupState, frozenset[GroupState]] = {
    GroupState.PREPARING_REBALANCE: frozenset(
        {GroupState.EMPTY, GroupState.STABLE, GroupState.COMPLETING_REBALANCE}),
    GroupState.COMPLETING_REBALANCE: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.STABLE: frozenset({GroupState.COMPLETING_REBALANCE}),
    GroupState.EMPTY: frozenset({GroupState.PREPARING_REBALANCE}),
    GroupState.DEAD: frozenset({GroupState.EMPTY, GroupState.PREPARING_REBALANCE,
                                GroupState.COMPLETING_REBALANCE, GroupState.STABLE,
                                GroupState.DEAD}),
}


@dataclass(slots=True)
class Member:
    """One member of a classic group."""

    member_id: str
    group_instance_id: str | None
    client_id: str
    client_host: str
    rebalance_timeout_ms: int
    session_timeout_ms: int
    protocol_type: str
    protocols: list[tuple[str, bytes]]           # (name, metadata) in the member's preference
    assignment: bytes = b""
    join_request_id: int | None = None           # a JoinGroup waiting for the join phase end
    join_version: int = 0
    sync_request_id: int | None = None           # a SyncGroup waiting for the leader
    heartbeat_deadline_ms: int = 0
    is_new: bool = False

    @property
    def is_awaiting_join(self) -> bool:
        """True while a JoinGroup of this member waits for the rebalance to complete."""
        return self.join_request_id is not None

    def protocol_names(self) -> list[str]:
        """The protocol names this member supports, most preferred first."""
        return [name for name, _ in self.protocols]

    def metadata(self, protocol_name: str | None) -> bytes:
        """This member's metadata for `protocol_name` (b"" if it does not support it)."""
        for name, data in self.protocols:
            if name == protocol_name:
                return data
        return b""

    def matches(self, protocols: list[tuple[str, bytes]]) -> bool:
        """True if `protocols` are exactly this member's (names, order and metadata)."""
        return [(n, bytes(m)) for n, m in protocols] == [(n, bytes(m)) for n, m in self.protocols]

    def vote(self, candidates: set[str]) -> str:
        """The member's most preferred protocol among `candidates`."""
        for name, _ in self.protocols:
            if name in candidates:
                return name
        raise AssertionError("member supports none of the candidate protocols")


@dataclass(slots=True)
class ClassicGroup:
    """A classic group: membership, generation, the chosen protocol and committed offsets."""

    group_id: str
    state: GroupState = GroupState.EMPTY
    generation_id: int = 0
    protocol_type: str | None = None
    protocol_name: str | None = None
    leader_id: str | None = None
    members: dict[str, Member] = field(default_factory=dict)
    pending_members: dict[str, int] = field(default_factory=dict)   # member id -> expiry ms
    static_members: dict[str, str] = field(default_factory=dict)    # instance id -> member id
    current_state_timestamp_ms: int = -1
    # join phase: when it ends on its own (rebalance timeout or initial delay)
    join_deadline_ms: int | None = None
    initial_delay_remaining_ms: int = 0
    in_initial_delay: bool = False
    new_member_added: bool = False
    # sync phase: members that have not yet sent SyncGroup, and when they are given up on
    pending_sync_members: set[str] = field(default_factory=set)
    sync_deadline_ms: int | None = None
    offsets: dict[tuple[str, int], OffsetAndMetadata] = field(default_factory=dict)

    # --- queries

    def is_state(self, state: GroupState) -> bool:
        """True if the group is in `state`."""
        return self.state is state

    def has_member(self, member_id: str) -> bool:
        """True if `member_id` is a (joined) member."""
        return member_id in self.members

    def is_leader(self, member_id: str) -> bool:
        """True if `member_id` leads the current generation."""
        return self.leader_id == member_id

    def static_member_id(self, group_instance_id: str | None) -> str | None:
        """The member id currently bound to `group_instance_id`."""
        if group_instance_id is None:
            return None
        return self.static_members.get(group_instance_id)

    def is_static_member_fenced(self, group_instance_id: str | None, member_id: str) -> bool:
        """True if `group_instance_id` is bound to a member id other than `member_id` (KIP-345)."""
        if group_instance_id is None:
            return False
        bound = self.static_members.get(group_instance_id)
        return bound is not None and bound != member_id

    def rebalance_timeout_ms(self) -> int:
        """The join-phase timeout: the largest rebalance timeout among members."""
        return max((m.rebalance_timeout_ms for m in self.members.values()), default=0)

    def all_members_joined(self) -> bool:
        """True when every member has a JoinGroup waiting and no KIP-394 joins are pending."""
        return (not self.pending_members
                and all(m.is_awaiting_join for m in self.members.values()))

    def supported_protocols(self) -> set[str]:
        """Protocol names every member supports."""
        common: set[str] | None = None
        for m in self.members.values():
            names = set(m.protocol_names())
            common = names if common is None else common & names
        return common or set()

    def supports_protocols(self, protocol_type: str, names: list[str]) -> bool:
        """Kafka's check that a joining member fits the group (else INCONSISTENT_GROUP_PROTOCOL)."""
        if self.state is GroupState.EMPTY or not self.members:
            return bool(protocol_type) and bool(names)
        if protocol_type != self.protocol_type:
            return False
        counts: dict[str, int] = {}
        for m in self.members.values():
            for n in m.protocol_names():
                counts[n] = counts.get(n, 0) + 1
        return any(counts.get(n, 0) == len(self.members) for n in names)

    def select_protocol(self) -> str:
        """Each member votes for its preferred common protocol; the most votes wins.

        Ties go to the protocol voted by the earliest member, which keeps the choice stable.
        """
        candidates = self.supported_protocols()
        assert candidates, "no protocol common to all members"
        votes: dict[str, int] = {}
        for m in self.members.values():
            name = m.vote(candidates)
            votes[name] = votes.get(name, 0) + 1
        best = max(votes.values())
        return next(n for n in votes if votes[n] == best)

    def subscribed_topics(self) -> set[str] | None:
        """Topics the members subscribe to (consumer protocol), None if it cannot be told."""
        if self.protocol_type != "consumer" or self.protocol_name is None:
            return None
        topics: set[str] = set()
        for m in self.members.values():
            parsed = parse_subscription_topics(m.metadata(self.protocol_name))
            if parsed is None:
                return None
            topics.update(parsed)
        return topics

    # --- transitions

    def transition_to(self, state: GroupState, now_ms: int) -> None:
        """Move to `state`; asserts the transition is one the header comment allows."""
        assert self.state in _VALID_PREVIOUS[state], f"{self.state} -> {state}"
        self.state = state
        self.current_state_timestamp_ms = now_ms

    def add_member(self, member: Member) -> None:
        """Add `member`; the first member leads until a generation picks another."""
        assert member.member_id not in self.members
        if not self.members:
            self.protocol_type = member.protocol_type
        self.members[member.member_id] = member
        if member.group_instance_id is not None:
            self.static_members[member.group_instance_id] = member.member_id
        self.pending_members.pop(member.member_id, None)
        if self.leader_id is None:
            self.leader_id = member.member_id

    def remove_member(self, member_id: str) -> Member | None:
        """Remove `member_id` (pending or joined); re-elect a leader if it led."""
        self.pending_members.pop(member_id, None)
        self.pending_sync_members.discard(member_id)
        member = self.members.pop(member_id, None)
        if member is None:
            return None
        if (member.group_instance_id is not None
                and self.static_members.get(member.group_instance_id) == member_id):
            del self.static_members[member.group_instance_id]
        if self.leader_id == member_id:
            self.leader_id = next(iter(self.members), None)
        return member

    def replace_static_member(self, group_instance_id: str, old_id: str, new_id: str) -> Member:
        """Rebind a static member to `new_id` keeping its place, protocols and assignment."""
        old = self.members.pop(old_id)
        old.member_id = new_id
        # keep insertion order stable enough: the replaced member goes to the end
        self.members[new_id] = old
        self.static_members[group_instance_id] = new_id
        if self.leader_id == old_id:
            self.leader_id = new_id
        if old_id in self.pending_sync_members:
            self.pending_sync_members.discard(old_id)
            self.pending_sync_members.add(new_id)
        return old

    def elect_leader_among_joined(self) -> None:
        """If the leader did not rejoin, hand leadership to a member that did."""
        if self.leader_id in self.members and self.members[self.leader_id].is_awaiting_join:
            return
        for m in self.members.values():
            if m.is_awaiting_join:
                self.leader_id = m.member_id
                return
        self.leader_id = next(iter(self.members), None)


def parse_subscription_topics(data: bytes) -> list[str] | None:
    """Topics of a ConsumerProtocolSubscription (any version: they lead every version).

    Layout: int16 version, int32 topic count, count x (int16 length, utf-8). Returns None on
    malformed input (Kafka then treats the subscription as unknown).
    """
    buf = bytes(data)
    if len(buf) < 6:
        return None
    count = int.from_bytes(buf[2:6], "big", signed=True)
    if count < 0 or count > len(buf):
        return None
    pos = 6
    topics = []
    for _ in range(count):
        if pos + 2 > len(buf):
            return None
        n = int.from_bytes(buf[pos:pos + 2], "big", signed=True)
        pos += 2
        if n < 0 or pos + n > len(buf):
            return None
        try:
            topics.append(buf[pos:pos + n].decode("utf-8"))
        except UnicodeDecodeError:
            return None
        pos += n
    return topics

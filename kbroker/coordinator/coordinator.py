"""GroupCoordinator: classic-group operations and committed offsets as a pure state machine.

Every operation takes the request fields and `now_ms` and returns a `Result`:

  * `records`     coordinator records to append to __consumer_offsets (then `replay`ed),
  * `response`    the answer, or None when the request waits (`pending_id` is set; JoinGroup
                  during a rebalance, SyncGroup before the leader's assignment),
  * `completions` answers for earlier waiting requests, as (pending_id, response).

Durable state (committed offsets, group deletion) changes only in `replay`, so loading
__consumer_offsets at start is the same code path as a live commit. Membership in flight
(who has rejoined, heartbeat deadlines, waiting requests) is volatile and lives in memory, as
in Kafka; the group's completed generation is persisted as a GroupMetadata record, which
`replay` applies when loading. KIP-848 groups are written whole as Kafka's records 3-8
whenever they change (`_sync_consumer_group`: only the difference to what `replay` saw last)
and rebuilt by `finish_load` after the load. Timers are driven by `tick(now_ms)` and
`next_deadline_ms()`.

Error choices follow Kafka 3.9's classic GroupCoordinator; see docs/groups.md.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from typing import Callable, Iterable

from kbroker.coordinator import consumer_group as cg
from kbroker.coordinator.consumer_group import ConsumerGroup, ConsumerMember, TopicInfo
from kbroker.coordinator.group import ClassicGroup, GroupState, Member
from kbroker.coordinator.offsets import OffsetAndMetadata, is_expired
from kbroker.coordinator.records import (CG_CURRENT_ASSIGNMENT, CG_MEMBER_METADATA,
                                         CG_METADATA, CG_PARTITION_METADATA,
                                         CG_TARGET_MEMBER, CG_TARGET_METADATA,
                                         ConsumerGroupRecord, ConsumerMemberAssignment,
                                         ConsumerMemberMetadata, CoordinatorRecord,
                                         FrozenAssignment, GroupMetadataRecord,
                                         GroupMetadataSnapshot, MemberRecord, OffsetCommitRecord)
from kbroker.coordinator.topic_regex import InvalidRegex, compile_topic_regex, matching_topics

logger = logging.getLogger(__name__)

# Kafka error codes used here (numbers fixed by the protocol; kept local so this pure module
# does not depend on the codec package being importable).
NONE = 0
UNKNOWN_TOPIC_OR_PARTITION = 3
OFFSET_METADATA_TOO_LARGE = 12
COORDINATOR_NOT_AVAILABLE = 15
ILLEGAL_GENERATION = 22
INCONSISTENT_GROUP_PROTOCOL = 23
INVALID_GROUP_ID = 24
UNKNOWN_MEMBER_ID = 25
INVALID_SESSION_TIMEOUT = 26
REBALANCE_IN_PROGRESS = 27
NON_EMPTY_GROUP = 68
GROUP_ID_NOT_FOUND = 69
MEMBER_ID_REQUIRED = 79
GROUP_MAX_SIZE_REACHED = 81
FENCED_INSTANCE_ID = 82
GROUP_SUBSCRIBED_TO_TOPIC = 86
UNRELEASED_INSTANCE_ID = 111
STALE_MEMBER_EPOCH = 113

NEW_MEMBER_JOIN_TIMEOUT_MS = 5 * 60 * 1000   # Kafka's hard-coded limit for a first join

# Kafka's MemberState byte values in ConsumerGroupCurrentMemberAssignmentValue.State
_STATE_CODES = {cg.MemberState.STABLE: 1, cg.MemberState.UNREVOKED_PARTITIONS: 2,
                cg.MemberState.UNRELEASED_PARTITIONS: 3}
_STATE_BY_CODE = {v: k for k, v in _STATE_CODES.items()}
_MISSING = object()
MEMBER_TYPE_CONSUMER = 1     # ConsumerGroupDescribe v1 MemberType (0 would be classic)


def _freeze(a: cg.Assignment) -> FrozenAssignment:
    return tuple(sorted(((t, tuple(sorted(ps))) for t, ps in a.items() if ps),
                        key=lambda x: str(x[0])))


def _member_fingerprint(m: ConsumerMember) -> tuple:
    """Everything of a member that its records 5, 7 and 8 carry, except the target."""
    return (m.member_epoch, m.previous_member_epoch, m.state, m.assigned, m.pending_revocation,
            m.rebalance_timeout_ms, m.rack_id, m.server_assignor, m.client_id, m.client_host)


def _thaw(a: FrozenAssignment) -> cg.Assignment:
    return {t: frozenset(ps) for t, ps in a}


@dataclass(frozen=True, slots=True)
class GroupConfig:
    """Broker settings the coordinator obeys (Kafka names in comments)."""

    min_session_timeout_ms: int = 6000            # group.min.session.timeout.ms
    max_session_timeout_ms: int = 1800000         # group.max.session.timeout.ms
    initial_rebalance_delay_ms: int = 3000        # group.initial.rebalance.delay.ms
    max_size: int = 2**31 - 1                     # group.max.size
    offset_metadata_max_bytes: int = 4096         # offset.metadata.max.bytes
    offsets_retention_ms: int = 10080 * 60_000    # offsets.retention.minutes
    offsets_retention_check_interval_ms: int = 600000  # offsets.retention.check.interval.ms
    consumer_session_timeout_ms: int = 45000      # group.consumer.session.timeout.ms
    consumer_heartbeat_interval_ms: int = 5000    # group.consumer.heartbeat.interval.ms
    consumer_max_size: int = 2**31 - 1            # group.consumer.max.size
    consumer_assignors: tuple[str, ...] = ("uniform", "range")  # group.consumer.assignors


@dataclass(slots=True)
class Result:
    """What an operation decided; see the module docstring."""

    records: list[CoordinatorRecord] = field(default_factory=list)
    response: object = None
    pending_id: int | None = None
    completions: list[tuple[int, dict]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class CommitPartition:
    """One partition of an OffsetCommit request."""

    topic: str
    partition: int
    offset: int
    leader_epoch: int = -1
    metadata: str | None = ""
    commit_timestamp_ms: int = -1     # OffsetCommit v1 only


def join_error(error: int, member_id: str = "") -> dict:
    """A JoinGroup answer carrying only an error."""
    return {"error_code": error, "generation_id": -1, "protocol_type": None,
            "protocol_name": None, "leader": "", "skip_assignment": False,
            "member_id": member_id, "members": []}


def sync_error(error: int) -> dict:
    """A SyncGroup answer carrying only an error."""
    return {"error_code": error, "protocol_type": None, "protocol_name": None,
            "assignment": b""}


class GroupCoordinator:
    """All classic groups of this broker and their committed offsets."""

    def __init__(self, config: GroupConfig | None = None,
                 new_member_suffix: Callable[[], str] | None = None) -> None:
        self.config = config or GroupConfig()
        self.groups: dict[str, ClassicGroup] = {}
        # KIP-848 groups; their committed offsets live in an Empty ClassicGroup of the same
        # id in `groups` (the offsets store), which listings then hide
        self.consumer_groups: dict[str, ConsumerGroup] = {}
        self._new_member_suffix = new_member_suffix or (lambda: str(uuid.uuid4()))
        self._next_pending_id = 1
        self._next_expiry_check_ms: int | None = None
        # regex subscription -> (topic name table it was resolved against, matching names)
        self._regex_cache: dict[str, tuple[object, frozenset[str]]] = {}
        # filled during one operation, handed out in its Result
        self._records: list[CoordinatorRecord] = []
        self._completions: list[tuple[int, dict]] = []

    # ------------------------------------------------------------------ plumbing

    def _result(self, response: object = None, pending_id: int | None = None) -> Result:
        result = Result(self._records, response, pending_id, self._completions)
        self._records, self._completions = [], []
        return result

    def _new_pending_id(self) -> int:
        pid = self._next_pending_id
        self._next_pending_id += 1
        return pid

    def _complete(self, pending_id: int | None, response: dict) -> None:
        if pending_id is not None:
            self._completions.append((pending_id, response))

    def _drop_if_unused(self, group: ClassicGroup) -> None:
        # a group created by a request that then failed leaves no trace (nothing was written)
        if (group.state is GroupState.EMPTY and not group.members and not group.pending_members
                and not group.offsets and group.generation_id == 0):
            self.groups.pop(group.group_id, None)

    def _snapshot(self, group: ClassicGroup, now_ms: int) -> GroupMetadataRecord:
        members = tuple(MemberRecord(
            member_id=m.member_id, group_instance_id=m.group_instance_id, client_id=m.client_id,
            client_host=m.client_host, rebalance_timeout_ms=m.rebalance_timeout_ms,
            session_timeout_ms=m.session_timeout_ms,
            subscription=m.metadata(group.protocol_name), assignment=m.assignment,
        ) for m in group.members.values())
        return GroupMetadataRecord(group.group_id, GroupMetadataSnapshot(
            protocol_type=group.protocol_type or "", generation_id=group.generation_id,
            protocol_name=group.protocol_name, leader_id=group.leader_id if members else None,
            current_state_timestamp_ms=group.current_state_timestamp_ms, members=members))

    # ------------------------------------------------------------------ JoinGroup

    def join_group(self, request: dict, *, client_id: str, client_host: str, api_version: int,
                   now_ms: int) -> Result:
        """JoinGroup (all versions). `request` holds the JoinGroupRequest fields."""
        group_id = request["group_id"]
        session_ms = request["session_timeout_ms"]
        rebalance_ms = request.get("rebalance_timeout_ms", -1)
        if rebalance_ms is None or rebalance_ms < 0:
            rebalance_ms = session_ms            # v0 has no rebalance timeout
        member_id = request.get("member_id") or ""
        instance_id = request.get("group_instance_id")
        protocol_type = request.get("protocol_type") or ""
        protocols = [(p["name"], bytes(p["metadata"])) for p in request.get("protocols") or []]

        if not group_id:
            return self._result(join_error(INVALID_GROUP_ID, member_id))
        if not (self.config.min_session_timeout_ms <= session_ms
                <= self.config.max_session_timeout_ms):
            return self._result(join_error(INVALID_SESSION_TIMEOUT, member_id))
        is_unknown = member_id == ""
        consumer = self.consumer_groups.get(group_id)
        if consumer is not None and consumer.members:
            return self._result(join_error(INCONSISTENT_GROUP_PROTOCOL, member_id))
        group = self.groups.get(group_id)
        if group is None:
            if not is_unknown:
                return self._result(join_error(UNKNOWN_MEMBER_ID, member_id))
            group = ClassicGroup(group_id, current_state_timestamp_ms=now_ms)
            self.groups[group_id] = group
        if group.state is GroupState.DEAD:
            return self._result(join_error(COORDINATOR_NOT_AVAILABLE, member_id))
        if not group.supports_protocols(protocol_type, [n for n, _ in protocols]):
            self._drop_if_unused(group)
            return self._result(join_error(INCONSISTENT_GROUP_PROTOCOL, member_id))
        known = member_id in group.members or member_id in group.pending_members
        rejoining_static = instance_id is not None and instance_id in group.static_members
        if not known and not rejoining_static and len(group.members) >= self.config.max_size:
            self._drop_if_unused(group)
            return self._result(join_error(GROUP_MAX_SIZE_REACHED, member_id))

        spec = dict(client_id=client_id, client_host=client_host, rebalance_ms=rebalance_ms,
                    session_ms=session_ms, protocol_type=protocol_type, protocols=protocols,
                    api_version=api_version)
        if is_unknown:
            return self._join_new_member(group, instance_id, spec, now_ms)
        return self._join_known_member(group, member_id, instance_id, spec, now_ms)

    def _join_new_member(self, group: ClassicGroup, instance_id: str | None, spec: dict,
                         now_ms: int) -> Result:
        new_id = f"{spec['client_id']}-{self._new_member_suffix()}"
        if instance_id is not None:
            return self._join_static_member(group, instance_id, new_id, spec, now_ms)
        if spec["api_version"] >= 4:
            # KIP-394: hand out the id first; the member must rejoin with it
            group.pending_members[new_id] = now_ms + spec["session_ms"]
            return self._result(join_error(MEMBER_ID_REQUIRED, new_id))
        return self._add_member_and_rebalance(group, new_id, None, spec, now_ms)

    def _join_static_member(self, group: ClassicGroup, instance_id: str, new_id: str,
                            spec: dict, now_ms: int) -> Result:
        old_id = group.static_members.get(instance_id)
        if old_id is None:
            return self._add_member_and_rebalance(group, new_id, instance_id, spec, now_ms)
        # KIP-345: the restarted instance takes over; fence whatever the old id was waiting on
        member = group.replace_static_member(instance_id, old_id, new_id)
        if member.join_request_id is not None:
            self._complete(member.join_request_id, join_error(FENCED_INSTANCE_ID, old_id))
            member.join_request_id = None
        if member.sync_request_id is not None:
            self._complete(member.sync_request_id, sync_error(FENCED_INSTANCE_ID))
            member.sync_request_id = None
        protocols_changed = not member.matches(spec["protocols"])
        if group.state is GroupState.STABLE and not protocols_changed:
            member.session_timeout_ms = spec["session_ms"]
            member.rebalance_timeout_ms = spec["rebalance_ms"]
            member.client_id = spec["client_id"]
            member.client_host = spec["client_host"]
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            # persist the new member id so a restarted broker knows it
            self._records.append(self._snapshot(group, now_ms))
            is_leader = group.is_leader(new_id)
            response = self._join_response(group, member, include_members=is_leader)
            # KIP-814: the leader keeps the current assignment instead of computing a new one
            response["skip_assignment"] = is_leader and spec["api_version"] >= 9
            return self._result(response)
        return self._update_member_and_rebalance(group, member, spec, now_ms)

    def _join_known_member(self, group: ClassicGroup, member_id: str, instance_id: str | None,
                           spec: dict, now_ms: int) -> Result:
        if member_id in group.pending_members:
            return self._add_member_and_rebalance(group, member_id, instance_id, spec, now_ms)
        if group.is_static_member_fenced(instance_id, member_id):
            return self._result(join_error(FENCED_INSTANCE_ID, member_id))
        member = group.members.get(member_id)
        if member is None:
            return self._result(join_error(UNKNOWN_MEMBER_ID, member_id))
        state = group.state
        if state is GroupState.PREPARING_REBALANCE:
            return self._update_member_and_rebalance(group, member, spec, now_ms)
        if state is GroupState.COMPLETING_REBALANCE:
            if member.matches(spec["protocols"]):
                # the member missed our join answer: repeat it
                return self._result(self._join_response(
                    group, member, include_members=group.is_leader(member_id)))
            return self._update_member_and_rebalance(group, member, spec, now_ms)
        if state is GroupState.STABLE:
            if group.is_leader(member_id) or not member.matches(spec["protocols"]):
                return self._update_member_and_rebalance(group, member, spec, now_ms)
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
            return self._result(self._join_response(group, member, include_members=False))
        return self._result(join_error(UNKNOWN_MEMBER_ID, member_id))

    def _add_member_and_rebalance(self, group: ClassicGroup, member_id: str,
                                  instance_id: str | None, spec: dict, now_ms: int) -> Result:
        pending_id = self._new_pending_id()
        member = Member(
            member_id=member_id, group_instance_id=instance_id, client_id=spec["client_id"],
            client_host=spec["client_host"], rebalance_timeout_ms=spec["rebalance_ms"],
            session_timeout_ms=spec["session_ms"], protocol_type=spec["protocol_type"],
            protocols=spec["protocols"], join_request_id=pending_id,
            join_version=spec["api_version"], heartbeat_deadline_ms=now_ms + spec["session_ms"],
            is_new=True)
        if group.state is GroupState.PREPARING_REBALANCE and group.generation_id == 0:
            group.new_member_added = True     # lets the initial delay extend (InitialDelayedJoin)
        group.add_member(member)
        self._maybe_prepare_rebalance(group, now_ms)
        self._try_complete_join(group, now_ms)
        return self._result(pending_id=pending_id)

    def _update_member_and_rebalance(self, group: ClassicGroup, member: Member, spec: dict,
                                     now_ms: int) -> Result:
        if member.join_request_id is not None:
            # a newer JoinGroup supersedes the one still waiting; answer it so that the
            # connection's in-order responses are not held up
            self._complete(member.join_request_id, join_error(REBALANCE_IN_PROGRESS,
                                                              member.member_id))
        pending_id = self._new_pending_id()
        member.protocols = spec["protocols"]
        member.rebalance_timeout_ms = spec["rebalance_ms"]
        member.session_timeout_ms = spec["session_ms"]
        member.join_request_id = pending_id
        member.join_version = spec["api_version"]
        self._maybe_prepare_rebalance(group, now_ms)
        self._try_complete_join(group, now_ms)
        return self._result(pending_id=pending_id)

    def _maybe_prepare_rebalance(self, group: ClassicGroup, now_ms: int) -> None:
        if group.state in (GroupState.EMPTY, GroupState.STABLE,
                           GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms)

    def _prepare_rebalance(self, group: ClassicGroup, now_ms: int) -> None:
        if group.state is GroupState.COMPLETING_REBALANCE:
            # the assignment being synced is void: tell waiting followers to rejoin
            for m in group.members.values():
                m.assignment = b""
                if m.sync_request_id is not None:
                    self._complete(m.sync_request_id, sync_error(REBALANCE_IN_PROGRESS))
                    m.sync_request_id = None
            group.pending_sync_members.clear()
            group.sync_deadline_ms = None
        delay = self.config.initial_rebalance_delay_ms
        if group.state is GroupState.EMPTY and delay > 0:
            group.in_initial_delay = True
            group.new_member_added = False
            group.join_deadline_ms = now_ms + delay
            group.initial_delay_remaining_ms = max(group.rebalance_timeout_ms() - delay, 0)
        else:
            group.in_initial_delay = False
            group.join_deadline_ms = now_ms + group.rebalance_timeout_ms()
        group.transition_to(GroupState.PREPARING_REBALANCE, now_ms)
        logger.info("group=%s preparing rebalance generation=%d members=%d",
                    group.group_id, group.generation_id, len(group.members))

    def _try_complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        if (group.state is GroupState.PREPARING_REBALANCE and not group.in_initial_delay
                and group.all_members_joined()):
            self._complete_join(group, now_ms)

    def _complete_join(self, group: ClassicGroup, now_ms: int) -> None:
        for m in [m for m in group.members.values() if not m.is_awaiting_join]:
            group.remove_member(m.member_id)
        group.elect_leader_among_joined()
        group.generation_id += 1
        group.join_deadline_ms = None
        group.in_initial_delay = False
        if not group.members:
            group.protocol_name = None
            group.leader_id = None
            group.transition_to(GroupState.EMPTY, now_ms)
            self._records.append(self._snapshot(group, now_ms))
            logger.info("group=%s is empty generation=%d", group.group_id, group.generation_id)
            return
        group.protocol_name = group.select_protocol()
        group.transition_to(GroupState.COMPLETING_REBALANCE, now_ms)
        group.pending_sync_members = set(group.members)
        group.sync_deadline_ms = now_ms + group.rebalance_timeout_ms()
        for m in group.members.values():
            response = self._join_response(group, m, include_members=group.is_leader(m.member_id))
            self._complete(m.join_request_id, response)
            m.join_request_id = None
            m.is_new = False
            m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms
        logger.info("group=%s generation=%d protocol=%s leader=%s members=%d",
                    group.group_id, group.generation_id, group.protocol_name, group.leader_id,
                    len(group.members))

    def _join_response(self, group: ClassicGroup, member: Member, *,
                       include_members: bool) -> dict:
        members = []
        if include_members:
            members = [{"member_id": m.member_id, "group_instance_id": m.group_instance_id,
                        "metadata": m.metadata(group.protocol_name)}
                       for m in group.members.values()]
        return {"error_code": NONE, "generation_id": group.generation_id,
                "protocol_type": group.protocol_type, "protocol_name": group.protocol_name,
                "leader": group.leader_id or "", "skip_assignment": False,
                "member_id": member.member_id, "members": members}

    # ------------------------------------------------------------------ SyncGroup

    def sync_group(self, request: dict, *, now_ms: int) -> Result:
        """SyncGroup (all versions). `request` holds the SyncGroupRequest fields."""
        group = self.groups.get(request["group_id"])
        member_id = request.get("member_id") or ""
        instance_id = request.get("group_instance_id")
        if not request["group_id"]:
            return self._result(sync_error(INVALID_GROUP_ID))
        if group is None:
            return self._result(sync_error(UNKNOWN_MEMBER_ID))
        if group.state is GroupState.DEAD:
            return self._result(sync_error(COORDINATOR_NOT_AVAILABLE))
        if group.is_static_member_fenced(instance_id, member_id):
            return self._result(sync_error(FENCED_INSTANCE_ID))
        member = group.members.get(member_id)
        if member is None:
            return self._result(sync_error(UNKNOWN_MEMBER_ID))
        if request["generation_id"] != group.generation_id:
            return self._result(sync_error(ILLEGAL_GENERATION))
        protocol_type = request.get("protocol_type")
        protocol_name = request.get("protocol_name")
        if ((protocol_type is not None and protocol_type != group.protocol_type)
                or (protocol_name is not None and protocol_name != group.protocol_name)):
            return self._result(sync_error(INCONSISTENT_GROUP_PROTOCOL))
        if group.state is GroupState.EMPTY:
            return self._result(sync_error(UNKNOWN_MEMBER_ID))
        if group.state is GroupState.PREPARING_REBALANCE:
            return self._result(sync_error(REBALANCE_IN_PROGRESS))
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        group.pending_sync_members.discard(member_id)
        if group.state is GroupState.STABLE:
            return self._result(self._sync_response(group, member))
        # CompletingRebalance
        if not group.is_leader(member_id):
            if member.sync_request_id is not None:
                self._complete(member.sync_request_id, sync_error(REBALANCE_IN_PROGRESS))
            member.sync_request_id = self._new_pending_id()
            return self._result(pending_id=member.sync_request_id)
        assignments = {a["member_id"]: bytes(a["assignment"])
                       for a in request.get("assignments") or []}
        for m in group.members.values():
            m.assignment = assignments.get(m.member_id, b"")
        group.transition_to(GroupState.STABLE, now_ms)
        group.sync_deadline_ms = None
        group.pending_sync_members.clear()
        self._records.append(self._snapshot(group, now_ms))
        for m in group.members.values():
            if m.sync_request_id is not None:
                self._complete(m.sync_request_id, self._sync_response(group, m))
                m.sync_request_id = None
                m.heartbeat_deadline_ms = now_ms + m.session_timeout_ms
        logger.info("group=%s stable generation=%d", group.group_id, group.generation_id)
        return self._result(self._sync_response(group, member))

    @staticmethod
    def _sync_response(group: ClassicGroup, member: Member) -> dict:
        return {"error_code": NONE, "protocol_type": group.protocol_type,
                "protocol_name": group.protocol_name, "assignment": member.assignment}

    # ------------------------------------------------------------------ Heartbeat / LeaveGroup

    def heartbeat(self, request: dict, *, now_ms: int) -> Result:
        """Heartbeat (all versions); the response is the error code."""
        group = self.groups.get(request["group_id"])
        member_id = request.get("member_id") or ""
        if not request["group_id"]:
            return self._result(INVALID_GROUP_ID)
        if group is None:
            return self._result(UNKNOWN_MEMBER_ID)
        if group.state is GroupState.DEAD:
            return self._result(COORDINATOR_NOT_AVAILABLE)
        if group.state is GroupState.EMPTY:
            return self._result(UNKNOWN_MEMBER_ID)
        if group.is_static_member_fenced(request.get("group_instance_id"), member_id):
            return self._result(FENCED_INSTANCE_ID)
        member = group.members.get(member_id)
        if member is None:
            return self._result(UNKNOWN_MEMBER_ID)
        if request["generation_id"] != group.generation_id:
            return self._result(ILLEGAL_GENERATION)
        member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        if group.state is GroupState.PREPARING_REBALANCE:
            return self._result(REBALANCE_IN_PROGRESS)
        return self._result(NONE)

    def leave_group(self, group_id: str, members: list[tuple[str, str | None]], *,
                    now_ms: int) -> Result:
        """LeaveGroup; `members` are (member_id, group_instance_id).

        The response is (top-level error, [per-member error]) in request order.
        """
        group = self.groups.get(group_id)
        if not group_id:
            return self._result((INVALID_GROUP_ID, [INVALID_GROUP_ID] * len(members)))
        if group is None:
            return self._result((NONE, [UNKNOWN_MEMBER_ID] * len(members)))
        if group.state is GroupState.DEAD:
            return self._result((COORDINATOR_NOT_AVAILABLE, [COORDINATOR_NOT_AVAILABLE]
                                 * len(members)))
        errors = []
        for member_id, instance_id in members:
            if not member_id and instance_id is not None:
                bound = group.static_members.get(instance_id)
                if bound is None:
                    errors.append(UNKNOWN_MEMBER_ID)
                else:
                    self._remove_member_and_update(group, bound, now_ms)
                    errors.append(NONE)
            elif group.is_static_member_fenced(instance_id, member_id):
                errors.append(FENCED_INSTANCE_ID)
            elif member_id in group.pending_members:
                group.remove_member(member_id)
                self._try_complete_join(group, now_ms)
                errors.append(NONE)
            elif member_id not in group.members:
                errors.append(UNKNOWN_MEMBER_ID)
            else:
                self._remove_member_and_update(group, member_id, now_ms)
                errors.append(NONE)
        return self._result((NONE, errors))

    def _remove_member_and_update(self, group: ClassicGroup, member_id: str,
                                  now_ms: int) -> None:
        member = group.remove_member(member_id)
        assert member is not None
        if member.join_request_id is not None:
            self._complete(member.join_request_id, join_error(UNKNOWN_MEMBER_ID, member_id))
        if member.sync_request_id is not None:
            self._complete(member.sync_request_id, sync_error(UNKNOWN_MEMBER_ID))
        logger.info("group=%s member=%s removed", group.group_id, member_id)
        if group.state in (GroupState.STABLE, GroupState.COMPLETING_REBALANCE):
            self._prepare_rebalance(group, now_ms)
        self._try_complete_join(group, now_ms)

    # ------------------------------------------------------------------ offsets

    def offset_commit(self, group_id: str, *, generation_id: int, member_id: str,
                      group_instance_id: str | None, retention_ms: int,
                      partitions: list[CommitPartition], now_ms: int) -> Result:
        """OffsetCommit for partitions already known to exist.

        The response maps (topic, partition) to an error code.
        """
        def all_errors(code: int) -> Result:
            return self._result({(p.topic, p.partition): code for p in partitions})

        group = self.groups.get(group_id)
        consumer = self.consumer_groups.get(group_id)
        if consumer is not None and not (generation_id < 0 and not consumer.members):
            member = consumer.members.get(member_id)
            if member is None:
                return all_errors(UNKNOWN_MEMBER_ID)
            if generation_id != member.member_epoch:
                return all_errors(STALE_MEMBER_EPOCH)
            if group is None:
                group = ClassicGroup(group_id, current_state_timestamp_ms=now_ms)
                self.groups[group_id] = group
        elif group is None:
            if generation_id >= 0:
                return all_errors(ILLEGAL_GENERATION)
            group = ClassicGroup(group_id, current_state_timestamp_ms=now_ms)
            self.groups[group_id] = group
        elif group.state is GroupState.DEAD:
            return all_errors(COORDINATOR_NOT_AVAILABLE)
        elif group.is_static_member_fenced(group_instance_id, member_id):
            return all_errors(FENCED_INSTANCE_ID)
        elif not (generation_id < 0 and group.state is GroupState.EMPTY):
            member = group.members.get(member_id)
            if member is None:
                return all_errors(UNKNOWN_MEMBER_ID)
            if generation_id != group.generation_id:
                return all_errors(ILLEGAL_GENERATION)
            if group.state is GroupState.COMPLETING_REBALANCE:
                return all_errors(REBALANCE_IN_PROGRESS)
            member.heartbeat_deadline_ms = now_ms + member.session_timeout_ms
        errors: dict[tuple[str, int], int] = {}
        for p in partitions:
            metadata = p.metadata or ""
            if len(metadata.encode("utf-8")) > self.config.offset_metadata_max_bytes:
                errors[(p.topic, p.partition)] = OFFSET_METADATA_TOO_LARGE
                continue
            commit_ts = p.commit_timestamp_ms if p.commit_timestamp_ms >= 0 else now_ms
            if retention_ms >= 0:
                expire_ts = commit_ts + retention_ms
            elif p.commit_timestamp_ms >= 0:
                expire_ts = commit_ts + self.config.offsets_retention_ms
            else:
                expire_ts = -1
            self._records.append(OffsetCommitRecord(group_id, p.topic, p.partition,
                                                    OffsetAndMetadata(
                p.offset, p.leader_epoch, metadata, commit_ts, expire_ts)))
            errors[(p.topic, p.partition)] = NONE
        if not self._records:
            self._drop_if_unused(group)
        return self._result(errors)

    def check_fetch_member(self, group_id: str, member_id: str | None, member_epoch: int) -> int:
        """OffsetFetch v9+ member check for KIP-848 groups (an error code, NONE if fine)."""
        consumer = self.consumer_groups.get(group_id)
        if consumer is None or member_id is None:
            return NONE
        member = consumer.members.get(member_id)
        if member is None:
            return UNKNOWN_MEMBER_ID
        if member_epoch != member.member_epoch:
            return STALE_MEMBER_EPOCH
        return NONE

    def offset_fetch(self, group_id: str, partitions: list[tuple[str, int]] | None
                     ) -> list[tuple[str, int, OffsetAndMetadata | None]]:
        """Committed offsets of `partitions` (None: every partition with an offset)."""
        group = self.groups.get(group_id)
        offsets = group.offsets if group is not None else {}
        if partitions is None:
            return [(t, p, o) for (t, p), o in sorted(offsets.items())]
        return [(t, p, offsets.get((t, p))) for t, p in partitions]

    def offset_delete(self, group_id: str, partitions: list[tuple[str, int]], *,
                      now_ms: int) -> Result:
        """OffsetDelete; the response is (top-level error, {(topic, partition): error})."""
        group = self.groups.get(group_id)
        if group is None or group.state is GroupState.DEAD:
            return self._result((GROUP_ID_NOT_FOUND, {}))
        subscribed: set[str] | None = set()
        if group.state is not GroupState.EMPTY:
            subscribed = group.subscribed_topics()
            if group.protocol_type != "consumer":
                return self._result((NON_EMPTY_GROUP, {}))
        errors = {}
        for t, p in partitions:
            if subscribed is None or t in subscribed:
                errors[(t, p)] = GROUP_SUBSCRIBED_TO_TOPIC
                continue
            errors[(t, p)] = NONE
            if (t, p) in group.offsets:
                self._records.append(OffsetCommitRecord(group_id, t, p, None))
        return self._result((NONE, errors))

    # ------------------------------------------------------------------ admin

    def describe_group(self, group_id: str) -> dict:
        """DescribeGroups entry for one group (Kafka answers Dead for an unknown group)."""
        consumer = self.consumer_groups.get(group_id)
        if consumer is not None:
            return {"error_code": NONE, "group_id": group_id, "group_state": consumer.state(),
                    "protocol_type": "consumer", "protocol_data": "", "members": []}
        group = self.groups.get(group_id)
        if group is None:
            return {"error_code": NONE, "group_id": group_id, "group_state": "Dead",
                    "protocol_type": "", "protocol_data": "", "members": []}
        stable = group.state is GroupState.STABLE
        members = [{
            "member_id": m.member_id, "group_instance_id": m.group_instance_id,
            "client_id": m.client_id, "client_host": m.client_host,
            "member_metadata": m.metadata(group.protocol_name) if stable else b"",
            "member_assignment": m.assignment if stable else b"",
        } for m in group.members.values()]
        return {"error_code": NONE, "group_id": group_id, "group_state": group.state.value,
                "protocol_type": group.protocol_type or "",
                "protocol_data": (group.protocol_name or "") if stable else "",
                "members": members}

    def list_groups(self, states: Iterable[str] = (), types: Iterable[str] = ()) -> list[dict]:
        """ListGroups entries, filtered by state names and group types (case-insensitive)."""
        states_l = {s.lower() for s in states}
        types_l = {t.lower() for t in types}
        out = []
        if not types_l or "consumer" in types_l:
            for c in self.consumer_groups.values():
                if states_l and c.state().lower() not in states_l:
                    continue
                out.append({"group_id": c.group_id, "protocol_type": "consumer",
                            "group_state": c.state(), "group_type": "consumer"})
        if types_l and "classic" not in types_l:
            return out
        for group in self.groups.values():
            if group.state is GroupState.DEAD or group.group_id in self.consumer_groups:
                continue
            if states_l and group.state.value.lower() not in states_l:
                continue
            out.append({"group_id": group.group_id, "protocol_type": group.protocol_type or "",
                        "group_state": group.state.value, "group_type": "classic"})
        return out

    def delete_groups(self, group_ids: list[str], *, now_ms: int) -> Result:
        """DeleteGroups; the response maps group id to an error code."""
        errors: dict[str, int] = {}
        for group_id in group_ids:
            group = self.groups.get(group_id)
            consumer = self.consumer_groups.get(group_id)
            if consumer is not None:
                if consumer.members:
                    errors[group_id] = NON_EMPTY_GROUP
                else:
                    self._records.extend(self._consumer_tombstones(consumer))
                    self._records.extend(self._tombstones(group) if group is not None
                                         else [GroupMetadataRecord(group_id, None)])
                    errors[group_id] = NONE
                continue
            if group is None or group.state is GroupState.DEAD:
                errors[group_id] = GROUP_ID_NOT_FOUND
            elif group.state is not GroupState.EMPTY:
                errors[group_id] = NON_EMPTY_GROUP
            else:
                self._records.extend(self._tombstones(group))
                errors[group_id] = NONE
        return self._result(errors)

    @staticmethod
    def _tombstones(group: ClassicGroup) -> list[CoordinatorRecord]:
        records: list[CoordinatorRecord] = [
            OffsetCommitRecord(group.group_id, t, p, None) for (t, p) in sorted(group.offsets)]
        records.append(GroupMetadataRecord(group.group_id, None))
        return records

    # ------------------------------------------------------------------ timers

    def next_deadline_ms(self) -> int | None:
        """The earliest time `tick` has something to do (None: nothing scheduled)."""
        deadlines = [self._next_expiry_check_ms] if self._next_expiry_check_ms else []
        for g in self.groups.values():
            deadlines.extend(g.pending_members.values())
            if g.join_deadline_ms is not None:
                deadlines.append(g.join_deadline_ms)
            if g.sync_deadline_ms is not None:
                deadlines.append(g.sync_deadline_ms)
            deadlines.extend(m.heartbeat_deadline_ms for m in g.members.values()
                             if not m.is_awaiting_join and m.sync_request_id is None)
        for c in self.consumer_groups.values():
            for m in c.members.values():
                deadlines.append(m.session_deadline_ms)
                if m.revocation_deadline_ms is not None:
                    deadlines.append(m.revocation_deadline_ms)
        return min(deadlines, default=None)

    def tick(self, now_ms: int) -> Result:
        """Run every timer due at `now_ms`: session and rebalance timeouts, offset expiry."""
        if self._next_expiry_check_ms is None:
            self._next_expiry_check_ms = now_ms + self.config.offsets_retention_check_interval_ms
        for group in list(self.groups.values()):
            self._tick_group(group, now_ms)
        self._tick_consumer_groups(now_ms)
        if now_ms >= self._next_expiry_check_ms:
            self._next_expiry_check_ms = now_ms + self.config.offsets_retention_check_interval_ms
            self._expire_offsets(now_ms)
        return self._result()

    def _tick_group(self, group: ClassicGroup, now_ms: int) -> None:
        for member_id, expiry in list(group.pending_members.items()):
            if expiry <= now_ms:
                group.remove_member(member_id)
                self._try_complete_join(group, now_ms)
        for m in list(group.members.values()):
            if m.member_id not in group.members:
                continue
            if m.is_awaiting_join:
                if m.is_new and now_ms - m.heartbeat_deadline_ms + m.session_timeout_ms \
                        >= NEW_MEMBER_JOIN_TIMEOUT_MS:
                    self._remove_member_and_update(group, m.member_id, now_ms)
                continue
            if m.sync_request_id is None and m.heartbeat_deadline_ms <= now_ms:
                logger.info("group=%s member=%s session timeout", group.group_id, m.member_id)
                self._remove_member_and_update(group, m.member_id, now_ms)
        if (group.state is GroupState.PREPARING_REBALANCE and group.join_deadline_ms is not None
                and group.join_deadline_ms <= now_ms):
            delay = self.config.initial_rebalance_delay_ms
            if (group.in_initial_delay and group.new_member_added
                    and group.initial_delay_remaining_ms > 0):
                # InitialDelayedJoin: more members arrived, wait a little longer
                group.new_member_added = False
                group.join_deadline_ms = now_ms + min(delay, group.initial_delay_remaining_ms)
                group.initial_delay_remaining_ms = max(group.initial_delay_remaining_ms - delay, 0)
            else:
                self._complete_join(group, now_ms)
        if (group.state is GroupState.COMPLETING_REBALANCE and group.sync_deadline_ms is not None
                and group.sync_deadline_ms <= now_ms):
            late = list(group.pending_sync_members)
            logger.info("group=%s sync timeout; removing %s", group.group_id, late)
            for member_id in late:
                if member_id in group.members:
                    self._remove_member_and_update(group, member_id, now_ms)
            if group.state is GroupState.COMPLETING_REBALANCE:
                self._prepare_rebalance(group, now_ms)
                self._try_complete_join(group, now_ms)

    def _expire_offsets(self, now_ms: int) -> None:
        retention = self.config.offsets_retention_ms
        for group in list(self.groups.values()):
            if group.state is not GroupState.EMPTY:
                continue      # KIP-211: offsets of an active group never expire
            consumer = self.consumer_groups.get(group.group_id)
            if consumer is not None and consumer.members:
                continue      # the offsets store of an active KIP-848 group
            since = group.current_state_timestamp_ms if group.protocol_type else -1
            expired = [tp for tp, o in group.offsets.items()
                       if is_expired(o, now_ms=now_ms, retention_ms=retention,
                                     group_empty_since_ms=since)]
            for t, p in sorted(expired):
                self._records.append(OffsetCommitRecord(group.group_id, t, p, None))
            if len(expired) == len(group.offsets):
                # nothing left: the group goes away, as Kafka's cleanup does (an empty KIP-848
                # group's records too, or compaction could bring it back once the group
                # tombstone is gone)
                if consumer is not None:
                    self._records.extend(self._consumer_tombstones(consumer))
                self._records.append(GroupMetadataRecord(group.group_id, None))
            if expired:
                logger.info("group=%s expired %d offsets", group.group_id, len(expired))

    # ------------------------------------------------------------------ KIP-848

    def consumer_group_heartbeat(self, request: dict, *, client_id: str, client_host: str,
                                 topic_info: Callable[[str], TopicInfo | None],
                                 now_ms: int, api_version: int = 0,
                                 topic_names: Callable[[], Iterable[str]] | None = None
                                 ) -> Result:
        """ConsumerGroupHeartbeat v0-1 (see consumer_group.py for the rules).

        `topic_names` lists the topics of the metadata image (regex subscriptions, v1).
        """
        group_id = request.get("group_id") or ""
        member_id = request.get("member_id") or ""
        epoch = request["member_epoch"]
        instance_id = request.get("instance_id")
        subscribed = request.get("subscribed_topic_names")
        regex = request.get("subscribed_topic_regex") if api_version >= 1 else None
        assignor = request.get("server_assignor")
        owned = cg.owned_from_request(request.get("topic_partitions"))

        def error(code: int, message: str | None = None) -> Result:
            return self._result({"error_code": code, "error_message": message,
                                 "member_id": None, "member_epoch": 0,
                                 "heartbeat_interval_ms": 0, "assignment": None})

        def unknown() -> Result:
            return error(UNKNOWN_MEMBER_ID, f"Member {member_id} is not a member of "
                                            f"group {group_id}.")

        # request validation, in Kafka 4.0's order
        if api_version >= 1 and not member_id:
            return error(cg.INVALID_REQUEST, "MemberId can't be empty.")
        if not group_id:
            return error(cg.INVALID_REQUEST, "GroupId can't be empty.")
        if instance_id == "":
            return error(cg.INVALID_REQUEST, "InstanceId can't be empty.")
        if request.get("rack_id") == "":
            return error(cg.INVALID_REQUEST, "RackId can't be empty.")
        if epoch < cg.STATIC_LEAVE_EPOCH:
            return error(cg.INVALID_REQUEST, f"MemberEpoch {epoch} is invalid.")
        if epoch != 0 and not member_id:
            return error(cg.INVALID_REQUEST, "MemberId can't be empty.")
        if epoch == 0:
            if request.get("rebalance_timeout_ms", -1) == -1:
                return error(cg.INVALID_REQUEST,
                             "RebalanceTimeoutMs must be provided in first request.")
            if owned is None or owned:
                # null is refused too: Kafka wants an explicit empty list on (re-)join
                return error(cg.INVALID_REQUEST,
                             "TopicPartitions must be empty when (re-)joining.")
            if subscribed is None and api_version == 0:
                return error(cg.INVALID_REQUEST,
                             "SubscribedTopicNames must be set in first request.")
            if subscribed is None and regex is None:
                return error(cg.INVALID_REQUEST, "Either SubscribedTopicNames or "
                                                 "SubscribedTopicRegex must be non-null when "
                                                 "(re-)joining.")
        if epoch == cg.STATIC_LEAVE_EPOCH and instance_id is None:
            return error(cg.INVALID_REQUEST, "InstanceId can't be null.")
        if regex:
            try:
                compile_topic_regex(regex)
            except InvalidRegex as exc:
                return error(cg.INVALID_REGULAR_EXPRESSION,
                             f"SubscribedTopicRegex `{regex}` is not a valid regular "
                             f"expression: {exc}.")
        if assignor is not None and assignor not in self.config.consumer_assignors:
            return error(cg.UNSUPPORTED_ASSIGNOR,
                         f"ServerAssignor {assignor} is not supported. Supported assignors: "
                         f"{', '.join(self.config.consumer_assignors)}.")
        classic = self.groups.get(group_id)
        if classic is not None and classic.members:
            return error(GROUP_ID_NOT_FOUND, f"Group {group_id} is not a consumer group.")

        group = self.consumer_groups.get(group_id)
        static = None
        if group is not None and instance_id is not None:
            static = next((m for m in group.members.values() if m.instance_id == instance_id),
                          None)

        def static_fence() -> Result | None:
            # A static member's instance id must be known and held by this member id.
            if static is None:
                return error(UNKNOWN_MEMBER_ID, f"Instance id {instance_id} is unknown.")
            if static.member_id != member_id:
                return error(FENCED_INSTANCE_ID, f"Static member {member_id} with instance "
                                                 f"id {instance_id} was fenced by member "
                                                 f"{static.member_id}.")
            return None

        bump = False     # one group epoch bump per heartbeat, whatever changed
        if epoch in (cg.LEAVE_EPOCH, cg.STATIC_LEAVE_EPOCH):
            if group is None:
                return unknown()
            if instance_id is not None and (fenced := static_fence()) is not None:
                return fenced
            if member_id not in group.members:
                return unknown()
            if epoch == cg.STATIC_LEAVE_EPOCH:
                # KIP-848 static leave: the member (and its assignment) stays until it comes
                # back with the same instance id or its session timeout passes
                leaving = group.members[member_id]
                leaving.previous_member_epoch = leaving.member_epoch
                leaving.member_epoch = cg.STATIC_LEAVE_EPOCH
                leaving.revocation_deadline_ms = None
                self._sync_consumer_group(group)
                logger.info("consumer group=%s static member=%s (%s) left temporarily",
                            group_id, member_id, instance_id)
            else:
                self._remove_consumer_member(group, member_id)
                self._sync_consumer_group(group)
            return self._result({"error_code": NONE, "error_message": None,
                                 "member_id": member_id, "member_epoch": epoch,
                                 "heartbeat_interval_ms": 0, "assignment": None})
        if epoch == 0:
            if group is None:
                group = ConsumerGroup(group_id, assignor_name=self.config.consumer_assignors[0])
                self.consumer_groups[group_id] = group
            new_id = member_id or cg.new_member_id()
            if static is not None and static.member_id != new_id:
                if not static.left_temporarily():
                    return error(UNRELEASED_INSTANCE_ID,
                                 f"Static member {static.member_id} with instance id "
                                 f"{instance_id} is not released yet.")
                member = self._replace_static_member(group, static, new_id)
            else:
                member = None
            if member is None:
                if new_id in group.members:
                    # a re-join: start over with nothing owned
                    self._remove_consumer_member(group, new_id)
                elif len(group.members) >= self.config.consumer_max_size:
                    return error(GROUP_MAX_SIZE_REACHED,
                                 f"The consumer group has reached its maximum capacity of "
                                 f"{self.config.consumer_max_size} members.")
                member = ConsumerMember(
                    member_id=new_id, instance_id=instance_id,
                    rack_id=request.get("rack_id"), client_id=client_id,
                    client_host=client_host,
                    rebalance_timeout_ms=request["rebalance_timeout_ms"],
                    subscribed_topic_names=sorted(subscribed or []), server_assignor=assignor,
                    subscribed_topic_regex=regex or None)
                group.members[member.member_id] = member
                bump = True
                logger.info("consumer group=%s member=%s joined", group_id, member.member_id)
            else:
                member.client_id, member.client_host = client_id, client_host
                member.rebalance_timeout_ms = request["rebalance_timeout_ms"]
                if request.get("rack_id") is not None:
                    member.rack_id = request["rack_id"]
                bump = _update_subscription(member, subscribed, regex) or bump
                if assignor is not None:
                    member.server_assignor = assignor
        else:
            member = group.members.get(member_id) if group is not None else None
            if instance_id is not None and group is not None \
                    and (fenced := static_fence()) is not None:
                return fenced
            if member is None:
                return unknown()
            if epoch != member.member_epoch and not (
                    epoch == member.previous_member_epoch and owned is not None
                    and cg.is_subset(owned, member.assigned)):
                return error(cg.FENCED_MEMBER_EPOCH,
                             f"The consumer group member has a smaller or larger member epoch "
                             f"({epoch}) than the one known by the group coordinator "
                             f"({member.member_epoch}).")
            bump = _update_subscription(member, subscribed, regex) or bump
            if assignor is not None and assignor != member.server_assignor:
                member.server_assignor = assignor
                bump = True
            if request.get("rebalance_timeout_ms", -1) != -1:
                member.rebalance_timeout_ms = request["rebalance_timeout_ms"]
        member.session_deadline_ms = now_ms + self.config.consumer_session_timeout_ms

        # regex subscriptions are resolved for the whole group (as Kafka does) against the
        # current metadata image on every heartbeat, so created/deleted topics are picked up
        if topic_names is not None:
            names = topic_names()
            for m in group.members.values():
                resolved = (self._resolve_regex(m.subscribed_topic_regex, names)
                            if m.subscribed_topic_regex else frozenset())
                if resolved != m.resolved_regex_topics:
                    m.resolved_regex_topics = resolved
                    bump = True
        metadata = {}
        for name in sorted(group.subscribed_topics()):
            info = topic_info(name)
            if info is not None:
                metadata[name] = (info.topic_id, info.partitions)
        if metadata != group.subscription_metadata:
            group.subscription_metadata = metadata
            bump = True
        if bump:
            group.group_epoch += 1
        before = dict(member.assigned)
        fingerprint = _member_fingerprint(member)
        retargeted = group.group_epoch > group.assignment_epoch
        if retargeted:
            cg.compute_target(group, self._topic_infos(group))
        cg.reconcile(group, member, owned, now_ms)
        # written before the answer leaves: a restarted broker knows this epoch/assignment.
        # A plain heartbeat that changed nothing (the common case) skips the comparison.
        if bump or retargeted or epoch == 0 or _member_fingerprint(member) != fingerprint:
            self._sync_consumer_group(group)
        send = (epoch == 0 or member.assigned != before
                or (owned is not None and owned != member.assigned))
        assignment = None
        if send:
            assignment = {"topic_partitions": [
                {"topic_id": t, "partitions": sorted(ps)}
                for t, ps in sorted(member.assigned.items(), key=lambda x: str(x[0]))]}
        return self._result({"error_code": NONE, "error_message": None,
                             "member_id": member.member_id, "member_epoch": member.member_epoch,
                             "heartbeat_interval_ms": self.config.consumer_heartbeat_interval_ms,
                             "assignment": assignment})

    def _resolve_regex(self, pattern: str, names: Iterable[str]) -> frozenset[str]:
        """Topics matching `pattern`; reused while the metadata image's name table is the same
        object (images are immutable, so a new table means topics changed)."""
        cached = self._regex_cache.get(pattern)
        if cached is not None and cached[0] is names:
            return cached[1]
        resolved = matching_topics(pattern, names)
        if len(self._regex_cache) > 1024:
            self._regex_cache.clear()
        self._regex_cache[pattern] = (names, resolved)
        return resolved

    def _replace_static_member(self, group: ConsumerGroup, old: ConsumerMember,
                               new_id: str) -> ConsumerMember:
        """A static member back within its session timeout: same assignment, new member id."""
        del group.members[old.member_id]
        target = group.target.pop(old.member_id, None)
        old_id = old.member_id
        old.member_id = new_id
        old.member_epoch = old.previous_member_epoch
        group.members[new_id] = old
        if target is not None:
            group.target[new_id] = target
        logger.info("consumer group=%s static member %s replaced %s (instance %s)",
                    group.group_id, new_id, old_id, old.instance_id)
        return old

    @staticmethod
    def _topic_infos(group: ConsumerGroup) -> dict[str, TopicInfo]:
        return {name: TopicInfo(name, tid, count)
                for name, (tid, count) in group.subscription_metadata.items()}

    def _remove_consumer_member(self, group: ConsumerGroup, member_id: str) -> None:
        group.members.pop(member_id, None)
        group.target.pop(member_id, None)
        group.group_epoch += 1
        cg.compute_target(group, self._topic_infos(group))
        logger.info("consumer group=%s member=%s removed epoch=%d", group.group_id, member_id,
                    group.group_epoch)

    def consumer_group_describe(self, group_id: str, topic_names: Callable[[object], str | None]
                                ) -> dict:
        """ConsumerGroupDescribe entry for one group."""
        group = self.consumer_groups.get(group_id)
        if group is None:
            classic = self.groups.get(group_id)
            known = classic is not None and classic.state is not GroupState.DEAD and (
                classic.members or classic.protocol_type)
            return {"error_code": GROUP_ID_NOT_FOUND,
                    "error_message": (f"Group {group_id} is not a consumer group." if known
                                      else f"Group {group_id} not found."),
                    "group_id": group_id, "group_state": "Dead", "group_epoch": -1,
                    "assignment_epoch": -1, "assignor_name": "", "members": []}

        def wire(a: dict) -> dict:
            return {"topic_partitions": [{"topic_id": t, "topic_name": topic_names(t) or "",
                                          "partitions": sorted(ps)}
                                         for t, ps in sorted(a.items(), key=lambda x: str(x[0]))]}

        return {"error_code": NONE, "error_message": None, "group_id": group_id,
                "group_state": group.state(), "group_epoch": group.group_epoch,
                "assignment_epoch": group.assignment_epoch, "assignor_name": group.assignor_name,
                "members": [{
                    "member_id": m.member_id, "instance_id": m.instance_id, "rack_id": m.rack_id,
                    "member_epoch": m.member_epoch, "client_id": m.client_id,
                    "client_host": m.client_host,
                    "subscribed_topic_names": m.subscribed_topic_names,
                    "subscribed_topic_regex": m.subscribed_topic_regex,
                    "assignment": wire(m.assigned),
                    "target_assignment": wire(group.target.get(m.member_id, {})),
                    "member_type": MEMBER_TYPE_CONSUMER,
                } for m in group.members.values()]}

    # ------------------------------------------------------------------ KIP-848 persistence

    @staticmethod
    def _consumer_state_records(group: ConsumerGroup) -> dict[tuple[int, str | None], object]:
        """The group as Kafka's records 3-8 would describe it now, keyed (type, member)."""
        out: dict[tuple[int, str | None], object] = {
            (CG_METADATA, None): group.group_epoch,
            (CG_PARTITION_METADATA, None): tuple(
                (tid, name, n) for name, (tid, n) in sorted(group.subscription_metadata.items())),
            (CG_TARGET_METADATA, None): group.assignment_epoch,
        }
        for m in group.members.values():
            out[(CG_MEMBER_METADATA, m.member_id)] = ConsumerMemberMetadata(
                instance_id=m.instance_id, rack_id=m.rack_id, client_id=m.client_id,
                client_host=m.client_host,
                subscribed_topic_names=tuple(m.subscribed_topic_names),
                subscribed_topic_regex=m.subscribed_topic_regex,
                rebalance_timeout_ms=m.rebalance_timeout_ms, server_assignor=m.server_assignor)
            out[(CG_TARGET_MEMBER, m.member_id)] = _freeze(group.target.get(m.member_id, {}))
            out[(CG_CURRENT_ASSIGNMENT, m.member_id)] = ConsumerMemberAssignment(
                member_epoch=m.member_epoch, previous_member_epoch=m.previous_member_epoch,
                state=_STATE_CODES[m.state], assigned=_freeze(m.assigned),
                pending_revocation=_freeze(m.pending_revocation))
        return out

    def _sync_consumer_group(self, group: ConsumerGroup) -> None:
        """Queue the records that bring __consumer_offsets to the group's current state.

        Only what changed since the last write is written; what went away is tombstoned
        (member records first, as Kafka removes a member before bumping the epoch). `replay`
        then records what is persisted.
        """
        want = self._consumer_state_records(group)
        have = group.persisted
        for (rtype, mid) in sorted((k for k in have if k not in want),
                                   key=lambda k: (-k[0], k[1] or "")):
            self._records.append(ConsumerGroupRecord(group.group_id, rtype, mid, None))
        order = (CG_MEMBER_METADATA, CG_PARTITION_METADATA, CG_METADATA, CG_TARGET_MEMBER,
                 CG_TARGET_METADATA, CG_CURRENT_ASSIGNMENT)
        for key in sorted((k for k, v in want.items() if have.get(k, _MISSING) != v),
                          key=lambda k: (order.index(k[0]), k[1] or "")):
            self._records.append(ConsumerGroupRecord(group.group_id, key[0], key[1], want[key]))

    def _consumer_tombstones(self, group: ConsumerGroup) -> list[CoordinatorRecord]:
        """Tombstones for everything a deleted KIP-848 group persisted."""
        return [ConsumerGroupRecord(group.group_id, rtype, mid, None)
                for (rtype, mid) in sorted(group.persisted, key=lambda k: (-k[0], k[1] or ""))]

    def _replay_consumer(self, record: ConsumerGroupRecord, loading: bool) -> None:
        group = self.consumer_groups.get(record.group_id)
        if group is None:
            if record.value is None or not loading:
                return
            group = ConsumerGroup(record.group_id,
                                  assignor_name=self.config.consumer_assignors[0])
            self.consumer_groups[record.group_id] = group
        key = (record.record_type, record.member_id)
        if record.value is None:
            group.persisted.pop(key, None)
            if loading and record.record_type == CG_METADATA and not group.members:
                # the group was deleted: forget what its earlier records said
                group.persisted.clear()
        else:
            group.persisted[key] = record.value

    def finish_load(self, now_ms: int) -> None:
        """Build the KIP-848 groups from the records replayed at load.

        Members keep their ids, epochs and assignments; their session timers start now.
        """
        for group_id, group in list(self.consumer_groups.items()):
            if group.members:
                continue
            p = group.persisted
            if (CG_METADATA, None) not in p:
                del self.consumer_groups[group_id]
                continue
            group.group_epoch = p[(CG_METADATA, None)]
            group.assignment_epoch = p.get((CG_TARGET_METADATA, None), 0)
            group.subscription_metadata = {
                name: (tid, n) for tid, name, n in p.get((CG_PARTITION_METADATA, None), ())}
            group.target = {}
            for (rtype, mid), value in p.items():
                if rtype == CG_TARGET_MEMBER:
                    group.target[mid] = _thaw(value)
            for (rtype, mid), meta in sorted(p.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
                if rtype != CG_MEMBER_METADATA:
                    continue
                current = p.get((CG_CURRENT_ASSIGNMENT, mid))
                member = ConsumerMember(
                    member_id=mid, instance_id=meta.instance_id, rack_id=meta.rack_id,
                    client_id=meta.client_id, client_host=meta.client_host,
                    rebalance_timeout_ms=meta.rebalance_timeout_ms,
                    subscribed_topic_names=list(meta.subscribed_topic_names),
                    server_assignor=meta.server_assignor,
                    subscribed_topic_regex=meta.subscribed_topic_regex,
                    session_deadline_ms=now_ms + self.config.consumer_session_timeout_ms)
                if member.subscribed_topic_regex:
                    try:
                        member.resolved_regex_topics = matching_topics(
                            member.subscribed_topic_regex, group.subscription_metadata)
                    except InvalidRegex:
                        pass
                if current is not None:
                    member.member_epoch = current.member_epoch
                    member.previous_member_epoch = current.previous_member_epoch
                    member.state = _STATE_BY_CODE.get(current.state, cg.MemberState.STABLE)
                    member.assigned = _thaw(current.assigned)
                    member.pending_revocation = _thaw(current.pending_revocation)
                    if member.state is cg.MemberState.UNREVOKED_PARTITIONS:
                        member.revocation_deadline_ms = now_ms + max(
                            member.rebalance_timeout_ms, 0)
                group.members[mid] = member
            group.assignor_name = next((m.server_assignor for m in group.members.values()
                                        if m.server_assignor), group.assignor_name)
            logger.info("consumer group=%s restored: epoch=%d members=%d", group_id,
                        group.group_epoch, len(group.members))

    def _tick_consumer_groups(self, now_ms: int) -> None:
        for group in list(self.consumer_groups.values()):
            removed = False
            for m in list(group.members.values()):
                if m.session_deadline_ms <= now_ms:
                    logger.info("consumer group=%s member=%s session timeout", group.group_id,
                                m.member_id)
                elif m.revocation_deadline_ms is not None and m.revocation_deadline_ms <= now_ms:
                    logger.info("consumer group=%s member=%s did not revoke in time",
                                group.group_id, m.member_id)
                else:
                    continue
                self._remove_consumer_member(group, m.member_id)
                removed = True
            if removed:      # only then did the group change (the timer runs often)
                self._sync_consumer_group(group)

    # ------------------------------------------------------------------ replay

    def replay(self, record: CoordinatorRecord, *, now_ms: int, loading: bool = False) -> None:
        """Apply one record: every live result's records, and every record read at load.

        Live GroupMetadata records describe membership already in memory, so they only
        matter when `loading`.
        """
        if isinstance(record, ConsumerGroupRecord):
            self._replay_consumer(record, loading)
            return
        if isinstance(record, OffsetCommitRecord):
            group = self.groups.get(record.group_id)
            if record.value is None:
                if group is not None:
                    group.offsets.pop((record.topic, record.partition), None)
                return
            if group is None:
                group = ClassicGroup(record.group_id, current_state_timestamp_ms=now_ms)
                self.groups[record.group_id] = group
            group.offsets[(record.topic, record.partition)] = record.value
            return
        if record.value is None:
            consumer = self.consumer_groups.get(record.group_id)
            if consumer is not None and not consumer.members:
                del self.consumer_groups[record.group_id]
            group = self.groups.pop(record.group_id, None)
            if group is not None and group.state is not GroupState.DEAD:
                group.state = GroupState.DEAD      # deleted: requests holding it see Dead
            return
        if not loading:
            return
        snap = record.value
        group = self.groups.get(record.group_id)
        if group is None:
            group = ClassicGroup(record.group_id)
            self.groups[record.group_id] = group
        group.protocol_type = snap.protocol_type or None
        group.generation_id = snap.generation_id
        group.protocol_name = snap.protocol_name
        group.leader_id = snap.leader_id
        group.current_state_timestamp_ms = (snap.current_state_timestamp_ms
                                            if snap.current_state_timestamp_ms >= 0 else now_ms)
        group.members = {}
        group.static_members = {}
        for m in snap.members:
            group.members[m.member_id] = Member(
                member_id=m.member_id, group_instance_id=m.group_instance_id,
                client_id=m.client_id, client_host=m.client_host,
                rebalance_timeout_ms=m.rebalance_timeout_ms,
                session_timeout_ms=m.session_timeout_ms,
                protocol_type=snap.protocol_type,
                protocols=[(snap.protocol_name or "", m.subscription)],
                assignment=m.assignment, heartbeat_deadline_ms=now_ms + m.session_timeout_ms)
            if m.group_instance_id is not None:
                group.static_members[m.group_instance_id] = m.member_id
        group.state = GroupState.STABLE if group.members else GroupState.EMPTY


def _update_subscription(member: "cg.ConsumerMember", subscribed: list[str] | None, regex: str | None) -> bool:
    """Apply a heartbeat's topic names / regex (None: unchanged; "" clears the regex) to a
    KIP-848 member; True when the subscription changed (the group epoch must then be bumped)."""
    changed = False
    if subscribed is not None and sorted(subscribed) != member.subscribed_topic_names:
        member.subscribed_topic_names = sorted(subscribed)
        changed = True
    if regex is not None and (regex or None) != member.subscribed_topic_regex:
        member.subscribed_topic_regex = regex or None
        changed = True
    return changed

"""Property: whatever KIP-848 members do, replaying the records written so far rebuilds the
live group exactly (epochs, members, subscriptions, target and current assignments), so a
restart at any point is invisible to the members."""

from __future__ import annotations

import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kbroker.coordinator.consumer_group import ConsumerGroup, TopicInfo
from kbroker.coordinator.coordinator import GroupConfig, GroupCoordinator
from kbroker.coordinator.records import decode_record, encode_record

T0 = 1_700_000_000_000
SESSION_MS = 45000
MEMBERS = ["m0", "m1", "m2", "m3"]

op = st.one_of(
    st.tuples(st.just("join"), st.sampled_from(MEMBERS),
              st.sampled_from([("a",), ("a", "b"), ("b",)]), st.booleans(), st.booleans()),
    st.tuples(st.just("beat"), st.sampled_from(MEMBERS), st.booleans()),
    st.tuples(st.just("leave"), st.sampled_from(MEMBERS), st.sampled_from([-1, -2])),
    st.tuples(st.just("topic"), st.sampled_from(["a", "b", "rx-1", "rx-2"]), st.integers(0, 4)),
    st.tuples(st.just("time"), st.integers(1000, SESSION_MS + 5000)),
)


def view(group: ConsumerGroup) -> tuple:
    """What members can observe of a group."""
    return (group.group_epoch, group.assignment_epoch, group.subscription_metadata,
            {mid: (m.member_epoch, m.previous_member_epoch, m.state, m.assigned,
                   m.pending_revocation, m.instance_id, m.subscribed_topic_names,
                   m.subscribed_topic_regex,
                   # a topic deleted since the member's last heartbeat is in neither view
                   m.resolved_regex_topics & set(group.subscription_metadata),
                   m.rebalance_timeout_ms)
             for mid, m in sorted(group.members.items())},
            {mid: t for mid, t in sorted(group.target.items()) if mid in group.members})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(op, min_size=1, max_size=40))
def test_reload_after_any_sequence_rebuilds_the_group(ops):
    gc = GroupCoordinator(GroupConfig())
    now = T0
    topics: dict[str, TopicInfo] = {"a": TopicInfo("a", uuid.UUID(int=1), 3)}
    log: list[tuple[bytes, bytes | None]] = []
    owned: dict[str, dict] = {}
    epochs: dict[str, int] = {}

    def apply(result) -> dict:
        for r in result.records:
            log.append(encode_record(r))
            gc.replay(r, now_ms=now)
        return result.response

    def hb(member: str, epoch: int, **fields) -> dict:
        req = {"group_id": "g", "member_id": member, "member_epoch": epoch,
               "instance_id": None, "rack_id": None, "rebalance_timeout_ms": -1,
               "subscribed_topic_names": None, "subscribed_topic_regex": None,
               "server_assignor": None, "topic_partitions": None, **fields}
        return apply(gc.consumer_group_heartbeat(
            req, client_id="c", client_host="/h", topic_info=topics.get, now_ms=now,
            api_version=1, topic_names=lambda: list(topics)))

    for step in ops:
        kind = step[0]
        if kind == "join":
            _, m, names, regex, static = step
            r = hb(m, 0, rebalance_timeout_ms=30000, subscribed_topic_names=list(names),
                   subscribed_topic_regex="rx-.*" if regex else None, topic_partitions=[],
                   instance_id=f"i-{m}" if static else None)
            if r["error_code"] == 0:
                epochs[m] = r["member_epoch"]
                owned[m] = {}
        elif kind == "beat":
            _, m, report = step
            if m not in epochs:
                continue
            mine = owned.get(m, {})
            r = hb(m, epochs[m], topic_partitions=[
                {"topic_id": t, "partitions": sorted(ps)} for t, ps in mine.items()]
                if report else None)
            if r["error_code"] == 0:
                epochs[m] = r["member_epoch"]
                if r["assignment"] is not None:
                    owned[m] = {tp["topic_id"]: set(tp["partitions"])
                                for tp in r["assignment"]["topic_partitions"]}
            else:
                epochs.pop(m, None)
        elif kind == "leave":
            _, m, how = step
            if m in epochs:
                group = gc.consumer_groups.get("g")
                member = group.members.get(m) if group else None
                hb(m, how, instance_id=member.instance_id if member else None)
                epochs.pop(m, None)
        elif kind == "topic":
            _, name, count = step
            if count == 0:
                topics.pop(name, None)
            else:
                old = topics.get(name)
                tid = old.topic_id if old else uuid.uuid4()
                topics[name] = TopicInfo(name, tid, max(count, old.partitions if old else 0))
        else:
            now += step[1]
            apply(gc.tick(now))
        fresh = GroupCoordinator(GroupConfig())
        for key, value in log:
            record = decode_record(key, value)
            if record is not None:
                fresh.replay(record, now_ms=now, loading=True)
        fresh.finish_load(now)
        live = gc.consumer_groups.get("g")
        restored = fresh.consumer_groups.get("g")
        if live is None:
            assert restored is None
            continue
        assert restored is not None
        assert view(restored) == view(live)

"""Every version of every group API: the handler's answer encodes and decodes with the codec.

The handlers run against a real GroupCoordinator behind a stand-in runtime (no sockets, no
log): requests are encoded and decoded by `protocol` like the server does, so a field the
version lacks or a null where the version forbids one shows up here.
"""

from __future__ import annotations

import uuid
from types import SimpleNamespace

import pytest

import protocol
from kbroker.coordinator.coordinator import GroupConfig, GroupCoordinator
from kbroker.dispatch import HANDLERS, RequestContext
from kbroker.handlers import groups as _groups  # noqa: F401  (registers the handlers)
from protocol import ApiKey, ErrorCode

T0 = 1_700_000_000_000
TOPIC_ID = uuid.UUID(int=7)


class FakeRuntime:
    """The runtime's interface, applying records by replay instead of appending them."""

    loaded = True

    def __init__(self) -> None:
        self.coordinator = GroupCoordinator(GroupConfig(initial_rebalance_delay_ms=0))
        self.now = T0

    async def ensure_offsets_topic(self) -> None:
        return None

    async def execute(self, op, *, wake_timers: bool = True):
        result = op(self.now)
        for record in result.records:
            self.coordinator.replay(record, now_ms=self.now)
        if result.pending_id is None:
            return result.response
        # a join that completed its own rebalance (alone in the group) is answered at once
        answers = dict(result.completions)
        assert result.pending_id in answers, "these requests never wait for others"
        return answers[result.pending_id]

    def query(self, fn):
        return fn(self.coordinator)


def fake_broker() -> SimpleNamespace:
    topic = SimpleNamespace(name="t", topic_id=TOPIC_ID, partitions={0: None, 1: None})
    image = SimpleNamespace(topics_by_name={"t": topic}, topics_by_id={TOPIC_ID: topic})
    return SimpleNamespace(groups=FakeRuntime(), controller=SimpleNamespace(image=image),
                           node_id=1,
                           advertised_endpoints=[SimpleNamespace(host="127.0.0.1", port=9092)])


REQUESTS = {
    ApiKey.FIND_COORDINATOR: {"key": "g", "key_type": 0, "coordinator_keys": ["g", "h"]},
    ApiKey.JOIN_GROUP: {"group_id": "g", "session_timeout_ms": 10000,
                        "rebalance_timeout_ms": 10000, "member_id": "",
                        "protocol_type": "consumer",
                        "protocols": [{"name": "range", "metadata": b"x"}]},
    ApiKey.SYNC_GROUP: {"group_id": "g", "generation_id": 1, "member_id": "nobody",
                        "assignments": []},
    ApiKey.HEARTBEAT: {"group_id": "g", "generation_id": 1, "member_id": "nobody"},
    ApiKey.LEAVE_GROUP: {"group_id": "g", "member_id": "nobody",
                         "members": [{"member_id": "nobody"}]},
    ApiKey.OFFSET_COMMIT: {"group_id": "s", "generation_id_or_member_epoch": -1,
                           "member_id": "", "topics": [{"name": "t", "partitions": [
                               {"partition_index": 0, "committed_offset": 5,
                                "committed_metadata": None}]}]},
    ApiKey.OFFSET_FETCH: {"group_id": "s", "topics": [{"name": "t", "partition_indexes": [0, 1]}],
                          "groups": [{"group_id": "s", "topics": None}]},
    ApiKey.DESCRIBE_GROUPS: {"groups": ["g", "s"]},
    ApiKey.LIST_GROUPS: {"states_filter": [], "types_filter": []},
    ApiKey.DELETE_GROUPS: {"groups_names": ["missing"]},
    ApiKey.OFFSET_DELETE: {"group_id": "s", "topics": [{"name": "t", "partitions": [
        {"partition_index": 1}]}]},
    ApiKey.CONSUMER_GROUP_HEARTBEAT: {"group_id": "c", "member_id": "", "member_epoch": 0,
                                      "rebalance_timeout_ms": 5000,
                                      "subscribed_topic_names": ["t"], "topic_partitions": []},
    ApiKey.CONSUMER_GROUP_DESCRIBE: {"group_ids": ["c", "missing"]},
}

CASES = [(key, v) for key in REQUESTS for v in range(HANDLERS[key].min_version,
                                                      HANDLERS[key].max_version + 1)]


@pytest.mark.parametrize("api_key,version", CASES,
                         ids=[f"{ApiKey(k).name}-v{v}" for k, v in CASES])
async def test_answer_round_trips_through_the_codec(api_key, version):
    broker = fake_broker()
    # some state for the reads to report
    commit_ctx = RequestContext(broker=broker, header={}, api_version=8, client_id="c",
                                peer="127.0.0.1:5")
    await HANDLERS[ApiKey.OFFSET_COMMIT].fn(commit_ctx, protocol.decode_body(
        ApiKey.OFFSET_COMMIT, 8, False,
        protocol.encode_body(ApiKey.OFFSET_COMMIT, 8, False, REQUESTS[ApiKey.OFFSET_COMMIT])))

    request_body = dict(REQUESTS[api_key])
    if api_key == ApiKey.CONSUMER_GROUP_HEARTBEAT and version >= 1:
        request_body["member_id"] = "client-chosen-id"     # KIP-1082: v1 members pick it
    wire = protocol.encode_request(api_key, version, 1, "c", request_body)
    header, request = protocol.decode_request(wire)
    ctx = RequestContext(broker=broker, header=header, api_version=version, client_id="c",
                         peer="127.0.0.1:5")
    body = await HANDLERS[api_key].fn(ctx, request)
    frame = protocol.encode_response(api_key, version, 1, body)
    correlation_id, decoded = protocol.decode_response(api_key, version, frame)
    assert correlation_id == 1
    if api_key == ApiKey.JOIN_GROUP:
        expected = ErrorCode.MEMBER_ID_REQUIRED if version >= 4 else ErrorCode.NONE
        assert decoded["error_code"] == expected
    if api_key == ApiKey.OFFSET_FETCH:
        rows = (decoded["groups"][0]["topics"] if version >= 8 else decoded["topics"])
        offsets = {p["partition_index"]: p["committed_offset"] for t in rows
                   for p in t["partitions"]}
        assert offsets[0] == 5
    if api_key == ApiKey.OFFSET_COMMIT:
        assert decoded["topics"][0]["partitions"][0]["error_code"] == ErrorCode.NONE
    if api_key == ApiKey.CONSUMER_GROUP_HEARTBEAT:
        assert decoded["error_code"] == ErrorCode.NONE and decoded["member_epoch"] == 1
        if version >= 1:
            assert decoded["member_id"] == "client-chosen-id"
    if api_key == ApiKey.FIND_COORDINATOR:
        port = decoded["coordinators"][0]["port"] if version >= 4 else decoded["port"]
        assert port == 9092

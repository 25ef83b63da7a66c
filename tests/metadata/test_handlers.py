"""Metadata, DescribeCluster, CreateTopics, DeleteTopics, CreatePartitions and DescribeConfigs
handlers, called directly with a real controller behind a minimal broker; every response is
encoded and decoded with the codec at the version asked, as a client would receive it."""

from __future__ import annotations

import uuid
from contextlib import asynccontextmanager
from types import SimpleNamespace

import pytest

from kbroker.dispatch import RequestContext
from kbroker.handlers.configs import handle_describe_configs
from kbroker.handlers.metadata import handle_describe_cluster, handle_metadata
from kbroker.handlers.topics import handle_create_partitions, handle_create_topics, handle_delete_topics
from protocol import ApiKey, ErrorCode, decode_body, encode_body

from .conftest import running_controller

ZERO = uuid.UUID(int=0)


@asynccontextmanager
async def broker_with(data_dir, **overrides):
    async with running_controller(data_dir, **overrides) as controller:
        await controller.register_broker(1, "127.0.0.1", 29092, "PLAINTEXT", None)
        yield SimpleNamespace(config=controller.config, controller=controller, advertised_endpoints=[])


async def call(broker, api_key: ApiKey, version: int, request: dict, fn) -> dict:
    """Round-trip the request through the codec, call the handler, round-trip the response."""
    request = decode_body(api_key, version, False, encode_body(api_key, version, False, request))
    ctx = RequestContext(broker=broker, header={}, api_version=version, client_id="test", peer="127.0.0.1:1")
    response = await fn(ctx, request)
    return decode_body(api_key, version, True, encode_body(api_key, version, True, response))


def create_req(*topics, validate_only=False):
    return {"topics": [{"name": n, "num_partitions": p, "replication_factor": r, "assignments": [],
                        "configs": [{"name": k, "value": v} for k, v in (c or {}).items()]}
                       for n, p, r, c in topics],
            "timeout_ms": 5000, "validate_only": validate_only}


async def metadata(broker, version, names, allow_auto=True):
    if names is None:
        topics = None
    else:
        topics = [{"name": n, "topic_id": ZERO} if isinstance(n, str) else {"name": None, "topic_id": n}
                  for n in names]
    return await call(broker, ApiKey.METADATA, version,
                      {"topics": topics, "allow_auto_topic_creation": allow_auto,
                       "include_topic_authorized_operations": False}, handle_metadata)


@pytest.mark.parametrize("version", range(13))
async def test_metadata_versions(data_dir, version):
    async with broker_with(data_dir, **{"auto.create.topics.enable": "false"}) as b:
        t = await b.controller.create_topic("m1", 2, 1, None, {})
        await b.controller.create_topic("__consumer_offsets", 1, 1, None, {"cleanup.policy": "compact"})
        everything = await metadata(b, version, [] if version == 0 else None)
        assert everything["brokers"][0]["node_id"] == 1 and everything["brokers"][0]["port"] == 29092
        by_name = {x["name"]: x for x in everything["topics"]}
        assert set(by_name) == {"m1", "__consumer_offsets"}
        parts = by_name["m1"]["partitions"]
        assert [(p["partition_index"], p["leader_id"], p["replica_nodes"], p["isr_nodes"]) for p in parts] == \
            [(0, 1, [1], [1]), (1, 1, [1], [1])]
        if version >= 1:
            assert by_name["__consumer_offsets"]["is_internal"] and not by_name["m1"]["is_internal"]
            assert everything["controller_id"] == 1
        if version >= 2:
            assert everything["cluster_id"] == b.controller.image.cluster_id
        if version >= 7:
            assert parts[0]["leader_epoch"] == 0
        if version >= 8:
            assert by_name["m1"]["topic_authorized_operations"] == -2147483648
        if version >= 10:
            assert by_name["m1"]["topic_id"] == t.topic_id
        one = await metadata(b, version, ["m1", "nope"])
        codes = {x["name"]: x["error_code"] for x in one["topics"]}
        assert codes == {"m1": ErrorCode.NONE, "nope": ErrorCode.UNKNOWN_TOPIC_OR_PARTITION}


async def test_metadata_by_topic_id(data_dir):
    async with broker_with(data_dir) as b:
        t = await b.controller.create_topic("byid", 1, 1, None, {})
        r = await metadata(b, 12, [t.topic_id, uuid.uuid4()])
        found, missing = r["topics"]
        assert found["name"] == "byid" and found["error_code"] == ErrorCode.NONE
        assert missing["error_code"] == ErrorCode.UNKNOWN_TOPIC_ID and missing["name"] is None


async def test_metadata_auto_create(data_dir):
    async with broker_with(data_dir, **{"num.partitions": "3"}) as b:
        r = await metadata(b, 9, ["auto1"])
        assert r["topics"][0]["error_code"] == ErrorCode.NONE and len(r["topics"][0]["partitions"]) == 3
        assert "auto1" in b.controller.image.topics_by_name
        r = await metadata(b, 9, ["auto2", "bad/name"], allow_auto=False)
        assert [t["error_code"] for t in r["topics"]] == [ErrorCode.UNKNOWN_TOPIC_OR_PARTITION,
                                                          ErrorCode.INVALID_TOPIC_EXCEPTION]
        r = await metadata(b, 9, ["bad name!"])
        assert r["topics"][0]["error_code"] == ErrorCode.INVALID_TOPIC_EXCEPTION
        assert set(b.controller.image.topics_by_name) == {"auto1"}


@pytest.mark.parametrize("version", [0, 1])
async def test_describe_cluster(data_dir, version):
    async with broker_with(data_dir) as b:
        r = await call(b, ApiKey.DESCRIBE_CLUSTER, version, {"include_cluster_authorized_operations": False},
                       handle_describe_cluster)
        assert r["error_code"] == 0 and r["cluster_id"] == b.controller.image.cluster_id
        assert r["controller_id"] == 1
        assert [(x["broker_id"], x["host"], x["port"]) for x in r["brokers"]] == [(1, "127.0.0.1", 29092)]
        if version == 1:
            r = await call(b, ApiKey.DESCRIBE_CLUSTER, 1, {"endpoint_type": 2}, handle_describe_cluster)
            assert r["error_code"] == ErrorCode.MISMATCHED_ENDPOINT_TYPE


@pytest.mark.parametrize("version", range(8))
async def test_create_topics(data_dir, version):
    async with broker_with(data_dir) as b:
        r = await call(b, ApiKey.CREATE_TOPICS, version,
                       create_req(("c1", 3, 1, {"retention.ms": "1234"}), ("c1x", 0, 1, None),
                                  ("c2", -1, 5, None), ("bad/name", 1, 1, None), ("c3", 1, 1, {"nope": "1"})),
                       handle_create_topics)
        codes = {t["name"]: t["error_code"] for t in r["topics"]}
        assert codes == {"c1": 0, "c1x": ErrorCode.INVALID_PARTITIONS, "c2": ErrorCode.INVALID_REPLICATION_FACTOR,
                         "bad/name": ErrorCode.INVALID_TOPIC_EXCEPTION, "c3": ErrorCode.INVALID_CONFIG}
        ok = r["topics"][0]
        if version >= 5:
            assert ok["num_partitions"] == 3 and ok["replication_factor"] == 1
            configs = {c["name"]: (c["value"], c["config_source"]) for c in ok["configs"]}
            assert configs["retention.ms"] == ("1234", 1)
            assert configs["cleanup.policy"] == ("delete", 5)
        if version >= 7:
            assert ok["topic_id"] == b.controller.image.topics_by_name["c1"].topic_id
        again = await call(b, ApiKey.CREATE_TOPICS, version, create_req(("c1", 1, 1, None)), handle_create_topics)
        assert again["topics"][0]["error_code"] == ErrorCode.TOPIC_ALREADY_EXISTS


async def test_create_topics_validate_only_and_duplicates(data_dir):
    async with broker_with(data_dir) as b:
        r = await call(b, ApiKey.CREATE_TOPICS, 7, create_req(("v", 4, 1, None), validate_only=True),
                       handle_create_topics)
        assert r["topics"][0]["error_code"] == 0 and r["topics"][0]["num_partitions"] == 4
        assert "v" not in b.controller.image.topics_by_name
        r = await call(b, ApiKey.CREATE_TOPICS, 7, create_req(("d", 1, 1, None), ("d", 1, 1, None)),
                       handle_create_topics)
        assert [(t["name"], t["error_code"]) for t in r["topics"]] == [("d", ErrorCode.INVALID_REQUEST)]
        assert "d" not in b.controller.image.topics_by_name


@pytest.mark.parametrize("version", range(7))
async def test_delete_topics(data_dir, version):
    async with broker_with(data_dir) as b:
        a = await b.controller.create_topic("del-a", 1, 1, None, {})
        bb = await b.controller.create_topic("del-b", 1, 1, None, {})
        if version >= 6:
            req = {"topics": [{"name": "del-a", "topic_id": ZERO}, {"name": None, "topic_id": bb.topic_id},
                              {"name": None, "topic_id": uuid.uuid4()}, {"name": "zzz", "topic_id": ZERO}],
                   "timeout_ms": 1000}
        else:
            req = {"topic_names": ["del-a", "del-b", "zzz"], "timeout_ms": 1000}
        r = await call(b, ApiKey.DELETE_TOPICS, version, req, handle_delete_topics)
        codes = [x["error_code"] for x in r["responses"]]
        if version >= 6:
            assert codes == [0, 0, ErrorCode.UNKNOWN_TOPIC_ID, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
            assert r["responses"][0]["topic_id"] == a.topic_id and r["responses"][1]["name"] == "del-b"
        else:
            assert codes == [0, 0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
        assert b.controller.image.topics_by_name == {}


@pytest.mark.parametrize("version", range(4))
async def test_create_partitions(data_dir, version):
    async with broker_with(data_dir) as b:
        await b.controller.create_topic("grow", 1, 1, None, {})
        req = {"topics": [{"name": "grow", "count": 3, "assignments": None},
                          {"name": "missing", "count": 3, "assignments": None}],
               "timeout_ms": 1000, "validate_only": False}
        r = await call(b, ApiKey.CREATE_PARTITIONS, version, req, handle_create_partitions)
        assert [x["error_code"] for x in r["results"]] == [0, ErrorCode.UNKNOWN_TOPIC_OR_PARTITION]
        assert len(b.controller.image.topics_by_name["grow"].partitions) == 3
        req = {"topics": [{"name": "grow", "count": 2, "assignments": None},
                          {"name": "grow2", "count": 5, "assignments": [{"broker_ids": [1]}]}],
               "timeout_ms": 1000, "validate_only": True}
        r = await call(b, ApiKey.CREATE_PARTITIONS, version, req, handle_create_partitions)
        assert r["results"][0]["error_code"] == ErrorCode.INVALID_PARTITIONS


@pytest.mark.parametrize("version", range(5))
async def test_describe_configs(data_dir, version):
    async with broker_with(data_dir, **{"log.retention.hours": "5"}) as b:
        await b.controller.create_topic("dc", 1, 1, None, {"cleanup.policy": "compact"})
        req = {"resources": [{"resource_type": 2, "resource_name": "dc", "configuration_keys": None},
                             {"resource_type": 2, "resource_name": "nope", "configuration_keys": None},
                             {"resource_type": 4, "resource_name": "1", "configuration_keys": ["num.partitions"]},
                             {"resource_type": 4, "resource_name": "7", "configuration_keys": None}],
               "include_synonyms": True, "include_documentation": True}
        r = await call(b, ApiKey.DESCRIBE_CONFIGS, version, req, handle_describe_configs)
        topic, missing, brk, other = r["results"]
        assert topic["error_code"] == 0
        configs = {c["name"]: c for c in topic["configs"]}
        assert configs["cleanup.policy"]["value"] == "compact"
        assert configs["retention.ms"]["value"] == str(5 * 3600 * 1000)
        assert configs["segment.bytes"]["value"] == "1073741824"
        if version == 0:
            assert not configs["cleanup.policy"]["is_default"] and configs["segment.bytes"]["is_default"]
        else:
            assert configs["cleanup.policy"]["config_source"] == 1
            assert configs["retention.ms"]["config_source"] == 4
            assert configs["segment.bytes"]["config_source"] == 5
            assert [(s["name"], s["source"]) for s in configs["cleanup.policy"]["synonyms"]] == \
                [("cleanup.policy", 1), ("log.cleanup.policy", 5)]
            assert [(s["name"], s["value"]) for s in configs["retention.ms"]["synonyms"]][0] == \
                ("log.retention.hours", "5")
        if version >= 3:
            assert configs["segment.bytes"]["config_type"] == 3  # INT
            assert configs["segment.bytes"]["documentation"]
        assert missing["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert [c["name"] for c in brk["configs"]] == ["num.partitions"] and brk["configs"][0]["value"] == "1"
        assert other["error_code"] == ErrorCode.INVALID_REQUEST


def alter_req(rtype, rname, configs, *, incremental, validate_only=False):
    if incremental:
        entries = [{"name": n, "config_operation": op, "value": v} for n, op, v in configs]
    else:
        entries = [{"name": n, "value": v} for n, v in configs]
    return {"resources": [{"resource_type": rtype, "resource_name": rname, "configs": entries}],
            "validate_only": validate_only}


@pytest.mark.parametrize("version", range(3))
async def test_alter_configs_replaces_all(data_dir, version):
    from kbroker.handlers.configs import handle_alter_configs

    async with broker_with(data_dir) as b:
        await b.controller.create_topic("ac", 1, 1, None, {"retention.ms": "100", "cleanup.policy": "compact"})
        r = await call(b, ApiKey.ALTER_CONFIGS, version, alter_req(2, "ac", [("segment.bytes", "2000000")],
                                                                    incremental=False), handle_alter_configs)
        assert r["responses"][0]["error_code"] == 0
        assert b.controller.image.topics_by_name["ac"].configs == {"segment.bytes": "2000000"}
        for configs, code in (([("segment.bytes", "x")], ErrorCode.INVALID_CONFIG),
                              ([("no.such", "1")], ErrorCode.INVALID_CONFIG),
                              ([("segment.bytes", "1"), ("segment.bytes", "2")], ErrorCode.INVALID_REQUEST)):
            r = await call(b, ApiKey.ALTER_CONFIGS, version, alter_req(2, "ac", configs, incremental=False),
                           handle_alter_configs)
            assert r["responses"][0]["error_code"] == code
        r = await call(b, ApiKey.ALTER_CONFIGS, version, alter_req(2, "missing", [], incremental=False),
                       handle_alter_configs)
        assert r["responses"][0]["error_code"] == ErrorCode.UNKNOWN_TOPIC_OR_PARTITION
        assert b.controller.image.topics_by_name["ac"].configs == {"segment.bytes": "2000000"}


@pytest.mark.parametrize("version", [0, 1])
async def test_incremental_alter_configs(data_dir, version):
    from kbroker.handlers.configs import handle_incremental_alter_configs as fn

    async with broker_with(data_dir) as b:
        await b.controller.create_topic("iac", 1, 1, None, {"retention.ms": "100"})

        async def alter(rtype, rname, ops, validate_only=False):
            r = await call(b, ApiKey.INCREMENTAL_ALTER_CONFIGS, version,
                           alter_req(rtype, rname, ops, incremental=True, validate_only=validate_only), fn)
            return r["responses"][0]["error_code"]

        configs = lambda: dict(b.controller.image.topics_by_name["iac"].configs)  # noqa: E731
        assert await alter(2, "iac", [("segment.bytes", 0, "2000000"), ("retention.ms", 1, None)]) == 0
        assert configs() == {"segment.bytes": "2000000"}
        assert await alter(2, "iac", [("cleanup.policy", 2, "compact")]) == 0  # APPEND to the default "delete"
        assert configs()["cleanup.policy"] == "delete,compact"
        assert await alter(2, "iac", [("cleanup.policy", 3, "delete")]) == 0  # SUBTRACT
        assert configs()["cleanup.policy"] == "compact"
        assert await alter(2, "iac", [("retention.ms", 2, "5")]) == ErrorCode.INVALID_REQUEST  # not a list
        assert await alter(2, "iac", [("segment.bytes", 0, "-5")]) == ErrorCode.INVALID_CONFIG
        assert await alter(2, "iac", [("segment.bytes", 0, "3000000")], validate_only=True) == 0
        assert configs()["segment.bytes"] == "2000000"
        assert await alter(4, "", [("log.retention.ms", 0, "60000")]) == 0
        assert b.controller.image.broker_configs == {"log.retention.ms": "60000"}
        assert await alter(4, "1", [("num.partitions", 0, "zero")]) == ErrorCode.INVALID_CONFIG
        assert await alter(4, "9", [("num.partitions", 0, "3")]) == ErrorCode.INVALID_REQUEST
        # the new state is what DescribeConfigs reports
        from kbroker.handlers.configs import handle_describe_configs as describe

        r = await call(b, ApiKey.DESCRIBE_CONFIGS, 4,
                       {"resources": [{"resource_type": 2, "resource_name": "iac",
                                       "configuration_keys": ["retention.ms", "segment.bytes"]}],
                        "include_synonyms": True}, describe)
        got = {c["name"]: (c["value"], c["config_source"]) for c in r["results"][0]["configs"]}
        assert got == {"segment.bytes": ("2000000", 1), "retention.ms": ("60000", 3)}  # DYNAMIC_DEFAULT_BROKER

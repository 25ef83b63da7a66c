"""The handler registry: what ApiVersions advertises is served and round-trips the codec."""

from __future__ import annotations

import protocol
import kbroker.handlers  # noqa: F401  (registers every handler)
from kbroker.dispatch import HANDLERS, supported_versions

# The data-path APIs this engineer owns, with the versions Kafka 3.9 serves.
DATA_PATH = {0: (0, 11), 1: (0, 17), 2: (0, 9), 18: (0, 4), 23: (0, 4), 35: (0, 4)}


def test_data_path_versions_match_kafka_3_9():
    served = supported_versions()
    for api_key, versions in DATA_PATH.items():
        assert served[api_key] == versions


def test_every_advertised_version_round_trips():
    spec_versions = protocol.api_versions()
    for api_key, (low, high) in supported_versions().items():
        spec_low, spec_high = spec_versions[api_key]
        assert spec_low <= low <= high <= spec_high, api_key
        for version in range(low, high + 1):
            for is_response in (False, True):
                data = protocol.encode_body(api_key, version, is_response, {})
                protocol.decode_body(api_key, version, is_response, data)


def test_handlers_are_coroutines():
    import inspect

    for entry in HANDLERS.values():
        assert inspect.iscoroutinefunction(entry.fn), entry

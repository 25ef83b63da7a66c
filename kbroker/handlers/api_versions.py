"""ApiVersions (key 18): the versions every registered handler serves, and the features.

The key list comes from `dispatch.supported_versions()`, so it is exactly what the
handlers declare. v3+ requests carry the client's software name and version, which Kafka
validates (INVALID_REQUEST when malformed).
"""

from __future__ import annotations

import re

from kbroker.dispatch import RequestContext, handler, supported_versions

API_VERSIONS = 18
INVALID_REQUEST = 42

# Kafka 3.9: metadata.version 3.9-IV0 is level 21; 3.0-IV1 (level 1) is the oldest KRaft one.
METADATA_VERSION_MIN = 1
METADATA_VERSION_LEVEL = 21
SUPPORTED_FEATURES = (
    ("kraft.version", 0, 1),
    ("metadata.version", METADATA_VERSION_MIN, METADATA_VERSION_LEVEL),
)
FINALIZED_FEATURES = (("metadata.version", METADATA_VERSION_LEVEL, METADATA_VERSION_LEVEL),)

# Kafka's ApiVersionsRequest.isValid pattern for client software name and version.
_SOFTWARE_PATTERN = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?")


def _valid_software(request: dict) -> bool:
    name = request.get("client_software_name") or ""
    version = request.get("client_software_version") or ""
    return bool(_SOFTWARE_PATTERN.fullmatch(name)) and bool(_SOFTWARE_PATTERN.fullmatch(version))


@handler(API_VERSIONS, 0, 4)
async def handle_api_versions(ctx: RequestContext, request: dict) -> dict:
    """Answer with the supported API versions (and, v3+, the feature levels)."""
    api_keys = [{"api_key": key, "min_version": lo, "max_version": hi}
                for key, (lo, hi) in supported_versions().items()]
    response: dict = {"error_code": 0, "api_keys": api_keys, "throttle_time_ms": 0}
    if ctx.api_version >= 3:
        if not _valid_software(request):
            # As Kafka: the error alone, no key list.
            return {"error_code": INVALID_REQUEST, "api_keys": [], "throttle_time_ms": 0}
        ctx.connection["client_software"] = (request.get("client_software_name"),
                                             request.get("client_software_version"))
        image = ctx.broker.controller.image
        response["supported_features"] = [
            {"name": name, "min_version": lo, "max_version": hi} for name, lo, hi in SUPPORTED_FEATURES]
        response["finalized_features_epoch"] = getattr(image, "offset", -1)
        response["finalized_features"] = [
            {"name": name, "max_version_level": hi, "min_version_level": lo}
            for name, lo, hi in FINALIZED_FEATURES]
        response["zk_migration_ready"] = False
    return response

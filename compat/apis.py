"""Which Kafka APIs a broker advertises (ApiVersions), compared with Kafka 3.9's message specs."""

from __future__ import annotations

import json
import re
import socket
import struct
from pathlib import Path

from protocol import ApiKey, api_versions, decode_response, encode_request

TIMEOUT_S = 10.0


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = bytearray()
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            raise ConnectionError("broker closed the connection")
        data += chunk
    return bytes(data)


def advertised(bootstrap: str) -> dict[int, tuple[int, int]]:
    """api_key -> (min_version, max_version) from the broker's ApiVersions v0 answer."""
    host, port = bootstrap.rsplit(":", 1)
    frame = encode_request(ApiKey.API_VERSIONS, 0, 1, "kbroker-compat", {})
    with socket.create_connection((host, int(port)), timeout=TIMEOUT_S) as sock:
        sock.sendall(struct.pack(">i", len(frame)) + frame)
        (size,) = struct.unpack(">i", _recv_exactly(sock, 4))
        _, body = decode_response(ApiKey.API_VERSIONS, 0, _recv_exactly(sock, size))
    return {k["api_key"]: (k["min_version"], k["max_version"]) for k in body["api_keys"]}


def _spec_dir() -> Path | None:
    # CI clones the repo with ../shared beside it; the spec files say which APIs a broker serves
    for candidate in (Path(__file__).resolve().parents[2] / "shared" / "kafka-spec",
                      Path("/work/shared/kafka-spec")):
        if candidate.is_dir():
            return candidate
    return None


def broker_apis() -> set[int]:
    """API keys an Apache Kafka 3.9 broker serves to clients: spec listeners include "broker",
    excluding APIs whose only version is still unstable (share groups in 3.9)."""
    spec_dir = _spec_dir()
    if spec_dir is None:
        return {int(k) for k in api_versions()}
    keys = set()
    for path in spec_dir.glob("*Request.json"):
        spec = json.loads(re.sub(r"^\s*//.*$", "", path.read_text(), flags=re.M))
        unstable_only = spec.get("latestVersionUnstable") and spec.get("validVersions") == "0"
        if "broker" in spec.get("listeners", []) and not unstable_only:
            keys.add(spec["apiKey"])
    return keys


def missing_apis(bootstrap: str) -> list[str]:
    """Names of the APIs a Kafka 3.9 broker serves that this broker does not advertise."""
    have = advertised(bootstrap)
    return sorted(ApiKey(k).name for k in broker_apis() if k not in have)

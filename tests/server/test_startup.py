"""Start-up stays light (issue 8): what a broker imports before serving, the CRC-32C loader,
and a restarted broker with data answering at once."""

from __future__ import annotations

import json

import crc32c as crc32c_package
import pytest

from tests.server.fresh_interpreter import run_python

from protocol import crc32c



def _run_python(code: str) -> dict:
    """Run `code` in a fresh interpreter; it prints one JSON object, returned here."""
    return json.loads(run_python(code))


@pytest.mark.parametrize("data", [b"", b"123456789", bytes(range(256)) * 17])
def test_crc32c_is_the_packages_function(data):
    assert crc32c.crc32c(data) == crc32c_package.crc32c(data)
    assert crc32c.crc32c(memoryview(data)) == crc32c_package.crc32c(data)


def test_crc32c_known_vector():
    assert crc32c.crc32c(b"123456789") == 0xE3069283  # RFC 3720 check value


def test_a_built_broker_has_imported_none_of_the_lazy_modules(tmp_path):
    result = _run_python(f"""
        import json, sys
        from kbroker.config import load_config
        from kbroker.broker import Broker
        Broker(load_config(None, ["listeners=PLAINTEXT://127.0.0.1:0",
                                  "log.dirs={tmp_path / 'data'}"]))
        from protocol import crc32c
        ok = crc32c.crc32c(b"123456789") == 0xE3069283
        print(json.dumps({{"modules": sorted(sys.modules), "crc_ok": ok}}))
    """)
    modules = set(result["modules"])
    assert result["crc_ok"]
    # importlib.metadata came only from the crc32c package's __init__ (about 10 ms)
    assert "importlib.metadata" not in modules
    lazy = {"kbroker.coordinator.coordinator", "kbroker.coordinator.records",
            "kbroker.txn.coordinator", "kbroker.txn.records", "kbroker.metadata.config_view",
            "kbroker.log.cleaner", "protocol.record_codec", "cramjam"}
    assert not lazy & modules
    assert not {m for m in modules if m.startswith("kbroker.handlers.")}


def test_txn_runtime_topic_name_matches_the_records_module():
    from kbroker.txn import records, runtime

    assert runtime.TRANSACTION_STATE_TOPIC == records.TRANSACTION_STATE_TOPIC

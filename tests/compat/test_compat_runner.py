"""The compat runner works end to end against a kbroker, and a missing client fails it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from compat.clients import CLIENT_NAMES, make_client
from compat.known import KnownGaps
from compat.runner import selected
from compat.scenarios import load_all

# one fast scenario per client: bootstrap for the API clients, kcat_list for kcat
FAST = "bootstrap,kcat_list"


def run_compat(bootstrap: str, *args: str, env: dict | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `python -m compat` as a user would."""
    return subprocess.run([sys.executable, "-m", "compat", "--bootstrap", bootstrap, *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


def test_every_client_passes_a_fast_scenario(kafka_broker, tmp_path: Path) -> None:
    """All six clients are installed and bootstrap against kbroker; the JSON report agrees."""
    report = tmp_path / "report.json"
    proc = run_compat(kafka_broker.bootstrap_servers, "--only", FAST, "--report", str(report))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    data = json.loads(report.read_text())
    statuses = {(r["client"], r["scenario"]): r["status"] for r in data["results"]}
    assert set(statuses) == {(c, "kcat_list" if c == "kcat" else "bootstrap") for c in CLIENT_NAMES}
    assert set(statuses.values()) == {"PASS"}
    assert f"{len(CLIENT_NAMES)} passed, 0 failed" in proc.stdout
    assert set(data["versions"]) == set(CLIENT_NAMES)


def test_missing_client_is_an_error_not_a_skip(kafka_broker, tmp_path: Path) -> None:
    """With kcat off the PATH its scenario is reported ERROR and the run fails."""
    env = dict(os.environ, PATH=str(tmp_path))  # an empty directory: no kcat, no java, no node
    proc = run_compat(kafka_broker.bootstrap_servers, "--clients", "kcat", "--only", "kcat_list", env=env)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "ERROR kcat" in proc.stdout and "client unavailable" in proc.stdout
    assert "0 passed, 1 failed" in proc.stdout


def test_listed_gap_that_passes_is_xpass_and_fails(kafka_broker, tmp_path: Path) -> None:
    """A known gap that now works is reported XPASS and fails the run."""
    gaps = tmp_path / "gaps"
    gaps.write_text("kafka-python:bootstrap  pretend gap\n")
    proc = run_compat(kafka_broker.bootstrap_servers, "--clients", "kafka-python", "--only", "bootstrap",
                      "--known-gaps", str(gaps))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.count("XPASS kafka-python  bootstrap") == 1
    assert "1 xpassed" in proc.stdout


def test_known_gaps_file_names_real_scenarios() -> None:
    """Every known_gaps entry names a known client and a scenario that client runs."""
    scenarios = load_all()
    for ident in KnownGaps.load().entries:
        client, _, name = ident.partition(":")
        assert client in CLIENT_NAMES, ident
        assert name in scenarios, ident
        assert scenarios[name].requires <= make_client(client).features, ident


def test_only_filter_matches_patterns_and_ids() -> None:
    """--only accepts shell patterns on scenario names and client:scenario ids."""
    scenarios = load_all()
    client = make_client("confluent")
    assert [s.name for s in selected(scenarios, client, "txn_*")] == [
        "txn_commit_visible", "txn_abort_invisible", "txn_consume_transform_produce", "txn_fencing"]
    assert [s.name for s in selected(scenarios, client, "confluent:bootstrap")] == ["bootstrap"]
    assert selected(scenarios, make_client("kcat"), "bootstrap") == []

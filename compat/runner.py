"""Runs scenarios per client with a time limit each, classifies and reports the results."""

from __future__ import annotations

import fnmatch
import json
import logging
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable, Iterable, TextIO

from compat.apis import missing_apis
from compat.clients import CLIENT_NAMES, make_client
from compat.clients.base import Client
from compat.errors import ClientError, Mismatch, Unsupported
from compat.known import KnownGaps
from compat.scenarios import Context, Scenario, load_all

logger = logging.getLogger(__name__)

FAILING = ("FAIL", "ERROR", "XPASS")


@dataclass
class Result:
    """Outcome of one scenario for one client."""

    client: str
    scenario: str
    status: str  # PASS FAIL ERROR XFAIL XPASS
    seconds: float
    reason: str


@dataclass
class RunReport:
    """Everything a report needs."""

    bootstrap: str
    started: str
    versions: dict[str, str]
    results: list[Result]
    # Kafka 3.9 broker APIs the broker did not advertise (None when ApiVersions failed)
    missing_apis: list[str] | None = None

    def counts(self) -> dict[str, int]:
        """Number of results per status."""
        out = {s: 0 for s in ("PASS", "FAIL", "ERROR", "XFAIL", "XPASS")}
        for r in self.results:
            out[r.status] += 1
        return out

    def summary(self) -> str:
        """`N passed, M failed, X xfailed, Y xpassed` (failed counts FAIL, ERROR and XPASS)."""
        c = self.counts()
        failed = c["FAIL"] + c["ERROR"] + c["XPASS"]
        return (f"{c['PASS']} passed, {failed} failed, {c['XFAIL']} xfailed, {c['XPASS']} xpassed"
                f" ({c['FAIL']} FAIL, {c['ERROR']} ERROR)")

    def ok(self) -> bool:
        """True when nothing failed, errored or unexpectedly passed."""
        return not any(r.status in FAILING for r in self.results)


def selected(scenarios: dict[str, Scenario], client: Client, only: str | None) -> list[Scenario]:
    """Scenarios the client has the features for, filtered by ``--only``: a shell pattern
    matched against ``client:scenario`` and ``scenario``, or a plain substring."""
    out = []
    for s in scenarios.values():
        if not s.requires <= client.features:
            continue
        if only:
            ident = f"{client.name}:{s.name}"
            patterns = [p.strip() for p in only.split(",") if p.strip()]
            if not any(fnmatch.fnmatchcase(ident, p) or fnmatch.fnmatchcase(s.name, p) or p in ident
                       for p in patterns):
                continue
        out.append(s)
    return out


def _run_with_limit(func: Callable[[], None], timeout_s: float) -> tuple[str, str]:
    """Run func in a worker thread; (status, reason). A hang is the broker's fault (FAIL)."""
    outcome: list[tuple[str, str]] = []

    def work() -> None:
        try:
            func()
            outcome.append(("PASS", ""))
        except Mismatch as exc:
            outcome.append(("FAIL", str(exc)))
        except Unsupported as exc:
            outcome.append(("ERROR", f"driver lacks operation {exc}"))
        except ClientError as exc:
            outcome.append(("ERROR", str(exc)))
        except Exception as exc:  # any client exception is reported, never lost
            logger.debug("scenario raised", exc_info=True)
            outcome.append(("ERROR", f"{type(exc).__name__}: {exc}".strip()))

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return "FAIL", f"hang: no result within the {timeout_s:.0f}s limit"
    return outcome[0]


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def run(bootstrap: str, clients: Iterable[str] = CLIENT_NAMES, only: str | None = None,
        gaps: KnownGaps | None = None, out: TextIO | None = None) -> RunReport:
    """Run the matrix; print one line per scenario to ``out`` as results arrive."""
    gaps = gaps if gaps is not None else KnownGaps.load()
    scenarios = load_all()
    report = RunReport(bootstrap, time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()), {}, [])
    try:
        report.missing_apis = missing_apis(bootstrap)
    except (OSError, ValueError) as exc:  # the matrix still runs; the report says it is unknown
        logger.warning("ApiVersions probe of %s failed: %s", bootstrap, exc)

    def emit(result: Result) -> None:
        report.results.append(result)
        if out is not None:
            print(f"{result.status:<5} {result.client:<13} {result.scenario:<30} "
                  f"{result.seconds:7.1f}s  {result.reason}", file=out, flush=True)

    for name in clients:
        client = make_client(name)
        todo = selected(scenarios, client, only)
        if not todo:
            continue
        started = time.monotonic()
        try:
            client.start(bootstrap)
            report.versions[name] = client.version()
        except Exception as exc:  # a missing or broken client fails every scenario: never skip
            reason = _one_line(f"client unavailable: {type(exc).__name__}: {exc}")
            for s in todo:
                emit(Result(name, s.name, "ERROR", time.monotonic() - started, reason))
            continue
        try:
            for s in todo:
                emit(_run_scenario(client, s, bootstrap, gaps))
        finally:
            client.stop()
    return report


def _run_scenario(client: Client, s: Scenario, bootstrap: str, gaps: KnownGaps) -> Result:
    ctx = Context(client, bootstrap, s.name)
    started = time.monotonic()
    status, reason = _run_with_limit(lambda: s.func(client, ctx), s.timeout_s)
    if status == "FAIL" and reason.startswith("hang"):
        try:
            client.reset()
        except Exception as exc:
            logger.warning("could not reset client %s after a hang: %s", client.name, exc)
    else:
        cleanup_status, cleanup_reason = _run_with_limit(client.cleanup, 60)
        if cleanup_status != "PASS" and status == "PASS":
            status, reason = "ERROR", f"cleanup: {cleanup_reason}"
    seconds = time.monotonic() - started
    gap = gaps.reason(client.name, s.name)
    if gap is not None:
        if status == "PASS":
            status, reason = "XPASS", f"listed in known_gaps ({gap}) but passed: remove it"
        else:
            status, reason = "XFAIL", f"{gap} [{status}: {reason}]"
    return Result(client.name, s.name, status, seconds, _one_line(reason))


# -- reports ---------------------------------------------------------------------------------

def write_report(report: RunReport, path: str) -> None:
    """Write the report as JSON (``.json``) or Markdown (anything else)."""
    if path.endswith(".json"):
        data = {"bootstrap": report.bootstrap, "started": report.started,
                "versions": report.versions, "summary": report.summary(),
                "missing_apis": report.missing_apis,
                "results": [asdict(r) for r in report.results]}
        with open(path, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        return
    with open(path, "w") as f:
        f.write(markdown(report))


REGENERATE = "python -m compat --report docs/compatibility.md"


def markdown(report: RunReport) -> str:
    """docs/compatibility.md: the matrix (scenario x client), known gaps grouped by reason,
    failures, and the Kafka features the broker does not have."""
    clients = list(dict.fromkeys(r.client for r in report.results))
    scenarios = list(dict.fromkeys(r.scenario for r in report.results))
    cell = {(r.client, r.scenario): r.status for r in report.results}
    lines = ["# Compatibility with stock Kafka clients", "",
             "Generated by the compatibility suite (`compat/`, see `compat/README.md`); regenerate with:", "",
             f"    {REGENERATE}", "",
             "(without `--bootstrap` it starts a kbroker on a free port). "
             f"Run {report.started} against `{report.bootstrap}`: **{report.summary()}**.", "",
             "## Clients", ""]
    lines += [f"- {c}: {report.versions.get(c, '(unavailable)')}" for c in clients]
    lines += ["", "## Matrix", "",
              "| scenario | " + " | ".join(clients) + " |",
              "|---|" + "---|" * len(clients)]
    for s in scenarios:
        lines.append(f"| {s} | " + " | ".join(cell.get((c, s), "-") for c in clients) + " |")
    lines += ["", "PASS: works as against Apache Kafka. XFAIL: a known gap (compat/known_gaps), still run. "
              "FAIL/ERROR: a regression. `-`: the client has no such feature.", ""]
    gaps: dict[str, list[str]] = {}
    for r in report.results:
        if r.status == "XFAIL":
            gaps.setdefault(r.reason.split(" [", 1)[0], []).append(f"`{r.client}:{r.scenario}`")
    lines += ["## Kafka features kbroker does not have", ""]
    if gaps:
        lines += ["Seen by the clients (known gaps, by reason):", ""]
        lines += [f"- {reason}: {', '.join(ids)}" for reason, ids in gaps.items()]
        lines.append("")
    lines += ["- Listeners are PLAINTEXT only: no SSL, no SASL (see docs/configuration.md).", ""]
    if report.missing_apis is not None:
        lines += ["Kafka 3.9 broker APIs missing from kbroker's ApiVersions answer:", "",
                  ", ".join(f"`{a}`" for a in report.missing_apis) or "(none)", ""]
    failing = [r for r in report.results if r.status in FAILING]
    if failing:
        lines += ["## Failures in this run", ""]
        lines += [f"- `{r.client}:{r.scenario}` {r.status}: {r.reason}" for r in failing]
        lines.append("")
    return "\n".join(lines)

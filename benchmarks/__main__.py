"""``python -m benchmarks``: run benchmark scenarios against kbroker, Tansu or HOST:PORT.

    python -m benchmarks --scenario produce-small --broker kbroker --runs 3
    python -m benchmarks --scenario all --compare tansu --runs 3 --json out.json --chart r.png
    python -m benchmarks --quick --scenario startup,request-rate
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from benchmarks.brokers import BrokerSpec, compile_kbroker_bytecode, find_tansu
from benchmarks.measurement import Measurement
from benchmarks.report import line, side_by_side, to_json
from benchmarks.scenarios import SCENARIOS
from benchmarks.scenarios.common import Context

logger = logging.getLogger("benchmarks")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenario", action="append", default=[],
                        help="scenario name, comma-separated names, or 'all' "
                             f"(known: {', '.join(SCENARIOS)})")
    parser.add_argument("--broker", default="kbroker",
                        help="kbroker, tansu, or HOST:PORT of a running broker")
    parser.add_argument("--compare", default=None,
                        help="a second broker (e.g. tansu): runs interleaved, medians side by side")
    parser.add_argument("--runs", type=int, default=1, help="runs per scenario and broker")
    parser.add_argument("--quick", action="store_true",
                        help="seconds-long smoke sizes (what the test suite runs)")
    parser.add_argument("--json", type=Path, default=None, help="write all results as JSON")
    parser.add_argument("--chart", type=Path, default=None,
                        help="with --compare: write a PNG of the ratios")
    parser.add_argument("--tansu-bin", default=None, help="path to the tansu binary")
    parser.add_argument("--profile", type=Path, default=None, metavar="DIR",
                        help="py-spy each measured window of kbroker into DIR "
                             "(raw collapsed stacks + a .top.txt summary)")
    parser.add_argument("--broker-env", action="append", default=[], metavar="KEY=VALUE",
                        help="extra environment for the spawned --broker (not --compare), "
                             "e.g. MALLOC_MMAP_THRESHOLD_=33554432 for an allocator experiment")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    names: list[str] = []
    for item in args.scenario or ["all"]:
        for name in item.split(","):
            name = name.strip()
            if name == "all":
                names.extend(SCENARIOS)
            elif name in SCENARIOS:
                names.append(name)
            elif name:
                parser.error(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    args.names = list(dict.fromkeys(names))
    return args


def environment(brokers: list[BrokerSpec]) -> dict[str, Any]:
    """Machine, client and broker versions, for the record."""
    meta: dict[str, Any] = {"time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                            "python": platform.python_version(), "platform": platform.platform(),
                            "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as handle:
            meta["cpu"] = next(l.split(":", 1)[1].strip() for l in handle
                               if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    try:
        import confluent_kafka
        meta["confluent_kafka"] = confluent_kafka.__version__
        meta["librdkafka"] = confluent_kafka.libversion()[0]
    except ImportError:
        pass
    try:
        import kafka
        meta["kafka_python"] = kafka.__version__
    except ImportError:
        pass
    try:
        import zipfile

        from benchmarks.scenarios.java import find_jars
        jar = next(j for j in find_jars() if j.name.startswith("kafka-clients"))
        with zipfile.ZipFile(jar) as archive:
            props = archive.read("kafka/kafka-version.properties").decode()
        meta["java_kafka_clients"] = next(l.split("=", 1)[1] for l in props.splitlines()
                                          if l.startswith("version="))
        meta["java"] = subprocess.run(["java", "-version"], capture_output=True,
                                      text=True).stderr.splitlines()[0]
    except (OSError, RuntimeError, StopIteration, KeyError, IndexError):
        pass
    root = Path(__file__).resolve().parent.parent
    try:
        meta["kbroker_commit"] = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        pass
    for spec in brokers:
        if spec.name == "tansu":
            try:
                meta["tansu"] = subprocess.run([find_tansu(spec.tansu_bin), "--version"],
                                               capture_output=True, text=True).stdout.strip()
            except (OSError, RuntimeError):
                pass
    return meta


def run_one(name: str, spec: BrokerSpec, run: int, quick: bool,
            profile_dir: Path | None = None) -> list[Measurement]:
    """One scenario on one broker; a failure becomes a row with ``error`` set."""
    ctx = Context(spec=spec, run=run, quick=quick, profile_dir=profile_dir)
    try:
        return SCENARIOS[name](ctx)
    except Exception as exc:  # a broken scenario must not stop the others
        logger.debug("scenario %s failed:\n%s", name, traceback.format_exc())
        return [Measurement(name, spec.name, run, error=f"{type(exc).__name__}: {exc}")]


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    """Run the chosen scenarios; print a line per run and, with --runs/--compare, medians."""
    args = parse_args(argv)
    # SIGTERM unwinds like Ctrl-C, so the brokers this run started are stopped on the way out.
    signal.signal(signal.SIGTERM, _terminate)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    env = tuple(tuple(item.split("=", 1)) for item in args.broker_env)
    brokers = [BrokerSpec(args.broker, args.tansu_bin, env)]  # type: ignore[arg-type]
    if args.compare:
        brokers.append(BrokerSpec(args.compare, args.tansu_bin))
    rows: list[Measurement] = []
    if any(spec.name == "kbroker" for spec in brokers):
        compile_kbroker_bytecode()
    meta = environment(brokers)
    if env:
        meta["broker_env"] = dict(env)
    for run in range(args.runs):
        for name in args.names:
            # Interleaved: each broker runs a scenario before the next scenario starts, so
            # slow drifts of a shared machine hit both alike.
            # ... and which broker goes first alternates between runs.
            order = brokers if run % 2 == 0 else list(reversed(brokers))
            for spec in order:
                for row in run_one(name, spec, run, args.quick, args.profile):
                    rows.append(row)
                    print(line(row), flush=True)
                if args.json:
                    # Rewritten after every scenario so an interrupted long run keeps its rows.
                    args.json.write_text(json.dumps(to_json(rows, meta), indent=1))
    names = [spec.name for spec in brokers]
    if args.runs > 1 or len(brokers) > 1:
        print()
        print(side_by_side(rows, names))
        if len(names) == 2:
            from benchmarks.targets import target_table
            print()
            print(target_table(rows, names[0], names[1]))
    if args.chart and len(brokers) == 2:
        from benchmarks.chart import write_chart
        write_chart(rows, names[0], names[1], args.chart)
    return 1 if any(row.error for row in rows) else 0


if __name__ == "__main__":
    sys.exit(main())

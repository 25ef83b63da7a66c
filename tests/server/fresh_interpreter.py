"""Running a snippet in a fresh interpreter, to see what a broker process imports and loads."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_python(code: str) -> str:
    """Run `code` in a new interpreter (nothing imported yet) with the checkout on the path;
    its stdout. A non-zero exit fails the calling test with the child's stderr."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=60, env=env, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    return result.stdout

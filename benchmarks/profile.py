"""Sample a broker with py-spy during a scenario's timed window, and name the hot spots.

``--profile DIR`` makes every measured window of a spawned Python broker also run
``py-spy record --format raw`` (collapsed stacks, non-blocking so the broker is not paused).
``python -m benchmarks.profile FILE`` prints the functions with most samples: "self" (the
function was on top of the stack) and "inclusive" (anywhere on it).
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import subprocess
from collections import Counter
from pathlib import Path

logger = logging.getLogger(__name__)

SAMPLE_RATE_HZ = 200
STOP_TIMEOUT_S = 30.0


class PySpy:
    """A running ``py-spy record`` attached to one process."""

    def __init__(self, pid: int, output: Path) -> None:
        binary = shutil.which("py-spy")
        if binary is None:
            raise RuntimeError("py-spy not installed (pip install py-spy)")
        self.output = output
        output.parent.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [binary, "record", "--pid", str(pid), "--format", "raw", "--nonblocking",
             "--rate", str(SAMPLE_RATE_HZ), "--output", str(output)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def stop(self) -> None:
        """Stop sampling (SIGINT makes py-spy write its output) and write a summary beside it."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.output.exists():
            summary = summarise(self.output)
            self.output.with_suffix(".top.txt").write_text(summary)
        else:
            err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
            logger.warning("py-spy wrote no profile to %s: %s", self.output, err[-500:])


def _frame_name(frame: str) -> str:
    # py-spy raw frames look like "function (path/to/module.py:123)"; drop the line number so
    # samples in one function add up.
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    short = "/".join(path.split("/")[-2:])
    return f"{name} ({short})" if where else name


def summarise(path: Path, top: int = 20) -> str:
    """Top functions by self and by inclusive samples, as text."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [_frame_name(frame) for frame in stack.split(";") if frame]
        if not frames:
            continue
        total += count
        own[frames[-1]] += count
        for name in set(frames):
            inclusive[name] += count
    if total == 0:
        return f"{path}: no samples\n"
    out = [f"{path.name}: {total} samples"]
    for title, counter in (("self", own), ("inclusive", inclusive)):
        out.append(f"\ntop {top} by {title} samples:")
        for name, count in counter.most_common(top):
            out.append(f"  {100.0 * count / total:5.1f}%  {name}")
    return "\n".join(out) + "\n"


def main() -> None:
    """Print the hot spots of a raw py-spy profile."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.profile")
    parser.add_argument("file", type=Path)
    parser.add_argument("--top", type=int, default=20)
    args = parser.parse_args()
    print(summarise(args.file, args.top))


if __name__ == "__main__":
    main()

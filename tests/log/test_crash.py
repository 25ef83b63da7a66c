"""kill -9 durability of the log store: a child process appends and reports each acknowledged
batch; it is killed with SIGKILL at a random moment; reopening must show every acknowledged
batch, intact, with no gap or duplicate. Short variant by default, long one marked slow."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest

from protocol.record_codec import decode_batch
from protocol.records import validate_batch

from tests.log.helpers import make_batch, open_log, read_all, small_config

CHILD = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from tests.log.helpers import NOW_MS, make_batch, small_config
    from kbroker.log.partition_log import PartitionLog

    directory = Path(sys.argv[1])
    log = PartitionLog.open(directory, small_config(segment_bytes=8192), now_ms=NOW_MS)
    print("ready", log.log_end_offset, flush=True)
    i = int(sys.argv[2])
    while True:
        result = log.append(make_batch(2, tag=i % 251, value_size=50 + i % 90), leader_epoch=1, now_ms=NOW_MS)
        print("ack", i, result.base_offset, flush=True)
        if i % 37 == 0:
            log.flush()
        i += 1
    """
)


def run_cycles(tmp_path, cycles: int, seed: int) -> None:
    rng = random.Random(seed)
    directory = tmp_path / "crash-0"
    acked: dict[int, int] = {}  # base offset -> batch number
    next_batch = 0
    env = dict(os.environ, PYTHONPATH=os.getcwd())
    for _ in range(cycles):
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(directory), str(next_batch)],
            stdout=subprocess.PIPE, text=True, env=env,
        )
        try:
            ready = child.stdout.readline().split()
            assert ready[0] == "ready" and int(ready[1]) == (max(acked) + 2 if acked else 0)
            for _ in range(rng.randint(1, 300)):
                _, number, base = child.stdout.readline().split()
                acked[int(base)] = int(number)
                next_batch = int(number) + 1
            os.kill(child.pid, signal.SIGKILL)
        finally:
            child.kill()
            child.wait()
        # Lines written before the kill but not yet read are acknowledged too.
        for line in child.stdout.read().splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "ack":
                acked[int(parts[2])] = int(parts[1])
                next_batch = int(parts[1]) + 1
        child.stdout.close()
        log = open_log(directory, small_config(segment_bytes=8192))
        try:
            stored = read_all(log)
            bases = [base for base, _, _ in stored]
            assert bases[: len(acked)] == sorted(acked), "gap, duplicate or loss"
            assert bases == list(range(0, 2 * len(bases), 2))
            # A batch written just before the kill, whose ack was never printed, may survive:
            # it is the next batch number and is now part of the log.
            for base in bases[len(acked):]:
                acked[base] = next_batch
                next_batch += 1
            assert log.log_end_offset == max(acked) + 2
            for base, _, data in stored:
                validate_batch(data, 0)
                number = acked[base]
                expected = make_batch(2, tag=number % 251, value_size=50 + number % 90)
                assert decode_batch(data).records == decode_batch(expected).records
        finally:
            log.close(flush=False)


def test_kill_9_loses_no_acknowledged_batch(tmp_path):
    run_cycles(tmp_path, cycles=3, seed=1)


@pytest.mark.slow
def test_kill_9_many_cycles(tmp_path):
    run_cycles(tmp_path, cycles=40, seed=int.from_bytes(os.urandom(4), "big"))

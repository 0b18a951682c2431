"""The repository wf works in and its state folder: where the log lives, the store opener,
task lookup, and the lock that lets one engine run per repository.

Light on purpose: every command, read-only ones included, starts here, so nothing heavy (the
store, the engine, anyio) is imported until a call needs it.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.errors import ConfigError, EngineBusy, NotFound

if TYPE_CHECKING:
    from wf.config import Config
    from wf.model import Event
    from wf.store import EventStore, SqliteEventStore

STATE_DIR = "wf"  # inside the git common dir, so every worktree sees the same log


@dataclass
class Repo:
    """A repository and where wf keeps its state. The config is read on first use, so the
    commands that only read the log (status, logs, events, ...) neither pay for it nor fail on a
    broken wf.toml."""

    root: Path
    common_dir: Path
    loaded_config: Config | None = None

    @property
    def config(self) -> Config:
        if self.loaded_config is None:
            from wf.configload import load_config

            self.loaded_config = load_config(self.root)
        return self.loaded_config

    @property
    def state_dir(self) -> Path:
        return self.common_dir / STATE_DIR

    @property
    def db_path(self) -> Path:
        return self.state_dir / "wf.db"

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def worktree_root(self) -> Path:
        raw = self.config.worktree_root.replace("{repo}", self.root.name)
        return (self.root / raw).resolve()

    def default_base(self) -> str:
        if self.config.base:
            return self.config.base
        branch = gitx.current_branch(self.root)
        if branch is None:
            raise ConfigError("the repository is on a detached HEAD and no base is configured",
                              hint="check out a branch, or set base = \"main\" in wf.toml")
        return branch


def find_repo(cwd: Path | None = None) -> tuple[Path, Path]:
    """(toplevel of the main worktree, git common dir) for ``cwd``."""
    here = Path(cwd or os.getcwd())
    common = gitx.common_dir(here)
    root = gitx.repo_root(here)
    # From inside a task worktree, the main worktree is the parent of the common dir.
    if common.name == ".git" and common.parent != root:
        root = common.parent
    return root, common


def open_repo(cwd: Path | None = None, *, config: Config | None = None) -> Repo:
    root, common = find_repo(cwd)
    return Repo(root, common, config)


def open_store(repo: Repo, *, create: bool = True) -> SqliteEventStore:
    """The repository's event log, made on first use; with ``create`` False, NotFound when wf
    never ran here instead. StoreDamaged when the log was emptied (see below)."""
    from wf.store import SqliteEventStore

    if not create and not repo.db_path.exists():
        raise NotFound("no wf runs in this repository yet", hint="start one with `wf run`")
    _refuse_an_emptied_log(repo)
    return SqliteEventStore(repo.db_path)


def read_log(repo: Repo, since: int = 0, *, stream: str | None = None,
             limit: int | None = None) -> list[Event]:
    """The log's events after ``since``, ascending; none before the first run."""
    if not repo.db_path.exists():
        return []
    store = open_store(repo, create=False)
    try:
        return store.read(since, stream=stream, limit=limit)
    finally:
        store.close()


def _refuse_an_emptied_log(repo: Repo) -> None:
    """SQLite reads a zero-byte file as an empty database, so a truncated ``wf.db`` would look
    like a repository where wf never ran, and a new log would be started over the old one's
    branches. wf makes the file and its schema in one go, so zero bytes beside ``wf/*``
    branches or attempt logs means the log was emptied: StoreDamaged (exit 4)."""
    from wf.store.sqlite import damaged

    try:
        if repo.db_path.stat().st_size != 0:
            return
    except FileNotFoundError:
        return
    branches = sorted(gitx.list_branches(repo.root))
    logs = repo.logs_dir.is_dir() and any(repo.logs_dir.iterdir())
    if branches or logs:
        found = (f"{len(branches)} wf branch(es) such as {branches[0]}" if branches
                 else f"attempt logs in {repo.logs_dir}")
        raise damaged(repo.db_path, f"it is empty (0 bytes) while the repository has {found}")


class EngineLock:
    """One engine per repository: an flock on ``engine.lock``, held while the engine runs.
    The kernel drops it when the process dies, however it dies."""

    def __init__(self, repo: Repo, *, name: str = "engine") -> None:
        # name "hooks": the one process that delivers hooks (wf.hooks.manage)
        self.path = repo.state_dir / f"{name}.lock"
        self.fd: int | None = None

    def acquire(self, info: dict[str, Any]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise EngineBusy(f"another wf engine is active in this repository ({self.holder()})",
                             hint="watch it with `wf status` or `wf events --follow`") from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(info).encode())
        self.fd = fd

    def holder(self) -> str:
        """Who holds the lock: the pid the kernel names as its holder, with the command and
        start time the holder wrote. A holder that has just taken the lock may not have
        written them yet (or another engine wrote them before it): then they are read from
        the holder's own process."""
        try:
            info = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            info = {}
        pid = _flock_holder(self.path)
        if pid is not None and info.get("pid") != pid:
            info = {"pid": pid, "command": _command_of(pid), "started": _started_at(pid)}
        if info.get("pid") is None:
            return "holder unknown"
        started = time.strftime("%H:%M:%S", time.localtime(info.get("started") or 0))
        return f"pid {info['pid']}, `{info.get('command') or 'wf'}`, started {started}"

    def is_held(self) -> bool:
        try:
            fd = os.open(self.path, os.O_RDWR)
        except FileNotFoundError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _flock_holder(path: Path) -> int | None:
    """The pid holding an flock on ``path``, from ``/proc/locks`` (Linux); None elsewhere."""
    try:
        inode = os.stat(path).st_ino
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:  # "1: FLOCK  ADVISORY  WRITE 4242 08:01:123456 0 EOF"
        fields = line.split()
        if len(fields) > 5 and fields[1] == "FLOCK" and fields[5].rsplit(":", 1)[-1] == str(inode):
            return int(fields[4]) if fields[4].isdigit() else None
    return None


def _command_of(pid: int) -> str | None:
    """``wf run`` and the like, from the process's arguments (``python -m wf run`` too)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return None
    for i, arg in enumerate(argv):
        if arg in ("run", "resume", "demo"):
            return f"wf {arg}" if i else None
    return " ".join(" ".join(argv).split())[:60] or None  # one line, whatever it runs


def _started_at(pid: int) -> float | None:
    from wf.agents.process import process_starttime

    ticks = process_starttime(pid)
    try:
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    return None if ticks is None else boot + ticks / os.sysconf("SC_CLK_TCK")


def engine_active(repo: Repo) -> bool:
    """Whether an engine holds this repository's lock now."""
    return EngineLock(repo).is_held()


def get_task(store: EventStore, task_id: str) -> dict[str, Any]:
    """The task's row in the log's projection; NotFound when the log has no such task."""
    row = store.task(task_id)
    if row is None:
        raise NotFound(f"no task {task_id!r} in this repository's log",
                       hint="`wf status` lists the tasks")
    return row

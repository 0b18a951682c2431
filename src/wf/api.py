"""The façade both the CLI and the dashboard call: run, resume, status, signal, events.

This is the composition root: it finds the repository and its state folder, loads the config,
and builds the store, writer, worktree manager and engine that everything else receives.
Heavy modules (the engine, anyio) are imported only by the calls that need them, so read-only
commands such as ``wf status`` start fast.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.errors import ConfigError, EngineBusy, NotFound, Refused, UsageError
from wf.model import SIGNAL_STREAM, Event, NewEvent, SignalKind

if TYPE_CHECKING:
    from wf.config import Config
    from wf.engine.base import RunOutcome
    from wf.spec import TaskSpec
    from wf.store.projections import Projection

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


def open_store(repo: Repo, *, create: bool = True) -> Any:
    from wf.store import SqliteEventStore

    if not create and not repo.db_path.exists():
        raise NotFound("no wf runs in this repository yet", hint="start one with `wf run`")
    _refuse_an_emptied_log(repo)
    return SqliteEventStore(repo.db_path)


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

    def __init__(self, repo: Repo) -> None:
        self.path = repo.state_dir / "engine.lock"
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
    from wf.agents.runner import process_starttime

    ticks = process_starttime(pid)
    try:
        boot = next(float(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    return None if ticks is None else boot + ticks / os.sysconf("SC_CLK_TCK")


# -- running ---------------------------------------------------------------------------------

Observer = Callable[[list[Event]], None]


def run(repo: Repo, specs: list[TaskSpec] | None, *, command: str,
        observers: Sequence[Observer] = ()) -> RunOutcome:
    """Submit ``specs`` (None: resume only) and drive every unfinished task to an end, on the
    engine ``[engine]`` names; ``observers`` see each committed batch of events.

    Exit code 0 when every task in scope is done, 1 when one failed, was cancelled, blocked or
    evicted, or when the merge queue stopped (``queue.paused``) with entries still waiting.
    The scope is the submitted tasks for ``wf run`` and the tasks this engine touched for
    ``wf resume``.
    """
    from wf.engine import build_engine

    return build_engine(repo).run(specs, command=command, observers=observers)


# -- reading ---------------------------------------------------------------------------------

STATUS_FIELDS = ("id", "state", "agent", "attempts", "branch", "worktree", "last_error",
                 "last_failure_kind", "next_retry_at", "depends_on", "base_commit", "commit_sha",
                 "port", "started_ts", "ended_ts", "created_ts", "updated_ts",
                 "pr_url", "pr_number", "pr_state", "forge_checks", "tokens", "cost_usd",
                 "session_id")


def status(repo: Repo, *, all_tasks: bool = False) -> list[dict[str, Any]]:
    """The tasks of the current run (``wf.scope``), or every task with ``all_tasks``; active
    ones first."""
    from wf.scope import current_run, display_order, run_start

    if not repo.db_path.exists():
        return []
    store = open_store(repo)
    try:
        rows = store.tasks()
        if not all_tasks:
            rows = current_run(rows, run_start(store.runs()))
        return [{k: row.get(k) for k in STATUS_FIELDS} for row in display_order(rows)]
    finally:
        store.close()


def projection(repo: Repo) -> tuple[Projection | None, int]:
    """The log's projection and the sequence number it is folded to; (None, 0) before the
    first run."""
    if not repo.db_path.exists():
        return None, 0
    store = open_store(repo)
    try:
        return store.projection(), store.last_seq()
    finally:
        store.close()


def engine_active(repo: Repo) -> bool:
    return EngineLock(repo).is_held()


def get_task(store: Any, task_id: str) -> dict[str, Any]:
    row = store.task(task_id)
    if row is None:
        raise NotFound(f"no task {task_id!r} in this repository's log",
                       hint="`wf status` lists the tasks")
    return row


def send_signal(repo: Repo, kind: SignalKind, task_id: str,
                **data: Any) -> tuple[Event, bool]:
    """Write a signal for the engine; (the event, whether an engine is active to act on it).

    A signal that cannot apply to the task or entry as the log has it is refused (Refused,
    exit 1) and not recorded, by the same rule the engine applies (``judge_signal``); one
    whose outcome depends on what the engine finds first (cancel of a running task) is
    recorded."""
    from wf.engine.signal_rules import QUEUE_SIGNALS, VERBS, judge_signal

    store = open_store(repo, create=bool(data.get("branch")))
    try:
        task = store.task(task_id)
        entry = _queue_entry(store, task_id)
        if data.get("branch"):  # wf queue add --branch: an entry with no task behind it
            _check_plain_entry(repo, store, task_id, data["branch"])
        elif task is None and (kind not in QUEUE_SIGNALS or entry is None):
            get_task(store, task_id)
        # A running engine may have its [merge] from a tasks file: then only it can tell.
        active = engine_active(repo)
        queue_enabled = kind in QUEUE_SIGNALS and (active or repo.config.merge.enabled)
        verdict = judge_signal(kind, task_id, task, entry, queue_enabled=queue_enabled,
                               running=bool(task) and task["state"] == "running",
                               branch=data.get("branch"))
        if not verdict.applies:
            raise Refused(f"cannot {VERBS.get(kind, kind)} {task_id}: {verdict.reason}",
                          hint=verdict.hint)
        [event] = store.append([NewEvent(SIGNAL_STREAM, "signal.sent",
                                         {"kind": str(kind), "task": task_id, **data})])
    finally:
        store.close()
    return event, active


def _queue_entry(store: Any, entry_id: str) -> dict[str, Any] | None:
    return next((q for q in store.queue() if q["task_id"] == entry_id), None)


def _check_plain_entry(repo: Repo, store: Any, entry_id: str, branch: str) -> None:
    from wf.model import check_task_id

    try:
        check_task_id(entry_id)
    except ValueError as exc:
        raise ConfigError(str(exc), hint="pass --id with a valid name") from None
    if store.task(entry_id) is not None:
        raise ConfigError(f"{entry_id!r} is a task; use `wf queue add {entry_id}`")
    if gitx.rev_parse(repo.root, f"refs/heads/{gitx.check_rev(branch)}") is None:
        raise NotFound(f"no branch {branch!r} in this repository")


def entry_id_for(branch: str) -> str:
    """A queue entry id for a plain branch: its name made safe (``agent/7`` -> ``agent-7``)."""
    import re

    slug = re.sub(r"[^a-z0-9._-]+", "-", branch.lower()).strip("-.")[:63]
    return slug.replace("..", ".") or "branch"


def events(repo: Repo, *, since: int = 0, follow: bool = False, poll: float = 0.2,
           stop: Callable[[], bool] = lambda: False) -> Iterator[Event]:
    """The log's events after ``since``; none when wf never ran here (with ``follow``, it
    waits for the first run's log to appear)."""
    while not repo.db_path.exists():
        if not follow or stop():
            return
        time.sleep(poll)
    store = open_store(repo, create=False)
    try:
        last = since
        while True:
            batch = store.read(last, limit=1000)
            yield from batch
            if batch:
                last = batch[-1].seq
                continue
            if not follow or stop():
                return
            time.sleep(poll)
    finally:
        store.close()


def attempt_log(repo: Repo, task_id: str,
                attempt: int | None = None) -> tuple[Path, int, bool, str | None]:
    """(log path, attempt number, whether that attempt is still running, the adapter that
    reads the agent's output or None)."""
    from wf.agents.runner import AttemptFiles

    store = open_store(repo, create=False)
    try:
        row = get_task(store, task_id)
        if attempt is not None and attempt < 1:
            raise UsageError(f"--attempt {attempt}: attempts are numbered from 1",
                             hint=f"`wf status` shows how many {task_id} has had")
        n = attempt or row["attempts"]
        if not n:
            raise NotFound(f"task {task_id!r} has not started an attempt yet")
        att = [a for a in store.attempts(task_id) if a["n"] == n]
        if not att:
            raise NotFound(f"task {task_id!r} has no attempt {n}")
        running = att[0]["state"] == "running"
    finally:
        store.close()
    adapter = (row["spec"] or {}).get("adapter")
    return AttemptFiles.of(repo.logs_dir, task_id, n).log, n, running, adapter


def task_diff(repo: Repo, task_id: str, *, stat: bool = False) -> dict[str, Any]:
    """The task's change against its base, uncommitted work included while the worktree
    exists."""
    store = open_store(repo, create=False)
    try:
        row = get_task(store, task_id)
    finally:
        store.close()
    base = row["base_commit"]
    if not base:
        raise NotFound(f"task {task_id!r} has no worktree yet, so no diff")
    wt = row["worktree"]
    if wt and Path(wt).is_dir():
        text = gitx.diff_worktree(Path(wt), base, stat=stat)
    elif gitx.branch_exists(repo.root, row["branch"]):
        text = gitx.diff(repo.root, base, row["branch"], stat=stat)
    else:
        raise NotFound(f"task {task_id!r} has neither a worktree nor a branch any more")
    return {"task": task_id, "base": base, "branch": row["branch"], "diff": text}


# -- cleaning --------------------------------------------------------------------------------



def clean(repo: Repo, task_ids: list[str], *, force: bool = False, orphans: bool = False,
          forget: bool = False) -> list[dict[str, Any]]:
    """Remove worktrees of finished tasks, and their branches when every commit on them is
    merged into the task's base or pushed; with ``forget``, also drop the named tasks from
    the log's projection so their ids can be submitted again (see ``wf.cleaning``)."""
    from wf.cleaning import clean as clean_tasks

    return clean_tasks(repo, task_ids, force=force, orphans=orphans, forget=forget)


# -- the merge queue -------------------------------------------------------------------------

QUEUE_FIELDS = ("task_id", "state", "position", "branch", "head", "approved", "last_check",
                "reason_kind", "reason", "check_log", "landed_commit", "entered_ts",
                "updated_ts", "pr_url", "pr_number", "pr_state", "forge_checks", "suspect")


def queue_status(repo: Repo) -> list[dict[str, Any]]:
    """Every merge-queue entry in the order it entered, with its state and last reason.
    ``position`` is the entry's 1-based place among the entries still in the queue (pending,
    queued, waiting for approval), None for the others; ``approved`` and ``suspect`` are
    booleans; ``check_log`` is the log of the check that evicted it."""
    from wf.store.projections import QUEUE_IN_LINE

    if not repo.db_path.exists():
        return []
    store = open_store(repo)
    try:
        rows = store.queue()
    finally:
        store.close()
    out, place = [], 0
    for row in rows:  # in the order they entered, which is their order in line
        entry = {k: row.get(k) for k in QUEUE_FIELDS}
        in_line = row["state"] in QUEUE_IN_LINE
        place += in_line
        entry.update(position=place if in_line else None, approved=bool(row.get("approved")),
                     suspect=bool(row.get("suspect")))
        out.append(entry)
    return out


def check_log_tail(path: str | None, lines: int = 5) -> list[str]:
    """The last ``lines`` non-blank lines of a merge-queue check's log; [] when it is gone."""
    if not path:
        return []
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - 16384))
            text = f.read().decode(errors="replace")
    except OSError:
        return []
    return [ln.rstrip() for ln in text.splitlines() if ln.strip()][-lines:]


def queue_stopped(repo: Repo) -> str | None:
    """Why the merge queue stopped with entries still waiting (its last ``queue.paused``);
    None when it did not, or an engine started since."""
    from wf.store.projections import QUEUE_WAITING

    if not repo.db_path.exists():
        return None
    store = open_store(repo)
    try:
        last = store.read(types=["queue.paused", "run.started"])[-1:]
        waiting = any(q["state"] in QUEUE_WAITING for q in store.queue())
    finally:
        store.close()
    stopped = bool(last) and last[0].type == "queue.paused" and waiting
    return last[0].data.get("reason") if stopped else None


# -- pull requests ---------------------------------------------------------------------------

def open_pr(repo: Repo, task_id: str, *, draft: bool = False, labels: Sequence[str] = (),
            reviewers: Sequence[str] = ()) -> dict[str, Any]:
    """Push the task's branch and open its PR/MR, or update the one already open. Blocking (git
    and HTTP): the dashboard calls it from a worker thread. Returns at least ``number``, ``url``,
    ``state`` and ``created``."""
    from wf.pull_requests import open_task_pr

    store = open_store(repo, create=False)
    try:
        return open_task_pr(repo, store, task_id, draft=draft, labels=labels,
                            reviewers=reviewers)
    finally:
        store.close()

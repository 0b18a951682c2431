"""The façade both the CLI and the dashboard call: run, resume, status, signal, events.

This is the composition root: on the repository ``wf.repository`` finds, it loads the config
and builds the store, writer, worktree manager and engine that everything else receives.
Heavy modules (the engine, anyio) are imported only by the calls that need them, so read-only
commands such as ``wf status`` start fast.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.errors import ConfigError, GitError, Interrupted, NotFound, Refused, UsageError
from wf.model import SIGNAL_STREAM, Event, NewEvent, SignalKind, task_stream
# The CLI and the dashboard find the repository through the façade: api.open_repo().
from wf.repository import (
    EngineLock, Repo, engine_active, find_repo, get_task, open_repo, open_store,  # noqa: F401
)

if TYPE_CHECKING:
    from wf.spec import TaskSpec
    from wf.store import EventStore


# -- running ---------------------------------------------------------------------------------

@dataclass
class RunResult:
    exit_code: int
    tasks: list[dict[str, Any]] = field(default_factory=list)
    queue_stopped: str | None = None  # why the merge queue stopped with entries left in it
    idle: bool = False  # nothing was left to do: no task or queue entry moved
    queue: list[dict[str, Any]] = field(default_factory=list)  # entries this run moved


Observer = Callable[[list[Event]], None]


def submit_events(store: EventStore, specs: list[TaskSpec]) -> list[NewEvent]:
    """The ``task.submitted`` events for specs the log does not hold yet. A task the log holds
    with the same spec is left alone (re-running a tasks file is idempotent); one with a
    different spec is a config error, since its id names a branch that already has history,
    until ``wf clean ID --forget`` frees the id."""
    out = []
    for spec in specs:
        existing = store.task(spec.id)
        data = spec.model_dump(mode="json")
        if existing is None:
            out.append(_submitted(store, spec.id, data))
        elif existing["spec"] != data:
            raise ConfigError(f"task {spec.id!r} already exists with a different definition",
                              hint=f"pick another id, or `wf clean {spec.id} --forget` first "
                                   "(its unmerged work is kept under a backup ref)")
    return out


def _submitted(store: EventStore, task_id: str, spec: dict[str, Any]) -> NewEvent:
    """``task.submitted``; for an id forgotten before, numbered after the forgotten attempts
    and keyed by that forgetting, so it is not taken for the first submission again."""
    forgotten = store.read(stream=task_stream(task_id), types=["task.forgotten"])[-1:]
    if not forgotten:
        return NewEvent(task_stream(task_id), "task.submitted", {"spec": spec},
                        idempotency_key=f"task.submitted:{task_id}")
    last = forgotten[0]
    return NewEvent(task_stream(task_id), "task.submitted",
                    {"spec": spec, "attempts_before": last.data.get("attempts") or 0},
                    idempotency_key=f"task.submitted:{task_id}:{last.seq}")


def run(repo: Repo, specs: list[TaskSpec] | None, *, command: str,
        observers: list[Observer] = (), on_engine: Callable[[Any], None] | None = None) -> RunResult:
    """Submit ``specs`` (None: resume only) and drive every unfinished task to an end.

    Exit code 0 when every task in scope is done, 1 when one failed, was cancelled, blocked or
    evicted, or when the merge queue stopped (``queue.paused``) with entries still waiting.
    The scope is the submitted tasks for ``wf run`` and the tasks this engine touched for
    ``wf resume``.
    """
    import anyio

    from wf.engine.local import EngineDeps, LocalEngine
    from wf.store import GroupCommitWriter
    from wf.worktrees import WorktreeManager

    if gitx.rev_parse(repo.root, "HEAD") is None:
        raise GitError("the repository has no commits yet", hint="commit something first")
    lock = EngineLock(repo)
    lock.acquire({"pid": os.getpid(), "command": command, "started": time.time()})
    store = open_store(repo)
    writer = GroupCommitWriter(store)
    for observer in [*observers, *_crash_hook()]:
        writer.add_listener(observer)
    run_id = f"r-{uuid.uuid4().hex[:8]}"
    engine = None
    try:
        if specs:
            writer.append_sync(submit_events(store, specs))
        wt = WorktreeManager(repo.root, repo.worktree_root, port_range=repo.config.port_range)
        engine = LocalEngine(EngineDeps(store=store, writer=writer, worktrees=wt,
                                        config=repo.config, logs_dir=repo.logs_dir))
        if repo.config.merge.enabled:
            engine.merge_target = repo.config.merge.target or repo.default_base()
        if on_engine:
            on_engine(engine)
        try:
            final = _unwrap_errors(anyio.run, engine.run, run_id, [command])
        except KeyboardInterrupt:
            running = sum(1 for t in engine.p.tasks.values() if t["state"] == "running")
            _finish_run(writer, run_id, 130)
            raise Interrupted(
                f"interrupted; {running} agent(s) keep running in the background",
                hint="`wf resume` adopts them and carries on; `wf cancel TASK` stops one") from None
        scope = [s.id for s in specs] if specs else sorted(engine.touched)
        rows = [final.tasks[t] for t in scope if t in final.tasks]
        goal = "merged" if repo.config.merge.auto else "done"
        stopped = engine.queue.stopped_with_work() if engine.queue is not None else None
        code = 0 if all(r["state"] in (goal, "merged") for r in rows) and not stopped else 1
        _finish_run(writer, run_id, code)
        entries = sorted((final.queue[t] for t in engine.touched if t in final.queue),
                         key=lambda q: q["position"] or 0)
        return RunResult(code, rows, stopped, idle=not engine.touched, queue=entries)
    finally:
        writer.close()
        store.close()
        lock.release()


def _unwrap_errors(fn: Callable[..., Any], *args: Any) -> Any:
    """Call ``fn``; an exception group from the engine's task groups is reduced to the first
    WfError (or KeyboardInterrupt) inside it, so the CLI can report it in one line."""
    try:
        return fn(*args)
    except BaseExceptionGroup as group:
        from wf.errors import WfError, first_in_group

        for kind in (KeyboardInterrupt, WfError):
            leaf = first_in_group(group, kind)
            if leaf is not None:
                raise leaf from group
        raise


def _crash_hook() -> list[Observer]:
    """Fault injection for the crash tests: ``WF_CRASH_AFTER=TYPE[:N]`` kills this process
    with SIGKILL right after the N-th event of TYPE is committed (N defaults to 1)."""
    spec = os.environ.get("WF_CRASH_AFTER")
    if not spec:
        return []
    type_, _, nth = spec.partition(":")
    remaining = [int(nth or 1)]

    def observe(committed: list[Event]) -> None:
        remaining[0] -= sum(1 for e in committed if e.type == type_)
        if remaining[0] <= 0:
            os.kill(os.getpid(), 9)

    return [observe]


def _finish_run(writer: Any, run_id: str, code: int) -> None:
    from wf.model import RUN_STREAM

    writer.append_sync([NewEvent(RUN_STREAM, "run.finished", {"run_id": run_id,
                                                               "exit_code": code})])


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


def _queue_entry(store: EventStore, entry_id: str) -> dict[str, Any] | None:
    return next((q for q in store.queue() if q["task_id"] == entry_id), None)


def _check_plain_entry(repo: Repo, store: EventStore, entry_id: str, branch: str) -> None:
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

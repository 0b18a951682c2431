"""The façade both the CLI and the dashboard call: run, resume, status, signal, events.

This is the composition root: on the repository ``wf.repository`` finds, it loads the config
and builds the store, writer, worktree manager and engine that everything else receives.
Heavy modules (the engine, anyio) are imported only by the calls that need them, so read-only
commands such as ``wf status`` start fast.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.engine.base import Observer
from wf.errors import NotFound, UsageError
from wf.model import Event, SignalKind
# The CLI and the dashboard find the repository through the façade: api.open_repo().
from wf.repository import (  # noqa: F401
    EngineLock, Repo, engine_active, find_repo, get_task, open_repo, open_store,
)
from wf.signals import entry_id_for, record_signal  # noqa: F401  (entry_id_for: the CLI's)

if TYPE_CHECKING:
    from wf.engine.base import RunOutcome
    from wf.spec import TaskSpec
    from wf.store.projections import Projection


# -- running ---------------------------------------------------------------------------------

def run(repo: Repo, specs: list[TaskSpec] | None, *, command: str,
        observers: Sequence[Observer] = (), say: Callable[[str], None] | None = None,
        ) -> RunOutcome:
    """Submit ``specs`` (None: resume only) and drive every unfinished task to an end, on the
    engine ``[engine]`` names; ``observers`` see each committed batch of events.

    Exit code 0 when every task in scope is done, 1 when one failed, was cancelled, blocked or
    evicted, or when the merge queue stopped (``queue.paused``) with entries still waiting.
    The scope is the submitted tasks for ``wf run`` and the tasks this engine touched for
    ``wf resume``.

    While it runs, ``[[hooks]]`` are delivered from a thread of this process
    (``wf.hooks.delivery.delivering``), woken by every commit the engine observes; ``say``
    gets what a person should know about that (one line each).
    """
    from wf.engine import build_engine
    from wf.hooks.delivery import delivering

    engine = build_engine(repo)
    with delivering(repo, say=say) as hooks:
        wake = [hooks.wake] if hooks is not None else []
        return engine.run(specs, command=command, observers=[*observers, *wake])


def send_signal(repo: Repo, kind: SignalKind, task_id: str, **data: Any) -> tuple[Event, bool]:
    """A person's command (cancel, retry, the queue's): (the ``signal.sent`` event, whether an
    engine is there to act on it).

    On the local engine a signal is a row of the log, which the running engine (or the next)
    consumes: recording one needs neither the engine nor, except for a queue signal, wf.toml,
    so a broken config never keeps a person from cancelling. On Temporal it goes to the
    repository's workflow, which judges it by the same rule and acts on it at once."""
    if _engine_kind(repo) == "temporal":
        from wf.engine import build_engine

        return build_engine(repo).signal(kind, task_id, **data), True
    return record_signal(repo, kind, task_id, **data)


def worker_missing(repo: Repo) -> bool:
    """On Temporal, whether no ``wf worker`` has polled the repository's queue lately (the
    tasks of a run would wait for one); False on the local engine, or when the server could
    not be asked."""
    if _engine_kind(repo) != "temporal":
        return False
    from wf.temporal.engine import worker_polls

    return worker_polls(repo) is False


def _engine_kind(repo: Repo) -> str:
    """``[engine] kind``; "local" when wf.toml cannot be read (what needs it says so)."""
    from wf.errors import ConfigError

    try:
        return repo.config.engine.kind
    except ConfigError:
        return "local"


# -- reading ---------------------------------------------------------------------------------

@contextlib.contextmanager
def mirrored(repo: Repo, *, interval: float = 0.5) -> Iterator[None]:
    """While the block runs, keep this clone's log up to date with the engine's: on Temporal a
    thread pulls the workflows' events every ``interval`` seconds (``wf events -f``,
    ``wf dash``); on the local engine the log is the engine's own, and nothing is done."""
    if _engine_kind(repo) != "temporal":
        yield
        return
    from wf.temporal.engine import MirrorThread

    with MirrorThread(repo, interval=interval):
        yield


def refresh(repo: Repo) -> bool:
    """Pull what the engine recorded since (Temporal), within 0.4 s, unless a worker or a
    follower on this clone pulled in the last 2 s (or nobody answered in the last 10 s); False
    when nobody answered: the log is then read as this clone last pulled it."""
    if _engine_kind(repo) == "temporal":
        from wf.temporal.freshness import needs_pull

        if not needs_pull(repo.state_dir):
            return True
        from wf.temporal.engine import refresh_mirror

        return refresh_mirror(repo)
    return True


STATUS_FIELDS = ("id", "state", "agent", "attempts", "branch", "worktree", "last_error",
                 "last_failure_kind", "next_retry_at", "depends_on", "base_commit", "commit_sha",
                 "port", "started_ts", "ended_ts", "created_ts", "updated_ts",
                 "pr_url", "pr_number", "pr_state", "forge_checks", "tokens", "cost_usd",
                 "session_id", "budget_exceeded", "paused")


def status(repo: Repo, *, all_tasks: bool = False) -> list[dict[str, Any]]:
    """The tasks of the current run (``wf.scope``), or every task with ``all_tasks``; active
    ones first. Beside the ``STATUS_FIELDS`` of its row, each task has ``usage_reported``
    (``live``, ``at_end`` or ``none``: when its agent's usage is known, see
    ``wf.agents.builtin.usage_reported``) and ``agent_limit`` (its agent's adaptive
    parallelism, ``agent_limit_view``, or None when it has none)."""
    from wf.agents.builtin import usage_reported
    from wf.scope import current_run, display_order, run_start

    refresh(repo)
    if not repo.db_path.exists():
        return []
    store = open_store(repo)
    try:
        rows = store.tasks()
        if not all_tasks:
            rows = current_run(rows, run_start(store.runs()))
        limits = {row["agent"]: agent_limit_view(row) for row in store.agent_limits()}
        return [{**{k: row.get(k) for k in STATUS_FIELDS},
                 "usage_reported": usage_reported((row.get("spec") or {}).get("adapter")),
                 "agent_limit": limits.get(row.get("agent"))}
                for row in display_order(rows)]
    finally:
        store.close()


def agent_limit_view(row: dict[str, Any]) -> dict[str, Any]:
    """An ``agent_limits`` row as ``wf status --json`` and ``wf dash`` show it: ``limit``
    (attempts of the agent at once now), ``max_parallel`` (its ceiling), ``reason`` (why it
    is what it is), ``not_before`` (no start of the agent before this epoch time),
    ``successes`` (in a row since the last change, toward one more)."""
    return {"limit": row["parallel"], "max_parallel": row.get("max_parallel"),
            "reason": row.get("reason"), "not_before": row.get("not_before"),
            "successes": row.get("successes") or 0}


def hooks_disabled(repo: Repo) -> list[dict[str, Any]]:
    """The hook endpoints disabled now (410 Gone, or failing too long): ``endpoint``,
    ``reason``, ``ts``. An ``attention`` item: ``wf status`` and ``wf dash`` show it."""
    from wf.hooks.manage import disabled

    return disabled(repo)


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
    from wf.agents.process import AttemptFiles

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
    exists (on Temporal, asked of the host that holds it when that is another machine)."""
    store = open_store(repo, create=False)
    try:
        row = get_task(store, task_id)
        host = _host_of(repo, store, task_id)
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
    elif host is not None:
        from wf.temporal.engine import read_on_host
        from wf.temporal.shapes import HostRead

        got = read_on_host(repo, HostRead("diff", host, wt or "", base, row["branch"], stat,
                                          max_bytes=1024 * 1024))
        text = got.text + ("\n[wf: the diff is cut at 1 MiB]\n" if got.truncated else "")
    else:
        raise NotFound(f"task {task_id!r} has neither a worktree nor a branch any more")
    return {"task": task_id, "base": base, "branch": row["branch"], "diff": text}


def log_elsewhere(repo: Repo, task_id: str, n: int) -> bytes | None:
    """On Temporal, the end of attempt ``n``'s log from the host that ran it, when that is
    another machine; None when the log is (or should be) here."""
    store = open_store(repo, create=False)
    try:
        host = _host_of(repo, store, task_id, n)
        path = next((a["log_path"] for a in store.attempts(task_id) if a["n"] == n), None)
    finally:
        store.close()
    if host is None or not path:
        return None
    from wf.temporal.engine import read_on_host
    from wf.temporal.shapes import HostRead

    got = read_on_host(repo, HostRead("log", host, path))
    cut = b"[wf: the log's last 256 KiB, from host " + host.encode() + b"]\n"
    return (cut if got.truncated else b"") + got.text.encode()


def _host_of(repo: Repo, store: Any, task_id: str, n: int | None = None) -> str | None:
    """The other machine that holds the task's worktree (or ran attempt ``n``), on the
    Temporal engine; None for this machine, or on the local engine."""
    if _engine_kind(repo) != "temporal":
        return None
    wanted = ["attempt.spawned"] if n is not None else ["task.worktree_ready"]
    events = [e for e in store.read(stream=f"task:{task_id}", types=wanted)
              if n is None or e.data.get("n") == n]
    host = events[-1].data.get("host") if events else None
    return None if host is None or host == repo.config.engine.host_name() else host


# -- cleaning --------------------------------------------------------------------------------



def clean(repo: Repo, task_ids: list[str], *, force: bool = False, orphans: bool = False,
          forget: bool = False) -> list[dict[str, Any]]:
    """Remove worktrees of finished tasks, and their branches when every commit on them is
    merged into the task's base or pushed; with ``forget``, also drop the named tasks from
    the log's projection so their ids can be submitted again (see ``wf.cleaning``)."""
    from wf.cleaning import clean as clean_tasks

    return clean_tasks(repo, task_ids, force=force, orphans=orphans, forget=forget)


# -- the worktree pool -----------------------------------------------------------------------

POOL_FIELDS = ("slot", "path", "state", "task", "base", "key", "size", "uses", "created_ts",
               "updated_ts")


def pool_status(repo: Repo, now: float | None = None) -> dict[str, Any]:
    """This clone's pool: its settings and one item per pooled worktree (``age``: seconds
    since its last step; ``size``: bytes on disk when last measured)."""
    from wf.pool.rules import IDLE

    cfg = repo.config.worktrees
    rows: list[dict[str, Any]] = []
    if repo.db_path.exists():
        store = open_store(repo, create=False)
        try:
            rows = store.pool()
        finally:
            store.close()
    now = time.time() if now is None else now
    slots = [{**{k: r[k] for k in POOL_FIELDS},
              "age": round(now - (r["updated_ts"] or now), 1)} for r in rows]
    idle = [r for r in rows if r["state"] in IDLE]
    return {"pool": cfg.pool, "pool_max_disk": cfg.pool_max_disk,
            "setup_inputs": list(cfg.setup_inputs), "keep": list(cfg.keep),
            "idle": len(idle), "idle_bytes": sum(r["size"] or 0 for r in idle),
            "slots": slots}


def _pool(repo: Repo) -> Any:
    from wf.pool.keeper import pool_for
    from wf.worktrees import WorktreeManager

    wt = WorktreeManager(repo.root, repo.worktree_root, port_range=repo.config.port_range)
    return pool_for(repo, wt, os.environ)


def pool_warm(repo: Repo, n: int | None = None) -> list[dict[str, Any]]:
    """Prepare pooled worktrees until ``n`` (default ``[worktrees] pool``) are idle, up to
    ``max_parallel`` at a time; first finish what a crashed wf left half-done."""
    from wf.pool.refill import warm

    target = repo.config.worktrees.pool if n is None else n
    if target <= 0:
        raise UsageError("the pool is off: nothing to warm",
                         hint="set pool = N under [worktrees] in wf.toml, or `wf pool warm N`")
    pool = _pool(repo)
    try:
        return warm(pool, target, repo.config.max_parallel)
    finally:
        pool.close()


def pool_drain(repo: Repo) -> list[dict[str, Any]]:
    """Remove the idle pooled worktrees; a task's is kept (``wf clean`` gives it back)."""
    from wf.pool.refill import drain

    pool = _pool(repo)
    try:
        return drain(pool)
    finally:
        pool.close()


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

    refresh(repo)
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

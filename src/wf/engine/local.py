"""The local engine: the ``Engine`` protocol on one machine, with no server.

It owns what a run needs around the scheduler (``scheduler.py``): the engine lock (one engine
per repository), the store and its group-commit writer, the worktree manager, the merge
queue's target. ``run`` holds the lock for the whole run, submits, and drives the scheduler in
an anyio event loop until every task settles.
"""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.engine.base import Clock, Observer, RunOutcome, SystemClock
from wf.errors import ConfigError, GitError, Interrupted
from wf.model import RUN_STREAM, Event, NewEvent, SignalKind, task_stream

if TYPE_CHECKING:
    from wf.repository import Repo
    from wf.spec import TaskSpec
    from wf.store import EventStore, GroupCommitWriter


class LocalEngine:
    """``Engine`` on this machine: anyio over the SQLite event log."""

    def __init__(self, repo: Repo, *, clock: Clock | None = None,
                 rng: random.Random | None = None,
                 environ: Mapping[str, str] | None = None) -> None:
        self.repo = repo
        self.clock = clock or SystemClock()
        self.rng = rng or random.Random()
        self.environ = dict(os.environ if environ is None else environ)

    def submit(self, specs: Sequence[TaskSpec]) -> list[Event]:
        from wf.repository import open_store

        store = open_store(self.repo)
        try:
            return store.append(submit_events(store, specs))
        finally:
            store.close()

    def signal(self, kind: SignalKind, task_id: str, **data: Any) -> Event:
        from wf.signals import record_signal

        return record_signal(self.repo, kind, task_id, **data)[0]

    def events(self, since: int = 0, *, stream: str | None = None,
               limit: int | None = None) -> list[Event]:
        from wf.repository import read_log

        return read_log(self.repo, since, stream=stream, limit=limit)

    def run(self, specs: Sequence[TaskSpec] | None = None, *, command: str = "wf run",
            observers: Sequence[Observer] = ()) -> RunOutcome:
        import anyio

        from wf.engine.scheduler import EngineDeps, Scheduler
        from wf.repository import EngineLock, open_store
        from wf.store import GroupCommitWriter
        from wf.worktrees import WorktreeManager

        repo = self.repo
        if gitx.rev_parse(repo.root, "HEAD") is None:
            raise GitError("the repository has no commits yet", hint="commit something first")
        lock = EngineLock(repo)
        lock.acquire({"pid": os.getpid(), "command": command, "started": time.time()})
        store = open_store(repo)
        writer = GroupCommitWriter(store)
        for observer in [*observers, *_crash_hook()]:
            writer.add_listener(observer)
        run_id = f"r-{uuid.uuid4().hex[:8]}"
        refill = None
        try:
            if specs:
                writer.append_sync(submit_events(store, specs))
            config = repo.config
            wt = WorktreeManager(repo.root, repo.worktree_root, port_range=config.port_range)
            target = (config.merge.target or repo.default_base()) if config.merge.enabled else None
            pool = refill = None
            if config.worktrees.pool or store.pool():  # slots of tasks, even with the pool off
                from wf.pool.keeper import pool_for
                from wf.pool.refill import Refill

                pool = pool_for(repo, wt, self.environ)
                refill = Refill(pool)
                refill.start()
            scheduler = Scheduler(EngineDeps(
                store=store, writer=writer, worktrees=wt, config=config, logs_dir=repo.logs_dir,
                clock=self.clock, rng=self.rng, environ=self.environ, worktree_pool=pool),
                merge_target=target)
            try:
                final = _unwrap_errors(anyio.run, scheduler.run, run_id, [command])
            except KeyboardInterrupt:
                running = sum(1 for t in scheduler.p.tasks.values() if t["state"] == "running")
                _finish_run(writer, run_id, 130)
                raise Interrupted(
                    f"interrupted; {running} agent(s) keep running in the background",
                    hint="`wf resume` adopts them and carries on; `wf cancel TASK` stops one",
                ) from None
            touched = scheduler.touched
            scope = [s.id for s in specs] if specs else sorted(touched)
            rows = [final.tasks[t] for t in scope if t in final.tasks]
            goal = "merged" if config.merge.auto else "done"
            queue = scheduler.queue
            stopped = queue.stopped_with_work() if queue is not None else None
            code = 0 if all(r["state"] in (goal, "merged") for r in rows) and not stopped else 1
            _finish_run(writer, run_id, code, _summary(rows))
            entries = sorted((final.queue[t] for t in touched if t in final.queue),
                             key=lambda q: q["position"] or 0)
            return RunOutcome(code, rows, stopped, idle=not touched, queue=entries)
        finally:
            if refill is not None:
                refill.stop()  # it lets go at once: a setup it runs is killed
            writer.close()
            store.close()
            lock.release()


def submit_events(store: EventStore, specs: Sequence[TaskSpec]) -> list[NewEvent]:
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


def _finish_run(writer: GroupCommitWriter, run_id: str, code: int,
                summary: dict[str, Any] | None = None) -> None:
    data: dict[str, Any] = {"run_id": run_id, "exit_code": code}
    if summary is not None:
        data["summary"] = summary
    writer.append_sync([NewEvent(RUN_STREAM, "run.finished", data)])


def _summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """A run's end in figures, for ``run.finished`` (and the ``finished`` hooks): its tasks
    by state, and the ids of those that did not succeed."""
    states: dict[str, int] = {}
    for row in rows:
        states[row["state"]] = states.get(row["state"], 0) + 1
    return {"tasks": len(rows), "states": states,
            "not_done": [r["id"] for r in rows if r["state"] not in ("done", "merged")]}

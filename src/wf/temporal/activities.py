"""The task activities of ``wf.engine.activities``, as Temporal activities of one host.

Each is the local engine's activity with a Temporal name; none decides anything. What is
Temporal's own is here:

- ``ensure_worktree`` runs on the take queue (any host with a free slot may take a new task;
  ``worker.FreeSlots``) and says which host took it; every later step of that task goes to
  that host's queue.
- ``run_attempt`` is a heartbeating activity. The agent runs detached under its supervisor with
  a claim file, so a retried activity (a worker killed, a heartbeat missed) adopts the live
  agent instead of starting a second one: the pid travels in the heartbeat details. The agent
  is stopped only when the workflow really asked (``cancellation_details().cancel_requested``),
  never on a worker's shutdown or a heartbeat timeout.
- What the attempt reports as it runs (its pid, the agent's output events) goes to the task's
  workflow as a ``facts`` signal; the agent's log itself stays on the host.
- wf's own errors become ApplicationErrors of the same name, in one line, so the workflow
  records them and never a traceback; ``ConfigError`` is not retried.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio import activity
from temporalio.exceptions import ApplicationError

from wf import gitx
from wf.daemon_thread import in_daemon_thread
from wf.engine.activities import (
    AttemptAbandoned,
    AttemptReport,
    ResetForRetry,
    RunAttempt,
    SetupResult,
    StartResolution,
    TaskActivities,
)
from wf.engine.driver import LocalControl
from wf.errors import WfError
from wf.model import NewEvent
from wf.temporal.pushes import Pushes
from wf.temporal.shapes import (
    AttemptDone,
    AttemptResult,
    AttemptStep,
    Facts,
    HostRead,
    HostText,
    PauseAttempt,
    Prepare,
    Prepared,
    TaskRun,
    TaskSetup,
)

if TYPE_CHECKING:
    from wf.repository import Repo

T = TypeVar("T")
FACTS_EVERY = 0.5  # seconds a running attempt's facts may wait to travel together
HEARTBEAT_EVERY = 1.0  # seconds; the SDK throttles what it sends (max_heartbeat_throttle_interval)


def heartbeat_every() -> float:
    """How often an activity heartbeats: every second, or a third of its heartbeat timeout
    when that is shorter. (At the minimum timeout, 1 s, a first heartbeat only after a
    second came too late under load: every retry timed out again before it adopted.)"""
    timeout = activity.info().heartbeat_timeout
    if timeout is None or not timeout.total_seconds():
        return HEARTBEAT_EVERY
    return min(HEARTBEAT_EVERY, timeout.total_seconds() / 3)
Report = Callable[[str, dict[str, Any]], None]
CLAIM_TTL = 60.0  # seconds a task taken here holds a slot before its attempt starts
URGENT = frozenset({"attempt.adopted", "task.paused", "task.resumed"})  # facts sent at once
BUDGETED_URGENT = URGENT | {"agent.usage"}  # and, when a budget can hold the task, its usage


def one_line_errors(fn: Callable[..., T]) -> Callable[..., T]:
    """An activity whose WfError (or OSError) becomes an ApplicationError of the same type
    name, in one line: the workflow records it, never a traceback."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return fn(*args, **kwargs)
        except WfError as exc:
            raise _application_error(exc) from None
        except OSError as exc:
            raise ApplicationError(f"{type(exc).__name__}: {exc}", type="OSError") from None
    return wrapper


def _application_error(exc: WfError) -> ApplicationError:
    return ApplicationError(exc.message, type=type(exc).__name__,
                            non_retryable=type(exc).__name__ == "ConfigError")


def _has_slots(repo: Repo) -> bool:
    from wf.repository import open_store

    store = open_store(repo)
    try:
        return bool(store.pool())
    finally:
        store.close()


class TemporalControl(LocalControl):
    """``AttemptControl`` for an attempt run by a Temporal worker: the local engine's control
    (a cancel or the worker's going wakes the attempt's thread through a pipe), with what it
    records sent to the task's workflow as ``facts`` instead of appended to a log."""

    def __init__(self, loop: asyncio.AbstractEventLoop, handle: Any, task_id: str, n: int,
                 extra: Mapping[str, Any]) -> None:
        super().__init__()
        self._loop, self._handle, self._extra = loop, handle, dict(extra)
        self._tid, self._n = task_id, n
        self.pid: tuple[int, int | None] | None = None
        self.is_paused = False
        # Facts wait up to FACTS_EVERY and travel together: each signal is a workflow task
        # (a no-op agent's spawn and output were two). What is left at the end goes back in
        # the activity's result instead (``take``).
        self._pending: list[tuple[str, dict[str, Any]]] = []
        self._times: list[float] = []
        self._since: float | None = None
        self._facts = threading.Lock()
        self.urgent = URGENT
        self.open_pipe()

    def _record(self, *events: NewEvent) -> None:
        if self.gone.is_set():
            raise AttemptAbandoned
        with self._facts:
            self._pending += [(e.type, {**e.data, **self._extra} if e.type == "attempt.spawned"
                               else e.data) for e in events]
            self._times += [time.time()] * len(events)
            now = time.monotonic()
            self._since = self._since or now
            # An adoption (a worker came back) is said at once: rare, and awaited; so are a
            # pause and a resume, and a budgeted task's usage (a budget pauses within 1 s).
            due = now - self._since >= FACTS_EVERY or any(
                e.type in self.urgent for e in events)
        if due:
            self.flush()

    def take(self) -> Facts:
        """The facts not sent yet, now the workflow gets them some other way."""
        with self._facts:
            facts = Facts(self._pending, self._times)
            self._pending, self._times, self._since = [], [], None
        return facts

    def due(self) -> bool:
        with self._facts:
            return self._since is not None and time.monotonic() - self._since >= FACTS_EVERY

    async def flush_async(self) -> None:
        """Send what waits (from the event loop: the heartbeat's turn)."""
        facts = self.take()
        if facts.events:
            await self._handle.signal("facts", facts)

    def flush(self) -> None:
        """Send what waits, from the attempt's thread; AttemptAbandoned when the worker is
        going or the workflow cannot take it."""
        facts = self.take()
        if not facts.events:
            return
        sent = asyncio.run_coroutine_threadsafe(self._handle.signal("facts", facts), self._loop)
        while not self.gone.is_set():
            try:
                sent.result(timeout=0.2)
                return
            except TimeoutError:
                continue
            except Exception as exc:  # the server or the workflow cannot take it: retry later
                raise AttemptAbandoned from exc
        sent.cancel()
        raise AttemptAbandoned

    def spawned(self, pid: int, pid_start: int | None, session: str | None) -> None:
        self.pid = (pid, pid_start)  # in every heartbeat: a retry adopts this process
        super().spawned(pid, pid_start, session)

    # Whether the agent's group is stopped, in every heartbeat too: a retry that adopts it
    # keeps it stopped until the workflow says again what it wants.
    def paused(self, pid: int) -> None:
        self.is_paused = True
        super().paused(pid)

    def resumed(self) -> None:
        self.is_paused = False
        super().resumed()


class WorkerActivities:
    """The activities one worker runs, bound to its clone's worktrees, logs and environment."""

    def __init__(self, repo: Repo, host: str, environ: Mapping[str, str], *, slots: int,
                 report: Report | None = None) -> None:
        from wf.worktrees import WorktreeManager

        wt = WorktreeManager(repo.root, repo.worktree_root, port_range=repo.config.port_range)
        # This host's own pool of warm worktrees, over its own clone and log (wf.pool).
        worktree_pool = None
        if repo.config.worktrees.pool or (repo.db_path.exists() and _has_slots(repo)):
            from wf.pool.keeper import pool_for

            worktree_pool = pool_for(repo, wt, environ)
        self.acts = TaskActivities(wt, environ, repo.logs_dir, worktree_pool)
        self.host = host
        self.report: Report = report or (lambda kind, data: None)
        self.slots = slots
        self.pushes = Pushes(wt.repo_root)
        self.running: set[str] = set()  # tasks whose attempt runs here now
        # The controls of the attempts running here, and pauses asked for an attempt that
        # has not started (or been adopted) here yet: ``pause_attempt`` reaches them.
        self.controls: dict[tuple[str, int], TemporalControl] = {}
        self.pause_wishes: dict[tuple[str, int], bool] = {}
        self.claimed: dict[str, float] = {}  # tasks taken here whose attempt has not started
        self._slots_lock = threading.Lock()
        # Sync activities of both queues share it (the attempts themselves run in threads
        # of their own): enough that neither queue's limit waits on the other's.
        self.pool = ThreadPoolExecutor(max_workers=2 * slots + 8, thread_name_prefix="wf-activity")

    def all(self) -> list[Callable[..., Any]]:
        return [self.ensure_worktree, self.host_read, self.worktree_exists, self.reset_for_retry,
                self.start_resolution, self.run_setup, self.run_attempt, self.task_result,
                self.release_worktree, self.pause_attempt]

    @activity.defn(name="wf.pause_attempt")
    def pause_attempt(self, inp: PauseAttempt) -> bool:
        """Have the attempt's own thread stop (SIGSTOP) or continue its agent's process group
        (it records ``task.paused`` / ``task.resumed``), or, with ``stop``, end the attempt
        as a budget failure at once (its activity's cancel, which the workflow also asks,
        reaches it only with the next heartbeat). Idempotent; True when the attempt runs
        here now, False when the wish waits for it to start or be adopted here (a stop then
        comes by the cancel)."""
        from wf.engine.attempt_plan import Stop
        from wf.model import AttemptState, FailureKind

        key = (inp.task_id, inp.n)
        with self._slots_lock:
            self.pause_wishes[key] = inp.pause
            control = self.controls.get(key)
        if control is not None and inp.stop is not None:
            control.request_stop(Stop(AttemptState.FAILED, FailureKind.BUDGET, inp.stop))
        elif control is not None:
            control.request_pause(inp.pause)
        return control is not None

    @activity.defn(name="wf.release_worktree")
    @one_line_errors
    def release_worktree(self, task_id: str) -> bool:
        """Give a succeeded task's pooled worktree back to this host's pool (idempotent:
        False when the pool no longer holds it for the task)."""
        pool = self.acts.worktree_pool
        return pool is not None and pool.give_back(task_id) is not None

    @activity.defn(name="wf.task_result")
    async def task_result(self, run: TaskRun) -> AttemptResult:
        """The result of a task workflow, once it ends, for a run of the repository workflow
        that did not start it (it continued as new since). Heartbeats while it waits: a
        worker that goes away has it retried elsewhere."""
        from temporalio.client import WorkflowFailureError

        handle = activity.client().get_workflow_handle(run.workflow_id, run_id=run.run_id,
                                                       result_type=AttemptResult)
        waiting = asyncio.ensure_future(handle.result(follow_runs=False))
        try:
            while True:
                done, _ = await asyncio.wait({waiting}, timeout=heartbeat_every())
                if done:
                    return waiting.result()
                activity.heartbeat()
        except WorkflowFailureError as exc:
            raise ApplicationError(f"{run.workflow_id} ended without a result: {exc.cause}",
                                   type="TaskWorkflowGone", non_retryable=True) from None
        finally:
            waiting.cancel()

    def free_slots(self) -> int:
        """Slots no attempt holds and no task taken here waits to fill."""
        with self._slots_lock:
            now = time.monotonic()
            waiting = {t for t, at in self.claimed.items() if now - at < CLAIM_TTL}
            return self.slots - len(self.running | waiting)

    def _take(self, task_id: str) -> None:
        """Take a new task for this host, or refuse it as busy (retried at once by Temporal,
        so a host with a free slot takes it): a host runs at most ``slots`` attempts."""
        with self._slots_lock:
            now = time.monotonic()
            self.claimed = {t: at for t, at in self.claimed.items() if now - at < CLAIM_TTL}
            if task_id not in self.claimed and len(self.running) + len(
                    self.claimed.keys() - self.running) >= self.slots:
                raise ApplicationError(f"host {self.host} has no free slot", type="HostBusy")
            self.claimed[task_id] = now

    @activity.defn(name="wf.ensure_worktree")
    @one_line_errors
    def ensure_worktree(self, inp: Prepare) -> Prepared:
        self._take(inp.worktree.task_id)
        root = self.acts.worktrees.repo_root
        try:
            for ref in inp.fetch:
                remote, branch = ref.split("/", 1)
                gitx.fetch(root, remote, branch)
            ready = self.acts.ensure_worktree(inp.worktree)
        except BaseException:
            with self._slots_lock:
                self.claimed.pop(inp.worktree.task_id, None)
            raise
        self.report("worktree", {"task": inp.worktree.task_id, "path": ready.path})
        return Prepared(ready.branch, ready.path, ready.created, ready.base_commit,
                        ready.merged, self.host)

    @activity.defn(name="wf.host_read")
    @one_line_errors
    def host_read(self, inp: HostRead) -> HostText:
        """The end of a log, or a task's diff, for a person on another machine."""
        if inp.kind == "log":
            with open(inp.path, "rb") as f:
                f.seek(0, 2)
                size = f.tell()
                f.seek(max(0, size - inp.max_bytes))
                data = f.read()
            return HostText(data.decode("utf-8", "replace"), size > inp.max_bytes)
        path = Path(inp.path)
        if inp.path and path.is_dir():
            text = gitx.diff_worktree(path, inp.base, stat=inp.stat)
        else:
            text = gitx.diff(self.acts.worktrees.repo_root, inp.base, inp.branch, stat=inp.stat)
        cut = text[:inp.max_bytes]
        return HostText(cut, len(cut) < len(text))

    @activity.defn(name="wf.worktree_exists")
    @one_line_errors
    def worktree_exists(self, path: str) -> bool:
        return self.acts.worktree_exists(path)

    @activity.defn(name="wf.reset_for_retry")
    @one_line_errors
    def reset_for_retry(self, inp: ResetForRetry) -> str | None:
        return self.acts.reset_for_retry(inp)

    @activity.defn(name="wf.start_resolution")
    @one_line_errors
    def start_resolution(self, inp: StartResolution) -> list[str]:
        return list(self.acts.start_conflict_resolution(inp))

    @activity.defn(name="wf.run_setup")
    @one_line_errors
    def run_setup(self, inp: TaskSetup) -> SetupResult:
        log = str(self.acts.files(inp.task_id, inp.n).log)
        return self.acts.run_setup(replace(inp.setup, log_path=log))

    @activity.defn(name="wf.run_attempt")
    async def run_attempt(self, step: AttemptStep) -> AttemptDone:
        report, left = await self._attempt(step.attempt)
        facts = {"facts": left.events, "fact_times": left.times}
        if not (step.push and report.ended == "exited" and report.commit):
            return AttemptDone(report, **facts)
        try:
            ref = await asyncio.to_thread(self._push, step.attempt, step.push, report.commit)
        except WfError as exc:
            return AttemptDone(report, push_error=exc.message, **facts)
        return AttemptDone(report, pushed=ref, **facts)

    def _push(self, inp: RunAttempt, remote: str, commit: str) -> str | None:
        """The branch on the remote (``origin/wf/a``), or None when this clone has no such
        remote (one clone, nothing to share)."""
        if not self.pushes.has_remote(remote):
            return None
        self.pushes.push(remote, commit, inp.branch)  # with others ending at the same time
        return f"{remote}/{inp.branch}"

    async def _attempt(self, inp: RunAttempt) -> tuple[AttemptReport, Facts]:
        info = activity.info()
        details = info.heartbeat_details
        paused = False
        if info.attempt > 1 or details:  # a retry: adopt the agent a previous try started
            pid = tuple(details[0]) if details and details[0] else None
            inp = replace(inp, adopt=True, spawned=pid)  # type: ignore[arg-type]
            paused = len(details) > 1 and bool(details[1])
        handle = activity.client().get_workflow_handle(info.workflow_id,
                                                       run_id=info.workflow_run_id)
        log = str(self.acts.files(inp.task_id, inp.n).log)
        control = TemporalControl(asyncio.get_running_loop(), handle, inp.task_id, inp.n,
                                  {"log_path": log, "host": self.host})
        if inp.poll is not None:  # a budget can hold it: its usage travels at once
            control.urgent = BUDGETED_URGENT
        if inp.adopt and inp.spawned:  # heartbeats say the same pid until it is adopted
            control.pid = inp.spawned
        if inp.adopt and paused:  # stopped by a budget: it stays so until the workflow says
            inp = replace(inp, pauses=((time.time(), None),))
            control.pause_wanted, control.is_paused = None, True
        self.report("attempt", {"task": inp.task_id, "n": inp.n, "adopt": inp.adopt})
        key = (inp.task_id, inp.n)
        with self._slots_lock:
            self.running.add(inp.task_id)
            self.claimed.pop(inp.task_id, None)
            self.controls[key] = control
            wish = self.pause_wishes.get(key)
        if wish is not None:
            control.request_pause(wish)
        try:
            report = await self._run_attempt(inp, control)
        finally:
            with self._slots_lock:
                self.running.discard(inp.task_id)
                self.controls.pop(key, None)
                self.pause_wishes.pop(key, None)  # a retry here is told again on adoption
        if control.cancel_reason is not None:  # a cancelled activity's result may not count
            await control.flush_async()
        return report, control.take()

    async def _run_attempt(self, inp: RunAttempt, control: TemporalControl) -> AttemptReport:

        def attempt() -> AttemptReport:
            try:
                return self.acts.run_attempt(inp, control)
            finally:
                control.close()

        work = asyncio.ensure_future(in_daemon_thread(attempt, name=f"wf-attempt-{inp.task_id}"))
        try:
            report = await self._heartbeat_until(work, control)
        except AttemptAbandoned:
            raise ApplicationError("the worker let the attempt go; a retry adopts it",
                                   type="AttemptAbandoned") from None
        self.report("ended", {"task": inp.task_id, "n": inp.n, "ended": report.ended})
        return report

    async def _heartbeat_until(self, work: asyncio.Future[AttemptReport],
                               control: TemporalControl) -> AttemptReport:
        # No heartbeat at once: the heartbeat timeout runs from the activity's start, the first
        # beat comes after ``every`` (a third of that timeout at most), and the pid it carries
        # is there by then. A no-op attempt ends before it: one call to the server less a task.
        cancelling = False
        every = heartbeat_every()
        while True:
            try:
                done, _ = await asyncio.wait({work}, timeout=every)
                if done:
                    return work.result()
                activity.heartbeat(control.pid, control.is_paused)
                if control.due():
                    await control.flush_async()
            except asyncio.CancelledError:
                why = activity.cancellation_details()
                if why is not None and why.cancel_requested and not cancelling:
                    cancelling = True  # the thread stops the agent's group and reports it
                    control.request_cancel("cancelled by signal")
                    continue
                # Worker shutdown, heartbeat timeout: the agent runs on; a retry adopts it.
                control.abandon()
                raise

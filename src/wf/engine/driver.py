"""One task's attempt in the local engine: the decisions of ``attempt_plan.py`` and
``decide.py`` carried out by the activities of ``activities.py``, each step recorded as
intent → effect → done.

The attempt itself (spawn or adopt, watch, stop, commit) is one synchronous activity run in a
daemon thread; ``LocalControl`` is its way back into the event loop: it records the agent's
pid and output as they come, passes a cancel on, and, when the engine is stopped (Ctrl-C),
lets the thread go without recording anything more, leaving the agent to the next engine.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio
import anyio.from_thread
import anyio.lowlevel

from wf.agents import process
from wf.daemon_thread import in_daemon_thread
from wf.engine import attempt_plan as plan
from wf.engine.activities import (
    AgentEnvironment,
    AttemptAbandoned,
    AttemptReport,
    EnsureWorktree,
    ResetForRetry,
    RunAttempt,
    RunSetup,
    StartResolution,
    first_line,
    last_line,
    wait_readable,
)
from wf.engine.budget_plan import BUDGET_POLL
from wf.engine.decide import Outcome, attempt_outcome, close_attempt, infra_outcome
from wf.errors import ResourceError, WfError, resource_error
from wf.model import AttemptState, FailureKind, NewEvent, task_stream

if TYPE_CHECKING:
    from wf.engine.scheduler import Scheduler
    from wf.spec import TaskSpec


class LocalControl:
    """``AttemptControl`` for an attempt run in a thread beside the event loop."""

    def __init__(self) -> None:
        self.cancel_reason: str | None = None
        self.stop: plan.Stop | None = None  # a reason to stop other than cancel (a budget)
        self.pause_wanted = False  # a budget holds the agent: its process group is stopped
        self.gone = threading.Event()  # the engine no longer waits for this attempt
        self._fds = threading.Lock()  # closing and poking the pipe never cross
        self._r = self._w = -1  # the wake-up pipe: made by bind, closed by the attempt's thread
        self._append: Any = None
        self._token: Any = None
        self._tid, self._n = "", 0

    def bind(self, append: Any, tid: str, n: int) -> None:
        """Called from the event loop just before the activity starts in its thread, which
        closes the pipe when it ends (a cancel that came earlier is in ``cancel_reason``)."""
        self._append, self._tid, self._n = append, tid, n
        self._token = anyio.lowlevel.current_token()
        self.open_pipe()

    def open_pipe(self) -> None:
        self._r, self._w = os.pipe()
        os.set_blocking(self._r, False)
        os.set_blocking(self._w, False)  # a full pipe already wakes the thread: never block

    def request_cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self._poke()

    def request_stop(self, stop: plan.Stop) -> None:
        self.stop = stop
        self._poke()

    def request_pause(self, wanted: bool) -> None:
        """Pause (or resume) the agent; a change wakes its thread at once."""
        if wanted != self.pause_wanted:
            self.pause_wanted = wanted
            self._poke()

    def abandon(self) -> None:
        self.gone.set()
        self._poke()

    def close(self) -> None:
        with self._fds:
            for fd in (self._r, self._w):
                with contextlib.suppress(OSError):
                    os.close(fd)
            self._r = self._w = -1

    def _poke(self) -> None:
        # Never after close: the number may already name another file of this process.
        with self._fds, contextlib.suppress(OSError):
            if self._w >= 0:
                os.write(self._w, b".")

    # -- the attempt's side --------------------------------------------------------------------
    def _record(self, *events: NewEvent) -> None:
        if self.gone.is_set():
            raise AttemptAbandoned
        try:
            anyio.from_thread.run(self._append, *events, token=self._token)
        except RuntimeError as exc:  # the event loop has ended
            raise AttemptAbandoned from exc

    def spawned(self, pid: int, pid_start: int | None, session: str | None) -> None:
        self._record(NewEvent(task_stream(self._tid), "attempt.spawned", {
            "n": self._n, "pid": pid, "pid_start": pid_start, "resumed_session": session}))

    def adopted(self, pid: int) -> None:
        self._record(NewEvent(task_stream(self._tid), "attempt.adopted",
                              {"n": self._n, "pid": pid}))

    def agent_events(self, events: list[NewEvent]) -> None:
        self._record(*events)

    def cancel_requested(self) -> bool:
        return self.cancel_reason is not None

    def stop_requested(self) -> plan.Stop | None:
        return self.stop

    def pause_requested(self) -> bool:
        return self.pause_wanted

    def paused(self, pid: int) -> None:
        self._record(NewEvent(task_stream(self._tid), "task.paused",
                              {"n": self._n, "pid": pid}))

    def resumed(self) -> None:
        self._record(NewEvent(task_stream(self._tid), "task.resumed", {"n": self._n}))

    def heartbeat(self) -> None:
        """Nothing to tell: the local engine sees its attempt's thread alive."""

    def wait(self, seconds: float, fd: int | None) -> None:
        if self.gone.is_set():
            raise AttemptAbandoned
        wait_readable([self._r] if fd is None else [self._r, fd], seconds)
        if self.gone.is_set():
            raise AttemptAbandoned
        with contextlib.suppress(BlockingIOError, OSError):
            os.read(self._r, 1024)  # drain the wake-ups


@dataclass
class Active:
    """A task with a driver; ``control`` reaches its running attempt."""

    task_id: str
    control: LocalControl = field(default_factory=LocalControl)

    def cancel(self, reason: str) -> None:
        self.control.request_cancel(reason)


async def drive(s: Scheduler, active: Active, adopt_n: int | None) -> None:
    """Run (or adopt, when ``adopt_n`` is given) one attempt of the task to its end."""
    tid = active.task_id
    try:
        if adopt_n is None:
            n = (s.p.tasks[tid]["attempts"] or 0) + 1
            log = s.acts.files(tid, n).log
            await s.append(NewEvent(task_stream(tid), "attempt.started",
                                    {"n": n, "log_path": str(log)},
                                    idempotency_key=f"attempt.started:{tid}:{n}"))
            outcome = await _prepare_and_run(s, active, n)
        else:
            n = adopt_n
            outcome = await _run_attempt(s, active, n, adopt=True)
        await _close(s, tid, n, outcome)
        if outcome.state is AttemptState.SUCCEEDED:
            await _release_worktree(s, tid)
    except ResourceError:
        raise  # the machine refused wf's step: stop, charge no attempt; resume redoes it
    except OSError as exc:
        refused = resource_error(str(exc), f"{exc.filename or 'a file of task ' + tid}",
                                 exc.errno)
        if refused is not None:
            raise refused from exc
        await _close(s, tid, s.p.tasks[tid]["attempts"],
                     infra_outcome(f"{type(exc).__name__}: {exc}"))
    except WfError as exc:  # an activity failed on wf's side: retry it
        await _close(s, tid, s.p.tasks[tid]["attempts"], infra_outcome(exc.message))


async def _release_worktree(s: Scheduler, tid: str) -> None:
    """With ``[worktrees] return_on_success``, give a succeeded task's pooled worktree back at
    once: every change of its agent is committed on its branch, so nothing is lost, and the
    next task takes it set up. Recorded first (``task.worktree_released``), so the task never
    points at a folder another task may hold; a later attempt takes a worktree again."""
    pool = s.acts.worktree_pool
    task = s.p.tasks[tid]
    if not (pool is not None and pool.settings.return_on_success
            and task["state"] == "done" and task["worktree"]):
        return
    if not await anyio.to_thread.run_sync(pool.holds, tid):
        return
    await s.append(NewEvent(task_stream(tid), "task.worktree_released", {
        "path": task["worktree"], "reason": "succeeded"}))
    try:
        await anyio.to_thread.run_sync(pool.give_back, tid)
    except (WfError, OSError):  # uncommitted files after all: the slot stays the task's
        pass                       # until `wf clean`, which gives it back or says why not


async def _close(s: Scheduler, tid: str, n: int, outcome: Outcome) -> None:
    await s.append(*close_attempt(s.p.tasks[tid], n, outcome, s.spec(tid).retry, s.d.rng,
                                  enqueue=s.queue_takes_successes))
    await s.adapt(tid, n, outcome)


async def _prepare_and_run(s: Scheduler, active: Active, n: int) -> Outcome:
    tid = active.task_id
    spec = s.spec(tid)
    failed = await _ensure_worktree(s, tid, spec)
    if failed is not None:
        return failed
    task = s.p.tasks[tid]
    path = task["worktree"]
    todo = plan.plan_attempt(task, spec, n)
    prompt = spec.prompt
    if todo.resolve:
        target = todo.resolve["target"]
        files = await anyio.to_thread.run_sync(s.acts.start_conflict_resolution,
                                               StartResolution(tid, path, n, target))
        await s.append(NewEvent(task_stream(tid), "attempt.conflict",
                                {"n": n, "target": target, "files": list(files)}))
        prompt = plan.conflict_prompt(spec, target, files, todo.resolve)
    elif todo.reset:
        backup = await anyio.to_thread.run_sync(s.acts.reset_for_retry, ResetForRetry(
            tid, path, n, task["base_commit"]))
        if backup:
            await s.append(NewEvent(task_stream(tid), "attempt.reset",
                                    {"n": n, "backup_ref": backup}))
    env = AgentEnvironment(plan.wf_variables(spec, task, n, prompt), spec.env, spec.pass_env)
    if todo.setup:
        result = await anyio.to_thread.run_sync(
            s.acts.run_setup, RunSetup(path, tuple(spec.setup), env, spec.timeout,
                                       str(s.acts.files(tid, n).log)),
            anyio.from_thread.check_cancelled)
        if not result.ok:
            return Outcome(AttemptState.FAILED, FailureKind.SETUP_ERROR,
                           f"setup command failed: {last_line(result.output)}")
        await s.append(NewEvent(task_stream(tid), "task.setup_done", {"n": n}))
    argv = process.fill_placeholders(plan.agent_command(spec, todo.session),
                                    plan.placeholders(spec, task, n, prompt, todo.session))
    return await _run_attempt(s, active, n, adopt=False, argv=tuple(argv), env=env,
                              session=todo.session)


async def _ensure_worktree(s: Scheduler, tid: str, spec: TaskSpec) -> Outcome | None:
    """The task's worktree, made or adopted and recorded; an Outcome when that failed."""
    task = s.p.tasks[tid]
    stream = task_stream(tid)
    if task["worktree_ready"] and task["worktree"]:
        if await anyio.to_thread.run_sync(s.acts.worktree_exists, task["worktree"]):
            return None
        # Deleted by hand: say so; `ensure` prunes git's record of it and makes it again
        # from the task's branch, which keeps every commit that reached it.
        await s.append(NewEvent(stream, "task.worktree_lost", {
            "path": task["worktree"], "branch": task["branch"]}))
    start = plan.worktree_start(spec, landed_target=s.merge_target
                                if s.queue_takes_successes else None)
    path = s.d.worktrees.worktree_root / tid
    await s.append(NewEvent(stream, "task.worktree_requested", {
        "branch": spec.branch, "path": str(path), "base_ref": spec.base,
        "start_point": start.start_point}))
    ready = await anyio.to_thread.run_sync(s.acts.ensure_worktree, EnsureWorktree(
        tid, spec.base, start.start_point, start.merge, task["base_commit"]))
    if not ready.merged:
        deps = ", ".join(spec.depends_on)
        return Outcome(AttemptState.FAILED, FailureKind.DEPENDENCY_CONFLICT,
                       f"the branches of {deps} do not merge cleanly")
    port = task["port"] or plan.port_for(tid, plan.ports_taken(s.p.tasks, tid),
                                         s.d.worktrees.port_range)
    await s.append(NewEvent(stream, "task.worktree_ready", {
        "branch": ready.branch, "path": ready.path, "base_commit": ready.base_commit,
        "port": port, "created": ready.created}))
    return None


async def _run_attempt(s: Scheduler, active: Active, n: int, *, adopt: bool,
                       argv: tuple[str, ...] = (), env: AgentEnvironment | None = None,
                       session: str | None = None) -> Outcome:
    tid = active.task_id
    spec = s.spec(tid)
    task = s.p.tasks[tid]
    inp = RunAttempt(
        task_id=tid, n=n, path=task["worktree"] or "", argv=argv,
        env=env or AgentEnvironment({}), started=s.p.attempts[(tid, n)]["started_ts"]
        or s.d.clock.now(), base_commit=task["base_commit"], branch=task["branch"] or spec.branch,
        commit_message=f"wf: {tid}: {first_line(spec.prompt)}", adapter=spec.adapter,
        timeout=spec.timeout, no_output_timeout=spec.no_output_timeout,
        max_log_bytes=s.d.config.log_max_bytes, adopt=adopt, session=session,
        pauses=tuple((a, b) for a, b in s.p.attempts[(tid, n)]["pauses"] or ()),
        poll=BUDGET_POLL if s.budgets_apply(tid) else None)
    if adopt:
        row = s.p.attempts[(tid, n)]
        spawned = (row["pid"], row["pid_start"]) if row.get("pid") else None
        inp = dataclasses.replace(inp, spawned=spawned)
    control = active.control
    control.bind(s.append, tid, n)
    await s.check_budget(tid)  # before the first look: a paused agent adopted stays paused

    def attempt() -> AttemptReport:
        try:
            return s.acts.run_attempt(inp, control)
        finally:
            control.close()  # here, not in the driver: an abandoned thread still waits on it

    try:
        report = await in_daemon_thread(attempt, name=f"wf-attempt-{tid}")
    finally:
        control.abandon()  # a cancelled engine: the thread stops at its next look
    return attempt_outcome(report)

"""The Temporal engine's task workflow: one attempt of one task, the local engine's ``drive``.

``TaskWorkflow`` (id ``<prefix>.<repo>.task.<id>``, one run per attempt) asks ``attempt_plan``
and ``decide`` what to do and has the activities of ``activities.py`` do it, on the queue of
the host that holds the task's worktree. Apart from the repository workflow (``workflows.py``)
and ``HostReadWorkflow`` (``host_read.py``) because the sandbox imports a workflow's module
afresh for every run and builds every workflow class in it: a task's run builds only this.

Workflow code is deterministic: time is ``workflow.now()`` (plus the offset a test's clock
sets), randomness ``workflow.random()``, and everything else comes in events and activity
results. The wf modules it imports are passed through the sandbox: they are the pure
decision modules (``tests/unit/test_decision_purity.py``) and the dataclasses activities take.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, FailureError, TimeoutError, TimeoutType

with workflow.unsafe.imports_passed_through():
    from wf.agents import process
    from wf.engine import attempt_plan as plan
    from wf.engine.activities import (
        AgentEnvironment,
        EnsureWorktree,
        ResetForRetry,
        RunAttempt,
        RunSetup,
        SetupResult,
        StartResolution,
        first_line,
        last_line,
    )
    from wf.engine.budget_plan import BUDGET_POLL
    from wf.engine.decide import Outcome, attempt_outcome, close_attempt, infra_outcome
    from wf.model import AttemptState, Event, FailureKind, task_stream
    from wf.pool.rules import is_slot_path
    from wf.spec import TaskSpec
    from wf.store.projections import Projection, apply, full_row
    from wf.temporal.shapes import (
        AttemptDone,
        AttemptInput,
        AttemptResult,
        AttemptStep,
        BudgetOrder,
        Facts,
        LiveUsage,
        PauseAttempt,
        Prepare,
        Prepared,
        TaskSetup,
        WireEvent,
        take_queue,
    )

DAY = 86400.0
# Activities fail on wf's side (git, a file) rarely and briefly; the agent's own failures are
# the workflow's to count, never these retries'.
INFRA_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(
    seconds=10), maximum_attempts=3, non_retryable_error_types=["ConfigError"])
# The patch that sends a task's first step to the take queue, which only a host with a free
# slot polls; before it, the first step went to the shared queue, where a host with no free
# slot took it only to refuse it (``HostBusy``) until another host's poller got it.
TAKE_QUEUE = "take-queue"
# The patch that has a budget's stop reach the agent by an activity on its host at once, as a
# pause does, beside the attempt's cancel (which waits for the activity's next heartbeat).
STOP_NOW = "budget-stop-now"
# A task's first step goes to any host with a free slot; one that turns out busy after all
# (two steps taken at once) refuses it and another takes it. Git failing there is the
# attempt's infra failure, which the task's own retry policy counts. Asked again every 0.1 s,
# no backoff: a slot freed on another host is taken at once instead of after a backoff of up
# to seconds.
TAKE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=0.1), backoff_coefficient=1.0,
                         maximum_attempts=0, non_retryable_error_types=[
                             "ConfigError", "GitError", "OSError", "ResourceError"])
# An attempt's activity is retried until it ends: each retry adopts the live agent.
ATTEMPT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=0.5),
                            maximum_interval=timedelta(seconds=5), maximum_attempts=0)


class WorkflowLog:
    """Events a workflow records: folded into its projection as they are recorded."""

    def __init__(self, p: Projection, offset: float) -> None:
        self.p, self.offset = p, offset
        self.events: list[WireEvent] = []
        self.versions: dict[str, int] = {}

    def now(self) -> float:
        return workflow.now().timestamp() + self.offset

    def fold(self, w: WireEvent) -> WireEvent:
        version = self.versions.get(w.stream, 0) + 1
        self.versions[w.stream] = version
        apply(self.p, Event(w.seq, w.stream, version, w.type, w.ts, w.data, w.key))
        self.events.append(w)
        return w


@workflow.defn(name="wf.task")
class TaskWorkflow:
    """One attempt of one task, from its worktree to the decision that closes it."""

    def __init__(self) -> None:
        self.cancel_reason: str | None = None
        self.attempt_task: asyncio.Task[Any] | None = None
        self.log: WorkflowLog | None = None
        self.pending_facts: list[Facts] = []
        # Budgets (the repository workflow judges them; this one obeys its BudgetOrders):
        self.pause_wanted = False  # what the last order said
        self.pause_told: bool | None = False  # what the host was last told (None: tell again)
        self.budget_stop: str | None = None  # the attempt ends as a budget failure
        self.stop_told = False  # the host was told to end it now (``wf.pause_attempt``)
        self.usage_dirty = False  # usage to report to the repository workflow
        self.attempt_over = False
        self.adoptions = 0

    @workflow.run
    async def run(self, inp: AttemptInput) -> AttemptResult:
        tid = inp.task["id"]
        p = Projection(tasks={tid: full_row("tasks", inp.task)},
                       attempts={(tid, inp.n): full_row("attempts", inp.attempt)})
        self.log = WorkflowLog(p, inp.clock_offset)
        self.inp, self.tid, self.n = inp, tid, inp.n
        self.spec = TaskSpec.model_validate(inp.task["spec"])
        self.host = inp.host
        self.pushed: str | None = None
        for facts in self.pending_facts:
            self.facts(facts)
        try:
            outcome = await self._prepare_and_run()
        except _HostLost as lost:
            outcome = self._host_lost(lost.host)
        except ActivityError as exc:
            outcome = infra_outcome(failure_cause(exc))
        self.attempt_over = True
        self._emit_all(close_attempt(p.tasks[tid], self.n, outcome, self.spec.retry,
                                     workflow.random(), enqueue=inp.enqueue))
        await self._release_worktree()
        return AttemptResult(self.log.events, self.host, self.pushed, outcome={
            "state": str(outcome.state), "kind": str(outcome.kind) if outcome.kind else None,
            "rate_limited": outcome.rate_limited, "retry_after": outcome.retry_after})

    async def _release_worktree(self) -> None:
        """``[worktrees] return_on_success``: a succeeded task's pooled worktree goes back to
        its host's pool at once (its work is committed on its branch). Recorded first, as on
        the local engine, so the task never points at a folder another task may hold."""
        path = self.task["worktree"]
        if not (self.inp.settings.return_on_success and self.task["state"] == "done"
                and self.host is not None and path and is_slot_path(path)):
            return
        self._emit("task.worktree_released", {"path": path, "reason": "succeeded"})
        # Not given back (its host gone, changes left after all): the slot stays the task's
        # until `wf clean` on that host gives it back or says why not.
        with contextlib.suppress(ActivityError, _HostLost):
            await self._activity("wf.release_worktree", self.tid, bool)

    def _host_lost(self, host: str) -> Outcome:
        """The host holding the worktree took no step for ``host_lost_after``: the next
        attempt is prepared on another host, from the branch this one pushed if any."""
        wait = self.inp.settings.host_lost_after
        start = self.inp.pushed.get(self.tid) or self.spec.base
        self._emit("task.host_lost", {"n": self.n, "host": host, "after": wait,
                                      "start_from": start})
        self.host = None
        return infra_outcome(f"host {host} took no step for {wait:g}s; the next attempt is "
                             f"prepared on another host from {start}")

    def _pushed(self, done: AttemptDone) -> None:
        """Record the push of the finished branch: the merge queue's host, and a host that
        prepares the task again, fetch it from the remote. A failed push leaves the work on
        this host's branch, and is said."""
        remote = self.inp.settings.remote
        if done.push_error:
            self._emit("task.push_failed", {"n": self.n, "remote": remote,
                                            "error": done.push_error})
        elif done.pushed:
            self.pushed = done.pushed
            self._emit("task.pushed", {"n": self.n, "remote": remote,
                                       "branch": self.spec.branch,
                                       "commit": done.report.commit})

    @workflow.signal(name="cancel")
    def cancel(self) -> None:
        self.cancel_reason = "cancelled by signal"
        if self.attempt_task is not None:
            self.attempt_task.cancel()

    @workflow.signal(name="budget")
    def budget(self, order: BudgetOrder) -> None:
        """The repository workflow's word on this task's budgets: pause its agent, let it
        run on, or stop the attempt as a ``budget`` failure."""
        if order.stop is not None:
            self.budget_stop = order.stop
            if self.attempt_task is not None:
                self.attempt_task.cancel()
            return
        self.pause_wanted = order.pause

    @workflow.signal(name="facts")
    def facts(self, facts: Facts) -> None:
        """Facts the attempt's activity reports as they happen (its pid, the agent's output)."""
        if self.log is None:  # a signal may come before run() starts
            self.pending_facts.append(facts)
            return
        self._emit_facts(facts.events, facts.times)

    @workflow.query(name="events")
    def events(self) -> list[WireEvent]:
        return list(self.log.events) if self.log else []

    # -- the attempt ---------------------------------------------------------------------------
    def _emit(self, type_: str, data: dict[str, Any], key: str | None = None,
              stream: str | None = None, ts: float | None = None) -> None:
        assert self.log is not None
        i = len(self.log.events) + 1
        self.log.fold(WireEvent(stream or task_stream(self.tid), type_, data,
                                self.log.now() if ts is None else ts,
                                key or f"tw:{self.inp.queue}:{self.tid}:{self.n}:{i}"))

    def _emit_facts(self, events: list[tuple[str, dict[str, Any]]], times: list[float]) -> None:
        """Facts with the time they happened on the host (the test clock's offset added),
        never later than now nor earlier than the attempt's last event."""
        assert self.log is not None
        if self.inp.budgeted and any(t in REPORTED for t, _ in events):
            self.usage_dirty = True
        if any(t == "attempt.adopted" for t, _ in events):
            self.adoptions += 1
            self.pause_told = None  # the host that adopted it hears again what is wanted
        for i, (type_, data) in enumerate(events):
            ts = None
            if i < len(times):
                last = self.log.events[-1].ts if self.log.events else 0.0
                ts = min(max(times[i] + self.log.offset, last), self.log.now())
            self._emit(type_, data, ts=ts)

    def _emit_all(self, events: list[Any]) -> None:
        for e in events:
            self._emit(e.type, e.data, e.idempotency_key, e.stream)

    @property
    def task(self) -> dict[str, Any]:
        assert self.log is not None
        return self.log.p.tasks[self.tid]

    def _queue(self) -> str:
        if self.host is None:
            return self.inp.queue
        return f"{self.inp.queue}.host.{self.host}"

    def _host_bound(self) -> dict[str, Any]:
        """A step sent to the host that holds the worktree waits for it ``host_lost_after``
        at most (a timeout Temporal does not retry); a first step goes to any host with a
        free slot (the take queue)."""
        if self.host is None:
            first = take_queue(self.inp.queue) if workflow.patched(TAKE_QUEUE) else self.inp.queue
            return {"task_queue": first}
        return {"task_queue": self._queue(), "schedule_to_start_timeout": timedelta(
            seconds=self.inp.settings.host_lost_after)}

    async def _activity(self, name: str, arg: Any, result_type: type, *,
                        timeout: float = 600.0) -> Any:
        host = self.host
        try:
            return await workflow.execute_activity(
                name, arg, result_type=result_type, **self._host_bound(),
                start_to_close_timeout=timedelta(seconds=timeout),
                retry_policy=INFRA_RETRY if host is not None else TAKE_RETRY)
        except ActivityError as exc:
            if host is not None and not_started(exc):
                raise _HostLost(host) from None
            raise

    async def _prepare_and_run(self) -> Outcome:
        spec, tid, n = self.spec, self.tid, self.n
        failed = await self._ensure_worktree()
        if failed is not None:
            return failed
        todo = plan.plan_attempt(self.task, spec, n)
        path = self.task["worktree"]
        prompt = spec.prompt
        if todo.resolve:
            target = todo.resolve["target"]
            files = await self._activity("wf.start_resolution",
                                         StartResolution(tid, path, n, target), list)
            self._emit("attempt.conflict", {"n": n, "target": target, "files": list(files)})
            prompt = plan.conflict_prompt(spec, target, files, todo.resolve)
        elif todo.reset:
            backup = await self._activity("wf.reset_for_retry", ResetForRetry(
                tid, path, n, self.task["base_commit"]), str)
            if backup:
                self._emit("attempt.reset", {"n": n, "backup_ref": backup})
        env = AgentEnvironment(plan.wf_variables(spec, self.task, n, prompt), spec.env,
                               spec.pass_env)
        if todo.setup:
            result = await self._activity("wf.run_setup", TaskSetup(tid, n, RunSetup(
                path, tuple(spec.setup), env, spec.timeout, "")), SetupResult,
                timeout=spec.timeout or DAY)
            if not result.ok:
                return Outcome(AttemptState.FAILED, FailureKind.SETUP_ERROR,
                               f"setup command failed: {last_line(result.output)}")
            self._emit("task.setup_done", {"n": n})
        if self.cancel_reason:
            return Outcome(AttemptState.CANCELLED, None, self.cancel_reason)
        template = plan.agent_command(spec, todo.session)
        values = plan.placeholders(spec, self.task, n, prompt, todo.session)
        argv = tuple(process.fill_placeholders(template, values))
        return await self._run_attempt(argv, env, todo.session)

    async def _ensure_worktree(self) -> Outcome | None:
        spec, tid = self.spec, self.tid
        task = self.task
        stream = task_stream(tid)
        if task["worktree_ready"] and task["worktree"] and self.host is not None:
            if await self._activity("wf.worktree_exists", task["worktree"], bool):
                return None
            # Deleted by hand: say so; ``ensure`` makes it again from the task's branch.
            self._emit("task.worktree_lost", {"path": task["worktree"],
                                              "branch": task["branch"]}, stream=stream)
        queue = self.inp.settings.merge
        start = plan.worktree_start(spec, landed_target=queue.target if self.inp.enqueue
                                    and queue is not None else None)
        # Branches finished on other hosts are on the remote; this task's own, when a lost
        # host pushed it, is where it starts again.
        pushed = self.inp.pushed
        start_point = pushed.get(tid) or (start.start_point and pushed.get(
            start.start_point.removeprefix("wf/"), start.start_point))
        merge = tuple(pushed.get(m.removeprefix("wf/"), m) for m in start.merge)
        fetch = tuple(r for r in (start_point, *merge) if r and r in pushed.values())
        self._emit("task.worktree_requested", {
            "branch": spec.branch, "path": None, "base_ref": spec.base,
            "start_point": start_point})
        ready: Prepared = await self._activity("wf.ensure_worktree", Prepare(EnsureWorktree(
            tid, spec.base, start_point, merge, task["base_commit"]), fetch), Prepared)
        self.host = ready.host
        if not ready.merged:
            return Outcome(AttemptState.FAILED, FailureKind.DEPENDENCY_CONFLICT,
                           f"the branches of {', '.join(spec.depends_on)} do not merge cleanly")
        port = task["port"] or plan.port_for(tid, self.inp.ports_taken,
                                             tuple(self.inp.settings.port_range))
        self._emit("task.worktree_ready", {
            "branch": ready.branch, "path": ready.path, "base_commit": ready.base_commit,
            "port": port, "created": ready.created, "host": ready.host})
        return None

    async def _run_attempt(self, argv: tuple[str, ...], env: AgentEnvironment,
                           session: str | None) -> Outcome:
        spec, task, n = self.spec, self.task, self.n
        assert self.log is not None
        inp = RunAttempt(
            task_id=self.tid, n=n, path=task["worktree"] or "", argv=argv, env=env,
            started=self.log.p.attempts[(self.tid, n)]["started_ts"] or self.log.now(),
            base_commit=task["base_commit"], branch=task["branch"] or spec.branch,
            commit_message=f"wf: {self.tid}: {first_line(spec.prompt)}", adapter=spec.adapter,
            timeout=spec.timeout, no_output_timeout=spec.no_output_timeout,
            max_log_bytes=self.inp.settings.log_max_bytes, session=session,
            pauses=tuple((a, b) for a, b in self.log.p.attempts[(self.tid, n)].get("pauses") or ()),
            poll=BUDGET_POLL if self.inp.budgeted else None)
        if self.inp.budgeted:
            asyncio.ensure_future(self._obey_budget())
            asyncio.ensure_future(self._report_usage())
        heartbeat = self.inp.settings.heartbeat_timeout
        host = self.host
        self.attempt_task = asyncio.ensure_future(workflow.execute_activity(
            "wf.run_attempt", AttemptStep(inp, self.inp.settings.remote),
            result_type=AttemptDone, **self._host_bound(),
            start_to_close_timeout=timedelta(seconds=(spec.timeout or 30 * DAY) + 3600),
            heartbeat_timeout=timedelta(seconds=heartbeat), retry_policy=ATTEMPT_RETRY,
            cancellation_type=workflow.ActivityCancellationType.WAIT_CANCELLATION_COMPLETED))
        if self.cancel_reason:
            self.attempt_task.cancel()
        try:
            done: AttemptDone = await self.attempt_task
        except ActivityError as exc:
            if self.budget_stop:
                return Outcome(AttemptState.FAILED, FailureKind.BUDGET, self.budget_stop)
            if self.cancel_reason:
                return Outcome(AttemptState.CANCELLED, None, self.cancel_reason)
            if host is not None and not_started(exc):
                raise _HostLost(host) from None
            raise exc
        except asyncio.CancelledError:
            if self.budget_stop:
                return Outcome(AttemptState.FAILED, FailureKind.BUDGET, self.budget_stop)
            return Outcome(AttemptState.CANCELLED, None, self.cancel_reason or "cancelled")
        self._emit_facts(done.facts, done.fact_times)  # reported since its last signal
        if self.budget_stop:  # stopped as a cancel is, but it ends as a budget failure
            return Outcome(AttemptState.FAILED, FailureKind.BUDGET, self.budget_stop)
        self._pushed(done)
        return attempt_outcome(done.report)

    async def _obey_budget(self) -> None:
        """Tell the host what the last ``BudgetOrder`` wants of the agent's process group,
        each time it changes and again after an adoption (``wf.pause_attempt``)."""
        while True:
            await workflow.wait_condition(
                lambda: self.attempt_over or self.pause_told != self.pause_wanted
                or (self.budget_stop is not None and not self.stop_told))
            if self.attempt_over:
                return
            if self.budget_stop is not None and not self.stop_told:
                self.stop_told = True
                if workflow.patched(STOP_NOW):  # before the cancel's next heartbeat
                    with contextlib.suppress(ActivityError, _HostLost):
                        await self._activity("wf.pause_attempt", PauseAttempt(
                            self.tid, self.n, self.pause_wanted, self.budget_stop), bool,
                            timeout=60.0)
                continue
            wanted, adoptions = self.pause_wanted, self.adoptions
            with contextlib.suppress(ActivityError, _HostLost):  # the attempt's own end says
                await self._activity("wf.pause_attempt", PauseAttempt(self.tid, self.n, wanted),
                                     bool, timeout=60.0)
            if adoptions == self.adoptions:  # else the host that adopted it is told again
                self.pause_told = wanted

    async def _report_usage(self) -> None:
        """Send what the task has used so far (and its pauses) to the repository workflow,
        which judges the budgets, whenever it changed: one signal at a time, the latest."""
        while True:
            await workflow.wait_condition(lambda: self.attempt_over or self.usage_dirty)
            if self.attempt_over:
                return
            self.usage_dirty = False
            task = self.task
            pauses = self.log.p.attempts[(self.tid, self.n)].get("pauses") if self.log else None
            with contextlib.suppress(FailureError):  # its next run hears the next report
                await workflow.get_external_workflow_handle(f"{self.inp.queue}.repo").signal(
                    "usage", LiveUsage(self.tid, self.n, int(task["tokens"] or 0),
                                       task["cost_usd"], [list(p) for p in pauses or ()]))


# What a budgeted task reports to the repository workflow as soon as it folds it.
REPORTED = frozenset({"agent.usage", "task.paused", "task.resumed"})


class _HostLost(Exception):
    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


def failure_cause(exc: BaseException) -> str:
    """The innermost message of an activity's failure, in one line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, TimeoutError) and exc.type == TimeoutType.SCHEDULE_TO_START:
        return "no worker took the step in time"
    return " ".join(str(exc).split()) or type(exc).__name__


def not_started(exc: ActivityError) -> bool:
    """Whether a step failed because no worker of its host took it in time (a timeout that
    Temporal does not retry)."""
    cause = exc.cause
    return isinstance(cause, TimeoutError) and cause.type == TimeoutType.SCHEDULE_TO_START

"""The Temporal engine's repository workflow: the scheduler, the same decisions as locally.

``RepoWorkflow`` (one per repository, id ``<prefix>.<repo>.repo``) is the scheduler: it holds
the projection of every task, asks ``schedule.schedule`` what starts and what is blocked,
``signal_rules`` what a person's command does, and ``schedule.sleep_for`` when a retry is due
(a durable timer); it starts one ``TaskWorkflow`` (``task_workflow.py``) per attempt and folds
the events it returns. It starts the merge queue's workflow and keeps its events in the one
log (``queue_workflow.py``; a chain started before that ran the queue inside it,
``queue_flow.py``), and continues as new when its history grows long (``carry.py``).

Workflow code is deterministic: time is ``workflow.now()`` (plus the offset a test's clock
sets), randomness ``workflow.random()``, and everything else comes in events and activity
results. The wf modules it imports are passed through the sandbox: they are the pure
decision modules (``tests/unit/test_decision_purity.py``) and the dataclasses activities take.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from datetime import timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError
from temporalio.workflow import ParentClosePolicy

# Workflow code too, imported in the sandbox.
from wf.temporal.host_read import HostReadWorkflow
from wf.temporal.queue_flow import QueueFlow
from wf.temporal.queue_workflow import MERGE_WORKFLOW, MergeLink, QueueWorkflow
from wf.temporal.task_workflow import (
    TaskWorkflow,
    WorkflowLog,
    failure_cause,
)

with workflow.unsafe.imports_passed_through():
    from wf.engine import attempt_plan as plan
    from wf.engine import budget_plan as budgets
    from wf.engine.budget import Budget, parse_budget
    from wf.engine.decide import close_attempt, infra_outcome
    from wf.engine.schedule import schedule, sleep_for
    from wf.engine.signal_rules import VERBS, decide_signal, judge_signal
    from wf.model import SIGNAL_STREAM, task_stream
    from wf.spec import TaskSpec
    from wf.store.projections import Projection
    from wf.temporal import carry
    from wf.temporal.shapes import (
        EVENTS_PER_QUERY,
        AttemptInput,
        AttemptResult,
        BudgetOrder,
        EventsPage,
        LiveUsage,
        QueueReport,
        Settings,
        SignalRequest,
        Submit,
        TaskRun,
        WireEvent,
        settings_from,
    )

__all__ = ["HostReadWorkflow", "QueueWorkflow", "RepoWorkflow", "TaskWorkflow"]

DAY = 86400.0
# The patch that lets the repository workflow continue as new: task workflows it starts after
# it outlive its run; a later run of the chain waits for their results (docs/temporal.md).
CONTINUE_AS_NEW = "continue-as-new"
# Waiting for a task workflow's result is retried until it comes (a worker went away);
# a workflow that failed or was terminated is not waited for again.
WATCH_RETRY = RetryPolicy(initial_interval=timedelta(seconds=0.5),
                          maximum_interval=timedelta(seconds=5), maximum_attempts=0,
                          non_retryable_error_types=["TaskWorkflowGone"])


@workflow.defn(name="wf.repo")
class RepoWorkflow:
    """The repository's scheduler and its one log, for as long as the repository is used:
    one chain of runs, each continuing as new when its history grows long (``carry.py``)."""

    @workflow.init
    def __init__(self, queue: str, carried: bytes | None = None) -> None:
        """The state before any signal or update is handled: a run continued from an
        earlier one starts from what that one carried."""
        self.p = Projection()
        self.log = WorkflowLog(self.p, 0.0)
        self.settings = Settings()
        self.queue = queue
        self.seq_base = 0  # the last sequence number the chain's earlier runs recorded
        self.submitted: set[str] = set()  # keys of the task.submitted events recorded
        self.hosts: dict[str, str] = {}  # task -> the host holding its worktree
        self.pushed: dict[str, str] = {}  # task -> its branch on the shared remote
        self.running: dict[str, int] = {}  # task -> the attempt its task workflow runs
        self.runs_of: dict[str, str] = {}  # task -> the run id of its task workflow
        self.starting: set[str] = set()  # tasks whose task workflow is being started
        self.bound: set[str] = set()  # task workflows that end with this run (pre-patch)
        self.cancel_pending: set[str] = set()  # cancelled while its workflow was starting
        self.sending = 0  # cancel signals on their way to task workflows
        self.signals: list[tuple[int, SignalRequest]] = []
        self.woken = False
        self.continuing = False  # the history is long: continue as new at the next rest
        self.runs = 1
        # Keys of this workflow's own events: unique to this chain of runs, so a repository
        # workflow started afresh never has its events taken for an earlier one's.
        self.chain = workflow.info().first_execution_run_id[:12]
        # The merge queue, once a run turns [merge] on: its own workflow (``MergeLink``), or
        # run inside this one in a chain started before that patch (``QueueFlow``).
        self.merge: QueueFlow | MergeLink | None = None
        self.merge_running = False
        # Budgets: what each budgeted running task reported it has used, and what it was
        # last told (run, pause, stop); both carried on when the run continues as new.
        self.live: dict[str, LiveUsage] = {}
        self.orders: dict[str, str] = {}
        if carried is not None:
            self._resume(carry.unpack(carried))

    def _record(self, stream: str, type_: str, data: dict[str, Any],
                key: str | None = None, *, ts: float | None = None,
                reported: bool = False) -> WireEvent:
        seq = self.seq_base + len(self.log.events) + 1
        recorded = self.log.fold(WireEvent(stream, type_, data, self.log.now() if ts is None
                                           else ts, key or f"tw:{self.chain}:{seq}", seq))
        if type_ == "task.submitted":
            self.submitted.add(recorded.key)
        self.woken = True
        if self.merge is not None:
            self.merge.poke()
            if not reported and type_.startswith("queue.") and isinstance(self.merge, MergeLink):
                self.merge.forward(recorded)
        return recorded

    def record_reported(self, w: WireEvent) -> None:
        """Record an event the merge-queue workflow recorded (its key, its time)."""
        self._record(w.stream, w.type, w.data, w.key, ts=w.ts, reported=True)

    def record_event(self, e: Any) -> WireEvent:
        """Record a decision's ``NewEvent`` (the merge queue records through here)."""
        return self._record(e.stream, e.type, e.data, e.idempotency_key)

    def _start_merge_queue(self) -> None:
        if self.merge is not None and not self.merge_running:
            self.merge_running = True
            asyncio.create_task(self.merge.run())

    def wake(self) -> None:
        self.woken = True

    @workflow.run
    async def run(self, queue: str, carried: bytes | None = None) -> None:
        if isinstance(self.merge, QueueFlow) and workflow.patched(MERGE_WORKFLOW):
            # A chain started before the queue had its own workflow: it moves there now,
            # between two of its rounds (the run before parked it to continue as new).
            self.merge = MergeLink.taking_over(self, self.merge)
        self._start_merge_queue()  # carried from the run before
        for tid, n in self.running.items():  # task workflows started by a run before
            asyncio.create_task(self._watch(tid, n))
        while True:
            self._handle_signals()
            if not self.continuing and self._history_long():
                self.continuing = True  # the merge queue stops at its next rest
                if self.merge is not None:
                    self.merge.poke()
            if self.continuing and self._at_rest():
                self._continue_as_new()
            self._check_budgets()
            self._start_ready()
            due = min(sleep_for(self.p.tasks, self.log.now(), DAY), self._budget_due())
            # A timeout is the retry timer firing, not an error (it raises; uncaught, it
            # failed the workflow and lost the repository's projection).
            with contextlib.suppress(asyncio.TimeoutError):
                await workflow.wait_condition(lambda: self.woken,
                                              timeout=None if due >= DAY else max(due, 0.001))
            self.woken = False

    # -- continuing as new ---------------------------------------------------------------------
    def _history_long(self) -> bool:
        info = workflow.info()
        return (info.get_current_history_length() >= self.settings.continue_after
                or info.is_continue_as_new_suggested())

    def _at_rest(self) -> bool:
        """Nothing of this run's is half done: no task workflow starting or bound to this run,
        no cancel on its way, no signal unhandled, the merge queue between two rounds."""
        return (not self.starting and not self.bound and not self.sending
                and not self.signals and workflow.all_handlers_finished()
                and (self.merge is None or self.merge.parked))

    def _continue_as_new(self) -> None:
        merge = self.merge.state() if self.merge is not None else None
        state = carry.carry_from(
            self.p, seq_base=self.seq_base + len(self.log.events),
            versions=dict(self.log.versions), submitted=sorted(self.submitted),
            hosts=self.hosts, pushed=self.pushed, running=self.running, runs_of=self.runs_of,
            settings=asdict(self.settings), offset=self.log.offset, merge=merge,
            runs=self.runs + 1, live={t: asdict(u) for t, u in self.live.items()},
            orders=self.orders)
        workflow.continue_as_new(args=[self.queue, carry.pack(state)])

    def _resume(self, c: carry.Carry) -> None:
        self.seq_base, self.runs = c.seq_base, c.runs
        self.p = carry.projection_of(c)
        self.log = WorkflowLog(self.p, c.offset)
        self.log.versions = dict(c.versions)
        self.submitted = set(c.submitted)
        self.hosts, self.pushed, self.running = dict(c.hosts), dict(c.pushed), dict(c.running)
        self.runs_of = dict(c.runs_of)
        self.settings = settings_from(c.settings)
        self.live = {t: LiveUsage(**u) for t, u in c.live.items()}
        self.orders = dict(c.orders)
        if c.merge is not None and "link" in c.merge:  # its loop starts with the run
            self.merge = MergeLink.resumed(self, c.merge["link"])
        elif c.merge is not None:
            self.merge = QueueFlow.resumed(self, c.merge)
        self.woken = True

    # -- people and the client ---------------------------------------------------------------
    @workflow.signal(name="submit")
    def submit(self, inp: Submit) -> None:
        """Record the ``task.submitted`` events the log does not hold yet, and the settings
        of the latest ``wf run`` (its tasks file may change ``max_parallel``)."""
        self.settings = inp.settings
        if inp.settings.merge is not None:
            if self.merge is None:
                self.merge = MergeLink(self, inp.settings.merge) \
                    if workflow.patched(MERGE_WORKFLOW) else QueueFlow(self, inp.settings.merge)
                self._start_merge_queue()
            else:  # the latest run's [merge] (its check, its target) from the next round on
                self.merge.configure(inp.settings.merge)
        for e in inp.events:
            if e.key not in self.submitted:
                self._record(e.stream, e.type, e.data, e.key)
        self.woken = True

    @workflow.update(name="signal")
    def signal(self, req: SignalRequest) -> int:
        """A person's command: recorded as ``signal.sent`` and acted on by the loop."""
        sent = self._record(SIGNAL_STREAM, "signal.sent",
                            {"kind": req.kind, "task": req.task_id, **req.data})
        self.signals.append((sent.seq, req))
        self.woken = True
        return sent.seq

    @signal.validator
    def _judge(self, req: SignalRequest) -> None:
        verdict = judge_signal(req.kind, req.task_id, self.p.tasks.get(req.task_id),
                               self.p.queue.get(req.task_id),
                               queue_enabled=self.merge is not None,
                               running=req.task_id in self.running,
                               branch=req.data.get("branch"))
        if not verdict.applies:
            raise ApplicationError(f"cannot {VERBS.get(req.kind, req.kind)} {req.task_id}: "
                                   f"{verdict.reason}", verdict.hint, type="Refused",
                                   non_retryable=True)

    @workflow.signal(name="usage")
    def usage(self, u: LiveUsage) -> None:
        """What a budgeted task's attempt has used so far (``task_workflow._report_usage``)."""
        if self.running.get(u.task_id) == u.n:
            self.live[u.task_id] = u
            self.woken = True

    @workflow.signal(name="queue_report")
    def queue_report(self, r: QueueReport) -> None:
        """What the merge-queue workflow recorded, and whether it is stopped."""
        if isinstance(self.merge, MergeLink):
            self.merge.report(r)
        self.woken = True

    @workflow.signal(name="clock_offset")
    def clock_offset(self, seconds: float) -> None:
        """The engine's injected clock moved (tests): timers count by it from now on."""
        self.log.offset = seconds
        self.woken = True

    @workflow.query(name="events")
    def events(self, since: int) -> EventsPage:
        """The events after sequence number ``since``; when an earlier run of the chain
        recorded them, the page names that run instead (``earlier``)."""
        running = sorted(f"{self.queue}.task.{tid}" for tid in self.running)
        busy = self.merge is not None and self.merge.busy()
        paused = self.merge.paused if self.merge else None
        if since < self.seq_base:
            return EventsPage([], since, running, busy, paused, first=self.seq_base,
                              earlier=workflow.info().continued_run_id)
        i = since - self.seq_base
        page = self.log.events[i: i + EVENTS_PER_QUERY]
        return EventsPage(page, since + len(page), running, queue_busy=busy,
                          queue_paused=paused, first=self.seq_base)

    # -- the loop ------------------------------------------------------------------------------
    def _handle_signals(self) -> None:
        pending, self.signals = self.signals, []
        for seq, req in pending:
            out = decide_signal(req.kind, req.task_id, req.data, self.p.tasks, self.p.queue,
                                queue_enabled=self.merge is not None,
                                running=req.task_id in self.running)
            if out.stop_attempt:
                if req.task_id in self.starting:
                    self.cancel_pending.add(req.task_id)
                else:
                    self._send_cancel(req.task_id, self.running[req.task_id])
            for e in out.events:
                self._record(e.stream, e.type, e.data, e.idempotency_key)
            self._record(SIGNAL_STREAM, "signal.handled", {
                "signal_seq": seq, "task": req.task_id, "result": out.result},
                f"signal.handled:{self.chain}:{seq}")

    def _send_cancel(self, tid: str, n: int) -> None:
        self.sending += 1  # now, not when the task first runs: the run may not end before
        asyncio.create_task(self._cancel(tid, n))

    async def _cancel(self, tid: str, n: int) -> None:
        try:
            await workflow.get_external_workflow_handle(f"{self.queue}.task.{tid}").signal(
                TaskWorkflow.cancel)
        except FailureError as exc:
            # Gone without telling (terminated by hand): nobody else closes its attempt.
            if self.running.get(tid) != n or tid in self.bound:
                return
            self._lost(tid, n, f"task workflow gone: {exc}")
        finally:
            self.sending -= 1
            self.woken = True

    @property
    def _queue_takes_successes(self) -> bool:
        """Whether every success joins the merge queue (``[merge] auto`` with the queue on)."""
        return self.merge is not None and self.merge.s.auto

    def _start_ready(self) -> None:
        if self.continuing and (self.merge is None or self.merge.parked):
            return  # about to continue as new: the next run starts them, at once. (While
            # the merge queue finishes a round, which may take a check's whole run, tasks
            # still start.)
        running = {t: self.p.tasks[t]["agent"] for t in self.running}
        now = self.log.now()
        tasks, attempts = self._with_live()  # the run's usage counts what runs, live
        held, exceeded = budgets.held(tasks, attempts, now, self._run_budget())
        for e in exceeded:
            self._record(e.stream, e.type, e.data, e.idempotency_key)
        plan_ = schedule(budgets.holding(self.p.tasks, held), running, now,
                         max_parallel=self.settings.max_parallel,
                         agent_limits=budgets.start_limits(
                             self.settings.agent_limits, self._ceilings(), self.p.agent_limits,
                             now),
                         deps_must_land=self._queue_takes_successes)
        for e in plan_.blocked:
            self._record(e.stream, e.type, e.data, e.idempotency_key)
        for tid in plan_.start:
            self._start_attempt(tid)

    def _start_attempt(self, tid: str) -> None:
        n = (self.p.tasks[tid]["attempts"] or 0) + 1
        self._record(task_stream(tid), "attempt.started", {"n": n, "log_path": None},
                     f"attempt.started:{tid}:{n}")
        # The branches this attempt may start from: its own and its dependencies'.
        near = {tid, *(self.p.tasks[tid]["depends_on"] or ())}
        inp = AttemptInput(
            task=dict(self.p.tasks[tid]), attempt=dict(self.p.attempts[(tid, n)]), n=n,
            enqueue=self._queue_takes_successes,
            ports_taken=sorted(plan.ports_taken(self.p.tasks, tid)),
            settings=self.settings, queue=self.queue,
            host=self.hosts.get(tid), clock_offset=self.log.offset,
            pushed={t: b for t, b in self.pushed.items() if t in near},
            budgeted=budgets.budgets_apply(self.p.tasks[tid]["spec"], self._run_budget()))
        self.running[tid] = n
        self.starting.add(tid)
        asyncio.create_task(self._drive(tid, inp))

    async def _drive(self, tid: str, inp: AttemptInput) -> None:
        """Start the attempt's task workflow and fold its result. It outlives this run
        (ABANDON): when this run continues as new meanwhile, the next one watches it
        (``_watch``). One started before that patch ends with this run (TERMINATE), which
        therefore does not continue as new while it runs."""
        wid = f"{self.queue}.task.{tid}"
        outlives = workflow.patched(CONTINUE_AS_NEW)
        try:
            try:
                handle = await workflow.start_child_workflow(
                    TaskWorkflow.run, inp, id=wid, task_queue=self.queue,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    parent_close_policy=ParentClosePolicy.ABANDON if outlives
                    else ParentClosePolicy.TERMINATE)
            finally:
                self.starting.discard(tid)
            if handle.first_execution_run_id:
                self.runs_of[tid] = handle.first_execution_run_id
            if not outlives:
                self.bound.add(tid)
            if tid in self.cancel_pending:
                self.cancel_pending.discard(tid)
                self._send_cancel(tid, inp.n)
            result: AttemptResult = await handle
        except Exception as exc:  # the task workflow itself failed: close the attempt
            self.bound.discard(tid)
            self._lost(tid, inp.n, f"task workflow failed: {exc}")
            return
        self.bound.discard(tid)
        self._finish(tid, inp.n, result)

    async def _watch(self, tid: str, n: int) -> None:
        """The result of a task workflow a run before this one started: an activity waits
        for it (a workflow cannot await another that is not its child)."""
        try:
            result: AttemptResult = await workflow.execute_activity(
                "wf.task_result", TaskRun(f"{self.queue}.task.{tid}", self.runs_of.get(tid)),
                result_type=AttemptResult, task_queue=self.queue,
                start_to_close_timeout=timedelta(days=60),
                heartbeat_timeout=timedelta(seconds=self.settings.heartbeat_timeout),
                retry_policy=WATCH_RETRY)
        except ActivityError as exc:
            self._lost(tid, n, f"task workflow failed: {failure_cause(exc)}")
            return
        self._finish(tid, n, result)

    def _lost(self, tid: str, n: int, why: str) -> None:
        """Close attempt ``n`` whose task workflow ended without saying how."""
        if self.running.get(tid) != n:
            return
        spec = TaskSpec.model_validate(self.p.tasks[tid]["spec"])
        for e in close_attempt(self.p.tasks[tid], n, infra_outcome(why), spec.retry,
                               workflow.random(), enqueue=False):
            self._record(e.stream, e.type, e.data, e.idempotency_key)
        self._finish(tid, n, AttemptResult([], None))

    def _finish(self, tid: str, n: int, result: AttemptResult) -> None:
        """Fold how attempt ``n`` ended, once (a cancel that found its workflow gone may have
        closed it already)."""
        if self.running.get(tid) != n:
            return
        self.runs_of.pop(tid, None)
        for w in result.events:  # at the time each happened, as the local engine has them
            self._record(w.stream, w.type, w.data, w.key, ts=w.ts)
        if result.host:
            self.hosts[tid] = result.host
        else:  # lost (or never reached): the next attempt is prepared on whichever host takes it
            self.hosts.pop(tid, None)
        if result.pushed:
            self.pushed[tid] = result.pushed
        self.running.pop(tid, None)
        self.live.pop(tid, None)
        self.orders.pop(tid, None)
        if result.outcome is not None:
            self._adapt(tid, n, result.outcome)
        self.woken = True

    # -- budgets and adaptive limits (wf.engine.budget_plan decides) ---------------------------
    def _run_budget(self) -> Budget | None:
        return parse_budget(self.settings.budget, "budget") if self.settings.budget else None

    def _with_live(self) -> tuple[dict[str, Any], dict[tuple[str, int], Any]]:
        """The projection's tasks and attempts with what running attempts reported so far."""
        if not self.live:
            return self.p.tasks, self.p.attempts
        tasks, attempts = dict(self.p.tasks), dict(self.p.attempts)
        for tid, u in self.live.items():
            tasks[tid] = {**tasks[tid], "tokens": u.tokens, "cost_usd": u.cost_usd}
            key = (tid, u.n)
            if key in attempts:
                attempts[key] = {**attempts[key], "pauses": u.pauses}
        return tasks, attempts

    def _check_budgets(self) -> None:
        """Tell each budgeted running task whether to pause, run on or stop, when that
        changes; ``budget.exceeded`` once per crossing."""
        run_budget = self._run_budget()
        ids = [t for t in self.running if t not in self.starting
               and budgets.budgets_apply(self.p.tasks[t]["spec"], run_budget)]
        if not ids:
            return
        tasks, attempts = self._with_live()
        found = budgets.verdicts(ids, tasks, attempts, self.log.now(), run_budget)
        for tid, verdict in found.items():
            order = "run" if verdict is None else verdict.action
            if order == self.orders.get(tid, "run"):
                continue
            if verdict is not None:
                e = budgets.exceeded_event(tid, self.p.tasks[tid], verdict)
                if e is not None:
                    self._record(e.stream, e.type, e.data, e.idempotency_key)
            self.orders[tid] = order
            stop = f"budget: {verdict.message}" if verdict is not None and order == "stop" \
                else None
            self.sending += 1
            asyncio.create_task(self._tell(tid, BudgetOrder(order == "pause", stop)))

    async def _tell(self, tid: str, order: BudgetOrder) -> None:
        try:
            await workflow.get_external_workflow_handle(f"{self.queue}.task.{tid}").signal(
                "budget", order)
        except FailureError:
            pass  # ended meanwhile: its result closes the attempt
        finally:
            self.sending -= 1

    def _budget_due(self) -> float:
        """Seconds until the loop must look again without being woken: a wall budget is
        crossed by the clock alone (looked at every second), and an adaptive limit's
        ``not_before`` lets a held start go."""
        now, due = self.log.now(), DAY
        run_budget = self._run_budget()
        if any(budgets.has_wall(self.p.tasks[t]["spec"], run_budget) for t in self.running):
            due = 1.0
        for row in self.p.agent_limits.values():
            if (row["not_before"] or 0) > now:
                due = min(due, row["not_before"] - now)
        return due

    def _ceilings(self) -> dict[str, int]:
        """The adaptive agents among the tasks waiting to start, with their ceilings."""
        out: dict[str, int] = {}
        for row in self.p.tasks.values():
            if row["state"] in budgets.WAITING and row["agent"] not in out:
                ceiling = self._ceiling(row)
                if ceiling is not None:
                    out[row["agent"]] = ceiling
        return out

    def _ceiling(self, task: dict[str, Any]) -> int | None:
        agent = task["agent"]
        return budgets.adaptive_ceiling((task["spec"] or {}).get("adapter"),
                                        self.settings.adaptive.get(agent),
                                        self.settings.agent_limits.get(agent),
                                        self.settings.max_parallel)

    def _adapt(self, tid: str, n: int, outcome: dict[str, Any]) -> None:
        task = self.p.tasks[tid]
        ceiling = self._ceiling(task)
        if ceiling is None:
            return
        e = budgets.adapt(task["agent"], self.p.agent_limits.get(task["agent"]), ceiling,
                          state=outcome["state"], kind=outcome["kind"],
                          rate_limited=bool(outcome.get("rate_limited")),
                          retry_after=outcome.get("retry_after"),
                          started=(self.p.attempts.get((tid, n)) or {}).get("started_ts"),
                          now=self.log.now())
        if e is not None:
            self._record(e.stream, e.type, e.data, e.idempotency_key)

"""The Temporal engine's workflows: the same decisions as the local engine, durably.

``RepoWorkflow`` (one per repository, id ``<prefix>.<repo>.repo``) is the scheduler: it holds
the projection of every task, asks ``schedule.schedule`` what starts and what is blocked,
``signal_rules`` what a person's command does, and ``schedule.sleep_for`` when a retry is due
(a durable timer); it starts one ``TaskWorkflow`` per attempt and folds the events it returns.
``TaskWorkflow`` (id ``<prefix>.<repo>.task.<id>``, one run per attempt) is the driver: it asks
``attempt_plan`` and ``decide`` what to do and has the activities of ``activities.py`` do it,
on the queue of the host that holds the task's worktree.

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
from temporalio.exceptions import (
    ActivityError,
    ApplicationError,
    FailureError,
    TimeoutError,
    TimeoutType,
)
from temporalio.workflow import ParentClosePolicy

# Workflow code too, imported in the sandbox.
from wf.temporal.queue_flow import QueueFlow, not_started

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
    from wf.engine.decide import Outcome, attempt_outcome, close_attempt, infra_outcome
    from wf.engine.schedule import schedule, sleep_for
    from wf.engine.signal_rules import VERBS, decide_signal, judge_signal
    from wf.model import SIGNAL_STREAM, AttemptState, Event, FailureKind, task_stream
    from wf.spec import TaskSpec
    from wf.store.projections import Projection, apply
    from wf.temporal import carry
    from wf.temporal.shapes import (
        EVENTS_PER_QUERY,
        AttemptDone,
        AttemptEnd,
        AttemptInput,
        AttemptResult,
        AttemptStep,
        EventsPage,
        Facts,
        HostRead,
        HostText,
        Prepare,
        Prepared,
        Settings,
        SignalRequest,
        Submit,
        TaskSetup,
        WireEvent,
        settings_from,
    )

DAY = 86400.0
# The patch that lets the repository workflow continue as new: task workflows it starts after
# it outlive its run and tell it how their attempt ended by a signal (docs/temporal.md).
CONTINUE_AS_NEW = "continue-as-new"
# Activities fail on wf's side (git, a file) rarely and briefly; the agent's own failures are
# the workflow's to count, never these retries'.
INFRA_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(
    seconds=10), maximum_attempts=3, non_retryable_error_types=["ConfigError"])
# A task's first step goes to any host; a busy one refuses it and another takes it. Git
# failing there is the attempt's infra failure, which the task's own retry policy counts.
# Asked again every 0.1 s, no backoff: a slot freed on another host is taken at once instead
# of after a backoff of up to seconds.
TAKE_RETRY = RetryPolicy(initial_interval=timedelta(seconds=0.1), backoff_coefficient=1.0,
                         maximum_attempts=0, non_retryable_error_types=[
                             "ConfigError", "GitError", "OSError", "ResourceError"])
# An attempt's activity is retried until it ends: each retry adopts the live agent.
ATTEMPT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=0.5),
                            maximum_interval=timedelta(seconds=5), maximum_attempts=0)


class _Log:
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


@workflow.defn(name="wf.repo")
class RepoWorkflow:
    """The repository's scheduler and merge queue, for as long as the repository is used:
    one chain of runs, each continuing as new when its history grows long (``carry.py``)."""

    @workflow.init
    def __init__(self, queue: str, carried: bytes | None = None) -> None:
        """The state before any signal or update is handled: a run continued from an
        earlier one starts from what that one carried."""
        self.p = Projection()
        self.log = _Log(self.p, 0.0)
        self.settings = Settings()
        self.queue = queue
        self.seq_base = 0  # the last sequence number the chain's earlier runs recorded
        self.submitted: set[str] = set()  # keys of the task.submitted events recorded
        self.hosts: dict[str, str] = {}  # task -> the host holding its worktree
        self.pushed: dict[str, str] = {}  # task -> its branch on the shared remote
        self.running: dict[str, int] = {}  # task -> the attempt its task workflow runs
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
        self.merge: QueueFlow | None = None  # the merge queue, once a run turns [merge] on
        self.merge_running = False
        if carried is not None:
            self._resume(carry.unpack(carried))

    def _record(self, stream: str, type_: str, data: dict[str, Any],
                key: str | None = None) -> WireEvent:
        seq = self.seq_base + len(self.log.events) + 1
        recorded = self.log.fold(WireEvent(stream, type_, data, self.log.now(),
                                           key or f"tw:{self.chain}:{seq}", seq))
        if type_ == "task.submitted":
            self.submitted.add(recorded.key)
        self.woken = True
        if self.merge is not None:
            self.merge.poke()
        return recorded

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
        self._start_merge_queue()  # carried from the run before
        while True:
            self._handle_signals()
            if not self.continuing and self._history_long():
                self.continuing = True  # the merge queue stops at its next rest
                if self.merge is not None:
                    self.merge.poke()
            if self.continuing and self._at_rest():
                self._continue_as_new()
            self._start_ready()
            due = sleep_for(self.p.tasks, self.log.now(), DAY)
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
            hosts=self.hosts, pushed=self.pushed, running=self.running,
            settings=asdict(self.settings), offset=self.log.offset, merge=merge,
            runs=self.runs + 1)
        workflow.continue_as_new(args=[self.queue, carry.pack(state)])

    def _resume(self, c: carry.Carry) -> None:
        self.seq_base, self.runs = c.seq_base, c.runs
        self.p = carry.projection_of(c)
        self.log = _Log(self.p, c.offset)
        self.log.versions = dict(c.versions)
        self.submitted = set(c.submitted)
        self.hosts, self.pushed, self.running = dict(c.hosts), dict(c.pushed), dict(c.running)
        self.settings = settings_from(c.settings)
        if c.merge is not None:  # its loop starts with the run
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
                self.merge = QueueFlow(self, inp.settings.merge)
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

    @workflow.signal(name="clock_offset")
    def clock_offset(self, seconds: float) -> None:
        """The engine's injected clock moved (tests): timers count by it from now on."""
        self.log.offset = seconds
        self.woken = True

    @workflow.signal(name="attempt_done")
    def attempt_done(self, end: AttemptEnd) -> None:
        """A task workflow's attempt ended (it tells even a later run of this chain)."""
        self._finish(end.task_id, end.n, end.result)

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
        if self.continuing:  # the next run starts them, at once
            return
        running = {t: self.p.tasks[t]["agent"] for t in self.running}
        plan_ = schedule(self.p.tasks, running, self.log.now(),
                         max_parallel=self.settings.max_parallel,
                         agent_limits=self.settings.agent_limits,
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
            pushed={t: b for t, b in self.pushed.items() if t in near})
        self.running[tid] = n
        self.starting.add(tid)
        asyncio.create_task(self._drive(tid, inp))

    async def _drive(self, tid: str, inp: AttemptInput) -> None:
        """Start the attempt's task workflow. It outlives this run (ABANDON) and tells how
        the attempt ended by the ``attempt_done`` signal; awaiting it here only catches a
        workflow that failed. A task workflow started before that patch ends with this run
        and is awaited for its result."""
        wid = f"{self.queue}.task.{tid}"
        told = workflow.patched(CONTINUE_AS_NEW)
        try:
            try:
                handle = await workflow.start_child_workflow(
                    TaskWorkflow.run, inp, id=wid, task_queue=self.queue,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    parent_close_policy=ParentClosePolicy.ABANDON if told
                    else ParentClosePolicy.TERMINATE)
            finally:
                self.starting.discard(tid)
            if not told:
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
        if not told:
            self._finish(tid, inp.n, result)

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
        """Fold how attempt ``n`` ended, once (its signal and its result may both come)."""
        if self.running.get(tid) != n:
            return
        for w in result.events:
            self._record(w.stream, w.type, w.data, w.key)
        if result.host:
            self.hosts[tid] = result.host
        else:  # lost (or never reached): the next attempt is prepared on whichever host takes it
            self.hosts.pop(tid, None)
        if result.pushed:
            self.pushed[tid] = result.pushed
        self.running.pop(tid, None)
        self.woken = True


@workflow.defn(name="wf.task")
class TaskWorkflow:
    """One attempt of one task, from its worktree to the decision that closes it."""

    def __init__(self) -> None:
        self.cancel_reason: str | None = None
        self.attempt_task: asyncio.Task[Any] | None = None
        self.log: _Log | None = None
        self.pending_facts: list[Facts] = []

    @workflow.run
    async def run(self, inp: AttemptInput) -> AttemptResult:
        tid = inp.task["id"]
        p = Projection(tasks={tid: dict(inp.task)}, attempts={(tid, inp.n): dict(inp.attempt)})
        self.log = _Log(p, inp.clock_offset)
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
            outcome = infra_outcome(_cause(exc))
        self._emit_all(close_attempt(p.tasks[tid], self.n, outcome, self.spec.retry,
                                     workflow.random(), enqueue=inp.enqueue))
        result = AttemptResult(self.log.events, self.host, self.pushed)
        parent = workflow.info().parent
        if parent is not None and workflow.patched(CONTINUE_AS_NEW):
            # The run that started this one may have continued as new: a signal to the
            # workflow id reaches the run of the chain that lives now.
            try:
                await workflow.get_external_workflow_handle(parent.workflow_id).signal(
                    RepoWorkflow.attempt_done, AttemptEnd(tid, self.n, result))
                result = AttemptResult([], self.host, self.pushed)  # told: not twice
            except FailureError:
                pass  # the repository workflow is gone (terminated): nobody to tell
        return result

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

    @workflow.signal(name="facts")
    def facts(self, facts: Facts) -> None:
        """Facts the attempt's activity reports as they happen (its pid, the agent's output)."""
        if self.log is None:  # a signal may come before run() starts
            self.pending_facts.append(facts)
            return
        for type_, data in facts.events:
            self._emit(type_, data)

    @workflow.query(name="events")
    def events(self) -> list[WireEvent]:
        return list(self.log.events) if self.log else []

    # -- the attempt ---------------------------------------------------------------------------
    def _emit(self, type_: str, data: dict[str, Any], key: str | None = None,
              stream: str | None = None) -> None:
        assert self.log is not None
        i = len(self.log.events) + 1
        self.log.fold(WireEvent(stream or task_stream(self.tid), type_, data, self.log.now(),
                                key or f"tw:{self.inp.queue}:{self.tid}:{self.n}:{i}"))

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
        at most (a timeout Temporal does not retry); a first step goes to any host."""
        if self.host is None:
            return {"task_queue": self.inp.queue}
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
            max_log_bytes=self.inp.settings.log_max_bytes, session=session)
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
            if self.cancel_reason:
                return Outcome(AttemptState.CANCELLED, None, self.cancel_reason)
            if host is not None and not_started(exc):
                raise _HostLost(host) from None
            raise exc
        except asyncio.CancelledError:
            return Outcome(AttemptState.CANCELLED, None, self.cancel_reason or "cancelled")
        self._pushed(done)
        return attempt_outcome(done.report)


class _HostLost(Exception):
    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


def _cause(exc: BaseException) -> str:
    """The innermost message of an activity's failure, in one line."""
    while exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, TimeoutError) and exc.type == TimeoutType.SCHEDULE_TO_START:
        return "no worker took the step in time"
    return " ".join(str(exc).split()) or type(exc).__name__



@workflow.defn(name="wf.host_read")
class HostReadWorkflow:
    """``wf logs`` and ``wf diff`` from another machine: one step on the host that has it."""

    @workflow.run
    async def run(self, inp: HostRead) -> HostText:
        queue = f"{workflow.info().task_queue}.host.{inp.host}"
        return await workflow.execute_activity(
            "wf.host_read", inp, result_type=HostText, task_queue=queue,
            schedule_to_start_timeout=timedelta(seconds=10),
            start_to_close_timeout=timedelta(seconds=60),
            retry_policy=RetryPolicy(maximum_attempts=1))

"""The local engine's interpreter: an anyio loop over the event log.

It decides nothing itself. Each turn it asks ``schedule.schedule`` which tasks start and which
are blocked, ``signal_rules.decide_signal`` what each new signal does, and ``schedule.sleep_for``
how long to sleep; it appends what they return and starts one driver (``driver.py``) per task
that starts. Its view of the world is a ``Projection`` folded from the events it reads and
appends; on start it hands every attempt the log calls running to a driver in adopt mode, so
nothing is redone blindly.

Leaving the loop (Ctrl-C, SIGTERM, a crash) never stops an agent: agents run under the shim in
sessions of their own, and the next engine adopts them.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from wf.engine import budget as budgets
from wf.engine.attempt_plan import Stop
from wf.engine.base import Clock, SystemClock
from wf.engine.driver import Active, drive
from wf.engine.schedule import all_settled, schedule, sleep_for
from wf.engine.signal_rules import QUEUE_SIGNALS, decide_signal
from wf.model import (
    RUN_STREAM,
    SIGNAL_STREAM,
    AttemptState,
    Event,
    FailureKind,
    NewEvent,
    task_stream,
)
from wf.spec import TaskSpec
from wf.store.projections import Projection, apply

if TYPE_CHECKING:
    from wf.config import Config
    from wf.engine.activities import TaskActivities
    from wf.engine.decide import Outcome
    from wf.merge_queue.queue_loop import QueueLoop
    from wf.pool.keeper import WorktreePool
    from wf.store import EventStore, GroupCommitWriter
    from wf.worktrees import WorktreeManager

ADAPTIVE_BY_DEFAULT = frozenset({"claude", "codex", "gemini", "opencode", "aider"})
SIGNAL_POLL = 0.25  # how often the loop looks for signals written by other processes


@dataclass
class EngineDeps:
    """What the composition root (``engine.local.LocalEngine``) hands the scheduler."""

    store: EventStore
    writer: GroupCommitWriter
    worktrees: WorktreeManager
    config: Config
    logs_dir: Path
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    worktree_pool: WorktreePool | None = None


class Scheduler:
    def __init__(self, deps: EngineDeps, *, merge_target: str | None = None) -> None:
        from wf.engine.activities import TaskActivities

        self.d = deps
        self.p = Projection()
        self.active: dict[str, Active] = {}
        self.touched: set[str] = set()  # tasks this engine session drove or changed
        self.acts: TaskActivities = TaskActivities(deps.worktrees, deps.environ, deps.logs_dir,
                                                      deps.worktree_pool)
        self._wake = anyio.Event()
        self._last_signal_poll = 0.0
        self.merge_target = merge_target if deps.config.merge.enabled else None
        self.queue: QueueLoop | None = None
        self._budgeted: bool | None = None  # whether the run has a [budget]
        self._limit_seen: set[str] = set()  # agents whose adaptiveness was looked up
        self._ceilings: dict[str, int] = {}  # adaptive agents: their max_parallel

    # -- the log ----------------------------------------------------------------------------
    async def append(self, *events: NewEvent) -> list[Event]:
        committed = await self.d.writer.append(list(events))
        for e in committed:
            apply(self.p, e)
            if e.task_id:
                self.touched.add(e.task_id)
            if e.type == "agent.usage" and self._any_budget():
                self.wake()  # look at the budgets now, not at the next turn
        return committed

    def spec(self, tid: str) -> TaskSpec:
        return TaskSpec.model_validate(self.p.tasks[tid]["spec"])

    @property
    def queue_takes_successes(self) -> bool:
        """Whether every success joins the merge queue (``[merge] auto`` with the queue on)."""
        return self.queue is not None and self.d.config.merge.auto

    # -- the main loop ----------------------------------------------------------------------
    async def run(self, run_id: str, argv: list[str]) -> Projection:
        self.p = await anyio.to_thread.run_sync(self.d.store.projection)
        await self.append(NewEvent(RUN_STREAM, "run.started", {
            "run_id": run_id, "pid": os.getpid(), "host": os.uname().nodename, "argv": argv}))
        async with anyio.create_task_group() as tg:
            if self.merge_target:
                from wf.merge_queue.queue_loop import QueueLoop

                self.queue = QueueLoop.for_scheduler(self, self.merge_target)
                tg.start_soon(self.queue.open_repository)  # while signals are read
            # Adopt running attempts first, so a waiting cancel finds them; then act on
            # waiting signals, so the queue's first round sees every entry already sent.
            self._reconcile(tg)
            await self._poll_signals()
            if self.queue is not None:
                tg.start_soon(self.queue.run)
            while True:
                await self._poll_signals()
                await self._check_budgets()
                await self._start_ready(tg)
                if not self.active and self._all_settled():
                    break
                with anyio.move_on_after(sleep_for(self.p.tasks, self.d.clock.now(),
                                                   SIGNAL_POLL)):
                    await self._wake.wait()
                self._wake = anyio.Event()
            tg.cancel_scope.cancel()  # the queue loops until told to stop
        return self.p

    def _all_settled(self) -> bool:
        return all_settled(self.p.tasks) and not (self.queue and self.queue.busy())

    def wake(self) -> None:
        self._wake.set()

    # -- budgets (wf.engine.budget decides; the attempt's control carries it out) -----------
    def _any_budget(self) -> bool:
        if self._budgeted is None:
            self._budgeted = self.d.config.budget is not None and not self.d.config.budget.empty
        return self._budgeted or any(self.budgets_apply(t) for t in self.active)

    def budgets_apply(self, tid: str) -> bool:
        """Whether a budget of the task, its agent or the run can hold task ``tid``."""
        spec = self.p.tasks[tid]["spec"] or {}
        run = self.d.config.budget
        return any(not budgets.parse_budget(b, "budget").empty
                   for b in (spec.get("budget"), spec.get("agent_budget"), run))

    async def check_budget(self, tid: str) -> None:
        """Pause, resume or stop the running attempt of ``tid`` as its budgets say."""
        if tid in self.active and self.budgets_apply(tid):
            used = budgets.usages(self.p.tasks, self.p.attempts, self.d.clock.now())
            await self._act_on_budget(tid, used)

    async def _check_budgets(self) -> None:
        running = [t for t in self.active if self.p.tasks[t]["state"] == "running"
                   and self.budgets_apply(t)]
        if running:
            used = budgets.usages(self.p.tasks, self.p.attempts, self.d.clock.now())
            for tid in running:
                await self._act_on_budget(tid, used)

    async def _act_on_budget(self, tid: str, used: budgets.Usages) -> None:
        verdict = budgets.task_verdict(tid, self.p.tasks, used, self.d.config.budget)
        control = self.active[tid].control
        if verdict is None:
            control.request_pause(False)
            return
        await self._record_exceeded(tid, verdict)
        if verdict.action == "stop":
            control.request_stop(Stop(AttemptState.FAILED, FailureKind.BUDGET,
                                      f"budget: {verdict.message}"))
        else:
            control.request_pause(True)

    async def _record_exceeded(self, tid: str, verdict: budgets.Exceeded) -> None:
        """``budget.exceeded`` (an attention event), once per crossing: a raise clears it."""
        task = self.p.tasks[tid]
        if task["budget_exceeded"] is None:
            await self.append(NewEvent(task_stream(tid), "budget.exceeded", {
                "n": task["attempts"], **verdict.as_event()}))

    async def _held_by_budget(self) -> set[str]:
        """Tasks ready to start that a crossed budget holds back (recorded once each)."""
        waiting = [t for t, row in self.p.tasks.items()
                   if row["state"] in ("queued", "retrying") and self.budgets_apply(t)]
        if not waiting:
            return set()
        used = budgets.usages(self.p.tasks, self.p.attempts, self.d.clock.now())
        held = set()
        for tid in waiting:
            verdict = budgets.task_verdict(tid, self.p.tasks, used, self.d.config.budget)
            if verdict is not None:
                held.add(tid)
                await self._record_exceeded(tid, verdict)
        return held

    # -- adaptive parallelism (wf.engine.budget.next_limit decides) ---------------------------
    def _adaptive(self, agent: str, adapter: str | None) -> int | None:
        """The ceiling of ``agent``'s adaptive limit, or None when it is not adaptive: on by
        default for the agent CLIs wf knows, ``[agents.NAME] adaptive`` says otherwise."""
        cfg = self.d.config.agents.get(agent)
        on = cfg.adaptive if cfg is not None and cfg.adaptive is not None else (
            adapter in ADAPTIVE_BY_DEFAULT)
        if not on:
            return None
        return (cfg.max_parallel if cfg is not None else None) or self.d.config.max_parallel

    def _agent_limits(self, now: float) -> dict[str, int | None]:
        limits: dict[str, int | None] = {
            name: cfg.max_parallel for name, cfg in self.d.config.agents.items()}
        for row in self.p.tasks.values():
            agent = row["agent"]
            if row["state"] not in ("queued", "retrying") or agent in self._limit_seen:
                continue
            self._limit_seen.add(agent)
            ceiling = self._adaptive(agent, (row["spec"] or {}).get("adapter"))
            if ceiling is not None:
                self._ceilings[agent] = ceiling
        for agent, ceiling in self._ceilings.items():
            lim = budgets.AgentLimit.of_row(self.p.agent_limits.get(agent), ceiling)
            limits[agent] = lim.limit if budgets.may_start(lim, 0, now) else 0
        return limits

    async def adapt(self, tid: str, n: int, outcome: Outcome) -> None:
        """After attempt ``n`` of ``tid`` ended as ``outcome``: its agent's adaptive limit,
        recorded if it changed (``agent.limit_changed`` on the stream ``agent:NAME``)."""
        task = self.p.tasks[tid]
        agent = task["agent"]
        ceiling = self._adaptive(agent, (task["spec"] or {}).get("adapter"))
        if ceiling is None:
            return
        self._ceilings[agent] = ceiling
        before = budgets.AgentLimit.of_row(self.p.agent_limits.get(agent), ceiling)
        signal = budgets.attempt_signal(str(outcome.state),
                                        str(outcome.kind) if outcome.kind else None,
                                        outcome.rate_limited)
        attempt = self.p.attempts.get((tid, n)) or {}
        after = budgets.next_limit(before, signal, now=self.d.clock.now(), max_parallel=ceiling,
                                   retry_after=outcome.retry_after,
                                   started=attempt.get("started_ts"))
        data = budgets.limit_event(agent, before, after)
        if data is not None:  # with its ceiling, so that `wf status` can say "2 of 8"
            await self.append(NewEvent(f"agent:{agent}", "agent.limit_changed",
                                       {**data, "max_parallel": ceiling}))

    async def _start_ready(self, tg: anyio.abc.TaskGroup) -> None:
        limits = self._agent_limits(self.d.clock.now())
        held = await self._held_by_budget()
        tasks = self.p.tasks if not held else {
            t: ({**row, "state": "held"} if t in held else row) for t, row in self.p.tasks.items()}
        plan = schedule(tasks, {t: self.p.tasks[t]["agent"] for t in self.active},
                        self.d.clock.now(), max_parallel=self.d.config.max_parallel,
                        agent_limits=limits, deps_must_land=self.queue_takes_successes)
        if plan.blocked:
            await self.append(*plan.blocked)
        for tid in plan.start:
            self._start_driver(tg, tid, None)

    def _start_driver(self, tg: anyio.abc.TaskGroup, tid: str, adopt_n: int | None) -> None:
        self.active[tid] = Active(tid)
        self.touched.add(tid)
        tg.start_soon(self._drive, tid, adopt_n)

    async def _drive(self, tid: str, adopt_n: int | None) -> None:
        try:
            await drive(self, self.active[tid], adopt_n)
        finally:
            self.active.pop(tid, None)
            self.wake()
            if self.queue is not None:
                self.queue.wake()

    def _reconcile(self, tg: anyio.abc.TaskGroup) -> None:
        """Every attempt the log calls running: adopt it, finish it, or record it lost."""
        for tid, task in list(self.p.tasks.items()):
            if task["state"] == "running":
                self._start_driver(tg, tid, task["attempts"])

    # -- signals ----------------------------------------------------------------------------
    async def _poll_signals(self) -> None:
        now = time.monotonic()
        if now - self._last_signal_poll < SIGNAL_POLL * 0.8:
            return
        self._last_signal_poll = now
        pending = await anyio.to_thread.run_sync(self.d.store.signals)
        # Queue signals (a stream of `wf queue add`) are decided from the projection alone, so
        # a run of them is one append; a second signal for the same entry waits for the first.
        batch: list[NewEvent] = []
        batched: set[str] = set()
        for sig in pending:
            tid, kind = sig["task_id"], sig["kind"]
            queue_signal = kind in QUEUE_SIGNALS and self.queue is not None
            if not queue_signal or tid in batched:
                await self._append_queue_batch(batch)
                batch, batched = [], set()
            outcome = decide_signal(kind, tid, sig.get("data") or {}, self.p.tasks, self.p.queue,
                                    queue_enabled=self.queue is not None,
                                    running=tid in self.active)
            if outcome.stop_attempt:
                self.active[tid].cancel("cancelled by signal")
            batch += [*outcome.events, NewEvent(SIGNAL_STREAM, "signal.handled", {
                "signal_seq": sig["seq"], "task": tid, "result": outcome.result},
                idempotency_key=f"signal.handled:{sig['seq']}")]
            if queue_signal:
                batched.add(tid)
            else:
                await self.append(*batch)
                batch = []
        await self._append_queue_batch(batch)

    async def _append_queue_batch(self, batch: list[NewEvent]) -> None:
        if batch:
            await self.append(*batch)
            if self.queue is not None:
                self.queue.wake()

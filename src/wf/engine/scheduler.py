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

from wf.engine import budget_plan
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
        return budget_plan.budgets_apply(self.p.tasks[tid]["spec"], self.d.config.budget)

    async def check_budget(self, tid: str) -> None:
        """Pause, resume or stop the running attempt of ``tid`` as its budgets say."""
        if tid in self.active and self.budgets_apply(tid):
            await self._act_on_budgets([tid])

    async def _check_budgets(self) -> None:
        await self._act_on_budgets([t for t in self.active if self.p.tasks[t]["state"]
                                    == "running" and self.budgets_apply(t)])

    async def _act_on_budgets(self, tids: list[str]) -> None:
        found = budget_plan.verdicts(tids, self.p.tasks, self.p.attempts, self.d.clock.now(),
                                     self.d.config.budget)
        for tid, verdict in found.items():
            control = self.active[tid].control
            if verdict is None:
                control.request_pause(False)
                continue
            e = budget_plan.exceeded_event(tid, self.p.tasks[tid], verdict)
            if e is not None:
                await self.append(e)
            if verdict.action == "stop":
                control.request_stop(Stop(AttemptState.FAILED, FailureKind.BUDGET,
                                          f"budget: {verdict.message}"))
            else:
                control.request_pause(True)

    # -- adaptive parallelism (wf.engine.budget_plan) ------------------------------------------
    def _ceiling(self, agent: str, adapter: str | None) -> int | None:
        cfg = self.d.config.agents.get(agent)
        return budget_plan.adaptive_ceiling(adapter, cfg.adaptive if cfg else None,
                                            cfg.max_parallel if cfg else None,
                                            self.d.config.max_parallel)

    def _agent_limits(self, now: float) -> dict[str, int | None]:
        for row in self.p.tasks.values():
            agent = row["agent"]
            if row["state"] not in budget_plan.WAITING or agent in self._limit_seen:
                continue
            self._limit_seen.add(agent)
            ceiling = self._ceiling(agent, (row["spec"] or {}).get("adapter"))
            if ceiling is not None:
                self._ceilings[agent] = ceiling
        configured = {name: cfg.max_parallel for name, cfg in self.d.config.agents.items()}
        return budget_plan.start_limits(configured, self._ceilings, self.p.agent_limits, now)

    async def adapt(self, tid: str, n: int, outcome: Outcome) -> None:
        """After attempt ``n`` of ``tid`` ended as ``outcome``: its agent's adaptive limit,
        recorded if it changed (``agent.limit_changed`` on the stream ``agent:NAME``)."""
        task = self.p.tasks[tid]
        agent = task["agent"]
        ceiling = self._ceiling(agent, (task["spec"] or {}).get("adapter"))
        if ceiling is None:
            return
        self._ceilings[agent] = ceiling
        e = budget_plan.adapt(
            agent, self.p.agent_limits.get(agent), ceiling, state=str(outcome.state),
            kind=str(outcome.kind) if outcome.kind else None, rate_limited=outcome.rate_limited,
            retry_after=outcome.retry_after,
            started=(self.p.attempts.get((tid, n)) or {}).get("started_ts"),
            now=self.d.clock.now())
        if e is not None:
            await self.append(e)

    async def _start_ready(self, tg: anyio.abc.TaskGroup) -> None:
        limits = self._agent_limits(self.d.clock.now())
        held, exceeded = budget_plan.held(self.p.tasks, self.p.attempts, self.d.clock.now(),
                                          self.d.config.budget)
        if exceeded:
            await self.append(*exceeded)
        plan = schedule(budget_plan.holding(self.p.tasks, held),
                        {t: self.p.tasks[t]["agent"] for t in self.active}, self.d.clock.now(),
                        max_parallel=self.d.config.max_parallel, agent_limits=limits,
                        deps_must_land=self.queue_takes_successes)
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

"""The merge queue's rounds: the local queue loop's decisions, durably.

Each round is the local engine's (``merge_queue/queue_loop.py``), asked of the same pure
functions (``merge_queue/decide.py``, ``merge_queue/planner.py``): admit the pending entries,
resolve the target, record entries it already contains, build the chain of prefixes, plan,
then land a green prefix, evict a culprit or a conflict, or run a round of checks at once.
What differs is how the side effects are had: Temporal activities on the queue's host
(``queue_activities.py``). In its own workflow (``full``) the queue also does what the local
loop does beside a round of checks: admits arrivals, builds the chain later rounds may need
(``wf.queue.build_ahead``), names the entries a failing check's log blames
(``wf.queue.blame``), and lands a green prefix while it plans and checks what follows;
inside a repository workflow started before that patch it does none of these, one landing at
a time (its histories replay as they were recorded).
``land = "pr"`` lands through the forge (``forge_flow.py``). It runs in the merge-queue
workflow (``queue_workflow.py``), or inside the repository workflow of a chain started before
that patch; ``self.w`` is the workflow it runs in. When that workflow continues as new, the
queue stops at the start of its next round (``parked``) and the next run carries on from
``state()``.

Workflow code: no I/O, no clock but ``workflow.now()``; it runs in the sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import asdict
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

# Workflow code too, imported in the sandbox.
from wf.temporal.forge_flow import ForgeLanding
from wf.temporal.task_workflow import not_started

with workflow.unsafe.imports_passed_through():
    from wf.merge_queue import decide as mq
    from wf.merge_queue.activities import AdmitEntry, Land, RunCheck
    from wf.merge_queue.candidates import Chain, Conflict, Entry
    from wf.merge_queue.checks import CheckResult
    from wf.merge_queue.decide import LandOutcome
    from wf.merge_queue.planner import Plan, Probe
    from wf.model import NewEvent
    from wf.temporal.queue_activities import (
        AdmitAll,
        AdmitResult,
        BlameLog,
        BuildAhead,
        BuildChain,
        Built,
        ChainWithout,
        Contained,
        ResolveTarget,
    )
    from wf.temporal.shapes import MergeSettings

if TYPE_CHECKING:
    from wf.temporal.queue_workflow import QueueWorkflow
    from wf.temporal.workflows import RepoWorkflow

STEP_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1),
                         maximum_interval=timedelta(seconds=10), maximum_attempts=3,
                         non_retryable_error_types=["GitError", "ConfigError", "StoreError"])


class QueueFlow:
    """The merge queue of one repository and target, run by the workflow ``w``."""

    def __init__(self, repo_wf: RepoWorkflow | QueueWorkflow, s: MergeSettings, *,
                 full: bool = False) -> None:
        self.w = repo_wf
        self.full = full  # admit, build ahead and blame beside the checks, as locally
        self.configure(s)
        self.host: str | None = None  # the host whose clone the queue works in
        self.poked = False
        self.paused: str | None = None
        self.refused: str | None = None
        self.infra_streak = 0
        self.flaky_seen = False
        self.base: str | None = None
        self.parked = False  # stopped between two rounds: the repository workflow continues
        self.quiet_log: str | None = None  # a passing check's log: what blame leaves out

    # What the next run of the workflow needs to carry on (``carry.py``); quiet_log only
    # in the queue's own workflow.
    CARRIED = ("host", "paused", "refused", "infra_streak", "flaky_seen", "base")

    def state(self) -> dict[str, Any]:
        extra = {"quiet_log": self.quiet_log} if self.full else {}
        return {"settings": asdict(self.s), **{k: getattr(self, k) for k in self.CARRIED},
                **extra}

    @classmethod
    def resumed(cls, repo_wf: RepoWorkflow | QueueWorkflow, state: dict[str, Any], *,
                full: bool = False) -> QueueFlow:
        flow = cls(repo_wf, MergeSettings(**state["settings"]), full=full)
        for k in cls.CARRIED:
            setattr(flow, k, state[k])
        flow.quiet_log = state.get("quiet_log")
        flow.poked = True
        return flow

    def configure(self, s: MergeSettings) -> None:
        """The settings of the latest run. A run also starts a stopped queue again, as the
        local engine's next run does (``queue.paused`` holds until then)."""
        self.s = s
        self.checks_key = mq.checks_key(s.check)
        self.target_ref = mq.target_ref(s.land, s.remote, s.target)
        if getattr(self, "paused", None):
            self.paused = None
            self.poked = True

    # -- what the repository workflow asks ----------------------------------------------------
    def busy(self) -> bool:
        return self.paused is None and mq.waiting(self.w.p.queue) > 0

    def poke(self) -> None:
        self.poked = True

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        git_failures = 0
        while True:
            if self.w.continuing:  # the run ends here; the next one carries on from state()
                self.parked = True
                self.w.wake()
                await workflow.wait_condition(lambda: False)
            self.poked = False
            try:
                progressed = await self._admit_pending()
                progressed = await self._round() or progressed
                git_failures = 0
            except _HostLost as lost:  # again on a host that answers, with the next run
                self.host = None
                self._pause(f"the merge queue's host {lost.host} took no step for "
                            f"{self.w.settings.host_lost_after:g}s; the next `wf run` or "
                            "`wf resume` starts it again on a host that answers")
                progressed = False
            except ActivityError as exc:
                kind, message = _failure(exc)
                if kind == "GitError":
                    backoff = mq.git_error_backoff(git_failures, message)
                    if backoff.pause is None:
                        git_failures += 1
                        self.append(NewEvent(mq.QUEUE_STREAM, "queue.retrying", {
                            "reason": message, "delay": backoff.delay}))
                        await workflow.sleep(backoff.delay)
                        continue
                    message = backoff.pause
                self._pause(message)
                progressed = False
            if not progressed:
                # Entries still waiting (a refused landing, a target moved meanwhile) are
                # looked at again within a second, as the local loop does; an idle queue sets
                # no timer, so its history does not grow while nothing happens.
                with contextlib.suppress(asyncio.TimeoutError):
                    await workflow.wait_condition(lambda: self.poked or self.w.continuing,
                                                  timeout=1.0 if self.busy() else None)

    def _pause(self, reason: str) -> None:
        self.paused = reason
        self.append(NewEvent(mq.QUEUE_STREAM, "queue.paused", {"reason": reason}))

    def append(self, *events: NewEvent) -> None:
        """Record decisions' events in the workflow the queue runs in."""
        for e in events:
            self.w.record_event(e)

    async def step(self, name: str, arg: Any, result_type: Any, *,
                   timeout: float = 600.0) -> Any:
        """Activity ``name`` on the queue's host (claimed by its first step)."""
        if self.host is None:
            self.host = await workflow.execute_activity(
                "wf.queue.claim", result_type=str, task_queue=self.w.queue,
                start_to_close_timeout=timedelta(seconds=60), retry_policy=STEP_RETRY)
        host = self.host
        try:
            return await workflow.execute_activity(
                name, arg, result_type=result_type, task_queue=f"{self.w.queue}.host.{host}",
                schedule_to_start_timeout=timedelta(seconds=self.w.settings.host_lost_after),
                start_to_close_timeout=timedelta(seconds=timeout), retry_policy=STEP_RETRY)
        except ActivityError as exc:
            if not_started(exc):
                raise _HostLost(host) from None
            raise

    @property
    def blame(self) -> bool:
        return self.full and self.s.blame

    def _entries(self, state: str) -> list[Any]:
        return mq.entries_in(self.w.p.queue, state)

    # -- admission ----------------------------------------------------------------------------
    async def _admit_pending(self) -> bool:
        pending = self._entries("pending")
        if not pending:
            return False
        tasks = self.w.p.tasks
        asked = [AdmitEntry(q["task_id"], q["branch"],
                            (tasks.get(q["task_id"]) or {}).get("base_commit")) for q in pending]
        fetch = {q["branch"]: self.w.pushed[q["task_id"]] for q in pending
                 if q["task_id"] in self.w.pushed}
        results: list[AdmitResult] = await self.step("wf.queue.admit", AdmitAll(
            asked, self.target_ref, self.s.policy, fetch), list[AdmitResult])
        events: list[NewEvent] = []
        for q, got in zip(pending, results, strict=True):
            verdict = got.verdict if got.verdict is not None else got.error or "not judged"
            resolve = ([] if isinstance(verdict, str) or verdict.verdict != "conflict" else
                       mq.resolve_events(q["task_id"], verdict.detail, verdict.conflicted_files,
                                         enabled=self.s.resolve_conflicts,
                                         is_task=q["task_id"] in tasks, target=self.s.target))
            events += mq.admission_events(q, verdict, got.head,
                                          require_approval=self.s.require_approval,
                                          resolve=resolve)
        self.append(*events)
        return True

    # -- one round ----------------------------------------------------------------------------
    async def _round(self) -> bool:
        if self.paused or not self._entries("queued"):
            return False
        base: str = await self.step("wf.queue.resolve", ResolveTarget(
            self.target_ref, self.s.remote if self.s.land == "push" else None, self.s.target,
            through_forge=self.s.land == "pr"), str)
        if base != self.base:
            queued = self._entries("queued")
            heads = [q["head"] for q in queued if q["head"]]
            contained = await self.step("wf.queue.contained", Contained(heads, base), list[str])
            events = mq.already_landed(queued, contained, base, self.s.target)
            if events:
                self.append(*events)
                return True
        self.base = base
        return await self._act(base) and self.refused is None

    async def _act(self, base: str) -> bool:
        """Plan and act until the plan is to run checks or nothing. In the queue's own
        workflow, as the local loop acts, a landing runs beside what follows it, in order,
        each moving the target from the commit the one before lands (the next candidates are
        commits of the same chain, whether or not the target has moved yet), and the round
        ends once every landing it started has. Through the forge, and inside a repository
        workflow started before that patch, each landing is waited for."""
        beside = self.full and self.s.land != "pr"
        progressed = False
        landing: set[str] = set()
        landings: list[asyncio.Future[None]] = []
        try:
            while queued := [q for q in self._entries("queued") if q["task_id"] not in landing]:
                entries = [Entry(q["task_id"], q["branch"], q["head"]) for q in
                           queued[:self.s.max_batch]]
                planned = await self._plan(base, entries, landing)
                if isinstance(planned, Conflict):
                    self._evict_conflict(entries, planned)
                    progressed = True
                    continue
                chain, plan = planned
                if plan.land:
                    forge = self.s.land == "pr"
                    size = mq.landing_size(plan.land, through_forge=forge)
                    if beside:
                        landing |= {e.task_id for e in chain.entries[:size]}
                        after = landings[-1] if landings else None
                        landings.append(asyncio.ensure_future(
                            self._land_after(after, chain, base, size)))
                        base = chain.prefix(size)[0]
                    else:
                        moved = await self._land(chain, base, size)
                        if moved is None:
                            return progressed
                        base = self.base = moved
                        if forge:  # the forge made the commit: plan again on the target
                            return True
                elif plan.culprit is not None:
                    if not await self._judge_culprit(chain, entries, plan.culprit,
                                                     plan.probes):
                        return True
                elif plan.probes:
                    await self._check(chain, entries, plan.probes)
                    return True
                else:
                    return progressed
                progressed = True
            return progressed
        finally:
            if landings:  # a landing that failed fails the round, as locally
                for failed in await asyncio.gather(*landings, return_exceptions=True):
                    if isinstance(failed, BaseException):
                        raise failed

    def _evict_conflict(self, entries: list[Entry], conflict: Conflict) -> None:
        """Evict the entry that conflicts with those before it (and send it back to its
        agent with ``resolve_conflicts``)."""
        entry = entries[conflict.index]
        detail, evicted = mq.conflict_eviction(entries, conflict, self.s.target)
        self.append(evicted, *mq.resolve_events(
            entry.task_id, detail, conflict.files, enabled=self.s.resolve_conflicts,
            is_task=entry.task_id in self.w.p.tasks, target=self.s.target))

    async def _land_after(self, after: asyncio.Future[None] | None, chain: Chain, base: str,
                          size: int) -> None:
        """Land the first ``size`` entries once the landing before (``after``) is done, if
        it left the target where this one starts (``base``)."""
        if after is not None:
            with contextlib.suppress(Exception):  # its failure fails the round (_act)
                await after
            if self.base != base:  # the one before did not land: neither does this one
                return
        self.base = await self._land(chain, base, size)

    async def _plan(self, base: str, entries: list[Entry], landing: set[str]
                    ) -> tuple[Chain, Plan] | Conflict:
        depth = 0
        while True:
            built: Built = await self.step("wf.queue.build_chain",
                                            BuildChain(base, entries, depth), Built)
            if built.conflict is not None:
                return built.conflict
            chain = built.chain
            assert chain is not None
            plan, depth = mq.plan_on(chain, entries, tested=self.w.p.tested_trees,
                                     queue=self.w.p.queue, landing=landing,
                                     checks=self.checks_key,
                                     parallel=self.s.max_parallel_checks,
                                     max_batch=self.s.max_batch, blame=self.blame)
            if depth <= len(chain.entries):
                return chain, plan

    # -- checks -------------------------------------------------------------------------------
    async def _check(self, chain: Chain, entries: list[Entry], probes: tuple[Probe, ...]
                     ) -> None:
        candidates = []
        for probe in probes:
            if probe.without is None:
                candidates.append((probe, chain, probe.size))
                continue
            variant: Chain = await self.step("wf.queue.chain_without", ChainWithout(
                chain, entries, probe.without, probe.size), Chain)
            size = min(probe.size, len(variant.entries))
            tree = variant.trees[size - 1] if size else ""
            if size > probe.without and mq.tree_key(tree, self.checks_key) \
                    not in self.w.p.tested_trees:
                candidates.append((probe, variant, size))
        if not candidates:
            return

        def left_out(probe: Probe) -> str | None:
            return None if probe.without is None else entries[probe.without].task_id

        self.append(NewEvent(mq.QUEUE_STREAM, "queue.check_started", {
            "sizes": [size for _p, _c, size in candidates],
            "batches": [[e.task_id for e in c.entries[:size]] for _p, c, size in candidates],
            "without": [left_out(p) for p, _c, _s in candidates]}))
        results: dict[Probe, str] = {}

        async def one(slot: int, probe: Probe, candidate: Chain, size: int) -> None:
            commit, tree = candidate.prefix(size)
            started = workflow.now().timestamp()
            if not self.s.check:
                result, detail, log = "pass", "no checks configured", None
            else:
                res: CheckResult = await self.step("wf.queue.run_check", RunCheck(
                    slot, commit, tree, tuple(tuple(c) for c in self.s.check),
                    self.s.check_timeout), CheckResult,
                    timeout=(self.s.check_timeout or 86400.0) + 600)
                result, detail, log = res.result, res.detail, res.log_path
            named: list[str] = []
            if result == "fail" and self.blame and log:
                with contextlib.suppress(ActivityError):  # a hint only: without it, split
                    named = await self.step("wf.queue.blame", BlameLog(
                        candidate, size, log, self.s.check, self.quiet_log), list[str])
            elif result == "pass" and log and self.full:
                self.quiet_log = log
            results[probe] = result
            self.append(NewEvent(mq.QUEUE_STREAM, "queue.check_finished", {
                "tree": mq.tree_key(tree, self.checks_key), "commit": commit, "size": size,
                "entries": [e.task_id for e in candidate.entries[:size]],
                "without": left_out(probe), "result": result, "detail": detail, "log": log,
                "blamed": named, "started": round(started, 3),
                "duration": round(workflow.now().timestamp() - started, 3)}))

        checking = asyncio.gather(*(one(slot, p, c, size)
                                    for slot, (p, c, size) in enumerate(candidates)))
        if self.full and self.s.check:  # (with no checks the round is over at once)
            await self._beside(checking, chain, entries)
        else:
            await checking
        flaky = mq.flaky_event({p.size: r for p, r in results.items() if p.without is None},
                               self.flaky_seen)
        if flaky is not None:
            self.flaky_seen = True
            self.append(flaky)
        if mq.only_infra(results.values()):
            backoff = mq.infra_backoff(self.infra_streak)
            if backoff.pause is not None:
                self._pause(backoff.pause)
                return
            await workflow.sleep(backoff.delay)
            self.infra_streak += 1
        else:
            self.infra_streak = 0

    async def _beside(self, checking: Any, chain: Chain, entries: list[Entry]) -> None:
        """While the checks run, as the local loop does: build the chain later rounds may
        need (and the likeliest next one, without the first suspect) on the queue's host, and
        admit the entries that arrive, so the next round finds them ready."""
        lead = min(mq.suspects(entries, self.w.p.queue, blame=self.blame), default=None)

        async def ahead() -> None:
            with contextlib.suppress(ActivityError):  # a head start only
                await self.step("wf.queue.build_ahead", BuildAhead(chain, entries, lead),
                                bool)

        async def admit() -> None:
            while not checking.done():
                with contextlib.suppress(ActivityError):  # the next round admits them
                    await self._admit_pending()
                await workflow.wait_condition(lambda: self.poked or checking.done())
                self.poked = False

        beside = [asyncio.ensure_future(ahead()), asyncio.ensure_future(admit())]
        try:
            await checking
        finally:
            await asyncio.gather(*beside)
        self.poked = True  # what arrived meanwhile: the next round looks at once

    async def _judge_culprit(self, chain: Chain, entries: list[Entry], index: int,
                             beside: tuple[Probe, ...]) -> bool:
        entry = chain.entries[index]
        _commit, tree = chain.prefix(index + 1)
        row = self.w.p.tested_trees.get(mq.tree_key(tree, self.checks_key)) or {}
        if mq.should_recheck(entry, row, self.w.p.queue, flaky_seen=self.flaky_seen,
                             blame=self.blame):
            await self._check(chain, entries, (Probe(index + 1), *beside))
            return False
        self.append(mq.culprit_eviction(entry, index, tree, row, self.s.target))
        return True

    # -- landing ------------------------------------------------------------------------------
    async def _land(self, chain: Chain, base: str, size: int) -> str | None:
        commit, _tree = chain.prefix(size)
        landed = chain.entries[:size]
        self.append(NewEvent(mq.QUEUE_STREAM, "queue.land_requested", {
            "old": base, "new": commit, "entries": [e.task_id for e in landed]}))
        if self.s.land == "pr":
            outcome = await ForgeLanding(self).land(landed[0], base, commit)
        else:
            outcome = await self.step("wf.queue.land", Land(
                self.s.land, self.s.target, self.target_ref, self.s.remote, base, commit),
                LandOutcome)
        result, after = mq.landing_outcome(outcome, entries=landed, base=base, commit=commit,
                                           target=self.s.target, last_refusal=self.refused)
        self.refused = result.refused
        self.append(*result.events, *after)
        if result.wait:
            await workflow.sleep(result.wait)
        return result.base


class _HostLost(Exception):
    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


def _failure(exc: ActivityError) -> tuple[str, str]:
    """(the error's type, its message) of a failed queue step."""
    cause = exc.cause
    if isinstance(cause, ApplicationError):
        return cause.type or "", cause.message
    return "", " ".join(str(cause or exc).split())

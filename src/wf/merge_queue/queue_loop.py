"""The merge queue's interpreter on the local engine: admit, plan, check, land, evict.

One coroutine, started by the scheduler when ``[merge]`` is enabled. Each round it reads the
queued entries in order, has the chain of their prefixes built on the current target, asks
the planner (``planner.py``) and the queue's decisions (``decide.py``) what to do, and does
exactly that through its activities (``activities.py``): land a green prefix
(compare-and-swap), evict a culprit, and plan again at once, until the plan is a few checks
run in parallel. Everything decided is an event first, so a restarted engine plans from the
same facts; the tested-tree cache makes a re-run of a finished check free.

It sees the engine through a narrow door: a read view of the projection (``QueueView``), an
append function, and a wake-up for the scheduler.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import anyio

from wf.daemon_thread import in_daemon_thread
from wf.errors import GitError, WfError, sole_wf_error
from wf.merge_queue import decide as mq
from wf.merge_queue.activities import AdmitEntry, Land, QueueActivities, RunCheck
from wf.merge_queue.candidates import Chain, Conflict, Entry, Fork
from wf.merge_queue.planner import Plan, Probe
from wf.model import NewEvent

if TYPE_CHECKING:
    from wf.config import Config
    from wf.engine.scheduler import Scheduler
    from wf.merge_queue.pr_landing import PrLanding

BACKGROUND_NICE = 10  # added niceness of the thread that builds chains ahead
Append = Callable[..., Awaitable[Any]]


class QueueView(Protocol):
    """What the queue reads of the engine's projection."""

    queue: Mapping[str, Mapping[str, Any]]
    tasks: Mapping[str, Mapping[str, Any]]
    tested_trees: Mapping[str, Mapping[str, Any]]


class QueueLoop:
    def __init__(self, view: QueueView, append: Append, wake_engine: Callable[[], None],
                 acts: QueueActivities, config: Config, *, target: str,
                 environ: Mapping[str, str], flaky_seen: bool) -> None:
        self.view, self._record, self._wake_engine = view, append, wake_engine
        self.acts = acts
        self.cfg, self.policy = config.merge, config.policy
        self.target = target
        self.checks_key = mq.checks_key(self.cfg.check)
        self.pr_landing: PrLanding | None = None
        if self.cfg.land == "pr":
            from wf.merge_queue.pr_landing import PrLanding  # the providers load only for "pr"

            self.pr_landing = PrLanding(acts.root, config, target, environ)
        remote = config.provider.remote if self.pr_landing else self.cfg.remote
        self.target_ref = mq.target_ref(self.cfg.land, remote, target)
        self.poke = anyio.Event()
        self.paused: str | None = None
        self.refused: str | None = None  # the last landing refusal recorded
        self.infra_streak = 0
        self.base: str | None = None  # the target as the queue last saw or moved it
        self.landing: set[str] = set()  # entries whose landing is in flight
        self.quiet_log: str | None = None  # the last passing check's log: its paths say nothing
        self.forks: dict[str, tuple[str, Fork]] = {}  # task -> (head, where it left the target)
        self.flaky_seen = flaky_seen  # flakes seen once count for good

    @classmethod
    def for_scheduler(cls, s: Scheduler, target: str) -> QueueLoop:
        d = s.d
        acts = QueueActivities(d.worktrees.repo_root, d.worktrees.worktree_root,
                               d.logs_dir.parent / "queue", d.config.merge.max_parallel_checks,
                               d.environ)
        flaky = bool(d.store.read(stream=mq.QUEUE_STREAM, types=["queue.flaky_seen"], limit=1))
        return cls(s.p, s.append, s.wake, acts, d.config, target=target, environ=d.environ,
                   flaky_seen=flaky)

    # -- what the engine asks -----------------------------------------------------------------
    def busy(self) -> bool:
        """Whether entries still wait for admission or landing (approvals do not hold a run)."""
        return self.paused is None and mq.waiting(self.view.queue) > 0

    def stopped_with_work(self) -> str | None:
        """Why the queue stopped when entries are left waiting on it; None otherwise."""
        return self.paused if self.paused and mq.waiting(self.view.queue) else None

    def wake(self) -> None:
        self.poke.set()

    async def open_repository(self) -> None:
        """Open the object database ahead of the first admission, beside the engine's start."""
        try:
            await anyio.to_thread.run_sync(self.acts.open_repository)
        except WfError:
            pass  # said where the queue uses it: the round pauses the queue with the reason

    async def _warm_slots(self) -> None:
        try:
            await anyio.to_thread.run_sync(self.acts.warm_slots, self.target_ref)
        except WfError:
            pass  # the first check of a slot tries again, and reports a failure as infra

    # -- the loop -----------------------------------------------------------------------------
    async def run(self) -> None:
        async with anyio.create_task_group() as tg:
            await self._loop(tg)

    async def _loop(self, tg: anyio.abc.TaskGroup) -> None:
        warming = False
        git_failures = 0  # in a row
        while True:
            if not warming and self._entries("pending") and self.cfg.check:
                warming = True
                tg.start_soon(self._warm_slots)
            try:
                progressed = await self._admit_pending()
                progressed = await self._round() or progressed
                git_failures = 0
            except GitError as exc:
                backoff = mq.git_error_backoff(git_failures, exc.message)
                if backoff.pause is None:
                    git_failures += 1
                    await self._append(NewEvent(mq.QUEUE_STREAM, "queue.retrying", {
                        "reason": exc.message, "delay": backoff.delay}))
                    await anyio.sleep(backoff.delay)
                    continue
                await self._pause(backoff.pause)
                progressed = False
            except WfError as exc:  # the store failed, or the config: stop landing, say why
                await self._pause(exc.message)
                progressed = False
            if not progressed:
                with anyio.move_on_after(1.0):
                    await self.poke.wait()
                self.poke = anyio.Event()

    async def _pause(self, reason: str) -> None:
        """Stop admitting and landing until the next engine; the run says why."""
        self.paused = reason
        await self._append(NewEvent(mq.QUEUE_STREAM, "queue.paused", {"reason": reason}))

    async def _append(self, *events: NewEvent) -> None:
        await self._record(*events)
        self._wake_engine()

    def _entries(self, state: str) -> list[Mapping[str, Any]]:
        return mq.entries_in(self.view.queue, state)

    def _resolve_events(self, tid: str, detail: str, files: Any) -> list[NewEvent]:
        return mq.resolve_events(tid, detail, files, enabled=self.cfg.resolve_conflicts,
                                 is_task=tid in self.view.tasks, target=self.target)

    # -- admission ----------------------------------------------------------------------------
    async def _admit_pending(self) -> bool:
        """Admit every pending entry: one worker-thread hop and one append for all of them."""
        pending = self._entries("pending")
        if not pending:
            return False
        asked = [AdmitEntry(q["task_id"], q["branch"],
                            (self.view.tasks.get(q["task_id"]) or {}).get("base_commit"))
                 for q in pending]
        results = await anyio.to_thread.run_sync(self.acts.admit, asked, self.target_ref,
                                                 self.policy)
        events: list[NewEvent] = []
        for q, got in zip(pending, results, strict=True):
            if got.fork is not None and got.head is not None:
                self.forks[q["task_id"]] = (got.head, got.fork)
            verdict = got.verdict
            resolve = ([] if isinstance(verdict, str) or verdict.verdict != "conflict" else
                       self._resolve_events(q["task_id"], verdict.detail,
                                            verdict.conflicted_files))
            events += mq.admission_events(q, verdict, got.head,
                                          require_approval=self.cfg.require_approval,
                                          resolve=resolve)
        await self._append(*events)
        return True

    # -- one round ----------------------------------------------------------------------------
    async def _round(self) -> bool:
        """Plan and act until the plan is to run checks (one round of them) or nothing: a
        landing or an eviction is followed by the next plan at once, on a chain that reuses
        everything still valid. A landing runs beside what follows it (the next candidates
        are commits of the same chain, whether or not the target has moved yet)."""
        if self.paused or not self._entries("queued"):
            return False
        if self.cfg.land == "push":
            await anyio.to_thread.run_sync(self.acts.fetch_target, self.cfg.remote, self.target)
        elif self.pr_landing is not None:
            await self.pr_landing.fetch()
        base = await anyio.to_thread.run_sync(self.acts.resolve, self.target_ref)
        # Only at start-up or when something else moved the target can an entry be on it
        # without a record of its landing.
        if base != self.base and await self._record_already_landed(base):
            return True
        self.base = base
        try:
            async with anyio.create_task_group() as tg:
                progressed = await self._act(tg, base)
        except BaseExceptionGroup as group:  # a landing failed: as if the round itself had
            error = sole_wf_error(group)
            if error is None:
                raise
            raise error from group
        # a refused landing waits for a poke; anything else plans again at once
        return progressed and self.refused is None

    async def _act(self, tg: anyio.abc.TaskGroup, base: str) -> bool:
        progressed = False
        landed: anyio.Event | None = None  # set when the last landing started is done
        self.landing = set()
        while queued := [q for q in self._entries("queued") if q["task_id"] not in self.landing]:
            # The planner never tests more than max_batch entries, so the chain stops there too.
            entries = [Entry(q["task_id"], q["branch"], q["head"], self._known_fork(q))
                       for q in queued[:self.cfg.max_batch]]
            planned = await self._plan(base, entries)
            if isinstance(planned, Conflict):
                detail, evicted = mq.conflict_eviction(entries, planned, self.target)
                await self._append(evicted, *self._resolve_events(
                    entries[planned.index].task_id, detail, planned.files))
                progressed = True
                continue
            chain, plan = planned
            if plan.land:
                size = mq.landing_size(plan.land, through_forge=self.pr_landing is not None)
                after, landed = landed, anyio.Event()  # one at a time, in order
                self.landing |= {e.task_id for e in chain.entries[:size]}
                tg.start_soon(self._land, chain, base, size, after, landed)
                if self.pr_landing is not None:  # the forge makes the commit: plan on it
                    await landed.wait()
                    return True
                base = chain.prefix(size)[0]
            elif plan.culprit is not None:
                if not await self._judge_culprit(chain, entries, plan.culprit, plan.probes):
                    return True  # it was re-checked instead
            elif plan.probes:
                await self._check(chain, entries, plan.probes)
                return True
            else:
                return progressed
            progressed = True
        return progressed

    async def _plan(self, base: str, entries: list[Entry]) -> tuple[Chain, Plan] | Conflict:
        """The plan, on a chain built as deep as it needs: deeper prefixes can only add known
        results, so plan on what is built and build further until the plan stays in it."""
        depth = 0
        while True:
            chain = await anyio.to_thread.run_sync(self.acts.build_chain, base, entries, depth)
            if isinstance(chain, Conflict):
                return chain
            plan, depth = mq.plan_on(chain, entries, tested=self.view.tested_trees,
                                     queue=self.view.queue, landing=self.landing,
                                     checks=self.checks_key, parallel=self.acts.parallel_checks,
                                     max_batch=self.cfg.max_batch, blame=self.cfg.blame)
            if depth <= len(chain.entries):
                return chain, plan

    def _suspects(self, entries: list[Entry]) -> frozenset[int]:
        return mq.suspects(entries, self.view.queue, blame=self.cfg.blame)

    async def _record_already_landed(self, base: str) -> bool:
        """Reconcile by looking at git: an entry whose head the target already contains has
        landed (wf stopped between moving the target and recording it)."""
        queued = self._entries("queued")
        heads = [q["head"] for q in queued if q["head"]]
        contained = await anyio.to_thread.run_sync(self.acts.contained, heads, base)
        events = mq.already_landed(queued, contained, base, self.target)
        if events:
            await self._append(*events)
        return bool(events)

    def _known_fork(self, q: Mapping[str, Any]) -> Fork | None:
        """Where the entry's admitted head leaves the target, if this engine admitted it."""
        head, fork = self.forks.get(q["task_id"], (None, None))
        return fork if head == q["head"] else None

    def _tree_key(self, tree: str) -> str:
        return mq.tree_key(tree, self.checks_key)

    # -- checks -------------------------------------------------------------------------------
    async def _candidates(self, chain: Chain, entries: list[Entry], probes: tuple[Probe, ...]
                          ) -> list[tuple[Probe, Chain, int]]:
        """Each probe as (probe, the chain it is a prefix of, size). A speculative probe
        whose variant chain stops short (a later entry conflicts without the suspect) is
        tested as far as it goes, or dropped."""
        out = []
        for probe in probes:
            if probe.without is None:
                out.append((probe, chain, probe.size))
                continue
            variant = await anyio.to_thread.run_sync(
                self.acts.chain_without, chain, entries, probe.without, probe.size)
            size = min(probe.size, len(variant.entries))
            if size > probe.without:
                out.append((probe, variant, size))
        return out

    async def _check(self, chain: Chain, entries: list[Entry], probes: tuple[Probe, ...]
                     ) -> None:
        """Check several candidates at once, each in its own integration worktree. A
        speculative candidate already in the tree cache is not run again."""
        candidates = [(probe, c, size)
                      for probe, c, size in await self._candidates(chain, entries, probes)
                      if probe.without is None
                      or self._tree_key(c.prefix(size)[1]) not in self.view.tested_trees]
        if not candidates:
            return
        results: dict[Probe, str] = {}
        announced = anyio.Event()
        spawned = [threading.Event() for _ in candidates]

        def left_out(probe: Probe) -> str | None:
            return None if probe.without is None else entries[probe.without].task_id

        async def announce() -> None:  # beside the checks: they need not wait for it
            await self._append(NewEvent(mq.QUEUE_STREAM, "queue.check_started", {
                "sizes": [size for _p, _c, size in candidates],
                "batches": [[e.task_id for e in c.entries[:size]] for _p, c, size in candidates],
                "without": [left_out(p) for p, _c, _s in candidates]}))
            announced.set()

        async def one(slot: int, probe: Probe, candidate: Chain, size: int) -> None:
            commit, tree = candidate.prefix(size)
            started = time.time()
            if not self.cfg.check:
                spawned[slot].set()
                result, detail, log = "pass", "no checks configured", None
            else:
                res = await anyio.to_thread.run_sync(
                    self.acts.run_check, RunCheck(slot, commit, tree,
                                                  tuple(tuple(c) for c in self.cfg.check),
                                                  self.cfg.check_timeout),
                    spawned[slot], anyio.from_thread.check_cancelled)
                result, detail, log = res.result, res.detail, res.log_path
            named: list[str] = []
            if result == "fail" and self.cfg.blame and log:
                named = await anyio.to_thread.run_sync(
                    self.acts.blame, candidate, size, log, self.cfg.check, self.quiet_log)
            elif result == "pass" and log:
                self.quiet_log = log
            results[probe] = result
            await announced.wait()
            await self._append(NewEvent(mq.QUEUE_STREAM, "queue.check_finished", {
                "tree": self._tree_key(tree), "commit": commit, "size": size,
                "entries": [e.task_id for e in candidate.entries[:size]],
                "without": left_out(probe), "result": result, "detail": detail, "log": log,
                "blamed": named, "started": round(started, 3),
                "duration": round(time.time() - started, 3)}))

        lead = min(self._suspects(entries), default=None)
        checked = anyio.Event()

        async def extend() -> None:  # while the checks run: what later rounds may need
            # at a lower CPU priority: work done ahead must not slow the checks beside it; like
            # to_thread, the round waits for it even when cancelled
            await in_daemon_thread(lambda: self.acts.build_ahead(chain, entries, lead, spawned),
                                   name="wf-mq-ahead", nice=BACKGROUND_NICE,
                                   finish_when_cancelled=True)

        async def admit_beside() -> None:  # arrivals are ready for the next round, not late
            while not checked.is_set():
                await self._admit_pending()
                await self.poke.wait()
                self.poke = anyio.Event()

        async with anyio.create_task_group() as beside:
            beside.start_soon(admit_beside)
            async with anyio.create_task_group() as tg:
                tg.start_soon(announce)
                for slot, (probe, candidate, size) in enumerate(candidates):
                    tg.start_soon(one, slot, probe, candidate, size)
                tg.start_soon(extend)
            checked.set()
            self.poke.set()
        flaky = mq.flaky_event({p.size: r for p, r in results.items() if p.without is None},
                               self.flaky_seen)
        if flaky is not None:
            self.flaky_seen = True
            await self._append(flaky)
        if mq.only_infra(results.values()):
            backoff = mq.infra_backoff(self.infra_streak)
            if backoff.pause is not None:
                await self._pause(backoff.pause)
                return
            await anyio.sleep(backoff.delay)
            self.infra_streak += 1
        else:
            self.infra_streak = 0

    async def _judge_culprit(self, chain: Chain, entries: list[Entry], index: int,
                             beside: tuple[Probe, ...]) -> bool:
        """The entry at ``index`` fails on top of the green prefix before it: evict it (True),
        or check it once more first, with the speculative probes ``beside`` it (False)."""
        entry = chain.entries[index]
        _commit, tree = chain.prefix(index + 1)
        row = self.view.tested_trees.get(self._tree_key(tree)) or {}
        if mq.should_recheck(entry, row, self.view.queue, flaky_seen=self.flaky_seen,
                             blame=self.cfg.blame):
            await self._check(chain, entries, (Probe(index + 1), *beside))
            return False
        await self._append(mq.culprit_eviction(entry, index, tree, row, self.target))
        return True

    # -- landing ------------------------------------------------------------------------------
    async def _land(self, chain: Chain, base: str, size: int, after: anyio.Event | None,
                    done: anyio.Event) -> None:
        """Land the first ``size`` entries, moving the target from ``base`` once the landing
        before (``after``) is done; ``self.base`` follows the target when it moved, and is
        unset when a landing was refused or the target moved meanwhile (its entries, and those
        of the landings after it, stay queued for the next round)."""
        try:
            if after is not None:
                await after.wait()
                if self.base != base:  # the one before did not land: neither does this one
                    return
            self.base = await self._move_target(chain, base, size)
        finally:
            done.set()

    async def _move_target(self, chain: Chain, base: str, size: int) -> str | None:
        commit, _tree = chain.prefix(size)
        landed = chain.entries[:size]
        await self._append(NewEvent(mq.QUEUE_STREAM, "queue.land_requested", {
            "old": base, "new": commit, "entries": [e.task_id for e in landed]}))
        if self.pr_landing is not None:
            first = landed[0].task_id
            outcome = await self.pr_landing.land(landed[0], self.view.tasks.get(first),
                                                 self.view.queue.get(first), base, commit,
                                                 self._append)
        else:
            outcome = await anyio.to_thread.run_sync(self.acts.land, Land(
                self.cfg.land, self.target, self.target_ref, self.cfg.remote, base, commit))
        result, after = mq.landing_outcome(outcome, entries=landed, base=base, commit=commit,
                                           target=self.target, last_refusal=self.refused)
        self.refused = result.refused
        if result.events:
            await self._append(*result.events)
        if after:
            await self._append(*after)
        if result.wait:
            await anyio.sleep(result.wait)
        return result.base

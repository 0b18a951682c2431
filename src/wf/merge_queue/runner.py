"""The merge queue inside the engine: admit, plan, check, land, evict — all recorded.

One coroutine, started by the local engine when ``[merge]`` is enabled. Each round it reads the
queued entries in order, builds their prefix chain on the current target, asks the planner what
to do, and does exactly that: land a green prefix (compare-and-swap), evict a culprit, and plan
again at once, until the plan is a few checks run in parallel (prefixes, or speculative
candidates of the queue without a suspect). Everything it decides is an event first, so a
restarted engine plans from the same facts; the tested-tree cache makes a re-run of a finished
check free.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio

from wf import gitx
from wf.daemon_thread import in_daemon_thread
from wf.errors import GitError, WfError, first_in_group
from wf.merge_queue.admission import check_admission
from wf.merge_queue.blame import blamed, read_log
from wf.merge_queue.candidates import Chain, ChainBuilder, Conflict, Entry, Fork
from wf.merge_queue.checks import CheckSlots
from wf.merge_queue.landing import land_local, land_push
from wf.merge_queue.planner import Estimate, Plan, Probe, plan_round
from wf.model import NewEvent, task_stream
from wf.store.projections import QUEUE_WAITING
from wf.worktrees import fetch

if TYPE_CHECKING:
    from wf.merge_queue.pr_landing import PrLanding

QUEUE_STREAM = "queue"
INFRA_BACKOFF = (1.0, 2.0, 4.0)  # seconds between tries of a failing check or git; then a pause
REFUSED_RETRY = 2.0  # seconds between attempts to land on a dirty checked-out target
BACKGROUND_NICE = 10  # added niceness of the thread that builds chains ahead


def _sole_wf_error(group: BaseExceptionGroup) -> BaseException | None:
    """The first WfError of ``group`` when it holds nothing else; None otherwise."""
    _, rest = group.split(WfError)
    return first_in_group(group, WfError) if rest is None else None


def check_summary(detail: str | None, width: int = 60) -> str:
    """A check's result in one short line: ``pytest -x -q tests: exit 4`` stays as it is; a
    long command (a ``python -c`` script over many lines) becomes its first ``width``
    characters on one line. The whole command and its output are in the check's log."""
    if not detail:
        return "check failed"
    command, sep, outcome = detail.rpartition(": ")
    if not sep:
        return " ".join(detail.split())
    command = " ".join(command.split())
    if len(command) > width:
        command = command[:width - 1] + "…"
    return f"`{command}` {outcome}"


async def run_in_background_thread(work: Callable[[], None]) -> None:
    """``work`` in a thread of its own at a lower CPU priority: work done ahead must not slow
    the checks starting beside it. Like ``anyio.to_thread.run_sync``, the caller waits for it
    to end even when cancelled."""
    await in_daemon_thread(work, name="wf-mq-ahead", nice=BACKGROUND_NICE,
                           finish_when_cancelled=True)


def _fork_of(db: gitx.ObjectDb, verdict: Any, head: str | None) -> Fork | None:
    """Where an admitted (or held) entry leaves the target, when its branch is one line of
    commits; None otherwise (its chain merges then search the merge base)."""
    if verdict.verdict not in ("admit", "needs_approval") or not (head and verdict.fork):
        return None
    try:
        own = db.own_commits(head, verdict.fork)
    except WfError:
        return None
    return None if own is None else Fork(verdict.target_commit, verdict.fork, own)


class QueueRunner:
    def __init__(self, engine: Any, *, target: str, logs_dir: Any) -> None:
        self.e = engine
        cfg = engine.d.config
        self.cfg, self.policy = cfg.merge, cfg.policy
        self.root = engine.d.worktrees.repo_root
        self.target = target
        self.builder = ChainBuilder(self.root)
        self.slots = CheckSlots(self.root, engine.d.worktrees.worktree_root, logs_dir,
                                self.cfg.max_parallel_checks)
        self.checks_key = hashlib.sha256(json.dumps(
            [list(c) for c in self.cfg.check]).encode()).hexdigest()[:8]
        # What candidates are built on: the local branch, or the remote's (fetched each round)
        # when the queue lands by pushing or through the forge.
        self.pr_landing: PrLanding | None = None
        if self.cfg.land == "pr":
            from wf.merge_queue.pr_landing import PrLanding  # the providers load only for "pr"

            self.pr_landing = PrLanding(self.root, cfg, target, engine.d.environ)
        self.target_ref = (self.pr_landing.target_ref if self.pr_landing else
                           f"refs/remotes/{self.cfg.remote}/{target}" if self.cfg.land == "push"
                           else f"refs/heads/{target}")
        self.poke = anyio.Event()
        self.paused: str | None = None
        self.refused: str | None = None  # the last landing refusal recorded
        self.infra_streak = 0
        self.base: str | None = None  # the target as the queue last saw or moved it
        self.landing: set[str] = set()  # entries whose landing is in flight
        self.quiet_log: str | None = None  # the last passing check's log: its paths say nothing
        self.forks: dict[str, tuple[str, Fork]] = {}  # task -> (head, where it left the target)
        # Flakes seen once count for good: the log remembers them across restarts.
        self.flaky_seen = bool(engine.d.store.read(stream=QUEUE_STREAM,
                                                   types=["queue.flaky_seen"], limit=1))

    # -- what the engine asks -----------------------------------------------------------------
    def busy(self) -> bool:
        """Whether entries still wait for admission or landing (approvals do not hold a run)."""
        return self.paused is None and self.waiting() > 0

    def waiting(self) -> int:
        """How many entries wait for admission or landing."""
        return sum(q["state"] in QUEUE_WAITING for q in self.e.p.queue.values())

    def stopped_with_work(self) -> str | None:
        """Why the queue stopped when entries are left waiting on it; None otherwise."""
        return self.paused if self.paused and self.waiting() else None

    def wake(self) -> None:
        self.poke.set()

    async def open_repository(self) -> None:
        """Load pygit2 and open the object database ahead of the first admission (a tenth of
        a second that can overlap the engine's start-up)."""
        try:
            await anyio.to_thread.run_sync(gitx.object_db, self.root)
        except WfError:
            pass  # said where the queue uses it: the round pauses the queue with the reason

    async def _warm_slots(self) -> None:
        """Create the integration worktrees while the first entries are admitted, instead of
        in the first round's checks."""
        try:
            await anyio.to_thread.run_sync(lambda: self.slots.warm(
                gitx.object_db(self.root).resolve(self.target_ref)))
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
            except GitError as exc:  # maybe passing (a network, a lock): again, after a while
                if git_failures < len(INFRA_BACKOFF):
                    delay = INFRA_BACKOFF[git_failures]
                    git_failures += 1
                    await self._append(NewEvent(QUEUE_STREAM, "queue.retrying", {
                        "reason": exc.message, "delay": delay}))
                    await anyio.sleep(delay)
                    continue
                await self._pause(exc.message)
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
        await self._append(NewEvent(QUEUE_STREAM, "queue.paused", {"reason": reason}))

    async def _append(self, *events: NewEvent) -> None:
        await self.e.append(*events)
        self.e.wake()

    def _entries(self, state: str) -> list[dict[str, Any]]:
        rows = [q for q in self.e.p.queue.values() if q["state"] == state]
        return sorted(rows, key=lambda q: q["position"])

    # -- admission ----------------------------------------------------------------------------
    async def _admit_pending(self) -> bool:
        """Admit every pending entry: one worker-thread hop and one append for all of them."""
        pending = self._entries("pending")
        if not pending:
            return False
        bases = {q["task_id"]: (self.e.p.tasks.get(q["task_id"]) or {}).get("base_commit")
                 for q in pending}

        def admit_all() -> list[tuple[Any, str | None, Fork | None]]:
            db = gitx.object_db(self.root)
            out: list[tuple[Any, str | None, Fork | None]] = []
            for q in pending:
                try:
                    verdict = check_admission(self.root, q["branch"], self.target_ref,
                                              base_commit=bases[q["task_id"]],
                                              policy=self.policy, want_tree=False)
                except WfError as exc:  # e.g. the branch was deleted: this entry only
                    out.append((exc, None, None))
                    continue
                head = verdict.branch_commit or db.resolve(q["branch"])
                out.append((verdict, head, _fork_of(db, verdict, head)))
            return out

        events: list[NewEvent] = []
        for q, (verdict, head, fork) in zip(pending, await anyio.to_thread.run_sync(admit_all),
                                            strict=True):
            if fork is not None and head is not None:
                self.forks[q["task_id"]] = (head, fork)
            events += self._admission_events(q, verdict, head)
        await self._append(*events)
        return True

    def _admission_events(self, q: dict[str, Any], verdict: Any, head: str | None
                          ) -> list[NewEvent]:
        tid = q["task_id"]
        stream = task_stream(tid)
        if isinstance(verdict, WfError):
            return [NewEvent(stream, "queue.evicted", {"kind": "error",
                                                       "detail": verdict.message})]
        if verdict.verdict == "admit":
            if self.cfg.require_approval and not q["approved"]:
                return [NewEvent(stream, "queue.needs_approval", {
                    "kind": "require_approval", "detail": "waiting for `wf approve`",
                    "head": head})]
            return [NewEvent(stream, "queue.admitted", {"head": head})]
        if verdict.verdict == "needs_approval":
            if q["approved"]:
                return [NewEvent(stream, "queue.admitted", {"head": head})]
            # the rule is the reason's kind: the detail need not name it again
            return [NewEvent(stream, "queue.needs_approval", {
                "kind": verdict.rule, "detail": verdict.detail.removeprefix(f"{verdict.rule}: "),
                "head": head})]
        kind = {"denied": "policy", "conflict": "conflict",
                "no_commits": "no_commits"}[verdict.verdict]
        evicted = NewEvent(stream, "queue.evicted", {
            "kind": kind, "rule": verdict.rule, "detail": verdict.detail,
            "files": list(verdict.conflicted_files)})
        resolve = (self._resolve(tid, verdict.detail, verdict.conflicted_files)
                   if kind == "conflict" else [])
        return [evicted, *resolve]

    # -- one round ----------------------------------------------------------------------------
    async def _round(self) -> bool:
        """Plan and act until the plan is to run checks (one round of them) or nothing: a
        landing or an eviction is followed by the next plan at once, on a chain that reuses
        everything still valid. A landing runs beside what follows it (the next candidates
        are commits of the same chain, whether or not the target has moved yet)."""
        if self.paused or not self._entries("queued"):
            return False
        if self.cfg.land == "push":
            await anyio.to_thread.run_sync(fetch, self.root, self.cfg.remote, self.target)
        elif self.pr_landing is not None:
            await self.pr_landing.fetch()
        base = await anyio.to_thread.run_sync(
            lambda: gitx.object_db(self.root).resolve(self.target_ref))
        # Only at start-up or when something else moved the target can an entry be on it
        # without a record of its landing.
        if base != self.base and await self._record_already_landed(base):
            return True
        self.base = base
        try:
            async with anyio.create_task_group() as tg:
                progressed = await self._act(tg, base)
        except BaseExceptionGroup as group:  # a landing failed: as if the round itself had
            error = _sole_wf_error(group)
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
                await self._evict_conflict(entries, planned)
                progressed = True
                continue
            chain, plan = planned
            if plan.land:
                size = 1 if self.pr_landing is not None else plan.land  # a PR/MR: one branch
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
            chain = await anyio.to_thread.run_sync(self.builder.build, base, entries, depth)
            if isinstance(chain, Conflict):
                return chain
            plan = plan_round(len(entries), self._known(chain), self._estimate(),
                              parallel=self.slots.count, max_batch=self.cfg.max_batch,
                              suspects=self._suspects(entries))
            depth = max((p.size for p in plan.probes if p.without is None), default=0)
            if depth <= len(chain.entries):
                return chain, plan

    async def _record_already_landed(self, base: str) -> bool:
        """Reconcile by looking at git: an entry whose head the target already contains has
        landed (wf stopped between moving the target and recording it)."""
        queued = self._entries("queued")
        db = gitx.object_db(self.root)
        landed = await anyio.to_thread.run_sync(
            lambda: [q for q in queued if q["head"] and db.is_ancestor(q["head"], base)])
        if landed:
            await self._append(*[NewEvent(task_stream(q["task_id"]), "queue.landed", {
                "commit": base, "target": self.target, "reconciled": True}) for q in landed])
        return bool(landed)

    def _known_fork(self, q: dict[str, Any]) -> Fork | None:
        """Where the entry's admitted head leaves the target, if this engine admitted it."""
        head, fork = self.forks.get(q["task_id"], (None, None))
        return fork if head == q["head"] else None

    def _tree_key(self, tree: str) -> str:
        return f"{tree}/{self.checks_key}"

    def _known(self, chain: Chain) -> dict[int, bool]:
        known = {}
        for size, tree in enumerate(chain.trees, start=1):
            row = self.e.p.tested_trees.get(self._tree_key(tree))
            if row is not None and row["result"] in ("pass", "fail"):
                known[size] = row["result"] == "pass"
        return known

    def _suspects(self, entries: list[Entry]) -> frozenset[int]:
        """Positions of the entries a failing check's output named (``[merge] blame``)."""
        if not self.cfg.blame:
            return frozenset()
        return frozenset(i for i, e in enumerate(entries)
                         if (self.e.p.queue.get(e.task_id) or {}).get("suspect"))

    def _blame(self, chain: Chain, size: int, log: str) -> list[str]:
        """The entries of ``chain``'s first ``size`` whose changes the failing ``log`` names:
        each entry's changes are what its merge brought to the prefix before it."""
        db = gitx.object_db(self.root)
        trees = [chain.base, *chain.trees[:size]]
        try:
            changes = [(e.task_id, db.changed_paths(trees[i], trees[i + 1]))
                       for i, e in enumerate(chain.entries[:size])]
        except WfError:
            return []  # a hint only: without it the queue narrows by splitting
        commands = "\n".join(f"$ {' '.join(argv)}" for argv in self.cfg.check)  # log headers
        return blamed(read_log(log), changes, quiet=commands + "\n" + read_log(self.quiet_log))

    def _estimate(self) -> Estimate:
        rows = self.e.p.queue.values()
        landed = sum(1 for q in rows if q["state"] == "landed" or q["task_id"] in self.landing)
        failed = sum(1 for q in rows if q["state"] == "evicted" and q["reason_kind"] == "check")
        return Estimate(failures=failed, entries=landed + failed)

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
                self.builder.without, chain, entries, probe.without, probe.size)
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
                      or self._tree_key(c.prefix(size)[1]) not in self.e.p.tested_trees]
        if not candidates:
            return
        results: dict[Probe, str] = {}
        announced = anyio.Event()

        async def announce() -> None:  # beside the checks: they need not wait for it
            await self._append(NewEvent(QUEUE_STREAM, "queue.check_started", {
                "sizes": [size for _p, _c, size in candidates],
                "batches": [[e.task_id for e in c.entries[:size]] for _p, c, size in candidates],
                "without": [None if p.without is None else entries[p.without].task_id
                            for p, _c, _s in candidates]}))
            announced.set()

        async def one(slot: int, probe: Probe, candidate: Chain, size: int) -> None:
            commit, tree = candidate.prefix(size)
            started = time.time()
            if not self.cfg.check:
                spawned[slot].set()
                result, detail, log = "pass", "no checks configured", None
            else:
                res = await anyio.to_thread.run_sync(lambda: self.slots.run(
                    slot, commit, tree, self.cfg.check, timeout=self.cfg.check_timeout,
                    environ=self.e.d.environ, spawned=spawned[slot],
                    check_cancelled=anyio.from_thread.check_cancelled))
                result, detail, log = res.result, res.detail, res.log_path
            named: list[str] = []
            if result == "fail" and self.cfg.blame and log:
                named = await anyio.to_thread.run_sync(self._blame, candidate, size, log)
            elif result == "pass" and log:
                self.quiet_log = log
            results[probe] = result
            await announced.wait()
            await self._append(NewEvent(QUEUE_STREAM, "queue.check_finished", {
                "tree": self._tree_key(tree), "commit": commit, "size": size,
                "entries": [e.task_id for e in candidate.entries[:size]],
                "without": (None if probe.without is None
                            else entries[probe.without].task_id),
                "result": result, "detail": detail, "log": log, "blamed": named,
                "started": round(started, 3), "duration": round(time.time() - started, 3)}))

        lead = min(self._suspects(entries), default=None)
        spawned = [threading.Event() for _ in candidates]

        def build_ahead() -> None:
            for started in spawned:  # the checks' start comes first
                started.wait(timeout=1.0)
            built = self.builder.build(chain.base, entries, len(entries))
            if lead is not None and isinstance(built, Chain) and lead < len(built.entries):
                # the likeliest next queue: this one once the suspect is evicted
                self.builder.without(built, entries, lead, len(entries) - 1)

        async def extend() -> None:  # while the checks run: what later rounds may need
            await run_in_background_thread(build_ahead)

        checked = anyio.Event()

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
        plain = {p.size: r for p, r in results.items() if p.without is None}
        reds = [s for s, r in plain.items() if r == "fail"]
        greens = [s for s, r in plain.items() if r == "pass"]
        if reds and greens and min(reds) < max(greens) and not self.flaky_seen:
            self.flaky_seen = True  # a longer prefix passed where a shorter one failed
            await self._append(NewEvent(QUEUE_STREAM, "queue.flaky_seen", {
                "detail": f"prefix of {min(reds)} failed while {max(greens)} passed"}))
        if any(r == "infra" for r in results.values()) and not reds and not greens:
            await self._infra_backoff()
        else:
            self.infra_streak = 0

    async def _infra_backoff(self) -> None:
        """An infrastructure failure is retried after a growing delay and never bisected;
        after repeated ones the queue pauses and says so."""
        if self.infra_streak >= len(INFRA_BACKOFF):
            await self._pause("checks keep failing with exit 75 (infrastructure)")
            return
        await anyio.sleep(INFRA_BACKOFF[self.infra_streak])
        self.infra_streak += 1

    async def _judge_culprit(self, chain: Chain, entries: list[Entry], index: int,
                             beside: tuple[Probe, ...]) -> bool:
        """The entry at ``index`` fails on top of the green prefix before it: evict it (True).
        Once flaky results have been seen, or when its failure named none of its files while
        the check's failures do name files, it is checked once more first, together with the
        speculative probes ``beside`` it (False)."""
        entry = chain.entries[index]
        commit, tree = chain.prefix(index + 1)
        row = self.e.p.tested_trees.get(self._tree_key(tree)) or {}
        unnamed = (self.cfg.blame
                   and not (self.e.p.queue.get(entry.task_id) or {}).get("suspect")
                   and any(q.get("suspect") for q in self.e.p.queue.values()))
        if ((self.flaky_seen or unnamed or (row.get("passes") and row.get("fails")))
                and row.get("fails", 0) < 2):
            await self._check(chain, entries, (Probe(index + 1), *beside))
            return False
        await self._append(NewEvent(task_stream(entry.task_id), "queue.evicted", {
            "kind": "check", "detail": f"fails the checks on top of {self.target}"
                                       + (f" and {index} entries before it" if index else "")
                                       + f": {check_summary(row.get('detail'))}",
            "tree": tree, "log": row.get("log")}))
        return True

    async def _evict_conflict(self, entries: list[Entry], conflict: Conflict) -> None:
        entry = entries[conflict.index]
        before = ", ".join(e.task_id for e in entries[:conflict.index]) or self.target
        detail = f"conflicts with {before} in {', '.join(conflict.files) or 'some files'}"
        await self._append(NewEvent(task_stream(entry.task_id), "queue.evicted", {
            "kind": "conflict", "files": list(conflict.files), "detail": detail}),
            *self._resolve(entry.task_id, detail, conflict.files))

    def _resolve(self, tid: str, detail: str, files: tuple[str, ...]) -> list[NewEvent]:
        """With ``resolve_conflicts``, the events that send a conflicting task back to its
        agent: its next attempt starts with the target merged into its branch, conflicts left
        in place. Appended with the eviction, so the run never sees the task settled between
        the two."""
        if not self.cfg.resolve_conflicts or tid not in self.e.p.tasks:
            return []
        return [NewEvent(task_stream(tid), "task.requeued", {
            "reason": "conflict", "resolve": {"target": self.target, "detail": detail,
                                              "files": list(files)}})]

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
        await self._append(NewEvent(QUEUE_STREAM, "queue.land_requested", {
            "old": base, "new": commit, "entries": [e.task_id for e in landed]}))
        if self.pr_landing is not None:
            first = landed[0].task_id
            outcome = await self.pr_landing.land(landed[0], self.e.p.tasks.get(first),
                                                 self.e.p.queue.get(first), base, commit,
                                                 self._append)
        elif self.cfg.land == "push":
            outcome = await anyio.to_thread.run_sync(
                land_push, self.root, self.cfg.remote, self.target, base, commit)
            if outcome.status == "landed":  # the remote-tracking ref follows without a fetch
                await anyio.to_thread.run_sync(lambda: gitx.update_ref(
                    self.root, self.target_ref, commit, message="wf merge queue: pushed"))
        else:
            outcome = await anyio.to_thread.run_sync(
                land_local, self.root, self.target, base, commit)
        if outcome.status == "refused":
            if self.refused != outcome.detail:  # say it once, not every retry
                self.refused = outcome.detail
                await self._append(NewEvent(QUEUE_STREAM, "queue.land_refused",
                                            {"detail": outcome.detail}))
            await anyio.sleep(REFUSED_RETRY)
            return None
        self.refused = None
        if outcome.status == "evicted":  # the forge's checks failed, or it will not merge
            await self._append(NewEvent(task_stream(landed[0].task_id), "queue.evicted", {
                "kind": outcome.kind, "detail": outcome.detail}))
            return base
        commit = outcome.commit or commit
        if outcome.status == "moved":
            await self._append(NewEvent(QUEUE_STREAM, "queue.land_aborted",
                                        {"detail": outcome.detail}))
            return None
        # Two appends on purpose: a crash between them is reconciled from git (the target
        # contains the entries' heads), which the crash tests exercise.
        await self._append(NewEvent(QUEUE_STREAM, "queue.target_moved", {
            "old": base, "new": commit, "entries": [e.task_id for e in landed]}))
        await self._append(*[NewEvent(task_stream(e.task_id), "queue.landed", {
            "commit": commit, "target": self.target}) for e in landed])
        return commit

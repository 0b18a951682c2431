"""The local engine: an anyio scheduler over the event log.

One main loop decides (which task starts, what a signal does); one driver coroutine per running
task acts through activities (worktrees, agent processes) and records each step as
intent → effect → done. The engine's view of the world is a ``Projection`` folded from the
events it reads and appends; on start it reconciles every attempt the log calls running with
what the processes and files say, instead of redoing anything blindly.

Leaving the loop (Ctrl-C, SIGTERM, a crash) never stops an agent: agents run under the shim in
sessions of their own, and the next engine adopts them.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import anyio

from wf import gitx
from wf.agents import runner
from wf.agents.builtin import find_adapter
from wf.agents.runner import AttemptFiles
from wf.agents.transcript import TranscriptRecorder
from wf.config import Config
from wf.engine.decide import Outcome, classify_exit, plan_after_attempt, readiness
from wf.engine.signal_rules import QUEUE_SIGNALS, SignalVerdict, judge_signal
from wf.errors import ResourceError, WfError, resource_error
from wf.model import (
    RUN_STREAM, SIGNAL_STREAM, TERMINAL_STATES, AttemptState, Event, FailureKind, NewEvent,
    task_stream,
)
from wf.spec import TaskSpec
from wf.store.projections import Projection, apply

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when stopping an attempt
SIGNAL_POLL = 0.25  # how often the loop looks for signals written by other processes
ADOPTED_POLL = 0.2  # how often an adopted attempt's exit file is checked


class Clock(Protocol):
    def now(self) -> float: ...


class SystemClock:
    def now(self) -> float:
        return time.time()


@dataclass
class EngineDeps:
    """What the composition root (wf.api) hands the engine."""

    store: Any  # SqliteEventStore
    writer: Any  # GroupCommitWriter
    worktrees: Any  # WorktreeManager
    config: Config
    logs_dir: Path
    clock: Clock = field(default_factory=SystemClock)
    rng: random.Random = field(default_factory=random.Random)
    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))


@dataclass
class _Active:
    """A task with a driver. ``poke`` wakes the driver: a cancel came, or its agent exited."""

    task_id: str
    cancel_reason: str | None = None
    exited: bool = False
    recorder: TranscriptRecorder | None = None  # reads the agent's output, when it has an adapter
    poke: anyio.Event = field(default_factory=anyio.Event)

    def cancel(self, reason: str) -> None:
        self.cancel_reason = reason
        self.poke.set()

    async def wait(self, timeout: float) -> None:
        with anyio.move_on_after(timeout):
            await self.poke.wait()
        self.poke = anyio.Event()


class LocalEngine:
    def __init__(self, deps: EngineDeps) -> None:
        self.d = deps
        self.p = Projection()
        self.active: dict[str, _Active] = {}
        self.touched: set[str] = set()  # tasks this engine session drove or changed
        self._wake = anyio.Event()
        self._last_signal_poll = 0.0
        self.queue: Any = None  # the merge queue's runner, when [merge] is enabled
        self.merge_target: str | None = None

    # -- the log ----------------------------------------------------------------------------
    async def append(self, *events: NewEvent) -> list[Event]:
        committed = await self.d.writer.append(list(events))
        for e in committed:
            apply(self.p, e)
            if e.task_id:
                self.touched.add(e.task_id)
        return committed

    async def _task_event(self, tid: str, type_: str, data: dict[str, Any], **kw: Any) -> None:
        await self.append(NewEvent(task_stream(tid), type_, data, **kw))

    def spec(self, tid: str) -> TaskSpec:
        return TaskSpec.model_validate(self.p.tasks[tid]["spec"])

    # -- the main loop ----------------------------------------------------------------------
    async def run(self, run_id: str, argv: list[str]) -> Projection:
        self.p = await anyio.to_thread.run_sync(self.d.store.projection)
        await self.append(NewEvent(RUN_STREAM, "run.started", {
            "run_id": run_id, "pid": os.getpid(), "host": os.uname().nodename, "argv": argv}))
        async with anyio.create_task_group() as tg:
            if self.d.config.merge.enabled and self.merge_target:
                from wf.merge_queue.runner import QueueRunner

                self.queue = QueueRunner(self, target=self.merge_target,
                                         logs_dir=self.d.logs_dir.parent / "queue")
                tg.start_soon(self.queue.open_repository)  # while signals are read
            # Adopt running attempts first, so a waiting cancel finds them; then act on
            # waiting signals, so the queue's first round sees every entry already sent.
            await self._reconcile(tg)
            await self._poll_signals(tg)
            if self.queue is not None:
                tg.start_soon(self.queue.run)
            while True:
                await self._poll_signals(tg)
                await self._start_ready(tg)
                if not self.active and self._all_settled():
                    break
                with anyio.move_on_after(self._sleep_for()):
                    await self._wake.wait()
                self._wake = anyio.Event()
            tg.cancel_scope.cancel()  # the queue runner loops until told to stop
        return self.p

    def _all_settled(self) -> bool:
        return (all(t["state"] in TERMINAL_STATES for t in self.p.tasks.values())
                and not (self.queue and self.queue.busy()))

    def _sleep_for(self) -> float:
        now = self.d.clock.now()
        due = [t["next_retry_at"] - now for t in self.p.tasks.values()
               if t["state"] == "retrying" and t["next_retry_at"]]
        return max(0.0, min([SIGNAL_POLL, *due]))

    def wake(self) -> None:
        self._wake.set()

    async def _start_ready(self, tg: anyio.abc.TaskGroup) -> None:
        now = self.d.clock.now()
        running_by_agent: dict[str, int] = {}
        for tid in self.active:
            agent = self.p.tasks[tid]["agent"]
            running_by_agent[agent] = running_by_agent.get(agent, 0) + 1
        for tid, task in list(self.p.tasks.items()):
            if task["state"] not in ("queued", "retrying") or tid in self.active:
                continue
            r = readiness(task, self.p.tasks, now,
                          deps_must_land=self.d.config.merge.auto and self.queue is not None)
            if r.blocked_by:
                await self._task_event(tid, "task.blocked", {
                    "kind": "dependency", "dependency": r.blocked_by,
                    "error": f"dependency {r.blocked_by} is {r.blocked_state}"})
                continue
            if not r.ready or len(self.active) >= self.d.config.max_parallel:
                continue
            agent = task["agent"]
            limit = self._agent_limit(agent)
            if limit is not None and running_by_agent.get(agent, 0) >= limit:
                continue
            running_by_agent[agent] = running_by_agent.get(agent, 0) + 1
            self.active[tid] = _Active(tid)
            self.touched.add(tid)
            tg.start_soon(self._drive, tid, None)

    def _agent_limit(self, agent: str) -> int | None:
        cfg = self.d.config.agents.get(agent)
        return cfg.max_parallel if cfg else None

    # -- signals ----------------------------------------------------------------------------
    async def _poll_signals(self, tg: anyio.abc.TaskGroup) -> None:
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
            if queue_signal:
                result, events = self._queue_signal_events(kind, tid, sig.get("data") or {})
                batched.add(tid)
            else:
                result, events = await self._apply_signal(sig), []
            batch += [*events, NewEvent(SIGNAL_STREAM, "signal.handled", {
                "signal_seq": sig["seq"], "task": tid, "result": result},
                idempotency_key=f"signal.handled:{sig['seq']}")]
            if not queue_signal:
                await self.append(*batch)
                batch = []
        await self._append_queue_batch(batch)

    async def _append_queue_batch(self, batch: list[NewEvent]) -> None:
        if batch:
            await self.append(*batch)
            self.queue.wake()

    def _judge(self, kind: str, tid: str, data: Mapping[str, Any]) -> SignalVerdict:
        """The one rule for whether a signal applies (``wf.api.send_signal`` asks it too)."""
        return judge_signal(kind, tid, self.p.tasks.get(tid), self.p.queue.get(tid),
                            queue_enabled=self.queue is not None, running=tid in self.active,
                            branch=data.get("branch"))

    async def _apply_signal(self, sig: Mapping[str, Any]) -> str:
        tid, kind = sig["task_id"], sig["kind"]
        verdict = self._judge(kind, tid, sig.get("data") or {})
        if not verdict.applies:
            return verdict.reason
        if kind == "cancel":
            if tid in self.active:
                self.active[tid].cancel("cancelled by signal")
                return "cancelling"
            await self._task_event(tid, "task.cancelled",
                                   {"kind": "cancelled", "error": "cancelled by signal"})
            return "cancelled"
        await self._requeue_with_dependents(tid)  # retry
        return "requeued"

    def _queue_signal_events(self, kind: str, tid: str, data: Mapping[str, Any]
                             ) -> tuple[str, list[NewEvent]]:
        """wf queue add / rm / retry, wf approve / reject: the outcome and its events."""
        verdict = self._judge(kind, tid, data)
        if not verdict.applies:
            return verdict.reason, []
        stream = task_stream(tid)
        if kind in ("enqueue", "requeue"):
            task = self.p.tasks.get(tid)
            if task is not None:
                return "ok", [self._enqueue_event(tid, task["commit_sha"])]
            branch = data.get("branch") or self.p.queue[tid]["branch"]
            return "ok", [NewEvent(stream, "queue.entered", {"branch": branch, "head": None})]
        if kind == "dequeue":
            return "ok", [NewEvent(stream, "queue.removed", {"detail": "removed by wf queue rm"})]
        if kind == "approve":
            return "ok", [NewEvent(stream, "queue.approved", {"by": data.get("by")})]
        return "ok", [NewEvent(stream, "queue.evicted", {  # reject
            "kind": "rejected", "detail": data.get("reason") or "rejected"})]

    async def _requeue_with_dependents(self, tid: str) -> None:
        """Requeue ``tid`` with a fresh retry budget, and the tasks it blocked, transitively."""
        await self._task_event(tid, "task.requeued", {"reason": "retry"})
        for other, row in self.p.tasks.items():
            if row["state"] == "blocked" and tid in (row["depends_on"] or ()):
                await self._requeue_with_dependents(other)

    # -- reconciliation ---------------------------------------------------------------------
    async def _reconcile(self, tg: anyio.abc.TaskGroup) -> None:
        """Every attempt the log calls running: adopt it, finish it, or record it lost."""
        for tid, task in list(self.p.tasks.items()):
            if task["state"] != "running":
                continue
            self.active[tid] = _Active(tid)
            self.touched.add(tid)
            tg.start_soon(self._drive, tid, task["attempts"])

    # -- one task ---------------------------------------------------------------------------
    async def _drive(self, tid: str, adopt_n: int | None) -> None:
        """Run (or adopt, when ``adopt_n`` is given) one attempt of ``tid`` to its end."""
        try:
            if adopt_n is None:
                n = (self.p.tasks[tid]["attempts"] or 0) + 1
                files = AttemptFiles.of(self.d.logs_dir, tid, n)
                await self._task_event(tid, "attempt.started", {"n": n, "log_path": str(files.log)},
                                       idempotency_key=f"attempt.started:{tid}:{n}")
                outcome = await self._prepare_and_run(tid, n, files)
            else:
                n = adopt_n
                files = AttemptFiles.of(self.d.logs_dir, tid, n)
                outcome = await self._adopt(tid, n, files)
            await self._close_attempt(tid, n, outcome)
        except ResourceError:
            raise  # the machine refused wf's step: stop, charge no attempt; resume redoes it
        except OSError as exc:
            refused = resource_error(str(exc), f"{exc.filename or 'a file of task ' + tid}",
                                     exc.errno)
            if refused is not None:
                raise refused from exc
            await self._infra_failure(tid, f"{type(exc).__name__}: {exc}")
        except WfError as exc:  # an activity failed on wf's side: retry it
            await self._infra_failure(tid, exc.message)
        finally:
            self.active.pop(tid, None)
            self.wake()

    async def _infra_failure(self, tid: str, message: str) -> None:
        n = self.p.tasks[tid]["attempts"]
        await self._close_attempt(tid, n, Outcome(AttemptState.FAILED, FailureKind.INFRA, message))

    async def _close_attempt(self, tid: str, n: int, outcome: Outcome) -> None:
        events = plan_after_attempt(self.p.tasks[tid], n, outcome, self.spec(tid).retry,
                                    self.d.rng)
        if outcome.succeeded and self.queue is not None and self.d.config.merge.auto:
            events.append(self._enqueue_event(tid, outcome.commit))
        await self.append(*events)
        if self.queue is not None:
            self.queue.wake()

    def _enqueue_event(self, tid: str, head: str | None) -> NewEvent:
        return NewEvent(task_stream(tid), "queue.entered",
                        {"branch": self.p.tasks[tid]["branch"], "head": head})

    async def _prepare_and_run(self, tid: str, n: int, files: AttemptFiles) -> Outcome:
        spec = self.spec(tid)
        task = await self._ensure_worktree(tid, spec)
        if isinstance(task, Outcome):
            return task
        path = Path(task["worktree"])
        prompt = spec.prompt
        # A retry that resumes the agent's session keeps the worktree as that session left it.
        resumable = n > 1 and spec.resume_command and not task["resolve"]
        session = task["session_id"] if resumable else None
        if task["resolve"]:
            prompt = await self._start_conflict_resolution(tid, n, path, spec, task["resolve"])
        elif n > 1 and not session:
            await self._reset_for_retry(tid, n, path, task["base_commit"])
        env = self._agent_env(spec, task, n, prompt)
        if spec.setup and not task["setup_done"]:
            ok, out = await anyio.to_thread.run_sync(
                self.d.worktrees.run_setup, path, list(spec.setup), env, spec.timeout,
                anyio.from_thread.check_cancelled)
            files.prefix.parent.mkdir(parents=True, exist_ok=True)
            with open(files.log, "a") as log:
                log.write(f"wf: setup {' '.join(spec.setup)}\n{out}\n")
            if not ok:
                return Outcome(AttemptState.FAILED, FailureKind.SETUP_ERROR,
                               f"setup command failed: {_last_line(out)}")
            await self._task_event(tid, "task.setup_done", {"n": n})
        argv = runner.fill_placeholders(spec.resume_command if session else spec.command, {
            "prompt": prompt, "task_id": tid, "worktree": str(path), "attempt": str(n),
            "session": session or ""})
        proc = await anyio.to_thread.run_sync(lambda: runner.spawn(
            argv, cwd=path, env=env, files=files, max_log_bytes=self.d.config.log_max_bytes))
        await self._task_event(tid, "attempt.spawned", {
            "n": n, "pid": proc.pid, "pid_start": runner.process_starttime(proc.pid),
            "resumed_session": session})
        return await self._watch(tid, n, files, spec, proc=proc, pid=proc.pid)

    async def _ensure_worktree(self, tid: str, spec: TaskSpec) -> dict[str, Any] | Outcome:
        task = self.p.tasks[tid]
        if task["worktree_ready"] and task["worktree"]:
            if Path(task["worktree"]).is_dir():
                return task
            # Deleted by hand: say so; `ensure` prunes git's record of it and makes it again
            # from the task's branch, which keeps every commit that reached it.
            await self._task_event(tid, "task.worktree_lost", {
                "path": task["worktree"], "branch": task["branch"]})
        wt = self.d.worktrees
        path = wt.worktree_root / tid
        deps = list(spec.depends_on)
        if deps and self.queue is not None and self.d.config.merge.auto:
            deps, start = [], self.merge_target  # they have landed: start from the target
        else:
            start = f"wf/{deps[0]}" if deps else None
        await self._task_event(tid, "task.worktree_requested", {
            "branch": spec.branch, "path": str(path), "base_ref": spec.base, "start_point": start})
        info = await anyio.to_thread.run_sync(
            lambda: wt.ensure(tid, spec.base, start_point=start))
        if deps[1:]:
            merged = await anyio.to_thread.run_sync(
                gitx.merge_into_worktree, info.path, [f"wf/{d}" for d in deps[1:]])
            if not merged:
                return Outcome(AttemptState.FAILED, FailureKind.DEPENDENCY_CONFLICT,
                               f"the branches of {', '.join(deps)} do not merge cleanly")
        if not info.created and task["base_commit"]:
            base_commit = task["base_commit"]
        elif info.created and not deps[1:]:
            base_commit = info.base_commit  # a new worktree's HEAD is where it forked
        else:  # other dependencies merged in, or adopted before its base was recorded
            base_commit = await anyio.to_thread.run_sync(gitx.head, info.path)
        taken = {t["port"] for k, t in self.p.tasks.items() if k != tid and t["port"]}
        port = task["port"] or wt.port_for(tid, taken)
        await self._task_event(tid, "task.worktree_ready", {
            "branch": info.branch, "path": str(info.path), "base_commit": base_commit,
            "port": port, "created": info.created})
        return self.p.tasks[tid]

    async def _reset_for_retry(self, tid: str, n: int, path: Path, base_commit: str) -> None:
        """Start attempt ``n`` from the task's base, keeping the failed attempt's work in a
        backup ref rather than throwing it away."""
        wt = self.d.worktrees
        backup = await anyio.to_thread.run_sync(
            lambda: wt.save_backup(path, tid, f"attempt-{n - 1}", base_commit))
        if backup:
            await anyio.to_thread.run_sync(wt.reset_to, path, base_commit)
            await self._task_event(tid, "attempt.reset", {"n": n, "backup_ref": backup})

    def _agent_env(self, spec: TaskSpec, task: Mapping[str, Any], n: int,
                   prompt: str) -> dict[str, str]:
        return runner.agent_environment(self.d.environ, extra=spec.env, pass_env=spec.pass_env,
                                        wf_vars={
            "WF_TASK_ID": spec.id, "WF_ATTEMPT": str(n), "WF_WORKTREE": str(task["worktree"]),
            "WF_PROMPT": prompt, "WF_PORT": str(task["port"] or ""),
            "WF_BRANCH": spec.branch})

    async def _start_conflict_resolution(self, tid: str, n: int, path: Path, spec: TaskSpec,
                                         resolve: Mapping[str, Any]) -> str:
        """Merge the target into the task's branch, leaving conflicts for the agent, and
        return the prompt that tells it so. (A merge, not a rebase: one resolution step
        for the agent instead of one per commit.)"""
        target = resolve["target"]
        # A failed earlier try may have left a half-done merge: keep it in a backup ref, then
        # start again from the branch's own tip.
        wt, head = self.d.worktrees, await anyio.to_thread.run_sync(gitx.head, path)
        if await anyio.to_thread.run_sync(
                lambda: wt.save_backup(path, tid, f"attempt-{n - 1}", head)):
            await anyio.to_thread.run_sync(wt.reset_to, path, head)
        files = await anyio.to_thread.run_sync(gitx.merge_leaving_conflicts, path, target)
        await self._task_event(tid, "attempt.conflict", {"n": n, "target": target,
                                                          "files": list(files)})
        listed = ", ".join(files) or ", ".join(resolve.get("files") or ()) or "some files"
        return (f"Your branch {spec.branch} conflicts with {target} in {listed}. {target} has "
                f"been merged into your worktree and the conflicts are marked in those files. "
                f"Resolve them so that the original task still holds, and keep {target}'s "
                f"changes. The original task was:\n\n{spec.prompt}")

    async def _adopt(self, tid: str, n: int, files: AttemptFiles) -> Outcome:
        """Reconcile attempt ``n`` that a previous engine started."""
        spec = self.spec(tid)
        if files.read_exit() is None:
            claim = files.read_claim()
            if claim is None and files.claim_as_lost():
                return Outcome(AttemptState.FAILED, FailureKind.LOST,
                               "wf stopped before the agent started")
            claim = claim or files.read_claim()
            if claim and runner.is_alive(*claim):
                await self._task_event(tid, "attempt.adopted", {"n": n, "pid": claim[0]})
                return await self._watch(tid, n, files, spec, proc=None, pid=claim[0])
            if files.read_exit() is None:
                return Outcome(AttemptState.FAILED, FailureKind.LOST,
                               "the agent vanished (machine restarted or killed outside wf)")
        return await self._finish_exited(tid, n, files, spec)

    async def _watch(self, tid: str, n: int, files: AttemptFiles, spec: TaskSpec, *,
                     proc: subprocess.Popen[bytes] | None, pid: int) -> Outcome:
        """Wait for the attempt to end, enforcing its timeouts and honouring cancel."""
        active = self.active[tid]
        started = self.p.attempts[(tid, n)]["started_ts"] or self.d.clock.now()

        async def wait_own() -> None:
            await _wait_for_exit(proc)
            active.exited = True
            active.poke.set()

        stop: tuple[AttemptState, FailureKind | None, str] | None = None
        async with anyio.create_task_group() as tg:
            if proc is not None:
                tg.start_soon(wait_own)
            while True:
                if active.cancel_reason is not None:
                    stop = (AttemptState.CANCELLED, None, active.cancel_reason)
                    break
                await self._record_output(tid, n, files, spec)
                if active.exited or files.read_exit() is not None:
                    break
                if proc is None and not runner.is_alive(pid, None):
                    break
                now = self.d.clock.now()
                if spec.timeout and now - started > spec.timeout:
                    stop = (AttemptState.TIMED_OUT, FailureKind.TIMEOUT,
                            f"timed out after {spec.timeout:g}s")
                    break
                quiet_since = max(started, files.last_output() or 0)
                if spec.no_output_timeout and now - quiet_since > spec.no_output_timeout:
                    stop = (AttemptState.TIMED_OUT, FailureKind.NO_OUTPUT_TIMEOUT,
                            f"no output for {spec.no_output_timeout:g}s")
                    break
                await active.wait(self._watch_tick(spec, started, quiet_since, proc))
            if stop is not None:
                await self._stop_group(pid, files, active)
            # wait_own stays to reap our own child; an adopted agent needs nothing more
        if stop is not None:
            state, kind, error = stop
            return Outcome(state, kind, error, exit_code=(files.read_exit() or {}).get("exit_code"))
        if files.read_exit() is None:
            return Outcome(AttemptState.FAILED, FailureKind.LOST,
                           "the agent's supervisor died without recording an exit status")
        return await self._finish_exited(tid, n, files, spec)

    def _watch_tick(self, spec: TaskSpec, started: float, quiet_since: float,
                    proc: subprocess.Popen[bytes] | None) -> float:
        now = self.d.clock.now()
        tick = 1.0 if proc is not None else ADOPTED_POLL
        if spec.timeout:
            tick = min(tick, started + spec.timeout - now)
        if spec.no_output_timeout:
            tick = min(tick, quiet_since + spec.no_output_timeout - now)
        return max(0.01, tick)

    async def _stop_group(self, pid: int, files: AttemptFiles, active: _Active) -> None:
        """SIGTERM the attempt's process group, then SIGKILL what is left after a grace."""
        runner.signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        while files.read_exit() is None and runner.is_alive(pid, None):
            if time.monotonic() > deadline:
                break
            await active.wait(0.05)
        runner.signal_group(pid, signal.SIGKILL)

    async def _finish_exited(self, tid: str, n: int, files: AttemptFiles,
                             spec: TaskSpec) -> Outcome:
        """The agent exited: commit what it left uncommitted, then judge the attempt."""
        record = files.read_exit() or {}
        recorder = await self._record_output(tid, n, files, spec, final=True)
        verdict = recorder.verdict(record.get("exit_code")) if recorder else None
        task = self.p.tasks[tid]
        path = Path(task["worktree"])
        if not path.is_dir():  # not the agent's doing as far as wf can tell: infra, retried
            return Outcome(AttemptState.FAILED, FailureKind.INFRA,
                           f"worktree {path} was deleted while the agent ran; it is made again "
                           f"from {task['branch']} for the next attempt",
                           exit_code=record.get("exit_code"))
        changed, commit = False, None
        if record.get("exit_code") == 0:
            message = f"wf: {tid}: {_first_line(spec.prompt)}"
            trailers = {"Wf-Task": tid, "Wf-Attempt": str(n)}

            def last_commit() -> str | None:
                """The attempt's last commit, None when it changed nothing. Only commits
                count: after commit_all nothing is left uncommitted to look at."""
                made = gitx.commit_all(path, message, trailers)
                if made is not None:
                    return made
                beyond = gitx.commits_beyond(path, task["base_commit"], "HEAD")
                return gitx.head(path) if beyond else None

            commit = await anyio.to_thread.run_sync(last_commit)
            changed = commit is not None
        return classify_exit(record, changed=changed, commit=commit,
                             last_line=_last_error(record, files), verdict=verdict)

    async def _record_output(self, tid: str, n: int, files: AttemptFiles, spec: TaskSpec, *,
                             final: bool = False) -> TranscriptRecorder | None:
        """Record what the agent's adapter reads in its new output as ``agent.*`` events."""
        adapter = find_adapter(spec.adapter)
        active = self.active[tid]
        if adapter is None:
            return None
        if active.recorder is None or active.recorder.n != n:
            active.recorder = TranscriptRecorder(adapter, files, tid, n)
        recorder = active.recorder
        events = await anyio.to_thread.run_sync(lambda: recorder.poll(final=final))
        if events:
            await self.append(*events)
        return recorder


async def _wait_for_exit(proc: subprocess.Popen[bytes]) -> None:
    """Wait until our own agent's shim exits, then reap it. Cancellable at once (Ctrl-C must
    stop wf within a second and leave the agent running): the wait is on a pidfd in the event
    loop, not ``Popen.wait`` in a thread, which nothing can interrupt."""
    try:
        fd = os.pidfd_open(proc.pid)
    except (AttributeError, OSError):  # no pidfds (not Linux, or an old kernel): poll
        while proc.poll() is None:
            await anyio.sleep(ADOPTED_POLL)
        return
    try:
        await anyio.wait_readable(fd)  # readable once the process has exited
    finally:
        os.close(fd)
    proc.wait()


def _first_line(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def _last_error(record: dict[str, Any], files: AttemptFiles) -> str:
    """What the agent said last about what went wrong: its last line on stderr, else the
    last line of its output (an agent that reports errors on stdout, or an older shim)."""
    return _last_line(record.get("stderr_tail") or "") or _last_line(files.tail())


def _last_line(text: str, width: int = 200) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= width else line[: width - 1] + "…"


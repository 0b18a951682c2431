"""The side effects of a task's attempt, as synchronous, idempotent activities.

Each takes a dataclass and returns one; none decides what happens next and none appends a
lifecycle event (the interpreter does both, from the decisions in ``decide.py``,
``attempt_plan.py`` and ``schedule.py``). The local engine runs them in threads; a Temporal
worker runs the same functions as activities. Running one twice does no harm: ``ensure``
adopts the worktree it made, a backup ref is written once per content, an attempt whose
supervisor still runs is adopted rather than started again (``run_attempt`` with ``adopt``).

``run_attempt`` is given an ``AttemptControl``: how it reports the agent's pid and output as
they come (the interpreter records them), asks whether a cancel was requested, and waits.
"""

from __future__ import annotations

import contextlib
import os
import select
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from wf import gitx
from wf.agents import process
from wf.agents.adapter import Verdict  # at run time: a Temporal worker converts reports by hint
from wf.agents.builtin import find_adapter
from wf.agents.process import AttemptFiles
from wf.agents.transcript import TranscriptRecorder
from wf.engine.attempt_plan import CANCELLED_BY_SIGNAL, Stop, deadline_passed, next_look
from wf.model import NewEvent

if TYPE_CHECKING:
    from wf.pool.keeper import WorktreePool
    from wf.worktrees import WorktreeManager

KILL_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when stopping an attempt
OWN_POLL = 1.0  # how often a running attempt's output is read and its deadlines looked at
ADOPTED_POLL = 0.2  # the same for an adopted attempt where no pidfd tells of its exit
CLAIM_WAIT = 10.0  # how long a spawned supervisor may take to claim its attempt


@dataclass(frozen=True)
class AgentEnvironment:
    """What an agent's (and its setup command's) environment is made of: the allowlist of the
    worker's own environment, ``pass_env`` names, the agent's ``extra`` settings, ``WF_*``."""

    wf_vars: Mapping[str, str]
    extra: Mapping[str, str] = field(default_factory=dict)
    pass_env: Sequence[str] = ()

    def build(self, environ: Mapping[str, str]) -> dict[str, str]:
        return process.agent_environment(environ, wf_vars=self.wf_vars, extra=self.extra,
                                        pass_env=self.pass_env)


# -- worktrees -------------------------------------------------------------------------------

@dataclass(frozen=True)
class EnsureWorktree:
    task_id: str
    base_ref: str
    start_point: str | None
    merge: tuple[str, ...] = ()  # other dependencies' branches to merge in
    recorded_base: str | None = None  # the base commit the log already holds


@dataclass(frozen=True)
class WorktreeReady:
    branch: str
    path: str
    created: bool
    base_commit: str | None
    merged: bool = True  # False: the ``merge`` branches conflict


@dataclass(frozen=True)
class ResetForRetry:
    task_id: str
    path: str
    n: int  # the attempt about to start; the work of n-1 is backed up
    base_commit: str


@dataclass(frozen=True)
class StartResolution:
    task_id: str
    path: str
    n: int
    target: str


@dataclass(frozen=True)
class RunSetup:
    path: str
    command: tuple[str, ...]
    env: AgentEnvironment
    timeout: float | None
    log_path: str


@dataclass(frozen=True)
class SetupResult:
    ok: bool
    output: str


# -- the attempt ------------------------------------------------------------------------------

@dataclass(frozen=True)
class RunAttempt:
    """Run attempt ``n`` (spawn it, or with ``adopt`` take over the one a previous engine
    started), watch it to its end, stop it when told or when a deadline passes, and commit
    what it left."""

    task_id: str
    n: int
    path: str
    argv: tuple[str, ...]  # placeholders already filled
    env: AgentEnvironment
    started: float  # when the attempt started (its deadlines count from here)
    base_commit: str | None
    branch: str
    commit_message: str
    adapter: str | None = None
    timeout: float | None = None
    no_output_timeout: float | None = None
    max_log_bytes: int = 0
    adopt: bool = False
    session: str | None = None  # the agent session the attempt resumes
    spawned: tuple[int, int | None] | None = None  # (pid, start time) the log recorded
    # Spans the agent spent paused by a budget (start, end or None: still paused), as the log
    # has them: they count toward neither timeout, and an open one is kept paused on adopt.
    pauses: tuple[tuple[float, float | None], ...] = ()
    poll: float | None = None  # how often to look (a budget needs sooner than OWN_POLL)


@dataclass
class AttemptReport:
    """What happened, as facts; ``decide.attempt_outcome`` turns it into an Outcome.

    ``ended``: ``exited`` (``record`` holds the exit record), ``stopped`` (``stop`` says why),
    ``lost`` (``error`` says how), ``worktree_gone`` (deleted while the agent ran)."""

    ended: str
    record: dict[str, Any] = field(default_factory=dict)
    stop: Stop | None = None
    error: str | None = None
    changed: bool = False
    commit: str | None = None
    last_line: str = ""
    verdict: Verdict | None = None


class AttemptAbandoned(Exception):
    """The engine that asked for the attempt is gone (Ctrl-C): leave the agent running and
    record nothing more; the next engine adopts it."""


class AttemptControl(Protocol):
    """The interpreter's side of a running attempt."""

    def spawned(self, pid: int, pid_start: int | None, session: str | None) -> None:
        """The supervisor runs (record ``attempt.spawned`` before anything else happens)."""

    def adopted(self, pid: int) -> None:
        """A live supervisor of a previous engine was taken over."""

    def agent_events(self, events: list[NewEvent]) -> None:
        """The adapter read these ``agent.*`` events in the new output."""

    def cancel_requested(self) -> bool:
        """Whether the attempt must be stopped (``wf cancel``)."""

    # Optional (a control without them never pauses and is never stopped by a budget):
    #   stop_requested() -> Stop | None   a reason other than cancel to stop (a budget's stop)
    #   pause_requested() -> bool         whether the agent must be paused now (a budget)
    #   paused(pid) / resumed()           the agent's process group was stopped / continued

    def heartbeat(self) -> None:
        """The attempt is alive and watched (a Temporal activity heartbeats here)."""

    def wait(self, seconds: float, fd: int | None) -> None:
        """Sleep up to ``seconds``; return early when ``fd`` (the agent's pidfd) is readable
        or a cancel arrives. Raises AttemptAbandoned when the engine is gone."""


class TaskActivities:
    """The activities of tasks, bound to one host's worktrees, attempt logs and environment,
    and its pool of warm worktrees (``wf.pool``) when one is configured."""

    def __init__(self, worktrees: WorktreeManager, environ: Mapping[str, str],
                 logs_dir: Path, worktree_pool: WorktreePool | None = None) -> None:
        self.worktrees, self.environ, self.logs_dir = worktrees, environ, logs_dir
        self.worktree_pool = worktree_pool

    def files(self, task_id: str, n: int) -> AttemptFiles:
        return AttemptFiles.of(self.logs_dir, task_id, n)

    def worktree_exists(self, path: str) -> bool:
        return Path(path).is_dir()

    def ensure_worktree(self, inp: EnsureWorktree) -> WorktreeReady:
        """Create or adopt the task's worktree and branch (from the pool when there is one);
        merge the other dependencies."""
        pool = self.worktree_pool
        info = pool.ensure(inp.task_id, inp.base_ref, inp.start_point) if pool else None
        if info is None:
            info = self.worktrees.ensure(inp.task_id, inp.base_ref, start_point=inp.start_point)
        if inp.merge and not gitx.merge_into_worktree(info.path, list(inp.merge)):
            return WorktreeReady(info.branch, str(info.path), info.created, None, merged=False)
        if not info.created and inp.recorded_base:
            base = inp.recorded_base
        elif info.created and not inp.merge:
            base = info.base_commit  # a new worktree's HEAD is where it forked
        else:  # other dependencies merged in, or adopted before its base was recorded
            base = gitx.head(info.path)
        return WorktreeReady(info.branch, str(info.path), info.created, base)

    def reset_for_retry(self, inp: ResetForRetry) -> str | None:
        """Keep the failed attempt's work under a backup ref, then reset the worktree to the
        task's base. The backup ref, or None when there was nothing to keep."""
        path = Path(inp.path)
        backup = self.worktrees.save_backup(path, inp.task_id, f"attempt-{inp.n - 1}",
                                            inp.base_commit)
        if backup:
            self.worktrees.reset_to(path, inp.base_commit)
        return backup

    def start_conflict_resolution(self, inp: StartResolution) -> tuple[str, ...]:
        """Merge the target into the task's branch, leaving conflicts for the agent; the
        conflicted files. (A merge, not a rebase: one resolution step for the agent instead of
        one per commit.) A half-done merge of a failed earlier try is kept in a backup ref
        first, and the worktree starts again from the branch's own tip."""
        path = Path(inp.path)
        head = gitx.head(path)
        if self.worktrees.save_backup(path, inp.task_id, f"attempt-{inp.n - 1}", head):
            self.worktrees.reset_to(path, head)
        return tuple(gitx.merge_leaving_conflicts(path, inp.target))

    def run_setup(self, inp: RunSetup, check_cancelled: Any = lambda: None) -> SetupResult:
        """Run the setup command; its output goes to the attempt's log. In a pooled worktree
        it is skipped when it already ran there for the same inputs (``wf.pool``)."""
        env = inp.env.build(self.environ)
        pool = self.worktree_pool
        done = pool.run_setup(Path(inp.path), tuple(inp.command), env, inp.timeout,
                              check_cancelled) if pool else None
        ok, out = done if done is not None else self.worktrees.run_setup(
            Path(inp.path), list(inp.command), env, inp.timeout, check_cancelled)
        log = Path(inp.log_path)
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as f:
            f.write(f"wf: setup {' '.join(inp.command)}\n{out}\n")
        return SetupResult(ok, out)

    def run_attempt(self, inp: RunAttempt, control: AttemptControl) -> AttemptReport:
        return _Attempt(self, inp, control).run()


class _Attempt:
    """One ``run_attempt``: spawn or adopt, watch, stop, commit."""

    def __init__(self, acts: TaskActivities, inp: RunAttempt, control: AttemptControl) -> None:
        self.acts, self.inp, self.control = acts, inp, control
        self.files = acts.files(inp.task_id, inp.n)
        adapter = find_adapter(inp.adapter)
        self.recorder = (TranscriptRecorder(adapter, self.files, inp.task_id, inp.n)
                         if adapter is not None else None)

    def run(self) -> AttemptReport:
        if self.inp.adopt:
            return self._adopt()
        proc = process.spawn(list(self.inp.argv), cwd=Path(self.inp.path),
                            env=self.inp.env.build(self.acts.environ), files=self.files,
                            max_log_bytes=self.inp.max_log_bytes)
        self.control.spawned(proc.pid, process.process_starttime(proc.pid), self.inp.session)
        return self._watch(proc.pid, proc)

    def _adopt(self) -> AttemptReport:
        files = self.files
        if files.read_exit() is None:
            claim = files.read_claim() or self._claim_of_spawned()
            if claim is None and files.claim_as_lost():
                return AttemptReport("lost", error="wf stopped before the agent started")
            claim = claim or files.read_claim()
            if claim and process.is_alive(*claim):
                self.control.adopted(claim[0])
                return self._watch(claim[0], None)
            if files.read_exit() is None:
                return AttemptReport(
                    "lost", error="the agent vanished (machine restarted or killed outside wf)")
        return self._finish()

    def _claim_of_spawned(self) -> tuple[int, int] | None:
        """The claim of a supervisor the log says was spawned and that still runs but has
        not claimed the attempt yet (the engine stopped right after spawning it): wait for
        its claim, at most ``CLAIM_WAIT`` seconds, instead of declaring a live agent lost."""
        if self.inp.spawned is None or not process.is_alive(*self.inp.spawned):
            return None
        deadline = time.monotonic() + CLAIM_WAIT
        while time.monotonic() < deadline and process.is_alive(*self.inp.spawned):
            claim = self.files.read_claim()
            if claim is not None or self.files.read_exit() is not None:
                return claim
            self.control.wait(0.02, None)
        return self.files.read_claim()

    def _watch(self, pid: int, proc: subprocess.Popen[bytes] | None) -> AttemptReport:
        inp, files = self.inp, self.files
        pidfd = _pidfd(pid)
        stop: Stop | None = None
        pauses = [list(p) for p in inp.pauses]
        try:
            while True:
                if self.control.cancel_requested():
                    stop = CANCELLED_BY_SIGNAL
                    break
                stop = _optional(self.control, "stop_requested", None)
                if stop is not None:
                    break
                self._record_output()
                if (proc is not None and proc.poll() is not None) or files.read_exit():
                    break
                if proc is None and not process.is_alive(pid, None):
                    break
                self._pause_or_resume(pid, pauses)
                now, last = time.time(), files.last_output()
                spans = [(p[0], p[1]) for p in pauses]
                stop = deadline_passed(now, inp.started, last, inp.timeout,
                                       inp.no_output_timeout, spans)
                if stop is not None:
                    break
                self.control.heartbeat()
                poll = inp.poll or (OWN_POLL if proc is not None or pidfd is not None
                                    else ADOPTED_POLL)
                self.control.wait(next_look(now, inp.started, last, inp.timeout,
                                            inp.no_output_timeout, poll=poll, pauses=spans),
                                  pidfd)
            if stop is not None:
                if pauses and pauses[-1][1] is None:  # a stopped group gets no SIGTERM
                    process.signal_group(pid, signal.SIGCONT)
                self._stop_group(pid, pidfd)
        finally:
            if pidfd is not None:
                os.close(pidfd)
            # Stopped, or its exit file read a moment before the supervisor itself exits (a
            # look every 0.2 s under a budget falls between the two): reap it.
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=1.0)
        if stop is not None:
            return AttemptReport("stopped", record=files.read_exit() or {}, stop=stop)
        if files.read_exit() is None:
            return AttemptReport(
                "lost", error="the agent's supervisor died without recording an exit status")
        return self._finish()

    def _pause_or_resume(self, pid: int, pauses: list[list[float | None]]) -> None:
        """Carry out what the interpreter asks: SIGSTOP the agent's process group while a
        budget holds it (again after an adoption: harmless if it still is), SIGCONT once it
        no longer does. Each change is told to the control, which records it. A control not
        told anything yet (None: an agent adopted on Temporal) leaves the group as it is."""
        want = _optional(self.control, "pause_requested", False)
        if want is None:
            return
        is_paused = bool(pauses) and pauses[-1][1] is None
        if want:
            process.signal_group(pid, signal.SIGSTOP)
            if not is_paused:
                pauses.append([time.time(), None])
                _optional(self.control, "paused", None, pid)
        elif is_paused:
            process.signal_group(pid, signal.SIGCONT)
            pauses[-1][1] = time.time()
            _optional(self.control, "resumed", None)

    def _stop_group(self, pid: int, pidfd: int | None) -> None:
        """SIGTERM the attempt's process group, then SIGKILL what is left after a grace."""
        process.signal_group(pid, signal.SIGTERM)
        deadline = time.monotonic() + KILL_GRACE
        while self.files.read_exit() is None and process.is_alive(pid, None):
            if time.monotonic() > deadline:
                break
            self.control.wait(0.05, pidfd)
        process.signal_group(pid, signal.SIGKILL)

    def _finish(self) -> AttemptReport:
        """The agent exited: commit what it left uncommitted, and report the facts."""
        inp, files = self.inp, self.files
        record = files.read_exit() or {}
        self._record_output(final=True)
        verdict = self.recorder.verdict(record.get("exit_code")) if self.recorder else None
        path = Path(inp.path)
        if not inp.path or not path.is_dir():
            return AttemptReport("worktree_gone", record=record, verdict=verdict, error=(
                f"worktree {path} was deleted while the agent ran; it is made again from "
                f"{inp.branch} for the next attempt"))
        commit = None
        if record.get("exit_code") == 0:
            commit = gitx.commit_all(path, inp.commit_message,
                                     {"Wf-Task": inp.task_id, "Wf-Attempt": str(inp.n)})
            # Only commits count: after commit_all nothing is left uncommitted to look at.
            if commit is None and gitx.commits_beyond(path, inp.base_commit, "HEAD"):
                commit = gitx.head(path)
        return AttemptReport("exited", record=record, changed=commit is not None, commit=commit,
                             last_line=last_error(record, files), verdict=verdict)

    def _record_output(self, *, final: bool = False) -> None:
        if self.recorder is not None:
            events = self.recorder.poll(final=final)
            if events:
                self.control.agent_events(events)


def _optional(control: AttemptControl, method: str, default: Any, *args: Any) -> Any:
    """Call one of the control's optional methods, or give ``default`` if it has none."""
    call = getattr(control, method, None)
    return default if call is None else call(*args)


def _pidfd(pid: int) -> int | None:
    """A pidfd for ``pid`` (readable once it exits), None where the kernel has none."""
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def wait_readable(fds: Sequence[int], seconds: float) -> None:
    """Sleep until one of ``fds`` is readable, at most ``seconds``."""
    if fds:
        select.select(list(fds), [], [], max(0.0, seconds))
    else:
        time.sleep(max(0.0, seconds))


def first_line(text: str, width: int = 60) -> str:
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= width else line[: width - 1] + "…"


def last_error(record: Mapping[str, Any], files: AttemptFiles) -> str:
    """What the agent said last about what went wrong: its last line on stderr, else the
    last line of its output (an agent that reports errors on stdout, or an older shim)."""
    return last_line(record.get("stderr_tail") or "") or last_line(files.tail())


def last_line(text: str, width: int = 200) -> str:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= width else line[: width - 1] + "…"

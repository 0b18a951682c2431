"""Pure decisions about one attempt before and while it runs: where its worktree starts, what
is done to the worktree first, what the agent is told, which port it gets, when it is stopped.

No I/O: the engine passes rows, facts an activity reported, and ``now``. The activities in
``activities.py`` carry these plans out; the local engine and a Temporal workflow both ask here.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from wf.engine.budget import active_seconds
from wf.errors import ConfigError
from wf.model import AttemptState, FailureKind
from wf.spec import TaskSpec


@dataclass(frozen=True)
class WorktreeStart:
    """Where a task's new worktree forks from (``start_point``; None: its base) and the other
    branches merged into it afterwards."""

    start_point: str | None
    merge: tuple[str, ...] = ()


def worktree_start(spec: TaskSpec, *, landed_target: str | None) -> WorktreeStart:
    """A task with dependencies starts from its first dependency's branch and merges the
    others; when the merge queue lands every success (``landed_target``: its target), the
    dependencies have landed, so it starts from the target instead."""
    deps = list(spec.depends_on)
    if deps and landed_target:
        return WorktreeStart(landed_target)
    if not deps:
        return WorktreeStart(None)
    return WorktreeStart(f"wf/{deps[0]}", tuple(f"wf/{d}" for d in deps[1:]))


@dataclass(frozen=True)
class AttemptPlan:
    """What is done before the agent of attempt ``n`` starts.

    ``session``: the agent session a retry resumes (its worktree is kept as that session left
    it); ``resolve``: the conflict to hand the agent (the target is merged into its branch
    first); ``reset``: back up the failed attempt's work and start again from the task's base;
    ``setup``: run the setup command (once per worktree)."""

    session: str | None
    resolve: Mapping[str, Any] | None
    reset: bool
    setup: bool


def plan_attempt(task: Mapping[str, Any], spec: TaskSpec, n: int) -> AttemptPlan:
    resolve = task["resolve"] or None
    resumable = n > 1 and bool(spec.resume_command) and not resolve
    session = task["session_id"] if resumable else None
    return AttemptPlan(session=session or None, resolve=resolve,
                       reset=n > 1 and not resolve and not session,
                       setup=bool(spec.setup) and not task["setup_done"])


def conflict_prompt(spec: TaskSpec, target: str, files: Iterable[str],
                    resolve: Mapping[str, Any]) -> str:
    """What an agent sent back to resolve a conflict with ``target`` is told."""
    listed = ", ".join(files) or ", ".join(resolve.get("files") or ()) or "some files"
    return (f"Your branch {spec.branch} conflicts with {target} in {listed}. {target} has "
            f"been merged into your worktree and the conflicts are marked in those files. "
            f"Resolve them so that the original task still holds, and keep {target}'s "
            f"changes. The original task was:\n\n{spec.prompt}")


def agent_command(spec: TaskSpec, session: str | None) -> list[str]:
    """The argv template of the attempt: the agent's resume command when a session goes on."""
    return list(spec.resume_command if session else spec.command)


def wf_variables(spec: TaskSpec, task: Mapping[str, Any], n: int, prompt: str) -> dict[str, str]:
    """The ``WF_*`` variables an attempt's agent gets (and the placeholders it may use)."""
    return {"WF_TASK_ID": spec.id, "WF_ATTEMPT": str(n), "WF_WORKTREE": str(task["worktree"]),
            "WF_PROMPT": prompt, "WF_PORT": str(task["port"] or ""), "WF_BRANCH": spec.branch}


def placeholders(spec: TaskSpec, task: Mapping[str, Any], n: int, prompt: str,
                 session: str | None) -> dict[str, str]:
    """The values of ``{prompt}``, ``{task_id}``, ... in the agent's command."""
    return {"prompt": prompt, "task_id": spec.id, "worktree": str(task["worktree"]),
            "attempt": str(n), "session": session or ""}


def port_for(task_id: str, taken: Iterable[int], port_range: tuple[int, int]) -> int:
    """A port for the task: the same one every time unless it is ``taken``, then the next
    free one above it (wrapping within the range)."""
    low, high = port_range
    size = high - low + 1
    busy = set(taken)
    start = zlib.crc32(task_id.encode()) % size
    for step in range(size):
        port = low + (start + step) % size
        if port not in busy:
            return port
    raise ConfigError(f"no free port left in {low}-{high}")


def ports_taken(tasks: Mapping[str, Mapping[str, Any]], but: str) -> set[int]:
    return {t["port"] for k, t in tasks.items() if k != but and t["port"]}


@dataclass(frozen=True)
class Stop:
    """Why a running attempt is stopped: its state, failure kind and message."""

    state: AttemptState
    kind: FailureKind | None
    error: str


def deadline_passed(now: float, started: float, last_output: float | None,
                    timeout: float | None, no_output_timeout: float | None,
                    pauses: Iterable[tuple[float, float | None]] = ()) -> Stop | None:
    """Whether the attempt has run past ``timeout`` or been silent past ``no_output_timeout``
    (counted from its last output, or its start). Time spent in ``pauses`` (a budget paused
    the agent: start, end or None) counts toward neither."""
    pauses = tuple(pauses)
    if timeout and active_seconds(started, now, pauses) > timeout:
        return Stop(AttemptState.TIMED_OUT, FailureKind.TIMEOUT, f"timed out after {timeout:g}s")
    quiet_since = max(started, last_output or 0)
    if no_output_timeout and active_seconds(quiet_since, now, pauses) > no_output_timeout:
        return Stop(AttemptState.TIMED_OUT, FailureKind.NO_OUTPUT_TIMEOUT,
                    f"no output for {no_output_timeout:g}s")
    return None


def next_look(now: float, started: float, last_output: float | None, timeout: float | None,
              no_output_timeout: float | None, *, poll: float,
              pauses: Iterable[tuple[float, float | None]] = ()) -> float:
    """Seconds until the watcher must look again: ``poll``, or sooner when a deadline falls
    (time in ``pauses`` does not bring a deadline nearer)."""
    pauses = tuple(pauses)
    tick = poll
    if timeout:
        tick = min(tick, timeout - active_seconds(started, now, pauses))
    if no_output_timeout:
        quiet_since = max(started, last_output or 0)
        tick = min(tick, no_output_timeout - active_seconds(quiet_since, now, pauses))
    return max(0.01, tick)


CANCELLED_BY_SIGNAL = Stop(AttemptState.CANCELLED, None, "cancelled by signal")

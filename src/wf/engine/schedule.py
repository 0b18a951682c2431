"""Pure scheduling decisions: which tasks start now, which can never start, when to look again.

No I/O and no clock of its own: the engine passes the projection's rows and ``now``. The local
engine's loop and a Temporal run workflow ask the same questions here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wf.model import TERMINAL_STATES, NewEvent, task_stream

FAILED_DEP_STATES = frozenset({"failed", "cancelled", "blocked"})


@dataclass(frozen=True)
class Readiness:
    ready: bool
    blocked_by: str | None = None  # a dependency that can no longer succeed
    blocked_state: str | None = None


def readiness(task: Mapping[str, Any], tasks: Mapping[str, Mapping[str, Any]],
              now: float, *, deps_must_land: bool = False) -> Readiness:
    """Whether a queued or retrying task may start an attempt now. With ``deps_must_land``
    (the merge queue enqueues every success) a dependency counts once it has landed."""
    if task["state"] == "retrying":
        return Readiness(ready=(task["next_retry_at"] or 0) <= now)
    if task["state"] != "queued":
        return Readiness(ready=False)
    for dep in task["depends_on"] or ():
        dep_row = tasks.get(dep)
        if dep_row is None:
            return Readiness(ready=False, blocked_by=dep, blocked_state="unknown")
        # An evicted dependency's work is on its branch, but it will not land by itself.
        if dep_row["state"] in FAILED_DEP_STATES or (deps_must_land
                                                      and dep_row["state"] == "evicted"):
            return Readiness(ready=False, blocked_by=dep, blocked_state=dep_row["state"])
        if dep_row["state"] != "merged" and (deps_must_land
                                             or dep_row["state"] not in ("done", "evicted")):
            return Readiness(ready=False)
    return Readiness(ready=True)


@dataclass(frozen=True)
class Schedule:
    """What the scheduler does now: start ``start`` (in this order) and append ``blocked``."""

    start: list[str] = field(default_factory=list)
    blocked: list[NewEvent] = field(default_factory=list)


def schedule(tasks: Mapping[str, Mapping[str, Any]], running: Mapping[str, str], now: float, *,
             max_parallel: int, agent_limits: Mapping[str, int | None],
             deps_must_land: bool = False) -> Schedule:
    """The tasks to start now and the ones that can never start (a dependency failed).

    ``running`` maps the tasks with a driver to their agent; a task starts when it is ready,
    fewer than ``max_parallel`` run, and fewer than its agent's own limit
    (``agent_limits``, None or absent: no limit) run that agent. Tasks are taken in the
    projection's order (the order they were submitted)."""
    by_agent: dict[str, int] = {}
    for agent in running.values():
        by_agent[agent] = by_agent.get(agent, 0) + 1
    count = len(running)
    start: list[str] = []
    blocked: list[NewEvent] = []
    for tid, task in tasks.items():
        if task["state"] not in ("queued", "retrying") or tid in running:
            continue
        r = readiness(task, tasks, now, deps_must_land=deps_must_land)
        if r.blocked_by:
            blocked.append(NewEvent(task_stream(tid), "task.blocked", {
                "kind": "dependency", "dependency": r.blocked_by,
                "error": f"dependency {r.blocked_by} is {r.blocked_state}"}))
            continue
        if not r.ready or count >= max_parallel:
            continue
        agent = task["agent"]
        limit = agent_limits.get(agent)
        if limit is not None and by_agent.get(agent, 0) >= limit:
            continue
        by_agent[agent] = by_agent.get(agent, 0) + 1
        count += 1
        start.append(tid)
    return Schedule(start, blocked)


def sleep_for(tasks: Mapping[str, Mapping[str, Any]], now: float, poll: float) -> float:
    """How long the scheduler may sleep: until the next retry timer is due, at most ``poll``
    (signals written by other processes are looked for that often)."""
    due = [t["next_retry_at"] - now for t in tasks.values()
           if t["state"] == "retrying" and t["next_retry_at"]]
    return max(0.0, min([poll, *due]))


def all_settled(tasks: Mapping[str, Mapping[str, Any]]) -> bool:
    """Whether every task has ended (the run may end, unless the merge queue has work)."""
    return all(t["state"] in TERMINAL_STATES for t in tasks.values())

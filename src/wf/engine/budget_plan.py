"""What a scheduler asks about budgets and adaptive limits at each turn, for both engines.

``wf.engine.budget`` holds the rules (a budget crossed, the next limit); this module applies
them to a projection's rows the way a scheduler needs: which running tasks must pause or
stop, which ready tasks a budget holds back, the ``budget.exceeded`` event (once per
crossing), how many attempts of each agent may start now, and the ``agent.limit_changed``
event after an attempt ends. The local scheduler (``scheduler.py``) and the Temporal
repository workflow (``temporal/workflows.py``) call these and nothing else, so nothing is
decided twice in two places.

No I/O, no clock: rows, ``now`` and the settings come in; events go out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import wf.engine.budget as rules
from wf.model import NewEvent, task_stream

# Adaptive parallelism is on by default for the agent CLIs wf knows (they report rate limits).
ADAPTIVE_BY_DEFAULT = frozenset({"claude", "codex", "gemini", "opencode", "aider"})
WAITING = ("queued", "retrying")
BUDGET_POLL = 0.2  # how often an attempt under a budget reads its usage (a pause within 1 s)

Rows = Mapping[str, Mapping[str, Any]]
AttemptRows = Mapping[tuple[str, int], Mapping[str, Any]]


def budgets_apply(spec: Mapping[str, Any] | None, run_budget: rules.Budget | None) -> bool:
    """Whether a budget of the task (its ``spec`` row), its agent or the run can hold it."""
    spec = spec or {}
    return any(not rules.parse_budget(b, "budget").empty
               for b in (spec.get("budget"), spec.get("agent_budget"), run_budget))


def has_wall(spec: Mapping[str, Any] | None, run_budget: rules.Budget | None) -> bool:
    """Whether one of the task's budgets caps wall time (crossed by the clock alone)."""
    spec = spec or {}
    return any(rules.parse_budget(b, "budget").max_wall is not None
               for b in (spec.get("budget"), spec.get("agent_budget"), run_budget))


def verdicts(tids: Iterable[str], tasks: Rows, attempts: AttemptRows, now: float,
             run_budget: rules.Budget | None) -> dict[str, rules.Exceeded | None]:
    """For each of ``tids``: the budget that holds it, or None (usage computed once)."""
    tids = list(tids)
    if not tids:
        return {}
    used = rules.usages(tasks, attempts, now)
    return {tid: rules.task_verdict(tid, tasks, used, run_budget) for tid in tids}


def exceeded_event(tid: str, task: Mapping[str, Any],
                   verdict: rules.Exceeded) -> NewEvent | None:
    """``budget.exceeded`` (an attention event) the first time a crossing holds the task;
    None while the one recorded stands (a ``wf budget`` raise clears it)."""
    if task["budget_exceeded"] is not None:
        return None
    return NewEvent(task_stream(tid), "budget.exceeded",
                    {"n": task["attempts"], **verdict.as_event()})


def held(tasks: Rows, attempts: AttemptRows, now: float,
         run_budget: rules.Budget | None) -> tuple[set[str], list[NewEvent]]:
    """Ready tasks (queued, retrying) that a crossed budget keeps from starting, and the
    ``budget.exceeded`` events to record for them."""
    waiting = [t for t, row in tasks.items()
               if row["state"] in WAITING and budgets_apply(row["spec"], run_budget)]
    out: set[str] = set()
    events: list[NewEvent] = []
    for tid, verdict in verdicts(waiting, tasks, attempts, now, run_budget).items():
        if verdict is not None:
            out.add(tid)
            e = exceeded_event(tid, tasks[tid], verdict)
            if e is not None:
                events.append(e)
    return out, events


def holding(tasks: Rows, held_ids: set[str]) -> Rows:
    """``tasks`` as the schedule should see them: the held ones in a state it never starts."""
    if not held_ids:
        return tasks
    return {t: ({**row, "state": "held"} if t in held_ids else row) for t, row in tasks.items()}


# -- adaptive parallelism -----------------------------------------------------------------------

def adaptive_ceiling(adapter: str | None, adaptive: bool | None, agent_max: int | None,
                     run_max: int) -> int | None:
    """The ceiling of an agent's adaptive limit (its ``max_parallel``, else the run's), or
    None when it is not adaptive: on by default for the agent CLIs wf knows, ``[agents.NAME]
    adaptive`` says otherwise."""
    on = adaptive if adaptive is not None else adapter in ADAPTIVE_BY_DEFAULT
    return (agent_max or run_max) if on else None


def start_limits(configured: Mapping[str, int | None], ceilings: Mapping[str, int],
                 rows: Rows, now: float) -> dict[str, int | None]:
    """How many attempts of each agent may run now: ``[agents.NAME] max_parallel``, and for
    an adaptive agent its current limit (its ``agent_limits`` row), 0 before ``not_before``."""
    limits: dict[str, int | None] = dict(configured)
    for agent, ceiling in ceilings.items():
        lim = rules.AgentLimit.of_row(rows.get(agent), ceiling)
        limits[agent] = lim.limit if rules.may_start(lim, 0, now) else 0
    return limits


def adapt(agent: str, row: Mapping[str, Any] | None, ceiling: int, *, state: str,
          kind: str | None, rate_limited: bool, retry_after: float | None,
          started: float | None, now: float) -> NewEvent | None:
    """After an attempt of an adaptive ``agent`` ended: ``agent.limit_changed`` (on the
    stream ``agent:NAME``, with its ceiling so that ``wf status`` can say "2 of 8") when
    its limit changed, else None."""
    before = rules.AgentLimit.of_row(row, ceiling)
    after = rules.next_limit(before, rules.attempt_signal(state, kind, rate_limited),
                             now=now, max_parallel=ceiling, retry_after=retry_after,
                             started=started)
    data = rules.limit_event(agent, before, after)
    if data is None:
        return None
    return NewEvent(f"agent:{agent}", "agent.limit_changed", {**data, "max_parallel": ceiling})

"""Pure decisions about spend while tasks run: budgets and the adaptive limit of an agent.

A budget caps what a scope has used: a task (its attempts together), an agent (every task
that runs it), or the whole run. ``parse_budget`` validates a ``budget = {...}`` table from
wf.toml; ``crossed`` tells whether a scope's usage has reached its budget (raised by
``wf budget``); ``active_seconds`` counts wall time without the spans an agent spent paused,
so neither ``max_wall`` nor ``timeout``/``no_output_timeout`` count them.

``next_limit`` is the adaptive parallelism of one agent: halve on a rate limit (rounded up,
down to 1)
and start nothing before the ``retry_after`` the CLI reported; after a run of successes,
one more, up to ``max_parallel``. A rate limit is what the adapter says is one (a 429, an
overload: ``Verdict.rate_limited``), not every transient failure. Attempts that were already
running when the limit was lowered were sent into the same overload, so their rate limits
lower it no further (halving once per episode, as TCP does; else four attempts failing
together would take a limit of 8 to 1 at once).

No I/O, no clock: the engine passes usage, pauses and ``now``; both engines ask here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from wf.errors import ConfigError
from wf.model import parse_duration

ON_EXCEED = ("pause", "stop")
KEYS = ("max_cost_usd", "max_tokens", "max_wall", "on_exceed")
_TOKENS_RE = re.compile(r"(\d+(?:\.\d+)?)\s*([kKmM]?)")
_TOKEN_UNITS = {"": 1, "k": 1_000, "m": 1_000_000}
_COST_RE = re.compile(r"\$?\s*(\d+(?:\.\d+)?)\s*(?:usd|USD)?")


@dataclass(frozen=True)
class Budget:
    """Caps on one scope's usage; None: no cap of that kind. ``on_exceed``: ``pause`` the
    agent and ask (``wf budget`` resumes), or ``stop`` the attempt as a ``budget`` failure."""

    max_cost_usd: float | None = None
    max_tokens: int | None = None
    max_wall: float | None = None
    on_exceed: str = "pause"

    @property
    def empty(self) -> bool:
        return self.max_cost_usd is None and self.max_tokens is None and self.max_wall is None

    def raised(self, cost_usd: float = 0.0, tokens: int = 0, wall: float = 0.0) -> Budget:
        """This budget with more room (``wf budget --add/--tokens/--wall``). A raise of a
        kind that had no cap leaves it uncapped."""
        return replace(
            self,
            max_cost_usd=None if self.max_cost_usd is None else self.max_cost_usd + cost_usd,
            max_tokens=None if self.max_tokens is None else self.max_tokens + tokens,
            max_wall=None if self.max_wall is None else self.max_wall + wall)

    def as_dict(self) -> dict[str, Any]:
        return {"max_cost_usd": self.max_cost_usd, "max_tokens": self.max_tokens,
                "max_wall": self.max_wall, "on_exceed": self.on_exceed}


def parse_budget(raw: Any, where: str) -> Budget:
    """A ``Budget`` from a wf.toml table. ``where`` names the table in the error (one line,
    a ``ConfigError``: exit 2) for a negative value, an unknown unit or an unknown key.

    ``max_cost_usd``: a number or ``"$2.50"``; ``max_tokens``: a number or ``"200k"``,
    ``"1.5M"``; ``max_wall``: a duration (``"30m"``, ``"1h30m"``, seconds)."""
    if raw is None:
        return Budget()
    if isinstance(raw, Budget):
        return raw
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{where}: a budget is a table such as {{ max_cost_usd = 2.0 }}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise ConfigError(f"{where}: unknown budget key {unknown[0]!r} (known: "
                          f"{', '.join(KEYS)})")
    on_exceed = raw.get("on_exceed", "pause")
    if on_exceed not in ON_EXCEED:
        raise ConfigError(f"{where}: on_exceed must be \"pause\" or \"stop\", not {on_exceed!r}")
    return Budget(max_cost_usd=_amount(raw.get("max_cost_usd"), _COST_RE, None,
                                       f"{where}.max_cost_usd", "2.50 or \"$2.50\""),
                  max_tokens=_tokens(raw.get("max_tokens"), f"{where}.max_tokens"),
                  max_wall=_wall(raw.get("max_wall"), f"{where}.max_wall"),
                  on_exceed=on_exceed)


def _amount(value: Any, pattern: re.Pattern[str], units: Mapping[str, int] | None, where: str,
            example: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise ConfigError(f"{where}: not a number: {value!r} (e.g. {example})")
    if isinstance(value, int | float):
        if value < 0:
            raise ConfigError(f"{where}: a budget cannot be negative: {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("-"):
            raise ConfigError(f"{where}: a budget cannot be negative: {value!r}")
        match = pattern.fullmatch(text)
        if match:
            scale = units[match.group(2).lower()] if units is not None else 1
            return float(match.group(1)) * scale
    raise ConfigError(f"{where}: not an amount: {value!r} (unknown unit? e.g. {example})")


def _tokens(value: Any, where: str) -> int | None:
    amount = _amount(value, _TOKENS_RE, _TOKEN_UNITS, where, "200000 or \"200k\" or \"1.5M\"")
    return None if amount is None else int(amount)


def _wall(value: Any, where: str) -> float | None:
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from None


@dataclass(frozen=True)
class Usage:
    """What a scope has used so far, as far as it is known: ``cost_usd`` None when no agent
    of the scope reports cost; ``live`` False when its figures come only at an attempt's end."""

    cost_usd: float | None = None
    tokens: int = 0
    wall: float = 0.0
    live: bool = True

    def plus(self, other: Usage) -> Usage:
        cost = (None if self.cost_usd is None and other.cost_usd is None
                else (self.cost_usd or 0.0) + (other.cost_usd or 0.0))
        return Usage(cost, self.tokens + other.tokens, self.wall + other.wall,
                     self.live and other.live)


@dataclass(frozen=True)
class Exceeded:
    """A budget crossed: which scope (``task:ID``, ``agent:NAME``, ``run``), which cap, the
    figure used and the one allowed, and what to do (``pause`` or ``stop``)."""

    scope: str
    limit: str
    used: float
    allowed: float
    action: str

    @property
    def message(self) -> str:
        unit = {"max_cost_usd": "$", "max_tokens": "", "max_wall": ""}[self.limit]
        suffix = "s" if self.limit == "max_wall" else (" tokens" if unit == "" else "")
        return (f"{self.scope} used {unit}{self.used:g}{suffix} of its {self.limit} "
                f"{unit}{self.allowed:g}{suffix}")

    def as_event(self) -> dict[str, Any]:
        return {"scope": self.scope, "limit": self.limit, "used": self.used,
                "allowed": self.allowed, "action": self.action, "message": self.message}


def crossed(scope: str, usage: Usage, budget: Budget) -> Exceeded | None:
    """Whether ``usage`` has reached ``budget`` (at the cap counts: an agent at its cap may
    not go on). Only what is known counts: no cost figure, no cost verdict."""
    checks = (("max_cost_usd", usage.cost_usd, budget.max_cost_usd),
              ("max_tokens", usage.tokens, budget.max_tokens),
              ("max_wall", usage.wall, budget.max_wall))
    for limit, used, allowed in checks:
        if allowed is not None and used is not None and used >= allowed:
            return Exceeded(scope, limit, float(used), float(allowed), budget.on_exceed)
    return None


def first_crossed(scopes: Iterable[tuple[str, Usage, Budget]]) -> Exceeded | None:
    """The first of (scope, usage, budget) that is crossed: the task's, the agent's, the run's."""
    for scope, usage, budget in scopes:
        found = crossed(scope, usage, budget)
        if found is not None:
            return found
    return None


def active_seconds(start: float, end: float,
                   pauses: Iterable[tuple[float, float | None]]) -> float:
    """Seconds from ``start`` to ``end`` less the parts of ``pauses`` (start, end or None
    while still paused) that fall between them."""
    total = max(0.0, end - start)
    for p_start, p_end in pauses:
        lo, hi = max(start, p_start), min(end, end if p_end is None else p_end)
        if hi > lo:
            total -= hi - lo
    return max(0.0, total)


# -- a task's verdict from the log's rows ---------------------------------------------------------

def task_usage(task: Mapping[str, Any], attempts: Iterable[Mapping[str, Any]],
               now: float) -> Usage:
    """What a task has used (its row's tokens and cost, summed from ``agent.usage``) and its
    attempts' wall time together, less the time they spent paused."""
    wall = sum(active_seconds(a["started_ts"], a["ended_ts"] or now,
                              [tuple(p) for p in a["pauses"] or ()])
               for a in attempts if a["started_ts"] is not None)
    return Usage(task["cost_usd"], int(task["tokens"] or 0), wall)


@dataclass(frozen=True)
class Usages:
    """Every task's usage, and the sums per agent and for the run, computed once per look."""

    tasks: Mapping[str, Usage]
    agents: Mapping[str, Usage]
    run: Usage


def usages(tasks: Mapping[str, Mapping[str, Any]],
           attempts: Mapping[tuple[str, int], Mapping[str, Any]], now: float) -> Usages:
    by_task: dict[str, list[Mapping[str, Any]]] = {}
    for (tid, _n), row in attempts.items():
        by_task.setdefault(tid, []).append(row)
    per_task = {tid: task_usage(row, by_task.get(tid, ()), now) for tid, row in tasks.items()}
    agents: dict[str, Usage] = {}
    run = Usage()
    for tid, used in per_task.items():
        agent = tasks[tid]["agent"] or ""
        agents[agent] = agents.get(agent, Usage()).plus(used)
        run = run.plus(used)
    return Usages(per_task, agents, run)


def task_verdict(tid: str, tasks: Mapping[str, Mapping[str, Any]], used: Usages,
                 run_budget: Budget | None) -> Exceeded | None:
    """Whether task ``tid`` may not go on: its own budget, its agent's or the run's is
    crossed. A ``wf budget`` raise for the task (``budget_added``) widens each of the three
    for this task alone, so raising one paused task resumes that one."""
    task = tasks[tid]
    spec = task["spec"] or {}
    added = task["budget_added"] or {}

    def widen(budget: Budget) -> Budget:
        return budget.raised(float(added.get("cost_usd") or 0), int(added.get("tokens") or 0),
                             float(added.get("wall") or 0))

    agent = task["agent"] or ""
    scopes = [(f"task:{tid}", used.tasks.get(tid, Usage()),
               parse_budget(spec.get("budget"), "budget")),
              (f"agent:{agent}", used.agents.get(agent, Usage()),
               parse_budget(spec.get("agent_budget"), "budget")),
              ("run", used.run, run_budget or Budget())]
    return first_crossed((scope, usage, widen(budget)) for scope, usage, budget in scopes
                         if not budget.empty)


# -- adaptive parallelism -----------------------------------------------------------------------

RAISE_AFTER = 3  # successes in a row before the limit goes up by one


@dataclass(frozen=True)
class AgentLimit:
    """The adaptive parallelism of one agent: how many attempts may run at once, no start
    before ``not_before`` (epoch seconds), successes since the last change, why, and when
    it was last lowered (``lowered_at``: an attempt started before then lowers it no more)."""

    limit: int
    not_before: float = 0.0
    successes: int = 0
    reason: str = "max_parallel"
    lowered_at: float = 0.0

    def as_event(self, agent: str) -> dict[str, Any]:
        return {"agent": agent, "limit": self.limit, "not_before": self.not_before,
                "successes": self.successes, "reason": self.reason,
                "lowered_at": self.lowered_at}

    @classmethod
    def of_row(cls, row: Mapping[str, Any] | None, max_parallel: int) -> AgentLimit:
        """The limit the log holds for an agent (its ``agent_limits`` row), or a fresh one at
        ``max_parallel``; never above ``max_parallel`` (wf.toml may have lowered it since)."""
        if row is None:
            return cls(max_parallel)
        return cls(min(max_parallel, int(row["parallel"])), float(row["not_before"] or 0.0),
                   int(row["successes"] or 0), row["reason"] or "",
                   float(row.get("lowered_at") or 0.0))


def attempt_signal(state: str, kind: str | None, rate_limited: bool = False) -> str:
    """What an attempt's end says to the adaptive limit: ``rate_limited`` for a transient
    failure the adapter recognised as a rate limit or an overload (``rate_limited``: the
    provider pushed back), ``success`` for a success, ``other`` for anything else: bad work,
    and a transient failure that is not a rate limit (a network blip, a 5xx), say nothing
    about how many agents the provider takes at once."""
    if state == "succeeded":
        return "success"
    return "rate_limited" if kind == "transient" and rate_limited else "other"


def limit_event(agent: str, before: AgentLimit, after: AgentLimit) -> dict[str, Any] | None:
    """The ``agent.limit_changed`` data when ``after`` differs from ``before`` in what must
    survive a restart (the limit, the time before which nothing starts, or a count of
    successes that will raise it), else None."""
    return None if after == before else after.as_event(agent)


def next_limit(current: AgentLimit, outcome: str, *, now: float, max_parallel: int,
               retry_after: float | None = None, raise_after: int = RAISE_AFTER,
               started: float | None = None) -> AgentLimit:
    """The limit after an attempt of the agent ended with ``outcome``: ``rate_limited``
    halves it (rounded up, down to 1) and waits at least ``retry_after``; ``success`` counts toward
    one more (after ``raise_after`` in a row, up to ``max_parallel``); anything else leaves
    it as it is. A rate limit of an attempt ``started`` before the limit was last lowered
    only pushes ``not_before`` on: that attempt ran in the episode the limit already
    answered. A limit changed means an event to record (compare with ``current``)."""
    if outcome == "rate_limited":
        wait_until = max(current.not_before, now + (retry_after or 0.0))
        if started is not None and started < current.lowered_at:
            return replace(current, not_before=wait_until, successes=0)
        # Half, rounded up: from 3 that is 2, the limit that last worked (after successes
        # raised 2 to 3, a rate limit at 3 says the provider takes 2, not 1).
        lower = max(1, (current.limit + 1) // 2)
        reason = (f"rate limited: {current.limit} -> {lower}" if lower < current.limit
                  else "rate limited at 1")
        return AgentLimit(lower, wait_until, 0, reason, lowered_at=now)
    if outcome == "success":
        if current.limit >= max_parallel:  # nothing to raise: nothing to count or record
            return current
        done = current.successes + 1
        if current.limit < max_parallel and done >= raise_after:
            return replace(current, limit=current.limit + 1, successes=0,
                           reason=f"{done} successes: {current.limit} -> {current.limit + 1}")
        return replace(current, successes=done)
    return current


def may_start(limit: AgentLimit, running: int, now: float) -> bool:
    """Whether another attempt of the agent may start now."""
    return running < limit.limit and now >= limit.not_before

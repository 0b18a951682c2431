"""What the dashboard's cells say: pure functions from projection rows to rich ``Text``.

No textual here, so the snapshot of a row is testable alone and the table widget only places
what these return. Times come from the caller's ``now``: the app's clock, frozen in snapshots.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from rich.text import Text

from wf.cli.output import ENTRY_STYLE, STATE_STYLE
from wf.model import TaskState, format_duration

COLUMNS = (("id", "task"), ("agent", "agent"), ("state", "state"), ("try", "try"),
           ("elapsed", "elapsed"), ("retry", "retry in"), ("lines", "+/−"),
           ("usage", "tokens/cost"), ("last", "last output"))
DASH = "–"


@dataclass(frozen=True)
class LineCounts:
    added: int
    deleted: int


def state_text(state: str) -> Text:
    icon, style = STATE_STYLE.get(state, ("?", ""))
    return Text(f"{icon} {state}", style=style)


def task_state_text(task: dict[str, Any]) -> Text:
    """The state cell: ``⏸ paused`` while a budget has the agent stopped, ``⏸ held`` while
    one keeps a ready task from starting (both wait for ``wf budget``), else the state."""
    if task.get("paused") and task["state"] == "running":
        return Text("⏸ paused", style="bold yellow")
    if task.get("budget_exceeded") and task["state"] in ("queued", "retrying"):
        return Text("⏸ held", style="bold yellow")
    return state_text(task["state"])


def entry_state_text(state: str) -> Text:
    icon, style = ENTRY_STYLE.get(state, ("?", ""))
    return Text(f"{icon} {state}", style=style)


def max_attempts(task: dict[str, Any]) -> str:
    return str((task.get("spec") or {}).get("retry", {}).get("maximum_attempts") or "∞")


def elapsed(task: dict[str, Any], now: float) -> str:
    started = task.get("started_ts")
    if not started:
        return DASH
    return format_duration((task.get("ended_ts") or now) - started)


def retry_in(task: dict[str, Any], now: float) -> str:
    due = task.get("next_retry_at")
    if task["state"] != TaskState.RETRYING or not due:
        return DASH
    return format_duration(due - now)


def usage(task: dict[str, Any], reported: str = "live") -> str:
    """Tokens and cost, from the fields agent adapters that report usage fill in (tokens stay
    0 for an agent that reports none). A running task whose agent's usage is not known while
    it runs (``reported``: ``at_end`` or ``none``) says so: its figures are not live."""
    tokens, cost = task.get("tokens"), task.get("cost_usd")
    if task["state"] == "running" and reported != "live":
        return f"{DASH} no live" if not tokens and cost is None else f"{usage(task)} no live"
    if not tokens and cost is None:
        return DASH
    parts = [_compact(tokens) if tokens else DASH]
    if cost is not None:
        parts.append(f"${cost:.2f}")
    return " ".join(parts)


def _compact(n: int) -> str:
    if n >= 1_000_000:
        return f"{n / 1_000_000:.1f}M"
    if n >= 10_000:
        return f"{n / 1000:.0f}k"
    return str(n)


def lines_text(counts: LineCounts | None) -> Text:
    if counts is None:
        return Text(DASH, style="dim")
    return Text.assemble((f"+{counts.added}", "green"), " ", (f"−{counts.deleted}", "red"))


def task_cells(task: dict[str, Any], now: float, *, lines: LineCounts | None,
               last_line: str, reported: str = "live") -> tuple[Text | str, ...]:
    """One table row, in the order of ``COLUMNS``; ``reported``: when the task's agent
    reports its usage (``wf.agents.builtin.usage_reported``)."""
    return (task["id"], task.get("agent") or DASH, task_state_text(task),
            f"{task.get('attempts') or 0}/{max_attempts(task)}", elapsed(task, now),
            retry_in(task, now), lines_text(lines), usage(task, reported),
            Text(last_line, style="dim"))


_SUMMARY = re.compile(r"(\d+) insertions?\(\+\)|(\d+) deletions?\(-\)")


def parse_diffstat(stat: str) -> LineCounts:
    """The totals of ``git diff --stat``'s last line ("2 files changed, 5 insertions(+)...")."""
    lines = stat.strip().splitlines()
    added = deleted = 0
    for m in _SUMMARY.finditer(lines[-1] if lines else ""):
        added += int(m.group(1) or 0)
        deleted += int(m.group(2) or 0)
    return LineCounts(added, deleted)


def last_output_line(tail: str) -> str:
    lines = [ln.strip() for ln in tail.splitlines() if ln.strip()]
    return lines[-1][:200] if lines else ""


def totals(tasks: Iterable[dict[str, Any]], queue: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The header's figures: tasks by state, entries landed, tokens and cost summed."""
    counts = dict.fromkeys(("running", "retrying", "failed", "done", "queued"), 0)
    n = tokens = 0
    cost: float | None = None
    for t in tasks:
        n += 1
        counts[t["state"]] = counts.get(t["state"], 0) + 1
        tokens += t.get("tokens") or 0
        if t.get("cost_usd") is not None:
            cost = (cost or 0.0) + t["cost_usd"]
    landed = sum(1 for q in queue if q["state"] == "landed")
    return {"tasks": n, **counts, "landed": landed, "tokens": tokens, "cost_usd": cost}


def budget_holds(tasks: Iterable[dict[str, Any]]) -> tuple[str, ...]:
    """The attention item of budgets: the tasks a crossed budget pauses or holds back."""
    return tuple(sorted(t["id"] for t in tasks if t.get("budget_exceeded")
                        and t["state"] in ("running", "queued", "retrying")))


def agent_limits(rows: Iterable[dict[str, Any]], now: float) -> tuple[str, ...]:
    """The adaptive agents whose parallelism is below its ceiling, or whose starts wait
    for a retry_after: ``NAME 2/8 (why)``, ``, starts in 3s`` while they wait."""
    return tuple(text for row in sorted(rows, key=lambda r: r["agent"])
                 if (text := agent_limit(row, now, always=False)))


def agent_limit(row: dict[str, Any] | None, now: float, *, always: bool = True) -> str:
    """One agent's adaptive parallelism, ``claude 2/8 (rate limited: 8 -> 4)``, and
    ``, starts in 3s`` while a retry_after holds its starts; "" for no row, or (unless
    ``always``) for a limit at its ceiling with nothing to wait for."""
    if row is None:
        return ""
    ceiling = row.get("max_parallel")
    waiting = (row.get("not_before") or 0) > now
    if not (always or waiting or ceiling is None or row["parallel"] < ceiling):
        return ""
    text = f"{row['agent']} {row['parallel']}/{ceiling or '?'} ({row.get('reason')})"
    if waiting:
        text += f", starts in {format_duration(row['not_before'] - now)}"
    return text


def totals_text(figures: dict[str, Any], *, engine_active: bool,
                hooks_disabled: tuple[str, ...] = (), budget_held: tuple[str, ...] = (),
                limits: tuple[str, ...] = ()) -> Text:
    out = Text()
    out.append("wf ", style="bold")
    for key, style in (("running", "cyan"), ("retrying", "yellow"), ("failed", "red"),
                       ("landed", "green")):
        out.append(f"{figures[key]} {key}", style=style if figures[key] else "dim")
        out.append("  ")
    out.append(f"of {figures['tasks']} tasks  ")
    out.append(f"tokens {_compact(figures['tokens']) if figures['tokens'] else DASH}  ")
    cost = figures["cost_usd"]
    out.append(f"cost {f'${cost:.2f}' if cost is not None else DASH}  ")
    # What waits on a person, and what the provider's pushback did, before the engine's
    # state: a narrow terminal cuts the end of this line.
    if budget_held:  # attention: these wait for `wf budget`
        out.append(f"⚠ budget: {', '.join(budget_held)}  ", style="bold yellow")
    if limits:  # the adaptive parallelism, lowered by rate limits
        out.append(f"⇣ {'; '.join(limits)}  ", style="yellow")
    if engine_active:
        out.append("● engine running", style="green")
    else:
        out.append("○ no engine: commands wait for `wf resume`", style="dim")
    if hooks_disabled:  # attention: nothing reaches these endpoints now
        out.append(f"  ⚠ hook {', '.join(hooks_disabled)} disabled", style="bold red")
    return out


def matches(task: dict[str, Any], query: str) -> bool:
    """The filter: every word must match; a word that names a state matches that state, any
    other word is looked for in the id, agent, prompt and last error."""
    states = {str(s) for s in TaskState}
    for word in query.lower().split():
        if word.startswith("state:"):
            word = word[6:]
            if task["state"] != word:
                return False
        elif word in states:
            if task["state"] != word:
                return False
        else:
            hay = " ".join(str(task.get(k) or "") for k in ("id", "agent", "prompt",
                                                             "last_error")).lower()
            if word not in hay:
                return False
    return True

"""Which tasks a view shows by default, and in what order: pure functions of projection rows.

"The current run" is what a person who just typed `wf run` wants to see: the tasks that moved
since the newest `wf run` (or `wf demo`) started, counting the `wf resume`s that carried it on
as the same run, plus every task that has not ended. Views show it unless `--all` asks for the
whole history. Active tasks come first, so that a short terminal shows what is running.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from wf.model import TERMINAL_STATES

# Order on screen: what runs, what will, what waits on someone; then the finished ones.
_ACTIVE_ORDER = {"running": 0, "retrying": 1, "queued": 2, "blocked": 3}


def run_start(runs: Iterable[Mapping[str, Any]]) -> float | None:
    """When the newest run began: the newest ``run.started`` that is not a `wf resume`."""
    starts = [r["started_ts"] for r in runs
              if r.get("started_ts") and (r.get("argv") or [""])[0] != "wf resume"]
    return max(starts) if starts else None


def current_run(tasks: Iterable[Mapping[str, Any]], since: float | None) -> list[Mapping[str, Any]]:
    """The tasks of the current run (every task when no run has started)."""
    return [t for t in tasks if since is None or t["state"] not in TERMINAL_STATES
            or (t.get("updated_ts") or 0) >= since]


def display_order(tasks: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """Active tasks first, then the rest; each group in the order they were submitted."""
    return sorted(tasks, key=lambda t: (_ACTIVE_ORDER.get(t["state"], len(_ACTIVE_ORDER)),
                                        t.get("submitted_seq") or 0))

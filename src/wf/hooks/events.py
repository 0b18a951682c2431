"""Which events an endpoint takes: the event types wf writes, the groups, and the patterns.

Pure (no I/O): the config validates patterns with it and ``decide.py`` matches events with it.
A pattern is an event type (``queue.landed``), a glob over types (``task.*``, ``*``) or a
group: ``attention`` (what a person must act on) or ``finished`` (a run's end). A type or glob
that names nothing wf writes is refused, so a typo is found when wf.toml is read rather than
by a silent endpoint.
"""

from __future__ import annotations

import difflib
import fnmatch

# Every event type wf appends (docs/architecture.md, "Event types"), hooks' own included.
KNOWN_TYPES: tuple[str, ...] = (
    "run.started", "run.finished",
    "task.submitted", "task.worktree_requested", "task.worktree_ready", "task.worktree_lost",
    "task.setup_done", "task.retry_scheduled", "task.succeeded", "task.failed",
    "task.cancelled", "task.blocked", "task.requeued", "task.cleaned", "task.forgotten",
    "task.pushed", "task.push_failed", "task.host_lost", "task.paused", "task.resumed",
    "budget.exceeded", "budget.raised", "agent.limit_changed",
    "attempt.started", "attempt.spawned", "attempt.adopted", "attempt.reset",
    "attempt.finished", "attempt.conflict",
    "agent.session", "agent.message", "agent.tool", "agent.usage",
    "signal.sent", "signal.handled",
    "queue.entered", "queue.admitted", "queue.needs_approval", "queue.approved",
    "queue.evicted", "queue.landed", "queue.removed", "queue.check_started",
    "queue.check_finished", "queue.land_requested", "queue.target_moved",
    "queue.land_refused", "queue.land_aborted", "queue.paused", "queue.flaky_seen",
    "queue.retrying",
    "pr.push_requested", "pr.opened", "pr.checks", "pr.merged",
    "hook.endpoint_added", "hook.delivered", "hook.failed", "hook.endpoint_disabled",
    "hook.endpoint_enabled", "hook.replayed",
)

# The one hook event that other endpoints may receive: a person must re-enable the endpoint.
HOOK_ATTENTION = "hook.endpoint_disabled"

GROUPS: dict[str, frozenset[str]] = {
    # What a person must act on: an approval, a task that failed or is blocked, a branch the
    # queue sent back, the merge queue stopped, an endpoint disabled.
    "attention": frozenset({"task.failed", "task.blocked", "queue.needs_approval",
                            "budget.exceeded",
                            "queue.evicted", "queue.paused", HOOK_ATTENTION}),
    # A run's end, with its summary.
    "finished": frozenset({"run.finished"}),
}


def check_pattern(pattern: str) -> str:
    """``pattern`` if it names a group, a known type, or a glob matching at least one known
    type; ValueError in words otherwise."""
    if pattern in GROUPS or pattern in KNOWN_TYPES:
        return pattern
    if any(c in pattern for c in "*?["):
        if fnmatch.filter(KNOWN_TYPES, pattern):
            return pattern
        raise ValueError(f"the glob {pattern!r} matches no event type wf writes "
                         "(e.g. \"task.*\", \"queue.*\", \"*\")")
    close = difflib.get_close_matches(pattern, [*GROUPS, *KNOWN_TYPES], n=1)
    guess = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"unknown event type or group {pattern!r} (groups: "
                     f"{', '.join(GROUPS)}; types such as \"task.failed\"; globs such as "
                     f"\"task.*\"){guess}")


def matches(patterns: tuple[str, ...], event_type: str) -> bool:
    """Whether an event of ``event_type`` is one that ``patterns`` ask for. Hooks' own events
    never match except ``hook.endpoint_disabled``, and that only when named (by type, or the
    ``attention`` group); a glob never takes them, so ``*`` cannot feed hooks back to hooks."""
    hook_event = event_type.startswith("hook.")
    if hook_event and event_type != HOOK_ATTENTION:
        return False
    for pattern in patterns:
        if pattern in GROUPS:
            if event_type in GROUPS[pattern]:
                return True
        elif pattern == event_type:
            return True
        elif not hook_event and fnmatch.fnmatchcase(event_type, pattern):
            return True
    return False

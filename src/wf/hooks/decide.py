"""The delivery decisions: pure functions of an endpoint's settings, an attempt's result and
``now``, returning the events to record. ``runner.py`` interprets them; nothing here does I/O.

* which events an endpoint takes (``takes``): its patterns (``events.matches``), and never its
  own ``hook.endpoint_disabled``;
* what an attempt's answer means (``verdict``): 2xx delivered, 410 Gone disables the
  endpoint, anything else (an error, a timeout, a redirect, any other status) is retried;
* when the next try is (``next_try``): the endpoint's schedule after the attempt-th failure,
  or later when a 429/503 said ``Retry-After``; past the schedule, the dead-letter queue;
* whether the endpoint is disabled (``after_failure``): a 410, or failing without a single
  success for ``disable_after``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from wf.hooks.config import HookConfig
from wf.hooks.events import HOOK_ATTENTION, matches
from wf.model import NewEvent

HOOKS_STREAM = "hooks"
MAX_RETRY_AFTER = 86400.0  # a Retry-After beyond a day is taken as a day

Verdict = Literal["delivered", "retry", "gone"]


def takes(hook: HookConfig, event_type: str, data: dict) -> bool:
    """Whether ``hook`` receives an event of this type and data."""
    if not matches(hook.events, event_type):
        return False
    return not (event_type == HOOK_ATTENTION and data.get("endpoint") == hook.name)


def verdict(status: int | None, error: str | None) -> Verdict:
    """``delivered`` when the attempt reported no error (a 2xx, or a sink that took it)."""
    if error is None:
        return "delivered"
    if status == 410:
        return "gone"
    return "retry"


def next_try(schedule: tuple[float, ...], attempt: int, now: float, status: int | None,
             retry_after: float | None) -> float | None:
    """When to try again after ``attempt`` (1 = the first try) failed; None: no more tries
    (the dead-letter queue). A ``Retry-After`` on 429 or 503 is honoured when it is longer
    than the schedule's delay."""
    if attempt > len(schedule):
        return None
    delay = schedule[attempt - 1]
    if status in (429, 503) and retry_after is not None:
        delay = max(delay, min(retry_after, MAX_RETRY_AFTER))
    return now + delay


@dataclass(frozen=True)
class Failure:
    """What a failed attempt records: its ``hook.failed`` and, maybe, the disabling."""

    events: list[NewEvent]
    next_at: float | None
    disabled: bool


def after_failure(hook: HookConfig, *, seq: int, msg_id: str, attempt: int, now: float,
                  status: int | None, error: str | None, retry_after: float | None,
                  failing_since: float | None, upto: int) -> Failure:
    """The events for attempt ``attempt`` of event ``seq`` failing at ``now``.
    ``failing_since``: when the endpoint's current run of failures began (None: this is its
    first failure since a success)."""
    gone = verdict(status, error) == "gone"
    next_at = None if gone else next_try(hook.schedule, attempt, now, status, retry_after)
    # A 410 is not the event's fault: it waits for the endpoint to be enabled again.
    dead = next_at is None and not gone
    events = [NewEvent(HOOKS_STREAM, "hook.failed", {
        "endpoint": hook.name, "seq": seq, "id": msg_id, "attempt": attempt, "status": status,
        "error": error, "retry_after": retry_after, "next_at": next_at, "dead": dead,
        "upto": upto})]
    since = now if failing_since is None else failing_since
    reason = None
    if gone:
        reason = "the endpoint answered 410 Gone"
    elif hook.disable_after and now - since >= hook.disable_after:
        reason = f"failing continuously for {int(now - since)} s"
    if reason:
        events.append(disabled_event(hook.name, reason, since))
    return Failure(events, next_at, reason is not None)


def disabled_event(endpoint: str, reason: str, failing_since: float | None) -> NewEvent:
    return NewEvent(HOOKS_STREAM, HOOK_ATTENTION, {"endpoint": endpoint, "reason": reason,
                                                   "failing_since": failing_since})


def delivered_event(endpoint: str, seqs: list[int], upto: int) -> NewEvent:
    """Successes in one event: ``seqs`` delivered; every event of the endpoint up to ``upto``
    has an outcome recorded (the point a restart reads on from)."""
    return NewEvent(HOOKS_STREAM, "hook.delivered", {"endpoint": endpoint, "seqs": seqs,
                                                      "upto": upto})

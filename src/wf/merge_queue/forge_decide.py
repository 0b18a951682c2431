"""Pure decisions of landing through the forge (``[merge] land = "pr"``), beside ``decide.py``.

What one reading of the forge's checks means (:func:`judge_checks`), how long to wait before
the next look and when waiting has lasted too long, what a merge (or the forge's auto-merge)
becomes as a landing's outcome, and the ``pr.*`` events recorded on the way. No I/O:
``pr_landing.py`` (the interpreter) passes what ``forge_activities.py`` found and ``now``,
and records what these return. A Temporal queue workflow calls the same functions.
"""

from __future__ import annotations

from typing import Literal

from wf.merge_queue.decide import LandOutcome
from wf.model import NewEvent
from wf.providers.base import ForgeChecks, MergeOutcome, PullRequest

MAX_POLL_INTERVAL = 60.0  # seconds: the longest wait between two looks at the forge

# (the landing's outcome, the events it records: a ``pr.merged`` when the forge merged)
Decided = tuple[LandOutcome, tuple[NewEvent, ...]]


def pr_ref(kind: str, number: int) -> str:
    """How the forge itself writes a PR/MR's reference: GitLab's ``!3``, GitHub's ``#3``."""
    return f"!{number}" if kind == "gitlab" else f"#{number}"


# -- before pushing ---------------------------------------------------------------------------

def landed_already(latest: PullRequest | None, carried: bool, *, kind: str,
                   stream: str) -> Decided | None:
    """A newest PR/MR already merged with a head that carries the entry (``carried``): wf
    crashed after the forge merged it, so it is recorded as landed instead of pushed and merged
    again. None: land it."""
    if latest is None or latest.state != "merged" or not carried:
        return None
    return (LandOutcome("landed", f"{pr_ref(kind, latest.number)} was merged already",
                        commit=latest.merge_commit),
            (pr_merged(stream, latest.number, latest.merge_commit),))


def reusable(latest: PullRequest | None) -> PullRequest | None:
    """The PR/MR to update rather than open another: the newest one, while it is open."""
    return latest if latest is not None and latest.state in ("open", "draft") else None


# -- the events -------------------------------------------------------------------------------

def pr_opened(stream: str, pr: PullRequest, *, created: bool, head: str, base: str,
              kind: str) -> NewEvent:
    return NewEvent(stream, "pr.opened", {
        "number": pr.number, "url": pr.url, "state": pr.state, "created": created,
        "head": head, "base": base, "forge": kind})


def pr_checks(stream: str, number: int, checks: ForgeChecks) -> NewEvent:
    return NewEvent(stream, "pr.checks", {
        "number": number, "state": checks.state, "detail": checks.detail})


def pr_merged(stream: str, number: int, commit: str | None) -> NewEvent:
    return NewEvent(stream, "pr.merged", {"number": number, "commit": commit})


# -- waiting for the forge's checks -----------------------------------------------------------

def judge_checks(reading: ForgeChecks, *, ci_config: str | None, waited: float,
                 grace: float) -> ForgeChecks:
    """What one reading of the forge means for landing: pending, passed or failed. Pure.

    A failure, a pending run and a pass are what they say. ``none`` (the forge reports nothing
    on the head) is never a pass by itself: with CI configured in the head (``ci_config``) the
    checks have not appeared yet, so wait (``forge_check_timeout`` bounds it); without, wait
    ``grace`` seconds for a check from elsewhere (an app, a webhook) and then land with none.
    """
    if reading.state != "none":
        return reading
    if ci_config is not None:
        return ForgeChecks("pending", f"{reading.detail} yet; {ci_config} configures CI")
    if waited < grace:
        return ForgeChecks("pending", f"{reading.detail} yet; no CI configured, waiting "
                                      f"{grace:g}s for checks to appear")
    return ForgeChecks("success", f"{reading.detail}; no CI configured")


def checks_grace(grace: float, timeout: float | None) -> float:
    """How long "nothing reported" waits without CI configured: never past the timeout."""
    return grace if timeout is None else min(grace, timeout)


def deadline_of(start: float, timeout: float | None) -> float | None:
    return None if timeout is None else start + timeout


def in_time(now: float, deadline: float | None) -> bool:
    return deadline is None or now < deadline


def next_interval(interval: float, *, changed: bool, first: float) -> float:
    """The wait before the next look: back to ``first`` (``forge_poll_interval``) when the
    verdict changed, else half as long again, up to a minute (or ``first`` if longer)."""
    if changed:
        return first
    return min(interval * 1.5, max(MAX_POLL_INTERVAL, first))


def checks_verdict(checks: ForgeChecks, *, now: float, deadline: float | None,
                   timeout: float | None) -> ForgeChecks | None:
    """The end of the wait: the judged checks once they passed or failed, a failure when they
    are still pending at the deadline; None: look again."""
    if checks.state != "pending":
        return checks
    if deadline is not None and now >= deadline:
        return ForgeChecks("failure", f"still pending after {timeout:g}s: {checks.detail}")
    return None


def sleep_for(interval: float, *, now: float, deadline: float | None) -> float:
    """How long to sleep before the next look: the interval, cut short at the deadline."""
    return interval if deadline is None else max(0.0, min(interval, deadline - now))


def checks_failed(verdict: ForgeChecks, *, kind: str, number: int) -> LandOutcome | None:
    """The entry's eviction when the forge's checks did not pass; None: go on to merge."""
    if verdict.state == "success":
        return None
    return LandOutcome("evicted", f"the forge's checks on {pr_ref(kind, number)} did not pass: "
                                  f"{verdict.detail}", kind="forge_check")


def target_moved(now: str, base: str, *, remote: str, target: str) -> LandOutcome | None:
    """A remote target that moved while the checks ran: retest (the candidate is built on
    ``base``, and the merge must not land anything untested). None: it did not move."""
    if now == base:
        return None
    return LandOutcome("moved", f"{remote}/{target} moved to {str(now)[:10]} while the "
                                "forge's checks ran")


# -- merging ----------------------------------------------------------------------------------

def merge_result(outcome: MergeOutcome, *, kind: str, number: int,
                 stream: str) -> Decided | None:
    """What the forge's answer to the merge becomes: landed (``merged``), retest (``moved``:
    the head is not the candidate any more), evicted (it will not merge); None for ``auto``
    (the forge merges when its checks pass: wait for it, :func:`auto_merge_result`)."""
    if outcome.status == "auto":
        return None
    if outcome.status == "merged":
        return merged(kind, number, outcome.commit, stream)
    if outcome.status == "moved":
        return LandOutcome("moved", outcome.detail), ()
    return LandOutcome("evicted", outcome.detail, kind="not_mergeable"), ()


def auto_merge_state(now: PullRequest) -> Literal["merged", "closed", "waiting"]:
    """What one look at a PR/MR set to auto-merge says."""
    return "merged" if now.state == "merged" else "closed" if now.state == "closed" else "waiting"


def auto_merge_result(done: PullRequest | None, *, kind: str, number: int,
                      stream: str) -> Decided:
    """The landing once the forge merged the PR/MR itself (``done``), or never did (None:
    closed, or the wait timed out)."""
    if done is None:
        return LandOutcome("evicted", f"{pr_ref(kind, number)} was not merged by the forge: "
                                      "auto-merge timed out or the PR/MR was closed",
                           kind="not_mergeable"), ()
    return merged(kind, number, done.merge_commit, stream)


def merged(kind: str, number: int, commit: str | None, stream: str) -> Decided:
    return (LandOutcome("landed", f"{pr_ref(kind, number)} merged", commit=commit),
            (pr_merged(stream, number, commit),))

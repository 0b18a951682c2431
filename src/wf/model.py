"""Domain values: task ids, durations, states, failure kinds, events.

Everything here is pure data or a pure function of data, and imports nothing heavy: read-only
commands such as ``wf status`` load it at start-up. The validated specs (``RetryPolicy``,
``TaskSpec``) are pydantic models in ``wf.spec``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

TASK_ID_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")


def check_task_id(value: str) -> str:
    """Return ``value`` if it is a safe task id (it becomes a branch and a folder name)."""
    if not isinstance(value, str) or not TASK_ID_RE.fullmatch(value) or ".." in value:
        raise ValueError(
            f"invalid task id {value!r}: use 1-63 characters of a-z 0-9 . _ -, "
            "starting with a letter or digit, without '..'"
        )
    if value.endswith(".lock") or value.endswith("."):
        raise ValueError(f"invalid task id {value!r}: it must not end in '.lock' or '.'")
    return value


_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: Any) -> float:
    """Seconds from ``"90s"``, ``"5m"``, ``"1h30m"``, ``"250ms"`` or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"not a duration: {value!r}")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"a duration cannot be negative: {value!r}")
        return float(value)
    if isinstance(value, str):
        text = value.strip().replace(" ", "")
        if re.fullmatch(r"\d+(\.\d+)?", text):  # "90" means seconds, as 90 does
            return float(text)
        pos, total = 0, 0.0
        for match in _DURATION_RE.finditer(text):
            if match.start() != pos:
                break
            total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
            pos = match.end()
        if text and pos == len(text):
            return total
    raise ValueError(f"not a duration: {value!r} (use e.g. \"90s\", \"5m\", \"2h\", \"1h30m\")")


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 10:
        return f"{seconds:.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"
    BLOCKED = "blocked"
    MERGED = "merged"  # its branch landed through the merge queue
    EVICTED = "evicted"  # its agent succeeded, but the merge queue sent its branch back


# States a task does not leave by itself (only `wf retry`, `wf queue retry` or the queue's
# conflict resolution sends it back). StrEnum members compare equal to their strings, so rows'
# states test directly.
TERMINAL_STATES = frozenset({TaskState.DONE, TaskState.FAILED, TaskState.CANCELLED,
                             TaskState.BLOCKED, TaskState.MERGED, TaskState.EVICTED})


class AttemptState(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    CANCELLED = "cancelled"


class FailureKind(StrEnum):
    """Why an attempt failed. The retry policy's ``non_retryable`` lists these names."""

    TRANSIENT = "transient"  # exit 75, rate limits, network: try again later
    LOST = "lost"  # the agent vanished (reboot, killed outside wf)
    INFRA = "infra"  # worktree or git trouble on wf's side
    AGENT_ERROR = "agent_error"  # the agent exited non-zero
    NO_CHANGES = "no_changes"  # exit 0 but nothing changed
    TIMEOUT = "timeout"  # the whole-attempt timeout passed
    NO_OUTPUT_TIMEOUT = "no_output_timeout"  # no byte of output for too long
    SETUP_ERROR = "setup_error"  # the task's setup command failed
    DEPENDENCY_CONFLICT = "dependency_conflict"  # dependencies' branches do not merge
    POLICY_DENIED = "policy_denied"  # a policy or the agent's permission check refused
    LIMIT = "limit"  # the agent hit its turn or budget limit
    CONFIG_ERROR = "config_error"  # never retried
    BUDGET = "budget"  # a wf budget with on_exceed = "stop" was crossed; never retried


NEVER_RETRIED = frozenset({FailureKind.CONFIG_ERROR, FailureKind.POLICY_DENIED,
                           FailureKind.DEPENDENCY_CONFLICT, FailureKind.BUDGET})

# A transient failure is a rate limit when the provider pushed back: HTTP 429 (too many
# requests), 529 (Anthropic's overloaded), "rate limit", "overloaded", RESOURCE_EXHAUSTED
# (Google). A network blip, a 5xx or a timeout is transient too but says nothing about how
# many agents the provider takes at once, so the adaptive limit does not react to it.
RATE_LIMIT_RE = re.compile(r"\b(?:429|529)\b|rate.?limit|too many requests|overloaded|"
                           r"resource.?exhausted", re.I)


def says_rate_limited(text: str | None) -> bool:
    """Whether an agent's error message says the provider rate limited it (``RATE_LIMIT_RE``)."""
    return bool(text) and RATE_LIMIT_RE.search(text) is not None


class RandomSource(Protocol):
    """Where decisions draw randomness from (retry jitter): a ``random.Random`` locally, a
    Temporal workflow's deterministic one there. Never the global ``random``."""

    def uniform(self, a: float, b: float) -> float: ...


def task_stream(task_id: str) -> str:
    return f"task:{task_id}"


RUN_STREAM = "run"
SIGNAL_STREAM = "signals"


class SignalKind(StrEnum):
    CANCEL = "cancel"
    RETRY = "retry"
    ENQUEUE = "enqueue"  # wf queue add
    DEQUEUE = "dequeue"  # wf queue rm
    REQUEUE = "requeue"  # wf queue retry
    APPROVE = "approve"
    REJECT = "reject"
    BUDGET = "budget"  # wf budget TASK --add/--tokens/--wall: raise and resume


@dataclass(frozen=True)
class NewEvent:
    """An event to append. ``stream_version`` is assigned by the store unless given
    (then the append fails with ConcurrencyError if the stream has moved on). ``ts``: when
    it happened, for an event recorded elsewhere first (a Temporal workflow's, mirrored);
    None, as for every event wf records itself: the append's time."""

    stream: str
    type: str
    data: dict[str, Any] = field(default_factory=dict)
    expected_version: int | None = None
    idempotency_key: str | None = None
    ts: float | None = None


@dataclass(frozen=True)
class Event:
    seq: int
    stream: str
    stream_version: int
    type: str
    ts: float
    data: dict[str, Any]
    idempotency_key: str | None = None

    @property
    def task_id(self) -> str | None:
        return self.stream[5:] if self.stream.startswith("task:") else self.data.get("task")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"seq": self.seq, "ts": self.ts, "type": self.type,
                               "stream": self.stream}
        task = self.task_id
        if task is not None:
            out["task"] = task
        if "n" in self.data:
            out["attempt"] = self.data["n"]
        out["data"] = self.data
        return out

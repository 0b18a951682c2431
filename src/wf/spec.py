"""Validated specs: the retry policy and a submitted task (pydantic, frozen)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from wf.engine.budget import Budget, parse_budget
from wf.model import (
    NEVER_RETRIED,
    FailureKind,
    RandomSource,
    check_task_id,
    parse_duration,
)


class RetryPolicy(BaseModel):
    """Temporal's retry fields with Temporal's meaning, plus jitter.

    The delay before attempt n+1 is ``initial_interval * backoff_coefficient**(n-1)``, capped
    at ``maximum_interval``, then spread by ±``jitter`` (a fraction). ``maximum_attempts = 0``
    means no limit.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    maximum_attempts: int = Field(3, ge=0, description="attempts in all, 0 for no limit")
    initial_interval: float = Field(5.0, ge=0, description="delay before the first retry")
    backoff_coefficient: float = Field(2.0, ge=1.0, description="growth of the delay per retry")
    maximum_interval: float = Field(300.0, ge=0, description="cap on one delay")
    jitter: float = Field(0.2, ge=0.0, le=1.0, description="random spread, a fraction of the delay")
    non_retryable: tuple[FailureKind, ...] = Field(
        (FailureKind.CONFIG_ERROR,), description="failure kinds that are never retried"
    )

    @field_validator("initial_interval", "maximum_interval", mode="before")
    @classmethod
    def _durations(cls, value: Any) -> float:
        return parse_duration(value)

    def delay(self, failed_attempt: int, rng: RandomSource) -> float:
        """Seconds to wait after attempt number ``failed_attempt`` (1-based) failed; the
        jitter is drawn from ``rng`` (there is no global fallback: replay needs the same
        source, a Temporal workflow's own)."""
        try:
            base = self.initial_interval * self.backoff_coefficient ** max(0, failed_attempt - 1)
        except OverflowError:  # thousands of retries with no limit: the cap applies
            base = float("inf")
        base = min(base, self.maximum_interval) if self.maximum_interval else min(base, 86400.0)
        if self.jitter and base:
            spread = rng.uniform(-self.jitter, self.jitter)
            base = base * (1.0 + spread)
            if self.maximum_interval:
                base = min(base, self.maximum_interval)
        return max(0.0, base)

    def should_retry(self, kind: FailureKind, attempts_in_budget: int) -> bool:
        """Whether a failure of ``kind`` after ``attempts_in_budget`` attempts gets another one."""
        if kind in NEVER_RETRIED or kind in self.non_retryable:
            return False
        return self.maximum_attempts == 0 or attempts_in_budget < self.maximum_attempts


class TaskSpec(BaseModel):
    """One task as submitted: what to run, where, and how to retry it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    prompt: str
    agent: str
    command: tuple[str, ...] = Field(description="the agent's argv; the engine fills the "
                                    "placeholders for each attempt")
    resume_command: tuple[str, ...] | None = Field(
        None, description="argv that resumes the agent's session {session} on a retry")
    adapter: str | None = Field(None, description="the adapter that reads the agent's output")
    env: dict[str, str] = Field(default_factory=dict)
    pass_env: tuple[str, ...] = ()
    depends_on: tuple[str, ...] = ()
    base: str = Field(description="ref the task starts from when it has no dependencies")
    timeout: float | None = None
    no_output_timeout: float | None = None
    retry: RetryPolicy = RetryPolicy()
    setup: tuple[str, ...] | None = None
    budget: Budget | None = Field(None, description="the task's own budget")
    agent_budget: Budget | None = Field(None, description="its agent's budget (all its tasks)")

    _budgets = field_validator("budget", "agent_budget", mode="before")(
        classmethod(lambda cls, v: None if v is None else parse_budget(v, "budget")))
    _check_id = field_validator("id")(classmethod(lambda cls, v: check_task_id(v)))

    @property
    def branch(self) -> str:
        return f"wf/{self.id}"

"""What travels between the Temporal engine's client, workflows and activities.

Plain dataclasses the default data converter turns into JSON: no tokens, no agent output
(logs stay on their host; only paths and short tails travel), nothing near the 2 MiB payload
limit. Names (task queues, workflow ids) are derived here so the client, the workflows and the
worker cannot disagree about them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# At run time, not under TYPE_CHECKING: the data converter reads the type hints.
from wf.engine.activities import AttemptReport, EnsureWorktree, RunAttempt, RunSetup

EVENTS_PER_QUERY = 500  # bounds one query's answer (each event is well under 1 KiB)


def take_queue(shared_queue: str) -> str:
    """The queue of a task's first step, beside the repository's shared queue."""
    return f"{shared_queue}.take"


@dataclass(frozen=True)
class Names:
    """The task queues and workflow ids of one repository: ``prefix`` is ``[engine]
    task_queue``, ``repo_key`` the repository's root commit (the same in every clone)."""

    prefix: str
    repo_key: str

    @property
    def base(self) -> str:
        return f"{self.prefix}.{self.repo_key[:12]}"

    @property
    def shared_queue(self) -> str:
        return self.base

    def host_queue(self, host: str) -> str:
        return f"{self.base}.host.{host}"

    @property
    def take_queue(self) -> str:
        """A task's first step: polled only by a host with a free slot (``worker.py``)."""
        return take_queue(self.base)

    @property
    def repo_workflow(self) -> str:
        return f"{self.base}.repo"

    def task_workflow(self, task_id: str) -> str:
        return f"{self.base}.task.{task_id}"

    def merge_workflow(self, target: str) -> str:
        return merge_workflow(self.base, target)


def merge_workflow(shared_queue: str, target: str) -> str:
    """The id of the merge-queue workflow of one repository and target."""
    return f"{shared_queue}.merge.{target}"


@dataclass
class MergeSettings:
    """``[merge]`` as the repository workflow's merge queue needs it."""

    target: str
    land: str = "local"
    remote: str = "origin"
    check: list[list[str]] = field(default_factory=list)
    check_timeout: float | None = 1800.0
    auto: bool = False
    require_approval: bool = False
    max_batch: int = 50
    max_parallel_checks: int = 2
    resolve_conflicts: bool = False
    blame: bool = True
    policy: dict[str, Any] = field(default_factory=dict)
    # land = "pr" (``remote`` is then the provider's)
    merge_method: str = "merge"
    auto_merge: bool = False
    forge_check_timeout: float | None = 3600.0
    forge_poll_interval: float = 10.0
    forge_checks_grace: float = 10.0


@dataclass
class Settings:
    """What the repository workflow schedules by, from the config of the latest ``wf run``."""

    max_parallel: int = 4
    agent_limits: dict[str, int | None] = field(default_factory=dict)
    port_range: tuple[int, int] = (20000, 29999)
    log_max_bytes: int = 0
    heartbeat_timeout: float = 10.0
    host_lost_after: float = 300.0
    remote: str | None = "origin"  # where a host pushes a finished task's branch (None: not)
    merge: MergeSettings | None = None  # the merge queue, when [merge] is on
    continue_after: int = 10_000  # history events before the repository workflow starts anew
    return_on_success: bool = False  # [worktrees]: a succeeded task's pooled worktree goes back
    budget: dict[str, Any] | None = None  # [budget]: the run's (wf.engine.budget.Budget)
    adaptive: dict[str, bool | None] = field(default_factory=dict)  # [agents.NAME] adaptive


def settings_from(d: dict[str, Any]) -> Settings:
    """``Settings`` from its ``asdict`` (the repository workflow's carry)."""
    merge = d.get("merge")
    return Settings(**{**d, "port_range": tuple(d["port_range"]),
                       "merge": MergeSettings(**merge) if merge is not None else None})


@dataclass
class WireEvent:
    """An event as a workflow recorded it: ``seq`` is the repository workflow's order,
    ``key`` the idempotency key the client's mirror deduplicates by."""

    stream: str
    type: str
    data: dict[str, Any]
    ts: float
    key: str
    seq: int = 0


@dataclass
class QueueStart:
    """How a merge-queue workflow (``queue_workflow.py``) starts: the repository's shared
    queue (names its repository workflow), its settings, and what it carries on from: the
    repository workflow's queue rows when first started, its own state when it continues as
    new (compressed JSON, ``carry.pack_json``)."""

    queue: str
    settings: Settings
    carried: bytes


@dataclass
class QueueFeed:
    """What the repository workflow tells its merge-queue workflow: the ``queue.*`` events it
    recorded (entries, people's approvals and removals), the rows of those entries' tasks and
    their branches on the shared remote, the latest run's settings, and whether to end after
    the current round (the target changed)."""

    events: list[WireEvent] = field(default_factory=list)
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    pushed: dict[str, str] = field(default_factory=dict)
    settings: Settings | None = None
    retire: bool = False


@dataclass
class QueueReport:
    """What a merge-queue workflow tells its repository workflow: the events it recorded (the
    repository workflow records them in the one log), whether it is stopped and why, and
    whether it has ended (retired)."""

    target: str
    events: list[WireEvent] = field(default_factory=list)
    paused: str | None = None
    ended: bool = False


@dataclass
class Submit:
    """``wf run``: the ``task.submitted`` events the client worked out, and the settings."""

    events: list[WireEvent]
    settings: Settings


@dataclass
class SignalRequest:
    kind: str
    task_id: str
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class EventsPage:
    """An answer of the repository workflow's ``events`` query: its events after ``since``
    (at most EVENTS_PER_QUERY), the next ``since``, and the attempts running now (their own
    workflows hold their live events until they end)."""

    events: list[WireEvent]
    next: int
    running: list[str]  # workflow ids of the task workflows running an attempt
    queue_busy: bool = False  # entries wait for admission or landing
    queue_paused: str | None = None  # why the merge queue stopped
    # ``since`` is before this run's first event: the run it continued from (``earlier``)
    # has them; this run's events start after ``first``.
    first: int = 0
    earlier: str | None = None


@dataclass
class AttemptInput:
    """One attempt of one task, for its task workflow: the rows it starts from (the
    repository workflow's projection), what the agent is told, and where to run."""

    task: dict[str, Any]
    attempt: dict[str, Any]
    n: int
    enqueue: bool
    ports_taken: list[int]
    settings: Settings
    queue: str  # the shared task queue
    host: str | None  # the host holding the task's worktree, if any
    clock_offset: float = 0.0
    pushed: dict[str, str] = field(default_factory=dict)  # task -> its branch on the remote
    budgeted: bool = False  # a budget can hold the task: report usage, obey ``BudgetOrder``


@dataclass
class AttemptResult:
    events: list[WireEvent]
    host: str | None  # None: the host was lost, the next attempt is prepared anew
    pushed: str | None = None  # the task's branch on the shared remote, e.g. origin/wf/a
    # How the attempt ended, for the adaptive limit: state, kind, rate_limited, retry_after.
    outcome: dict[str, Any] | None = None


@dataclass
class LiveUsage:
    """What a budgeted task has used so far (its attempts together, this one's live usage
    included) and its attempt's pauses: the task workflow tells the repository workflow,
    which judges the task's, its agent's and the run's budgets."""

    task_id: str
    n: int
    tokens: int
    cost_usd: float | None
    pauses: list[list[float | None]] = field(default_factory=list)


@dataclass(frozen=True)
class BudgetOrder:
    """The repository workflow to a task workflow: ``pause`` its agent (or let it run on),
    or ``stop`` the attempt as a ``budget`` failure (the message)."""

    pause: bool
    stop: str | None = None


@dataclass(frozen=True)
class PauseAttempt:
    """Stop (SIGSTOP) or continue the process group of a running attempt on its host; with
    ``stop``, end the attempt now as a ``budget`` failure with that message."""

    task_id: str
    n: int
    pause: bool
    stop: str | None = None


@dataclass(frozen=True)
class TaskRun:
    """A task workflow's run, whose result a later run of the repository workflow awaits."""

    workflow_id: str
    run_id: str | None


@dataclass
class Facts:
    """What a running attempt's activity tells its workflow: ``attempt.spawned``,
    ``attempt.adopted`` and ``agent.*`` events, as (type, data) pairs."""

    events: list[tuple[str, dict[str, Any]]]
    # When each happened on the host (wall clock): facts travel in batches, so the time the
    # workflow takes them in is up to a second late.
    times: list[float] = field(default_factory=list)


@dataclass
class Prepared:
    """``ensure_worktree`` on some host: the worktree and the host that holds it."""

    branch: str
    path: str
    created: bool
    base_commit: str | None
    merged: bool
    host: str


@dataclass(frozen=True)
class Prepare:
    """``ensure_worktree``, with the remote-tracking refs among its start point and merges
    fetched first (a dependency finished on another host reaches this one through them)."""

    worktree: EnsureWorktree
    fetch: tuple[str, ...] = ()


@dataclass(frozen=True)
class AttemptStep:
    """``run_attempt``, and then, when the agent's work was committed and ``push`` names a
    remote, the push of the task's branch there (in the same step: no round trip more)."""

    attempt: RunAttempt
    push: str | None = None


@dataclass
class AttemptDone:
    """What ``run_attempt`` found, and the branch on the remote (``origin/wf/a``) or why the
    push failed."""

    report: AttemptReport
    pushed: str | None = None
    push_error: str | None = None
    # Facts the attempt reported that no ``facts`` signal carried yet, in order, and when.
    facts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fact_times: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class TaskSetup:
    """``run_setup`` of attempt ``n``: its output goes to that attempt's log on the host."""

    task_id: str
    n: int
    setup: RunSetup


@dataclass(frozen=True)
class HostRead:
    """Read what only the host holding a task's worktree has: the end of an attempt's log
    (``kind`` "log": ``path``) or the task's diff (``kind`` "diff": the worktree at ``path``,
    else ``branch``, against ``base``), at most ``max_bytes``."""

    kind: str
    host: str
    path: str
    base: str = ""
    branch: str = ""
    stat: bool = False
    max_bytes: int = 256 * 1024


@dataclass
class HostText:
    text: str
    truncated: bool = False

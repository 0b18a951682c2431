"""Projections: the derived tables, as one pure reducer over events.

The same ``apply`` runs on the live path (the store applies each appended event inside the
append's transaction) and on ``rebuild`` (a fold over the whole log), so the two cannot drift;
a test checks that a rebuild equals the live tables.

Rows are plain dicts whose keys are the SQL columns in ``COLUMNS``. JSON-valued columns are
listed in ``JSON_COLUMNS``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from wf.model import Event
from wf.pool.rules import COLUMNS as POOL_COLUMNS
from wf.pool.rules import apply_pool

COLUMNS: dict[str, tuple[str, ...]] = {
    "tasks": (
        "id", "state", "agent", "prompt", "spec", "depends_on", "base_ref", "base_commit",
        "branch", "worktree", "worktree_ready", "port", "setup_done", "attempts",
        "budget_start", "last_error", "last_failure_kind", "next_retry_at", "commit_sha",
        "created_ts", "updated_ts", "started_ts", "ended_ts", "cleaned", "version",
        "submitted_seq", "resolve", "pr_url", "pr_number", "pr_state", "forge_checks",
        "tokens", "cost_usd", "session_id", "budget_exceeded", "budget_added", "paused",
    ),
    "attempts": (
        "task_id", "n", "state", "pid", "pid_start", "log_path", "started_ts", "ended_ts",
        "exit_code", "failure_kind", "error", "commit_sha", "retry_delay", "pauses",
    ),
    "signals": ("seq", "kind", "task_id", "data", "created_ts", "handled_seq", "result"),
    "runs": ("id", "pid", "host", "argv", "started_ts", "ended_ts", "exit_code"),
    "queue": (
        "task_id", "state", "position", "branch", "head", "approved", "last_check",
        "reason_kind", "reason", "landed_commit", "entered_ts", "updated_ts",
        "pr_url", "pr_number", "pr_state", "forge_checks", "suspect", "check_log",
    ),
    "tested_trees": ("tree", "result", "passes", "fails", "infra", "detail", "log",
                     "updated_ts"),
    "pool": POOL_COLUMNS,  # the warm worktrees of this host (wf.pool.rules)
    # The adaptive parallelism of each agent (wf.engine.budget.next_limit), as last changed.
    "agent_limits": ("agent", "parallel", "max_parallel", "not_before", "successes", "reason",
                     "lowered_at", "updated_ts"),
}
PRIMARY_KEYS: dict[str, tuple[str, ...]] = {
    "tasks": ("id",),
    "attempts": ("task_id", "n"),
    "signals": ("seq",),
    "runs": ("id",),
    "queue": ("task_id",),
    "tested_trees": ("tree",),
    "pool": ("slot",),
    "agent_limits": ("agent",),
}
JSON_COLUMNS = {("tasks", "spec"), ("tasks", "depends_on"), ("tasks", "resolve"),
                ("tasks", "budget_exceeded"), ("tasks", "budget_added"), ("attempts", "pauses"),
                ("signals", "data"), ("runs", "argv"), ("pool", "owner")}


@dataclass
class Projection:
    """All projection rows in memory, keyed by primary key."""

    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    attempts: dict[tuple[str, int], dict[str, Any]] = field(default_factory=dict)
    signals: dict[int, dict[str, Any]] = field(default_factory=dict)
    runs: dict[str, dict[str, Any]] = field(default_factory=dict)
    queue: dict[str, dict[str, Any]] = field(default_factory=dict)
    tested_trees: dict[str, dict[str, Any]] = field(default_factory=dict)
    pool: dict[str, dict[str, Any]] = field(default_factory=dict)
    agent_limits: dict[str, dict[str, Any]] = field(default_factory=dict)

    def table(self, name: str) -> dict[Any, dict[str, Any]]:
        return getattr(self, name)


def _blank(table: str, **values: Any) -> dict[str, Any]:
    row = dict.fromkeys(COLUMNS[table])
    row.update(values)
    return row


def full_row(table: str, row: Mapping[str, Any]) -> dict[str, Any]:
    """``row`` with every column of ``table``, those it lacks None: a row an older wf wrote
    (a Temporal workflow's input, a carry) has no columns added since."""
    return _blank(table, **row)


def apply(p: Projection, e: Event) -> set[tuple[str, Any]]:
    """Fold event ``e`` into ``p``; return the (table, key) pairs it touched.

    Unknown event types touch nothing: projections only follow the events they know, so
    informational events (agent output summaries, notes) can be added freely.
    """
    d = e.data
    touched: set[tuple[str, Any]] = set()
    tid = e.stream[5:] if e.stream.startswith("task:") else None

    def task(**values: Any) -> None:
        row = p.tasks[tid]
        row.update(values)
        row["updated_ts"] = e.ts
        row["version"] = e.stream_version
        touched.add(("tasks", tid))

    def attempt(n: int, **values: Any) -> None:
        key = (tid, n)
        row = p.attempts.get(key)
        if row is None:
            row = p.attempts[key] = _blank("attempts", task_id=tid, n=n)
        row.update(values)
        touched.add(("attempts", key))

    t = e.type
    if t.startswith("pool."):  # the worktree pool's own stream
        touched.update(("pool", slot) for slot in apply_pool(p.pool, e))
        return touched
    if t == "agent.limit_changed":  # stream agent:NAME
        p.agent_limits[d["agent"]] = _blank(
            "agent_limits", agent=d["agent"], parallel=d["limit"],
            max_parallel=d.get("max_parallel"), not_before=d.get("not_before"),
            successes=d.get("successes") or 0, reason=d.get("reason"),
            lowered_at=d.get("lowered_at"), updated_ts=e.ts)
        touched.add(("agent_limits", d["agent"]))
        return touched
    if t == "task.submitted":
        spec = d["spec"]
        # A task submitted again after `wf clean --forget` numbers its attempts after the
        # forgotten ones: their logs and the log's keys (attempt.started:<id>:<n>) stay unique.
        before = d.get("attempts_before") or 0
        p.tasks[tid] = _blank(
            "tasks", id=tid, state="queued", agent=spec["agent"], prompt=spec["prompt"],
            spec=spec, depends_on=list(spec.get("depends_on", ())), base_ref=spec["base"],
            branch=f"wf/{tid}", worktree_ready=0, setup_done=0, attempts=before,
            budget_start=before + 1, created_ts=e.ts, cleaned=0, submitted_seq=e.seq, tokens=0,
        )
        task()
    elif t.startswith("queue."):  # an entry may be a plain branch, with no task behind it
        _apply_queue(p, e, tid, touched)
        if tid in p.tasks:
            _queue_to_task(p.tasks[tid], e, task)
    elif t.startswith("pr."):  # a task's PR/MR, and its queue entry's
        _apply_pr(p, e, tid, touched)
    elif (tid is None and t.startswith(("task.", "attempt."))) or (
            tid is not None and tid not in p.tasks):
        return touched  # a task event off a task stream, or for a task never submitted
    elif t == "task.worktree_requested":
        task(branch=d["branch"], worktree=d["path"])
    elif t == "task.worktree_ready":  # a worktree again after `wf clean`: cleanable again
        task(branch=d["branch"], worktree=d["path"], base_commit=d["base_commit"],
             port=d.get("port"), worktree_ready=1, cleaned=0)
    elif t == "task.worktree_lost":  # deleted by hand: made again before the next attempt
        task(worktree_ready=0, setup_done=0)
    elif t == "task.worktree_released":  # given back to the pool: its work is on its branch
        task(worktree_ready=0, setup_done=0, worktree=None)
    elif t == "task.setup_done":
        task(setup_done=1)
    elif t == "attempt.started":
        n = d["n"]
        attempt(n, state="running", log_path=d.get("log_path"), started_ts=e.ts)
        row = p.tasks[tid]
        task(state="running", attempts=max(row["attempts"] or 0, n), next_retry_at=None,
             started_ts=row["started_ts"] or e.ts)
    elif t == "attempt.spawned":
        attempt(d["n"], pid=d["pid"], pid_start=d.get("pid_start"))
        if d.get("log_path"):  # on Temporal the host that runs the attempt knows its log
            attempt(d["n"], log_path=d["log_path"])
    elif t == "attempt.finished":
        attempt(d["n"], state=d["state"], ended_ts=e.ts, exit_code=d.get("exit_code"),
                failure_kind=d.get("failure_kind"), error=d.get("error"),
                commit_sha=d.get("commit"))
        pauses = p.attempts[(tid, d["n"])]["pauses"]
        if pauses and pauses[-1][1] is None:  # ended while paused (cancelled): pause over
            attempt(d["n"], pauses=[*pauses[:-1], [pauses[-1][0], e.ts]])
        if p.tasks[tid]["paused"]:
            task(paused=0)
    elif t == "task.retry_scheduled":
        attempt(d["n"], retry_delay=d["delay"])
        task(state="retrying", next_retry_at=e.ts + d["delay"], last_error=d.get("error"),
             last_failure_kind=d.get("kind"))
    elif t == "task.succeeded":
        task(state="done", commit_sha=d.get("commit"), last_error=None, resolve=None,
             last_failure_kind=None, next_retry_at=None, ended_ts=e.ts)
    elif t in ("task.failed", "task.blocked", "task.cancelled"):
        state = {"task.failed": "failed", "task.blocked": "blocked",
                 "task.cancelled": "cancelled"}[t]
        task(state=state, last_error=d.get("error"), last_failure_kind=d.get("kind"),
             next_retry_at=None, ended_ts=e.ts)
    elif t == "task.requeued":
        row = p.tasks[tid]
        task(state="queued", budget_start=(row["attempts"] or 0) + 1, next_retry_at=None,
             ended_ts=None, resolve=d.get("resolve"))
    elif t == "agent.usage":  # summed over attempts; cost stays None until one is reported
        row = p.tasks[tid]
        cost = d.get("cost_usd")
        task(tokens=(row["tokens"] or 0) + int(d.get("input_tokens") or 0)
             + int(d.get("output_tokens") or 0),
             cost_usd=row["cost_usd"] if cost is None else (row["cost_usd"] or 0.0) + cost)
    elif t == "budget.exceeded":  # wf.engine.budget: a cap crossed while the task ran
        task(budget_exceeded={k: d.get(k) for k in ("scope", "limit", "used", "allowed",
                                                    "action", "message")})
    elif t == "budget.raised":  # `wf budget`: more room for this task in every scope
        added = dict(p.tasks[tid]["budget_added"] or {})
        for kind in ("cost_usd", "tokens", "wall"):
            added[kind] = (added.get(kind) or 0) + (d.get(kind) or 0)
        task(budget_added=added, budget_exceeded=None)
    elif t == "task.paused":  # the agent's process group stopped (SIGSTOP), still alive
        row = p.attempts.get((tid, d["n"]))
        if row is not None and not (row["pauses"] and row["pauses"][-1][1] is None):
            attempt(d["n"], pauses=[*(row["pauses"] or []), [e.ts, None]])
        task(paused=1)
    elif t == "task.resumed":
        row = p.attempts.get((tid, d["n"]))
        if row is not None and row["pauses"] and row["pauses"][-1][1] is None:
            attempt(d["n"], pauses=[*row["pauses"][:-1], [row["pauses"][-1][0], e.ts]])
        task(paused=0)
    elif t == "agent.session":
        task(session_id=d.get("session_id"))
    elif t == "task.cleaned":
        task(cleaned=1, worktree_ready=0, setup_done=0,
             worktree=None if d.get("worktree_removed") else p.tasks[tid]["worktree"])
    elif t == "task.forgotten":  # `wf clean --forget`: the id is free to be submitted again
        del p.tasks[tid]
        touched.add(("tasks", tid))
        for key in [k for k in p.attempts if k[0] == tid]:
            del p.attempts[key]
            touched.add(("attempts", key))
        if p.queue.pop(tid, None) is not None:
            touched.add(("queue", tid))
    elif t == "signal.sent":
        p.signals[e.seq] = _blank("signals", seq=e.seq, kind=d["kind"], task_id=d.get("task"),
                                  data=d, created_ts=e.ts)
        touched.add(("signals", e.seq))
    elif t == "signal.handled":
        row = p.signals.get(d["signal_seq"])
        if row is not None:
            row.update(handled_seq=e.seq, result=d.get("result"))
            touched.add(("signals", d["signal_seq"]))
    elif t == "run.started":
        p.runs[d["run_id"]] = _blank("runs", id=d["run_id"], pid=d.get("pid"),
                                     host=d.get("host"), argv=d.get("argv"), started_ts=e.ts)
        touched.add(("runs", d["run_id"]))
    elif t == "run.finished":
        row = p.runs.get(d["run_id"])
        if row is not None:
            row.update(ended_ts=e.ts, exit_code=d.get("exit_code"))
            touched.add(("runs", d["run_id"]))
    return touched


def fold(events: Any, into: Projection | None = None) -> Projection:
    p = into or Projection()
    for e in events:
        apply(p, e)
    return p


def _apply_pr(p: Projection, e: Event, tid: str | None, touched: set[tuple[str, Any]]) -> None:
    """``pr.opened`` / ``pr.checks`` / ``pr.merged`` set the PR/MR columns of the task row and
    of the queue row with the same id, whichever exist."""
    d, t = e.data, e.type
    if t == "pr.opened":
        values = {"pr_url": d.get("url"), "pr_number": d.get("number"),
                  "pr_state": d.get("state")}
    elif t == "pr.checks":
        values = {"forge_checks": f"{d['state']}: {d['detail']}" if d.get("detail")
                  else d["state"]}
    elif t == "pr.merged":
        values = {"pr_state": "merged"}
    else:
        return
    if tid in p.tasks:
        p.tasks[tid].update(values, updated_ts=e.ts, version=e.stream_version)
        touched.add(("tasks", tid))
    if tid in p.queue:
        p.queue[tid].update(values, updated_ts=e.ts)
        touched.add(("queue", tid))


QUEUE_ENTRY_STATES = {
    "queue.entered": "pending",  # waiting for admission
    "queue.admitted": "queued",
    "queue.needs_approval": "waiting_approval",
    "queue.approved": "queued",
    "queue.landed": "landed",
    "queue.evicted": "evicted",
    "queue.removed": "removed",
}
QUEUE_WAITING = frozenset({"pending", "queued"})  # entries the queue has yet to admit or land
# Entries still in the queue: a person can remove or reject them, and they have a place in line.
QUEUE_IN_LINE = frozenset({*QUEUE_WAITING, "waiting_approval"})


def _queue_to_task(row: dict[str, Any], e: Event, task: Any) -> None:
    """What a queue event means for the task behind the entry: landed is ``merged``; evicted
    is ``evicted``, with the reason (and the failing check's log) as its last error; entering
    the queue again makes an evicted task ``done`` once more."""
    d = e.data
    if e.type == "queue.landed":
        task(state="merged", commit_sha=d.get("commit"))
    elif e.type == "queue.evicted":
        log = f"; log: {d['log']}" if d.get("log") else ""
        task(state="evicted", last_error=f"{d.get('kind')}: {d.get('detail')}{log}",
             last_failure_kind=None, next_retry_at=None)
    elif e.type == "queue.entered" and row["state"] == "evicted":
        task(state="done", last_error=None)


def _apply_queue(p: Projection, e: Event, tid: str | None, touched: set[tuple[str, Any]]) -> None:
    """Queue entries (one per task, on the task's stream) and the tested-tree cache (on the
    ``queue`` stream)."""
    d, t = e.data, e.type
    if t == "queue.check_finished":
        row = p.tested_trees.get(d["tree"])
        if row is None:
            row = p.tested_trees[d["tree"]] = _blank("tested_trees", tree=d["tree"], passes=0,
                                                     fails=0, infra=0)
        key = {"pass": "passes", "fail": "fails", "infra": "infra"}[d["result"]]
        row[key] += 1
        if d["result"] != "infra":
            row.update(result=d["result"], log=d.get("log"))
        row.update(detail=d.get("detail"), updated_ts=e.ts)
        touched.add(("tested_trees", d["tree"]))
        named = set(d.get("blamed", ()))
        for entry in d.get("entries", ()):
            if entry in p.queue:
                last = f"{d['result']} ({d.get('size')} in batch)"
                if entry in named:  # the failing check's output names this entry's files
                    last = f"{d['result']} ({d.get('size')} in batch; its files in the log)"
                    p.queue[entry]["suspect"] = 1
                p.queue[entry].update(last_check=last, updated_ts=e.ts)
                touched.add(("queue", entry))
        return
    if t == "queue.check_started":
        for size, batch in zip(d["sizes"], d["batches"], strict=True):
            for entry in batch:
                if entry in p.queue:
                    p.queue[entry].update(last_check=f"testing ({size} in batch)",
                                          updated_ts=e.ts)
                    touched.add(("queue", entry))
        return
    if tid is None or t not in QUEUE_ENTRY_STATES:
        return
    row = p.queue.get(tid)
    if t == "queue.entered":
        row = p.queue[tid] = _blank("queue", task_id=tid, position=e.seq, branch=d["branch"],
                                    head=d.get("head"), approved=0, entered_ts=e.ts)
    elif row is None:
        return
    row.update(state=QUEUE_ENTRY_STATES[t], updated_ts=e.ts)
    if t == "queue.approved":
        row["approved"] = 1
    if t in ("queue.evicted", "queue.needs_approval"):
        row.update(reason_kind=d.get("kind"), reason=d.get("detail"), check_log=d.get("log"))
    if t == "queue.landed":
        row.update(landed_commit=d.get("commit"), reason_kind=None, reason=None)
    if t in ("queue.admitted", "queue.needs_approval") and d.get("head"):
        row["head"] = d["head"]
    if t == "queue.admitted":
        row.update(reason_kind=None, reason=None, suspect=0, check_log=None)
    touched.add(("queue", tid))

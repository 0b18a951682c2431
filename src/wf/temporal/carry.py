"""What the repository workflow carries into its next run when it continues as new.

A repository workflow lives as long as the repository is used, so its history would reach
Temporal's cap (51,200 events, 50 MB). Before that it continues as new: a fresh run with a
short history, given everything the scheduler and the merge queue decide by: the projection
rows, the hosts and pushed branches, the attempts still running, the settings, and where its
numbering of events got to. Its events themselves stay with the runs that recorded them; a
mirror that had not read them yet reads them there (``engine.Mirror``).

The carry travels as one binary payload, zlib-compressed JSON, under the 2 MiB payload limit
with room to spare: tasks that have landed keep only the columns later decisions read (their
state, branch, commit, port: a dependent starts from them), not their spec and prompt, and
only the latest ``TESTED_KEPT`` tested trees are kept (a cache: a tree dropped is tested
again). Pure functions, no temporalio: the workflow calls them in the sandbox.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass, field
from typing import Any

from wf.store.projections import Projection

TESTED_KEPT = 500
# A landed task's columns the workflows still read: its state for dependents and signals,
# its branch and commit for a dependent's start point, its port so no other task takes it.
LANDED_COLUMNS = ("id", "state", "agent", "depends_on", "base_ref", "base_commit", "branch",
                  "worktree", "worktree_ready", "port", "attempts", "commit_sha", "created_ts",
                  "updated_ts", "ended_ts", "version", "submitted_seq", "pr_url", "pr_number",
                  "pr_state")


@dataclass
class Carry:
    """The repository workflow's state between two runs of its chain."""

    seq_base: int  # the sequence number of the last event recorded by the runs before
    tasks: list[dict[str, Any]]
    attempts: list[dict[str, Any]]  # a landed task's latest attempt, every one of the others
    queue: list[dict[str, Any]]
    tested_trees: list[dict[str, Any]]
    versions: dict[str, int]  # each stream's last version
    submitted: list[str]  # the keys of the task.submitted events recorded
    hosts: dict[str, str]
    pushed: dict[str, str]
    running: dict[str, int]  # task -> the attempt its (abandoned) task workflow runs
    settings: dict[str, Any]
    offset: float
    merge: dict[str, Any] | None = None  # the merge queue's own state
    runs_of: dict[str, str] = field(default_factory=dict)  # task -> its task workflow's run
    runs: int = 1  # how many runs the chain has had, this one included
    live: dict[str, dict[str, Any]] = field(default_factory=dict)  # budgeted tasks' usage
    orders: dict[str, str] = field(default_factory=dict)  # what each was last told
    agent_limits: list[dict[str, Any]] = field(default_factory=list)  # adaptive limits


def carry_from(p: Projection, **fields: Any) -> Carry:
    """The carry of projection ``p`` and the workflow's other state (``Carry``'s fields)."""
    latest: dict[str, dict[str, Any]] = {}
    kept: list[dict[str, Any]] = []  # every attempt of a task not landed: a wall budget
    for (tid, n), row in p.attempts.items():  # counts them together
        if (p.tasks.get(tid) or {}).get("state") != "merged":
            kept.append(row)
        elif tid not in latest or latest[tid]["n"] < n:
            latest[tid] = row
    return Carry(tasks=[_trimmed(row) for row in p.tasks.values()],
                 attempts=[*kept, *latest.values()], queue=list(p.queue.values()),
                 tested_trees=latest_tested(p.tested_trees),
                 agent_limits=list(p.agent_limits.values()), **fields)


def latest_tested(tested_trees: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``TESTED_KEPT`` tested trees written last: what a carry keeps of the cache."""
    rows = sorted(tested_trees.values(), key=lambda r: r.get("updated_ts") or 0)
    return rows[-TESTED_KEPT:]


def _trimmed(row: dict[str, Any]) -> dict[str, Any]:
    if row.get("state") == "merged":
        return {k: row.get(k) for k in LANDED_COLUMNS}
    # The prompt is also in the spec: carried once, restored by ``projection_of``.
    return {k: v for k, v in row.items() if k != "prompt"}


def projection_of(c: Carry) -> Projection:
    """The projection a carry holds (a landed task's dropped columns read as None)."""
    from wf.store.projections import full_row as full

    tasks = {}
    for row in c.tasks:
        t = full("tasks", row)
        if t["spec"] is not None:
            t["prompt"] = t["spec"].get("prompt")
        tasks[t["id"]] = t
    return Projection(
        tasks=tasks,
        attempts={(r["task_id"], r["n"]): full("attempts", r) for r in c.attempts},
        queue={r["task_id"]: full("queue", r) for r in c.queue},
        tested_trees={r["tree"]: full("tested_trees", r) for r in c.tested_trees},
        agent_limits={r["agent"]: full("agent_limits", r) for r in c.agent_limits})


def pack(c: Carry) -> bytes:
    """``c`` as the payload ``continue_as_new`` is given: compressed JSON bytes."""
    from dataclasses import asdict

    return pack_json(asdict(c))


def unpack(blob: bytes) -> Carry:
    return Carry(**unpack_json(blob))


def pack_json(obj: Any) -> bytes:
    """``obj`` as compressed JSON bytes (a carry, a merge-queue workflow's start)."""
    return zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 6)


def unpack_json(blob: bytes) -> Any:
    return json.loads(zlib.decompress(blob))

"""``wf pr TASK``: push a task's branch and open or update its PR/MR, recorded in the log.

Intent before effect: ``pr.push_requested`` is committed before the push, ``pr.opened`` after the
PR/MR exists. Both steps are idempotent on their own (a force-push of the same commit; a lookup by
head branch before any create), so a crash anywhere is repaired by running ``wf pr`` again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.errors import ConfigError, NotFound
from wf.model import NewEvent, task_stream
from wf.providers.pulls import PullRequestRequest, describe, open_or_update
from wf.repository import get_task

if TYPE_CHECKING:
    from wf.providers.base import Forge
    from wf.repository import Repo
    from wf.store import EventStore

UNFINISHED = ("queued", "running", "retrying")


def pr_base(repo: Repo, task: Mapping[str, Any]) -> str:
    """The branch a task's PR/MR targets: ``[merge] target``, else the task's base branch."""
    base = repo.config.merge.target or task.get("base_ref") or repo.default_base()
    remote_ref = gitx.split_remote_ref(repo.root, base)
    if remote_ref is not None:
        return remote_ref[1]
    if not gitx.branch_exists(repo.root, base):
        raise ConfigError(f"the task's base {base!r} is not a branch, so no PR can target it",
                          hint='set [merge] target = "main" in wf.toml')
    return base


def open_task_pr(repo: Repo, store: EventStore, task_id: str, *, forge: Forge | None = None,
                 draft: bool = False, labels: Sequence[str] = (), reviewers: Sequence[str] = (),
                 environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Push ``task_id``'s branch and open or update its PR/MR. Blocking (git and HTTP)."""
    from wf import providers

    task = get_task(store, task_id)
    if task["state"] in UNFINISHED:
        raise ConfigError(f"task {task_id!r} is still {task['state']}; open its PR when it ends",
                          hint=f"watch it with `wf status`, or `wf cancel {task_id}`")
    branch = task["branch"]
    head = gitx.rev_parse(repo.root, f"refs/heads/{gitx.check_rev(branch)}") \
        or _pushed_elsewhere(repo, store, task_id)
    if head is None:
        raise NotFound(f"task {task_id!r} has no branch {branch} any more")
    base = pr_base(repo, task)
    if forge is None:
        forge = providers.connect(repo.root, repo.config.provider, environ or os.environ)
    stat = gitx.diff(repo.root, task["base_commit"], head, stat=True) if task["base_commit"] else ""
    queue_row = next((q for q in store.queue() if q["task_id"] == task_id), None)
    text = describe(task, branch, diff_stat=stat, queue_row=queue_row,
                    forge_checks=task.get("forge_checks"))
    stream = task_stream(task_id)
    existing = forge.find_open(branch, base)
    store.append([NewEvent(stream, "pr.push_requested", {
        "branch": branch, "head": head, "remote": forge.target.remote})])
    gitx.push_branch(repo.root, forge.target.remote, head, branch,
                     credentials=forge.push_credentials())
    pr, created = open_or_update(forge, PullRequestRequest(
        branch, base, text, draft=draft, labels=tuple(labels), reviewers=tuple(reviewers)),
        existing)
    result = {"task": task_id, "number": pr.number, "url": pr.url, "state": pr.state,
              "created": created, "head": head, "branch": branch, "base": base,
              "forge": forge.kind}
    store.append([NewEvent(stream, "pr.opened", {
        k: result[k] for k in ("number", "url", "state", "created", "head", "base", "forge")})])
    return result


def _pushed_elsewhere(repo: Repo, store: EventStore, task_id: str) -> str | None:
    """The commit another host pushed for ``task_id`` (the Temporal engine's ``task.pushed``),
    fetched into this clone; None when no host pushed it."""
    pushed = store.read(stream=task_stream(task_id), types=["task.pushed"])[-1:]
    if not pushed:
        return None
    data = pushed[0].data
    gitx.fetch(repo.root, data["remote"], data["branch"])
    return gitx.rev_parse(repo.root, data["commit"])

"""``wf clean``: remove what finished tasks leave behind, and forget tasks on request.

Nothing holding work is deleted without a backup ref: a worktree with uncommitted changes or a
branch with commits that are neither merged into the task's base nor pushed is kept, unless
``--force`` (or ``--forget``), which first writes ``refs/wf-backup/<id>/<time>``.

``--forget`` also records ``task.forgotten``: the projection drops the task, its attempts and
its queue entry, so the id can be submitted again with a new definition. The events stay in
the log; a task submitted again numbers its attempts after the forgotten ones.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from wf.errors import Refused, UsageError, WfError
from wf.model import TERMINAL_STATES, NewEvent, task_stream
from wf.repository import get_task, open_store
from wf.store.projections import QUEUE_IN_LINE

if TYPE_CHECKING:
    from wf.pool.keeper import GiveBack, WorktreePool
    from wf.repository import Repo
    from wf.store import EventStore
    from wf.worktrees import WorktreeManager

CLEAN_WORKERS = 4  # worktrees `wf clean` removes at once: deleting files is I/O-bound


def clean(repo: Repo, task_ids: list[str], *, force: bool = False, orphans: bool = False,
          forget: bool = False) -> list[dict[str, Any]]:
    """Clean the named tasks, or every finished task not cleaned yet, and report unfinished
    tasks whose worktree is kept. Returns one report item per task or orphan:
    ``{"kind", "task", "result"}`` (``"name"`` for orphans, ``"forgotten"`` with ``forget``).
    ``forget`` needs task ids and refuses (Refused) a task that is not finished or whose
    branch waits in the merge queue, before anything is removed."""
    from wf.worktrees import WorktreeManager

    if forget and not task_ids:
        raise UsageError("--forget needs the ids of the tasks to forget",
                         hint="`wf clean TASK --forget`")
    wt = WorktreeManager(repo.root, repo.worktree_root, port_range=repo.config.port_range)
    rows: dict[str, dict[str, Any]] = {}
    warm: WorktreePool | None = None  # the pool of warm worktrees, when tasks hold some
    store = open_store(repo) if repo.db_path.exists() or task_ids else None
    try:
        if store is not None:
            rows = {r["id"]: r for r in store.tasks()}
        for tid in task_ids:
            get_task(store, tid)
        if forget:
            queue = {q["task_id"]: q for q in store.queue()}
            for tid in task_ids:
                _check_forgettable(rows[tid], queue.get(tid))
        chosen = task_ids or [t for t, r in rows.items() if _worth_a_look(r)]

        if store is not None and store.pool():  # some tasks' worktrees are pooled ones
            import os

            from wf.pool.keeper import pool_for

            warm = pool_for(repo, wt, os.environ)

        def one(tid: str) -> dict[str, Any]:
            return _clean_task(store, wt, warm, rows[tid], force=force or forget, forget=forget)

        # Removing a worktree is mostly deleting its files, which runs in parallel.
        with ThreadPoolExecutor(max_workers=CLEAN_WORKERS) as pool:
            report = list(pool.map(one, chosen))
        if orphans:
            report += _clean_orphans(wt, set(rows), force)
    finally:
        if warm is not None:
            warm.close()
        if store is not None:
            store.close()
    return report


def _worth_a_look(row: dict[str, Any]) -> bool:
    """What a bare ``wf clean`` reports on: finished tasks not cleaned since their worktree
    was last made, and unfinished ones with a worktree (kept, and it says why)."""
    if row["state"] in TERMINAL_STATES:
        return not row["cleaned"]
    return bool(row["worktree_ready"])


def _check_forgettable(row: dict[str, Any], entry: dict[str, Any] | None) -> None:
    tid, state = row["id"], row["state"]
    if state not in TERMINAL_STATES:
        raise Refused(f"cannot forget {tid}: it is {state}",
                      hint=f"`wf cancel {tid}` first, then `wf clean {tid} --forget`")
    if entry is not None and entry["state"] in QUEUE_IN_LINE:
        raise Refused(f"cannot forget {tid}: its branch is in the merge queue "
                      f"({entry['state']})", hint=f"`wf queue rm {tid}` first")


def _clean_task(store: EventStore, wt: WorktreeManager, pool: WorktreePool | None,
                row: dict[str, Any], *, force: bool, forget: bool) -> dict[str, Any]:
    """Remove the task's worktree (or give a pooled one back to the pool: reset, not
    deleted) and its branch when that loses nothing; record ``task.cleaned``."""
    tid = row["id"]
    item: dict[str, Any] = {"kind": "task", "task": tid}
    if forget:
        item["forgotten"] = False
    if row["state"] not in TERMINAL_STATES:
        where = f"worktree {row['worktree']} kept" if row["worktree"] else "kept"
        item["result"] = f"{where}: the task is {row['state']} (`wf cancel {tid}` first)"
        return item
    try:
        back = pool.give_back(tid, force=force) if pool is not None else None
        if back is None:
            removed = wt.remove(tid, force=force)
        else:
            from wf.worktrees import RemoveResult

            removed = RemoveResult(True, back.backup_ref, back.stopped_pids)
        deleted = wt.delete_branch(tid, force=force, targets=[row["base_ref"]])
    except WfError as exc:
        item["result"] = f"kept: {exc.message}" + ("; not forgotten" if forget else "")
        return item
    backups = [r for r in (removed.backup_ref, deleted.backup_ref,
                           *(back.stash_refs if back else ())) if r]
    data = {"worktree_removed": removed.removed, "branch_deleted": deleted.deleted,
            "backup_refs": backups}
    if back is not None:
        data["returned_to_pool"] = back.returned
    events = [NewEvent(task_stream(tid), "task.cleaned", data)]
    if forget:
        events.append(NewEvent(task_stream(tid), "task.forgotten", {
            "attempts": row["attempts"] or 0, "state": row["state"], "backup_refs": backups}))
        item["forgotten"] = True
    store.append(events)
    item["result"] = ("forgotten; " if forget else "") + _cleaned(removed, deleted, back)
    for ref in back.stash_refs if back else ():
        item["result"] += f"; its stash saved at {ref}"
    return item


def _cleaned(removed: Any, deleted: Any, back: GiveBack | None = None) -> str:
    """The report line of one task's clean."""
    parts = ["worktree removed" if removed.removed else "no worktree"]
    if back is not None and back.returned:
        parts = ["worktree returned to the pool"]
    if deleted.deleted:
        parts.append(f"branch deleted ({deleted.reason})")
    elif deleted.reason.endswith("does not exist"):
        parts.append("no branch")
    else:
        parts.append(f"branch kept: {deleted.reason} (--force deletes it after writing a "
                     "backup ref)")
    parts += [f"backup at {r}" for r in (removed.backup_ref, deleted.backup_ref) if r]
    return "; ".join(parts)


def _clean_orphans(wt: WorktreeManager, known: set[str], force: bool) -> list[dict[str, Any]]:
    report = []
    for orphan in wt.orphans(known):
        item = {"kind": f"orphan-{orphan.kind}", "task": orphan.task_id,
                "name": orphan.path_or_ref}
        try:
            if not orphan.safe and not force:
                item["result"] = f"kept: {orphan.reason} (--force removes it after a backup ref)"
            elif orphan.kind == "worktree":
                res = wt.remove(orphan.task_id, force=force)
                item["result"] = "removed" + (f"; backup at {res.backup_ref}"
                                              if res.backup_ref else "")
            else:
                res = wt.delete_branch(orphan.task_id, force=force)
                item["result"] = ("deleted" if res.deleted else f"kept: {res.reason}") + (
                    f"; backup at {res.backup_ref}" if res.backup_ref else "")
        except WfError as exc:
            item["result"] = f"kept: {exc.message}"
        report.append(item)
    return report

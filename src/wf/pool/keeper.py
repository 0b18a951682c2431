"""``WorktreePool``: the interpreter of the pool on one host.

It reads the pool's rows (the ``pool`` projection of this clone's event log), asks the pure
rules of ``rules.py``, records intent → effect → done on the ``pool`` stream and runs the
activities of ``slots.py``. Every decision is taken under the repository's ``pool`` lock (a
thread lock and an ``flock``) on rows read inside it, so two threads or two wf processes never
hand out the same slot; the git work runs outside it.

Each step's intent names its ``owner`` (pid, kernel start time, host). A step whose owner is
gone (``kill -9``) is stale: the next keeper finishes it (prepare, return, remove again: the
activities are idempotent) and a task's half-taken slot is finished by that task's next
``ensure``. Only ``ready`` slots are handed out, so a half-prepared one never reaches a task.

The task activities call it (``TaskActivities.ensure_worktree`` and ``run_setup``), so both
engines use it unchanged; on the Temporal engine each worker's host has its own pool over its
own clone. ``refill.py`` keeps it filled in the background; ``wf clean`` gives slots back.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wf import gitx
from wf.agents import process
from wf.errors import GitError, WfError
from wf.model import NewEvent
from wf.pool import rules, slots
from wf.pool.rules import POOL_STREAM, Want
from wf.pool.slots import Settings, setup_key
from wf.worktrees.backups import write_backup_ref
from wf.worktrees.locks import repo_lock

if TYPE_CHECKING:
    from wf.config import Config
    from wf.repository import Repo
    from wf.store import SqliteEventStore
    from wf.worktrees import WorktreeInfo, WorktreeManager


@dataclass(frozen=True)
class GiveBack:
    """What ``give_back`` did with a task's slot: ``returned`` to the pool or removed."""

    returned: bool
    backup_ref: str | None = None
    stash_refs: tuple[str, ...] = ()
    stopped_pids: tuple[int, ...] = ()


def pool_for(repo: Repo, worktrees: WorktreeManager, environ: Mapping[str, str]
             ) -> WorktreePool:
    """The pool of ``repo``'s clone on this host, as its configuration asks."""
    return WorktreePool(worktrees, settings_of(repo.config), repo.db_path, environ,
                        repo.default_base)


def settings_of(config: Config) -> Settings:
    w = config.worktrees
    return Settings(target=w.pool, setup=tuple(config.setup or ()), inputs=w.setup_inputs,
                    keep=w.keep, max_disk=w.pool_max_disk, setup_timeout=config.timeout,
                    return_on_success=w.return_on_success)


class WorktreePool:
    """The pooled worktrees of one clone. Thread-safe; blocking (call it from threads)."""

    def __init__(self, worktrees: WorktreeManager, settings: Settings, db_path: Path,
                 environ: Mapping[str, str], base_ref: Callable[[], str]) -> None:
        self.wt, self.settings, self.db_path = worktrees, settings, Path(db_path)
        self.environ = dict(environ)
        self._base_ref = base_ref
        self._store: SqliteEventStore | None = None
        self._store_lock = threading.Lock()
        pid = os.getpid()
        self.owner = {"pid": pid, "start": process.process_starttime(pid),
                      "host": os.uname().nodename}
        self.on_taken: Callable[[], None] = lambda: None  # the refill's wake-up

    # -- the log --------------------------------------------------------------------------
    def store(self) -> SqliteEventStore:
        with self._store_lock:
            if self._store is None:
                from wf.store import SqliteEventStore

                self._store = SqliteEventStore(self.db_path)
            return self._store

    def close(self) -> None:
        with self._store_lock:
            if self._store is not None:
                self._store.close()
                self._store = None

    def rows(self) -> dict[str, dict[str, Any]]:
        if not self.db_path.exists():
            return {}
        return {r["slot"]: r for r in self.store().pool()}

    def record(self, type_: str, **data: Any) -> None:
        self.store().append([NewEvent(POOL_STREAM, type_, data)])

    @contextmanager
    def deciding(self) -> Iterator[dict[str, dict[str, Any]]]:
        """The rows, read under the pool lock held until the intent is recorded."""
        with repo_lock(self.wt.common_dir, "pool"):
            yield self.rows()

    def alive(self, owner: Mapping[str, Any] | None) -> bool:
        """Whether the process that took a step still runs (another host's: assumed so)."""
        if not owner:
            return False
        if owner.get("host") != self.owner["host"]:
            return True
        return process.is_alive(owner["pid"], owner.get("start"))

    def path_of(self, slot: str) -> Path:
        return self.wt.worktree_root / rules.slot_dir(slot)

    def base_commit(self) -> str:
        ref = self._base_ref()
        sha = gitx.rev_parse(self.wt.repo_root, ref)
        if sha is None:
            raise GitError(f"base ref {ref!r} does not name a commit")
        return sha

    def key_at(self, where: Path, commit: str, setup: tuple[str, ...] | None = None
               ) -> str | None:
        s = self.settings
        return setup_key(where, commit, s.setup if setup is None else setup, s.inputs)

    # -- a task's worktree ----------------------------------------------------------------
    def ensure(self, task_id: str, base_ref: str, start_point: str | None) -> WorktreeInfo | None:
        """The task's worktree from the pool: the slot it holds, a ready slot moved to its
        branch, or a new worktree made in a slot of its own (so ``wf clean`` can give it
        back). None when the pool is off, or the task has a worktree from before the pool:
        the caller makes or adopts one as without a pool."""
        from wf.worktrees import WorktreeInfo

        held = rules.holder(self.rows(), task_id)
        if held is None and (not self.settings.target
                             or os.path.lexists(self.wt.path_for(task_id))):
            return None
        wt, root = self.wt, self.wt.repo_root
        branch = wt.branch_for(task_id)
        fork_from = start_point or base_ref
        if held is not None:
            path = Path(held["path"])
            if held["state"] == "taken" and path.is_dir():
                base = held["base"] or wt.fork_point(branch, fork_from, base_ref)
                return WorktreeInfo(path, branch, base, created=False)
            if held["state"] in ("taking", "creating") and path.is_dir():
                return self._finish(held, task_id, base_ref, start_point)
            self._remove(held["slot"], "a give-back was cut short" if held["state"] ==
                         "returning" else "its folder was deleted")  # made again below
        new_branch = not gitx.branch_exists(root, branch)
        if new_branch:
            wt.fetch_if_remote(fork_from)
        start = gitx.rev_parse(root, fork_from if new_branch else f"refs/heads/{branch}")
        if start is None:
            raise GitError(f"base ref {fork_from!r} does not name a commit")
        want = Want(start, self.key_at(root, start))
        with self.deciding() as rows:
            slot = rules.choose_slot(rows, want)
            if slot is not None:
                self.record("pool.take_requested", slot=slot, task=task_id, branch=branch,
                            start=start if new_branch else None, owner=self.owner)
            else:
                slot = rules.next_slot(rows, slots.slot_folders(wt.worktree_root))
                self.record("pool.create_requested", slot=slot, path=str(self.path_of(slot)),
                            task=task_id, owner=self.owner)
        self.on_taken()
        return self._finish(self.rows()[slot], task_id, base_ref, start_point)

    def _finish(self, row: Mapping[str, Any], task_id: str, base_ref: str,
                start_point: str | None) -> WorktreeInfo:
        """Carry out a take or a create (again, after a crash); record ``pool.taken``."""
        from wf.worktrees import WorktreeInfo

        wt, path, slot = self.wt, Path(row["path"]), row["slot"]
        branch, fork_from = wt.branch_for(task_id), start_point or base_ref
        if row["state"] == "creating":
            try:
                info = wt.ensure(task_id, base_ref, start_point=start_point, path=path)
            except WfError:
                self._remove(slot, "making the task's worktree failed")
                raise
            self.record("pool.taken", slot=slot, task=task_id, base=info.base_commit)
            return info
        new_branch = not gitx.branch_exists(wt.repo_root, branch)
        start = gitx.rev_parse(wt.repo_root, fork_from) if new_branch else None
        try:
            slots.hand_over(wt, path, branch, start)
        except WfError:
            self._remove(slot, "the hand-over failed")
            raise
        base = start if start is not None else wt.fork_point(branch, fork_from, base_ref)
        self.record("pool.taken", slot=slot, task=task_id, base=base)
        return WorktreeInfo(path, branch, base, created=True)

    def run_setup(self, path: Path, command: tuple[str, ...], env: Mapping[str, str],
                  timeout: float | None, check_cancelled: Callable[[], None]
                  ) -> tuple[bool, str] | None:
        """Run the setup in a pooled worktree unless it already ran there for these inputs
        (``rules.setup_needed``); None when ``path`` is not a slot (the caller runs it)."""
        row = next((r for r in self.rows().values() if r["path"] == str(path)), None)
        if row is None:
            return None
        key = self.key_at(path, "HEAD", command)
        if not rules.setup_needed(row["key"], key):
            return True, "wf: setup skipped: this pooled worktree was set up for these inputs"
        self.record("pool.setup_started", slot=row["slot"])
        ok, out = self.wt.run_setup(path, command, env, timeout, check_cancelled)
        if ok:
            self.record("pool.setup_done", slot=row["slot"], key=key)
        return ok, out

    # -- giving back ------------------------------------------------------------------------
    def holds(self, task_id: str) -> bool:
        return rules.holder(self.rows(), task_id) is not None

    def give_back(self, task_id: str, *, force: bool = False) -> GiveBack | None:
        """The task is finished: return its slot to the pool (reset) or remove it, as
        ``rules.give_back`` says. Refuses (GitError) a slot with uncommitted changes unless
        ``force``, which saves them under a backup ref first; the task's stashes are saved
        under backup refs before they leave the shared stash list. None: no slot held."""
        row = rules.holder(self.rows(), task_id)
        if row is None:
            return None
        wt, path, slot = self.wt, Path(row["path"]), row["slot"]
        if not path.is_dir():
            self._remove(slot, "its folder was deleted")
            return GiveBack(returned=False)
        if not force and gitx.is_dirty(path):
            raise GitError(f"worktree {path} has uncommitted changes; commit them or use --force")
        stopped = tuple(wt.stop_processes_in(path)) if wt.processes_in(path) else ()
        backup = wt.save_backup(path, task_id) if force else None
        saved = self._save_stashes(task_id)
        key_at_tip = self.key_at(path, "HEAD")
        with self.deciding() as rows:
            what = rules.give_back(rows, slot, self.settings.target, self.settings.max_disk)
            if what == "return":
                self.record("pool.return_requested", slot=slot, task=task_id, owner=self.owner)
            else:
                self.record("pool.remove_requested", slot=slot, reason="the pool is full",
                            owner=self.owner)
        if what == "return":
            self._return(slot, rules.key_after_return(row["key"], key_at_tip))
            self.evict()
        else:
            self._remove(slot, None)
        return GiveBack(what == "return", backup, saved, stopped)

    def _save_stashes(self, task_id: str) -> tuple[str, ...]:
        """Move the stash entries made on the task's branch to backup refs (see gitx.pooled:
        refs/stash is shared by every worktree, so other entries are left alone)."""
        root, branch = self.wt.repo_root, self.wt.branch_for(task_id)
        saved: dict[str, str] = {}  # stash commit -> its backup ref
        with repo_lock(self.wt.common_dir, "stash"):  # wf's own give-backs, one at a time
            for _ in range(5):  # a stash made elsewhere meanwhile moves the indexes: again
                found = gitx.stashes_of(root, branch)
                if not found:
                    break
                for index, sha in sorted(found, reverse=True):  # highest first: the others
                    if sha not in saved:                       # keep their index
                        saved[sha] = write_backup_ref(root, task_id, sha, f"stash-{index}",
                                                      self.wt.clock)
                    gitx.drop_stash(root, index, sha)
        return tuple(saved.values())

    def _return(self, slot: str, key: str | None) -> None:
        base = self.base_commit()
        size = slots.reset(self.path_of(slot), base, self.settings.keep)
        self.record("pool.returned", slot=slot, base=base, key=key, size=size)

    def _remove(self, slot: str, reason: str | None) -> None:
        row = self.rows().get(slot)
        if row is None:
            return
        if row["state"] != "removing" or reason is not None:
            self.record("pool.remove_requested", slot=slot, reason=reason, owner=self.owner)
        slots.remove(self.wt, Path(row["path"]))
        self.record("pool.removed", slot=slot)

    def evict(self) -> list[str]:
        """Remove ready slots, idle longest first, until the idle ones fit ``pool_max_disk``."""
        with self.deciding() as rows:
            chosen = rules.evict_for_cap(rows, self.settings.max_disk)
            for slot in chosen:
                self.record("pool.remove_requested", slot=slot, reason="pool_max_disk",
                            owner=self.owner)
        for slot in chosen:
            self._remove(slot, None)
        return chosen


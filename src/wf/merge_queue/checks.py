"""Running the configured checks on a candidate commit, in integration worktrees.

Each slot is a detached worktree ``<worktree_root>/.wf-mq-<n>`` that is moved to the candidate
with a forced checkout that also removes untracked files (``git checkout -f`` plus
``git clean -fd``, done in-process by libgit2: two git processes cost a tenth of a check run):
the checks see exactly the candidate's tracked tree, while ignored files (build caches, a
``.env`` copied from ``.worktreeinclude``) survive between runs the way a CI cache would.

A check exiting 0 passes; 75 (EX_TEMPFAIL) is an infrastructure failure, which the queue
retries and never bisects; anything else, or a timeout, fails the candidate.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from wf import gitx
from wf.agents.process import agent_environment
from wf.worktrees.include import copy_included_files
from wf.worktrees.manager import repo_lock
from wf.worktrees.processes import wait_exit

INFRA_EXIT = 75


def _worktree_of(path: Path, common: Path) -> bool:
    """Whether ``path`` is a worktree the repository of git common dir ``common`` knows."""
    try:
        link = (path / ".git").read_text()
    except OSError:
        return False
    admin = path / link.removeprefix("gitdir:").strip()  # relative to the worktree, or absolute
    return admin.is_dir() and admin.resolve().parent.parent == common.resolve()


@dataclass(frozen=True)
class CheckResult:
    result: str  # "pass" | "fail" | "infra"
    detail: str
    duration: float
    log_path: str


class CheckSlots:
    """A pool of integration worktrees, one per parallel check. Blocking methods."""

    def __init__(self, root: Path, worktree_root: Path, logs_dir: Path, count: int) -> None:
        self.root, self.worktree_root, self.logs_dir = root, worktree_root, logs_dir
        self.count = count
        self.checkouts: dict[int, gitx.WorktreeCheckout] = {}  # opened in-process
        self.locks = [threading.Lock() for _ in range(count)]  # a slot is set up once at a time
        self.used: set[int] = set()  # slots a check was prepared in: warm() leaves them alone

    def path(self, slot: int) -> Path:
        return self.worktree_root / f".wf-mq-{slot}"

    def prepare(self, slot: int, commit: str) -> Path:
        """Move slot ``slot`` to ``commit``, creating its worktree on first use."""
        path = self.path(slot)
        with self.locks[slot]:
            self.used.add(slot)
            if not self.create(slot, commit):
                self._checkout(slot, path, commit)
        return path

    def create(self, slot: int, commit: str) -> bool:
        """Create slot ``slot``'s worktree at ``commit`` unless it exists; whether it did.
        The queue calls it ahead of the first checks, while it admits entries."""
        path = self.path(slot)
        common = gitx.common_dir(self.root)
        if _worktree_of(path, common):
            return False
        with repo_lock(common, "worktree"):
            gitx.worktree_prune(self.root)
            if path.exists():  # a slot this repository no longer knows (pruned, or recreated):
                shutil.rmtree(path)  # the queue's own scratch checkout, holding no work
            path.parent.mkdir(parents=True, exist_ok=True)
            gitx.worktree_add_detached(self.root, path, commit)
        copy_included_files(self.root, path)
        return True

    def warm(self, commit: str) -> None:
        """Every slot's worktree, created and opened now rather than by the first checks.
        libgit2's first checkout in a worktree re-reads every file (~8 ms here, against
        ~2 ms after), so each slot not used yet is checked out once at ``commit``."""
        for slot in range(self.count):
            with self.locks[slot]:
                if slot in self.used:  # a check may be running in it
                    continue
                self.create(slot, commit)
                self._checkout(slot, self.path(slot), commit)

    def _checkout(self, slot: int, path: Path, commit: str) -> None:
        """``git checkout -f --detach COMMIT && git clean -fd`` in the slot's worktree."""
        # The engine lock makes this process the only user of its slots, as WorktreeCheckout
        # requires (it deletes lock files a killed checkout left).
        checkout = self.checkouts.get(slot)
        if checkout is None:
            checkout = self.checkouts[slot] = gitx.WorktreeCheckout(path)
        checkout.checkout(commit)

    def run(self, slot: int, commit: str, tree: str, checks: Sequence[Sequence[str]], *,
            timeout: float | None, environ: Mapping[str, str],
            spawned: threading.Event | None = None,
            check_cancelled: Callable[[], None] = lambda: None) -> CheckResult:
        """Run every check on ``commit`` in slot ``slot``; stop at the first that does not pass.
        ``spawned`` is set once the first command has started (or the run ended without one);
        ``check_cancelled`` raises to stop the running check (see ``wait_exit``)."""
        try:
            return self._run(slot, commit, tree, checks, timeout, environ, spawned,
                             check_cancelled)
        finally:
            if spawned is not None:
                spawned.set()

    def _run(self, slot: int, commit: str, tree: str, checks: Sequence[Sequence[str]],
             timeout: float | None, environ: Mapping[str, str],
             spawned: threading.Event | None,
             check_cancelled: Callable[[], None]) -> CheckResult:
        started = time.monotonic()
        log_path = self.logs_dir / f"{tree[:16]}-{int(time.time() * 1000)}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            path = self.prepare(slot, commit)
        except gitx.GitError as exc:
            return CheckResult("infra", f"could not check out the candidate: {exc.message}",
                               time.monotonic() - started, str(log_path))
        env = agent_environment(environ, extra={}, wf_vars={
            "WF_CHECK_COMMIT": commit, "WF_CHECK_TREE": tree, "WF_WORKTREE": str(path)})
        with open(log_path, "wb") as log:
            for argv in checks:
                log.write(f"$ {' '.join(argv)}\n".encode())
                log.flush()
                code = _run_one(list(argv), path, env, log, timeout, spawned, check_cancelled)
                if code != 0:
                    what = ("timed out" if code is None else
                            "infrastructure failure (exit 75)" if code == INFRA_EXIT else
                            f"exit {code}")
                    result = "infra" if code == INFRA_EXIT else "fail"
                    return CheckResult(result, f"{' '.join(argv)}: {what}",
                                       time.monotonic() - started, str(log_path))
        return CheckResult("pass", "every check passed", time.monotonic() - started,
                           str(log_path))


def _run_one(argv: list[str], cwd: Path, env: Mapping[str, str], log, timeout: float | None,
             spawned: threading.Event | None = None,
             check_cancelled: Callable[[], None] = lambda: None) -> int | None:
    """Exit status of one check command, None on timeout (its process group is killed)."""
    try:
        proc = subprocess.Popen(argv, cwd=cwd, env=dict(env), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    except OSError as exc:
        log.write(f"wf: cannot start check: {exc}\n".encode())
        return 127
    finally:
        if spawned is not None:
            spawned.set()
    return wait_exit(proc, timeout, check_cancelled=check_cancelled)

"""Finished branches pushed to the shared remote, several in one ``git push``.

Every success on a Temporal host pushes its branch, so that the merge queue's host and a
host that prepares the task again can fetch it. One ``git push`` per branch is a connection,
a pack and four git processes each: with eight attempts ending together that was about a
third of a no-op task's cost. ``Pushes`` is group commit for pushes: an attempt that wants
its branch pushed while a push is on its way waits for that one to end, and then every
branch that waited goes in the next push, together. Nothing waits for company: a push alone
starts at once.

A push of several branches that fails (one refused, the remote gone) is tried again branch
by branch, so that each attempt gets its own answer. No temporalio here.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from wf import gitx
from wf.errors import GitError, WfError

REMOTE_TTL = 30.0  # seconds a remote's URL (or its absence) is taken as known


@dataclass
class _Want:
    commit: str
    branch: str
    done: bool = False
    error: WfError | None = None


@dataclass
class _Remote:
    waiting: list[_Want] = field(default_factory=list)
    busy: bool = False


class Pushes:
    """The pushes of one clone (``root``), called from activity threads."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._cond = threading.Condition()
        self._remotes: dict[str, _Remote] = {}
        self._urls: dict[str, tuple[str | None, float]] = {}

    def has_remote(self, remote: str) -> bool:
        """Whether this clone has ``remote`` (asked of git at most every ``REMOTE_TTL``)."""
        known = self._urls.get(remote)
        now = time.monotonic()
        if known is None or now - known[1] > REMOTE_TTL:
            known = (gitx.remote_url(self.root, remote), now)
            self._urls[remote] = known
        return known[0] is not None

    def waiting(self, remote: str) -> int:
        """Pushes to ``remote`` waiting for the one on its way."""
        with self._cond:
            state = self._remotes.get(remote)
            return len(state.waiting) if state else 0

    def push(self, remote: str, commit: str, branch: str) -> None:
        """Force-push ``commit`` to ``remote``'s ``branch``; a WfError when it failed."""
        want = _Want(commit, branch)
        with self._cond:
            state = self._remotes.setdefault(remote, _Remote())
            state.waiting.append(want)
            while not want.done:
                if state.busy:  # the push on its way ends, then the next takes this one
                    self._cond.wait(1.0)
                    continue
                batch, state.waiting, state.busy = state.waiting, [], True
                self._cond.release()
                try:
                    self._push_all(remote, batch)
                finally:
                    self._cond.acquire()
                    state.busy = False
                    self._cond.notify_all()
        if want.error is not None:
            raise want.error

    def _push_all(self, remote: str, batch: list[_Want]) -> None:
        try:
            try:
                gitx.push_branches(self.root, remote, [(w.commit, w.branch) for w in batch])
            except WfError:
                if len(batch) == 1:
                    raise
                for w in batch:  # each its own answer
                    try:
                        gitx.push_branch(self.root, remote, w.commit, w.branch)
                    except WfError as exc:
                        w.error = exc
        except WfError as exc:  # the one push of a batch of one
            batch[0].error = exc
        except BaseException:  # the leader interrupted: those it pushed for hear of it
            for w in batch:
                w.error = w.error or GitError(f"the push of {w.branch} was interrupted")
            raise
        finally:
            for w in batch:
                w.done = True

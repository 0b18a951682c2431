"""The forge's side effects for ``[merge] land = "pr"``, as synchronous activities.

Connect to the forge (once, then cached), fetch the target with the forge's credentials, find
the newest PR/MR of a branch (and whether a merged one already carries the entry), push the
tested candidate, open or update the PR/MR, say which file configures the forge's CI, read the
forge's checks, merge with the candidate as the expected head, look a PR/MR up. Each blocks
(git, HTTP) and reports what it found: none decides what happens next and none records an
event; ``pr_landing.py`` asks ``forge_decide.py`` and records. Each is safe to run again: a
push of the same commit is a no-op, a PR/MR is found by its branch before one is opened, a
merge is guarded by the head's SHA.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wf import gitx
from wf.errors import GitError
from wf.providers.base import Forge, ForgeChecks, MergeOutcome, PullRequest
from wf.providers.ci_config import ci_config_of
from wf.providers.pulls import PullRequestRequest, describe, open_or_update
from wf.worktrees import fetch


@dataclass(frozen=True)
class FindLatest:
    """The newest PR/MR from ``branch`` into ``target``; for a merged one, whether its head
    carries the entry (``entry_head``) or is this very candidate (``commit``)."""

    branch: str
    target: str
    entry_head: str
    commit: str


@dataclass(frozen=True)
class Latest:
    pr: PullRequest | None
    carried: bool = False  # only looked at for a merged PR/MR


@dataclass(frozen=True)
class OpenPr:
    """Open the PR/MR of ``branch`` into ``target`` (or update ``existing``), described from
    the task's and queue's rows and the diff from ``base`` to the candidate ``commit``."""

    task: Mapping[str, Any] | None
    queue_row: Mapping[str, Any] | None
    branch: str
    target: str
    base: str
    commit: str
    existing: PullRequest | None


@dataclass(frozen=True)
class Opened:
    pr: PullRequest
    created: bool


@dataclass(frozen=True)
class Merge:
    """Merge ``pr`` only if its head is still ``sha`` (the tested candidate)."""

    pr: PullRequest
    sha: str
    method: str
    auto: bool


class ForgeActivities:
    """The forge and the git it needs, for one repository and provider. The forge is built on
    first use (:meth:`connect`), so a missing token surfaces where it is first needed."""

    def __init__(self, root: Path, provider: Any, environ: Mapping[str, str]) -> None:
        self.root, self.provider, self.environ = root, provider, environ
        self.forge: Forge | None = None

    @property
    def remote(self) -> str:
        return self.provider.remote

    def connect(self) -> Forge:
        if self.forge is None:
            # the forge's libraries load only when a forge is used
            from wf import providers
            self.forge = providers.connect(self.root, self.provider, self.environ)
        return self.forge

    def fetch_target(self, target: str) -> None:
        """Bring the remote-tracking ``target`` up to date, with the forge's credentials."""
        fetch(self.root, self.remote, target, credentials=self.connect().push_credentials())

    def target_head(self, target: str) -> str:
        """The commit the remote-tracking ``target`` is at (after :meth:`fetch_target`)."""
        return gitx.rev_parse(self.root, f"refs/remotes/{self.remote}/{target}")

    def find_latest(self, inp: FindLatest) -> Latest:
        """A read only (HTTP, then git): safe to abandon half-way."""
        latest = self.connect().find_latest(inp.branch, inp.target)
        if latest is None or latest.state != "merged":
            return Latest(latest)
        return Latest(latest, self._carries(latest.head_sha, inp.entry_head, inp.commit))

    def _carries(self, merged_head: str | None, entry_head: str, commit: str) -> bool:
        """Whether a merged PR/MR head already carried this entry (this candidate, or an earlier
        one built on the entry's head): then wf crashed after the forge merged it."""
        if merged_head is None:
            return False
        try:
            return merged_head == commit or gitx.is_ancestor(self.root, entry_head, merged_head)
        except GitError:  # the old candidate is not in this repository
            return False

    def push_candidate(self, commit: str, branch: str) -> None:
        """Push the tested candidate to the entry's branch, so the forge's CI runs on it."""
        forge = self.connect()
        gitx.push_branch(self.root, self.remote, commit, branch,
                         credentials=forge.push_credentials())

    def open_pr(self, inp: OpenPr) -> Opened:
        """Describe the PR/MR and open it, or update ``existing`` (found again by its branch
        when opening loses a race)."""
        text = describe(inp.task, inp.branch,
                        diff_stat=gitx.diff(self.root, inp.base, inp.commit, stat=True),
                        queue_row=inp.queue_row)
        pr, created = open_or_update(self.connect(), PullRequestRequest(
            inp.branch, inp.target, text), inp.existing)
        return Opened(pr, created)

    def ci_config(self, commit: str) -> str | None:
        """The file in ``commit``'s tree that configures this forge's CI, if any."""
        return ci_config_of(self.root, self.connect().kind, commit)

    def read_checks(self, pr: PullRequest, commit: str) -> ForgeChecks:
        """The forge's reading of ``pr`` at head ``commit`` (a read)."""
        return self.connect().checks(PullRequest(pr.number, pr.url, pr.state, commit))

    def merge(self, inp: Merge) -> MergeOutcome:
        return self.connect().merge(inp.pr, sha=inp.sha, method=inp.method, auto=inp.auto)

    def get(self, number: int) -> PullRequest:
        """The PR/MR as the forge has it now (a read)."""
        return self.connect().get(number)

"""The ``Forge`` protocol: what wf asks of GitHub, GitLab or any forge a plugin adds.

Every method blocks (HTTP); async callers go through ``anyio.to_thread``. Implementations map
their library's errors to :class:`~wf.errors.ForgeError` (401 to ``ForgeAuthError``) and never put
the token in a message. A pull request and a merge request are the same thing here: a
:class:`PullRequest` with a forge-wide ``number`` (GitHub's number, GitLab's iid).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from wf.errors import ForgeError
from wf.providers.remote import ForgeTarget

# "none": the forge reports nothing on the head (yet). Right after a push that is the usual
# answer, so it is never "passed" by itself: the merge queue decides what it means
# (``wf.merge_queue.forge_decide.judge_checks``) from the head's CI configuration and a grace.
ChecksState = Literal["pending", "success", "failure", "none"]


@dataclass(frozen=True)
class PullRequest:
    number: int
    url: str
    state: str  # "open", "draft", "closed" or "merged"
    head_sha: str | None
    merge_commit: str | None = None


@dataclass(frozen=True)
class ForgeChecks:
    """The forge's own reading of a head: its CI, statuses and (GitLab) merge status."""

    state: ChecksState
    detail: str


@dataclass(frozen=True)
class MergeOutcome:
    """``merged``; ``auto`` (the forge merges when its checks pass); ``moved`` (the head is not
    the expected SHA any more, 409); ``not_mergeable`` (405, or a state that forbids it)."""

    status: Literal["merged", "auto", "moved", "not_mergeable"]
    detail: str
    commit: str | None = None


class PullRequestExists(ForgeError):
    """Creating lost a race: the forge already has an open PR/MR for the branch (GitHub 422,
    GitLab 409). The caller looks it up again."""


class Forge(Protocol):
    kind: str
    target: ForgeTarget

    def push_credentials(self) -> tuple[str, str]:
        """(username, token) for git over https; only ever handed to git's credential helper."""

    def find_open(self, head: str, base: str) -> PullRequest | None:
        """The open PR/MR from branch ``head`` into ``base``, if any."""

    def find_latest(self, head: str, base: str) -> PullRequest | None:
        """The most recent PR/MR from ``head`` into ``base`` in any state (merged included)."""

    def get(self, number: int) -> PullRequest: ...

    def create(self, head: str, base: str, *, title: str, body: str,
               draft: bool) -> PullRequest:
        """Open a PR/MR; raises :class:`PullRequestExists` if one is open already."""

    def update(self, number: int, *, title: str, body: str) -> PullRequest: ...

    def add_labels(self, number: int, labels: Sequence[str]) -> None: ...

    def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None: ...

    def upsert_comment(self, number: int, marker: str, body: str) -> None:
        """Edit the one comment containing ``marker``, or post it if there is none."""

    def checks(self, pr: PullRequest) -> ForgeChecks:
        """What the forge reports on ``pr.head_sha``: ``failure`` if anything failed,
        ``pending`` while anything runs, ``success`` once everything reported passed, and
        ``none`` while nothing reports on the head at all. Reading only, so safe to repeat."""

    def merge(self, pr: PullRequest, *, sha: str, method: str, auto: bool) -> MergeOutcome:
        """Merge only if the head is still ``sha``. With ``auto``, hand the merge to the forge
        once its checks pass, where the forge supports that."""

    def close(self, number: int) -> None: ...


class ForgeFactory(Protocol):
    """What a ``wf.providers`` entry point names: builds a forge for a target, finding its
    token in ``environ`` (raising ``ForgeAuthError`` naming the variables when there is none)."""

    def __call__(self, target: ForgeTarget, environ: Mapping[str, str]) -> Forge: ...

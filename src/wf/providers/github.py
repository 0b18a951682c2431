"""GitHub and GitHub Enterprise Server through PyGithub.

PyGithub is imported only when a GitHub forge is built, so commands that never talk to GitHub
do not pay for it. Rate limits: ``GithubRetry`` honours ``Retry-After`` on 403/429 and backs off
on GitHub's secondary limits; wf adds 429 to the statuses it retries. PyGithub's own write
throttle (one second between writes) is turned off: wf makes a handful of writes per PR and
the retry covers a secondary limit should one come.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from wf.errors import ForgeError
from wf.providers import auth
from wf.providers.base import ForgeChecks, MergeOutcome, PullRequest, PullRequestExists
from wf.providers.remote import ForgeTarget

FAILED_CONCLUSIONS = {"failure", "cancelled", "timed_out", "action_required", "startup_failure",
                      "stale"}


def connect(target: ForgeTarget, environ: Mapping[str, str]) -> GitHubForge:
    return GitHubForge(target, auth.github_token(target.host, environ))


class GitHubForge:
    kind = "github"

    def __init__(self, target: ForgeTarget, token: auth.Token) -> None:
        import github
        from github.GithubRetry import GithubRetry

        self.target, self.token = target, token
        retry = GithubRetry(total=5, backoff_factor=1.0,
                            status_forcelist=[429, 500, 502, 503, 504])
        self.gh = github.Github(base_url=target.api_url, auth=github.Auth.Token(token.value),
                                retry=retry, timeout=30, lazy=True,
                                seconds_between_requests=None, seconds_between_writes=None)
        self.repo = self.gh.get_repo(target.repo)  # lazy: no request until one is needed

    def push_credentials(self) -> tuple[str, str]:
        return "x-access-token", self.token.value

    # -- finding and writing -------------------------------------------------------------------
    def find_open(self, head: str, base: str) -> PullRequest | None:
        return self._first("open", head, base)

    def find_latest(self, head: str, base: str) -> PullRequest | None:
        return self._first("all", head, base)

    def _first(self, state: str, head: str, base: str) -> PullRequest | None:
        with self._errors(f"list pull requests of {self.target.repo}"):
            pulls = self.repo.get_pulls(state=state, head=f"{self.target.owner}:{head}",
                                        base=base, sort="created", direction="desc")
            for pr in pulls:
                return _pull(pr)
        return None

    def get(self, number: int) -> PullRequest:
        with self._errors(f"read pull request #{number}"):
            return _pull(self.repo.get_pull(number))

    def create(self, head: str, base: str, *, title: str, body: str, draft: bool) -> PullRequest:
        try:
            with self._errors(f"open a pull request for {head}"):
                pr = self.repo.create_pull(base=base, head=head, title=title, body=body,
                                           draft=draft)
        except ForgeError as exc:
            if exc.status == 422 and "already exists" in exc.message.lower():
                raise PullRequestExists(exc.message, status=422) from exc
            raise
        return _pull(pr)

    def update(self, number: int, *, title: str, body: str) -> PullRequest:
        with self._errors(f"update pull request #{number}"):
            pr = self.repo.get_pull(number)
            pr.edit(title=title, body=body)
            return _pull(pr)

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        if labels:
            # PyGithub posts a bare array, a form GitHub documents as discouraged; the
            # described body is {"labels": [...]}.
            with self._errors(f"label pull request #{number}"):
                issue_url = self.repo.get_pull(number).issue_url
                self.gh.requester.requestJsonAndCheck("POST", f"{issue_url}/labels",
                                                      input={"labels": list(labels)})

    def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None:
        if not reviewers:
            return
        users = [r for r in reviewers if "/" not in r]
        teams = [r.split("/", 1)[1] for r in reviewers if "/" in r]  # org/team
        with self._errors(f"request reviewers on pull request #{number}"):
            self.repo.get_pull(number).create_review_request(reviewers=users, team_reviewers=teams)

    def upsert_comment(self, number: int, marker: str, body: str) -> None:
        with self._errors(f"comment on pull request #{number}"):
            pr = self.repo.get_pull(number)
            for comment in pr.get_issue_comments():
                if marker in (comment.body or ""):
                    if comment.body != body:
                        comment.edit(body)
                    return
            pr.create_issue_comment(body)

    # -- checks and merging --------------------------------------------------------------------
    def checks(self, pr: PullRequest) -> ForgeChecks:
        """Combined commit status and check runs of the head: any failure fails, anything not
        finished is pending, and a head nobody reports on (yet) is ``none``, not passed."""
        sha = pr.head_sha or ""
        with self._errors(f"read the checks of {sha[:10]}"):
            commit = self.repo.get_commit(sha)
            combined = commit.get_combined_status()
            runs = list(commit.get_check_runs())
        failed = [s.context for s in combined.statuses if s.state in ("failure", "error")]
        failed += [r.name for r in runs if r.status == "completed"
                   and r.conclusion in FAILED_CONCLUSIONS]
        if failed:
            return ForgeChecks("failure", f"failed: {', '.join(failed)}")
        waiting = [s.context for s in combined.statuses if s.state == "pending"]
        waiting += [r.name for r in runs if r.status != "completed"]
        if waiting:
            return ForgeChecks("pending", f"waiting for {', '.join(waiting)}")
        total = len(combined.statuses) + len(runs)
        if not total:
            return ForgeChecks("none", "no checks reported")
        return ForgeChecks("success", f"{total} passed")

    def merge(self, pr: PullRequest, *, sha: str, method: str, auto: bool) -> MergeOutcome:
        # GitHub's auto-merge exists only in GraphQL; wf waits for the checks itself, so the
        # effect is the same: the merge happens once they pass, guarded by the head SHA.
        try:
            with self._errors(f"merge pull request #{pr.number}"):
                status = self.repo.get_pull(pr.number).merge(merge_method=method, sha=sha)
        except ForgeError as exc:
            if exc.status == 409:
                return MergeOutcome("moved", f"the head of #{pr.number} is no longer "
                                             f"{sha[:10]}: {exc.message}")
            if exc.status in (405, 422):
                return MergeOutcome("not_mergeable", f"GitHub will not merge #{pr.number}: "
                                                     f"{exc.message}")
            raise
        if not status.merged:
            return MergeOutcome("not_mergeable", status.message or "not merged")
        return MergeOutcome("merged", status.message or "merged", status.sha)

    def close(self, number: int) -> None:
        with self._errors(f"close pull request #{number}"):
            self.repo.get_pull(number).edit(state="closed")

    # -- errors --------------------------------------------------------------------------------
    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        """PyGithub's and requests' exceptions as ForgeError, the token never in the text."""
        import requests
        from github import BadCredentialsException, GithubException

        try:
            yield
        except BadCredentialsException as exc:
            raise auth.rejected("github", self.target.host, self.token,
                                _message(exc.data) or "bad credentials") from exc
        except GithubException as exc:
            if exc.status == 401:
                raise auth.rejected("github", self.target.host, self.token,
                                    _message(exc.data) or "unauthorized") from exc
            detail = _message(exc.data) or f"HTTP {exc.status}"
            hint = ("check [provider] repo and that the token can see it"
                    if exc.status == 404 else None)
            raise ForgeError(f"GitHub could not {doing} ({exc.status}): {detail}", hint=hint,
                             status=exc.status) from exc
        except requests.RequestException as exc:
            raise ForgeError(f"GitHub could not {doing}: {type(exc).__name__} talking to "
                             f"{self.target.api_url}") from exc


def _message(data: Any) -> str:
    if isinstance(data, dict):
        text = str(data.get("message") or "")
        for err in data.get("errors") or ():
            if isinstance(err, dict) and err.get("message"):
                text += f": {err['message']}"
        return text
    return str(data or "")[:200]


def _pull(pr: Any) -> PullRequest:
    # merged_at, not merged: list items ("pull-request-simple") lack `merged`, and reading it
    # would cost one more request per PR.
    merged = pr.merged_at is not None
    state = "merged" if merged else "draft" if (pr.state == "open" and pr.draft) else pr.state
    return PullRequest(pr.number, pr.html_url, state, pr.head.sha, pr.merge_commit_sha)

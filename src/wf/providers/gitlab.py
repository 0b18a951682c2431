"""gitlab.com and self-hosted GitLab through python-gitlab.

python-gitlab is imported only when a GitLab forge is built. Projects are addressed by their
path, which python-gitlab sends URL-encoded (``group%2Fsub%2Fproject``), so nested groups work.
Rate limits: python-gitlab sleeps for ``Retry-After`` on 429 and retries transient errors.

Reviewers are GitLab user ids (``--reviewer 42``): the merge-request API takes ids, and looking a
username up would need a scope wf does not ask for. GitLab's merge method (merge commit,
fast-forward, rebase) is a project setting; wf's ``merge_method = "squash"`` asks for a squash.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from wf.errors import ConfigError, ForgeError
from wf.providers import auth
from wf.providers.base import ForgeChecks, MergeOutcome, PullRequest, PullRequestExists
from wf.providers.remote import ForgeTarget

PIPELINE_PENDING = {"created", "waiting_for_resource", "preparing", "pending", "running",
                    "scheduled", "waiting_for_callback"}
PIPELINE_FAILED = {"failed", "canceled", "canceling"}
# detailed_merge_status values that mean "not yet": the forge is still working or waiting.
MERGE_STATUS_WAITING = {"checking", "unchecked", "preparing", "ci_still_running",
                        "approvals_syncing", "not_approved", "ci_must_pass"}


def connect(target: ForgeTarget, environ: Mapping[str, str]) -> GitLabForge:
    return GitLabForge(target, auth.gitlab_token(target.host, environ))


class GitLabForge:
    kind = "gitlab"

    def __init__(self, target: ForgeTarget, token: auth.Token) -> None:
        import gitlab

        self.target, self.token = target, token
        self.gl = gitlab.Gitlab(target.api_url, private_token=token.value, timeout=30,
                                retry_transient_errors=True)
        self.project = self.gl.projects.get(target.repo, lazy=True)

    def push_credentials(self) -> tuple[str, str]:
        return "oauth2", self.token.value

    # -- finding and writing -------------------------------------------------------------------
    def find_open(self, head: str, base: str) -> PullRequest | None:
        return self._first(head, base, state="opened")

    def find_latest(self, head: str, base: str) -> PullRequest | None:
        return self._first(head, base, state="all")

    def _first(self, head: str, base: str, *, state: str) -> PullRequest | None:
        with self._errors(f"list merge requests of {self.target.repo}"):
            found = self.project.mergerequests.list(
                source_branch=head, target_branch=base, state=state, order_by="created_at",
                sort="desc", per_page=1, get_all=False)
        return _mr(found[0].attributes) if found else None

    def get(self, number: int) -> PullRequest:
        with self._errors(f"read merge request !{number}"):
            return _mr(self.project.mergerequests.get(number).attributes)

    def create(self, head: str, base: str, *, title: str, body: str, draft: bool) -> PullRequest:
        data = {"source_branch": head, "target_branch": base, "description": body,
                "title": f"Draft: {title}" if draft else title}
        try:
            with self._errors(f"open a merge request for {head}"):
                return _mr(self.project.mergerequests.create(data).attributes)
        except ForgeError as exc:
            if exc.status == 409:
                raise PullRequestExists(exc.message, status=409) from exc
            raise

    def update(self, number: int, *, title: str, body: str) -> PullRequest:
        return self._put(number, {"title": title, "description": body}, "update")

    def add_labels(self, number: int, labels: Sequence[str]) -> None:
        if labels:
            self._put(number, {"add_labels": ",".join(labels)}, "label")

    def request_reviewers(self, number: int, reviewers: Sequence[str]) -> None:
        if not reviewers:
            return
        bad = [r for r in reviewers if not r.isdigit()]
        if bad:
            raise ConfigError(f"GitLab reviewers are user ids, not {', '.join(bad)}",
                              hint="find an id on the user's profile page")
        self._put(number, {"reviewer_ids": [int(r) for r in reviewers]}, "request reviewers on")

    def _put(self, number: int, data: dict[str, Any], doing: str) -> PullRequest:
        with self._errors(f"{doing} merge request !{number}"):
            return _mr(self.project.mergerequests.update(number, data))

    def upsert_comment(self, number: int, marker: str, body: str) -> None:
        with self._errors(f"comment on merge request !{number}"):
            mr = self.project.mergerequests.get(number, lazy=True)
            for note in mr.notes.list(get_all=True, sort="asc", order_by="created_at"):
                if marker in (note.body or ""):
                    if note.body != body:
                        mr.notes.update(note.id, {"body": body})
                    return
            mr.notes.create({"body": body})

    # -- checks and merging --------------------------------------------------------------------
    def checks(self, pr: PullRequest) -> ForgeChecks:
        """The newest pipeline of the head, then ``detailed_merge_status``.

        The MR's own ``head_pipeline`` counts too: a merged-results pipeline runs on the
        merge ref (``refs/merge-requests/<iid>/merge``), so its sha is not the head's. With no
        pipeline at all the answer is ``none`` even when GitLab says ``mergeable``: right
        after a push GitLab has not created the pipeline yet."""
        with self._errors(f"read the pipelines of merge request !{pr.number}"):
            attrs = self.project.mergerequests.get(pr.number).attributes
            # Lazy: the pipelines' path then names the project by its path, as every call does.
            lazy = self.project.mergerequests.get(pr.number, lazy=True)
            pipelines = [p.attributes for p in lazy.pipelines.list(get_all=False, per_page=20)
                         if not pr.head_sha or p.sha == pr.head_sha]
        merged_results = _merged_results_pipeline(attrs, pr)
        if merged_results is not None:
            pipelines.append(merged_results)
        merge_status = attrs.get("detailed_merge_status") or "unchecked"
        newest = max(pipelines, key=lambda p: int(p.get("id") or 0), default=None)
        if newest is not None:
            status = newest.get("status")
            if status in PIPELINE_FAILED:
                return ForgeChecks("failure", f"pipeline {newest.get('id')} {status}")
            if status in PIPELINE_PENDING:
                return ForgeChecks("pending", f"pipeline {newest.get('id')} {status}")
        if merge_status == "mergeable":
            if newest is None:
                return ForgeChecks("none", "mergeable, no pipeline")
            return ForgeChecks("success", f"pipeline {newest.get('id')} {newest.get('status')}")
        if merge_status in MERGE_STATUS_WAITING:
            return ForgeChecks("pending", f"merge status {merge_status}")
        return ForgeChecks("failure", f"merge status {merge_status}")

    def merge(self, pr: PullRequest, *, sha: str, method: str, auto: bool) -> MergeOutcome:
        data: dict[str, Any] = {"sha": sha, "squash": method == "squash"}
        if auto:
            data["auto_merge"] = True
        path = f"/projects/{self.project.encoded_id}/merge_requests/{pr.number}/merge"
        try:
            with self._errors(f"merge merge request !{pr.number}"):
                result = self.gl.http_put(path, post_data=data)
        except ForgeError as exc:
            if exc.status == 409:
                return MergeOutcome("moved", f"the head of !{pr.number} is no longer "
                                             f"{sha[:10]}: {exc.message}")
            if exc.status in (405, 406, 422):
                return MergeOutcome("not_mergeable", f"GitLab will not merge !{pr.number}: "
                                                     f"{exc.message}")
            raise
        if result.get("state") == "merged":
            return MergeOutcome("merged", "merged", result.get("merge_commit_sha")
                                or result.get("squash_commit_sha"))
        if result.get("merge_when_pipeline_succeeds") or result.get("auto_merge_enabled"):
            return MergeOutcome("auto", "GitLab merges it when its pipeline succeeds")
        return MergeOutcome("not_mergeable", f"merge request is {result.get('state')}")

    def close(self, number: int) -> None:
        self._put(number, {"state_event": "close"}, "close")

    # -- errors --------------------------------------------------------------------------------
    @contextmanager
    def _errors(self, doing: str) -> Iterator[None]:
        import gitlab.exceptions as gle
        import requests

        try:
            yield
        except gle.GitlabAuthenticationError as exc:
            raise auth.rejected("gitlab", self.target.host, self.token,
                                _message(exc)) from exc
        except gle.GitlabError as exc:
            code = exc.response_code
            if code == 401:
                raise auth.rejected("gitlab", self.target.host, self.token,
                                    _message(exc)) from exc
            hint = ("check [provider] repo and that the token can see the project"
                    if code == 404 else None)
            raise ForgeError(f"GitLab could not {doing} ({code}): {_message(exc)}", hint=hint,
                             status=code) from exc
        except requests.RequestException as exc:
            raise ForgeError(f"GitLab could not {doing}: {type(exc).__name__} talking to "
                             f"{self.target.api_url}") from exc


def _message(exc: Any) -> str:
    return " ".join(str(exc.error_message or "").split())[:300] or f"HTTP {exc.response_code}"


def _merged_results_pipeline(attrs: dict[str, Any], pr: PullRequest) -> dict[str, Any] | None:
    """The MR's ``head_pipeline`` when it ran for this head: on the head itself, or on the MR's
    merge ref while the MR's head is this head (GitLab's merged-results pipelines)."""
    pipeline = attrs.get("head_pipeline")
    if not isinstance(pipeline, dict) or not pipeline.get("status"):
        return None
    if pr.head_sha and attrs.get("sha") != pr.head_sha:
        return None  # the MR moved on: its head pipeline is for another commit
    ref = str(pipeline.get("ref") or "")
    if pipeline.get("sha") == pr.head_sha or ref.startswith("refs/merge-requests/"):
        return pipeline
    return None


def _mr(attrs: dict[str, Any]) -> PullRequest:
    state = {"opened": "open", "locked": "open"}.get(attrs.get("state") or "", attrs.get("state"))
    if state == "open" and attrs.get("draft"):
        state = "draft"
    return PullRequest(int(attrs["iid"]), attrs.get("web_url") or "", state or "open",
                       attrs.get("sha"),
                       attrs.get("merge_commit_sha") or attrs.get("squash_commit_sha"))

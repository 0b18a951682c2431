"""The GitLab half of the fake forge: merge requests, notes and pipelines of a ``Project``.

The project id arrives URL-encoded (``group%2Fsub%2Fproject``); the raw path is matched, so a
client that forgot to encode a nested group gets a 404 here, as it would from some servers.
"""

from __future__ import annotations

import re
import urllib.parse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakeforge import FakeForge, Project, Pull

TS = "2026-01-01T00:00:00.000Z"
USER = {"id": 1, "username": "wf-bot", "name": "wf bot", "state": "active", "locked": False,
        "avatar_url": None, "web_url": "https://gitlab.example/wf-bot"}


def answer(forge: FakeForge, method: str, path: str, query: dict[str, list[str]],
           data: Any) -> tuple[int, Any]:
    m = re.match(r"^/api/v4/projects/([^/]+)(/.*)?$", path)
    if m is None:
        return 404, {"message": "404 Not Found"}
    project = forge.gitlab.get(urllib.parse.unquote(m[1]))
    if project is None or "/" in m[1]:
        return 404, {"message": "404 Project Not Found"}
    rest = m[2] or ""
    if rest == "/merge_requests" and method == "GET":
        state = query.get("state", ["all"])[0]
        src, dst = query.get("source_branch", [None])[0], query.get("target_branch", [None])[0]
        found = [p for p in sorted(project.pulls.values(), key=lambda p: -p.number)
                 if (src is None or p.head == src) and (dst is None or p.base == dst)
                 and (state == "all" or _state(p) == state)]
        return 200, [_mr(forge, project, p) for p in found]
    if rest == "/merge_requests" and method == "POST":
        if any(p.head == data["source_branch"] and p.state == "open"
               for p in project.pulls.values()):
            return 409, {"message": ["Another open merge request already exists for this "
                                     "source branch"]}
        from fakeforge import Pull

        iid = max([*project.pulls, 0]) + 1
        title = data["title"]
        pull = project.pulls[iid] = Pull(iid, data["source_branch"], data["target_branch"],
                                         title, data.get("description") or "",
                                         title.startswith("Draft:"),
                                         mergeable=project.mergeable_by_default)
        return 201, _mr(forge, project, pull)
    m2 = re.match(r"^/merge_requests/(\d+)(/.*)?$", rest)
    if m2 is None:
        return 404, {"message": "404 Not Found"}
    pull = project.pulls.get(int(m2[1]))
    if pull is None:
        return 404, {"message": "404 Not found"}
    return _mr_route(forge, project, pull, method, m2[2] or "", data)


def _mr_route(forge: FakeForge, project: Project, pull: Pull, method: str, rest: str,
              data: Any) -> tuple[int, Any]:
    if rest == "" and method == "GET":
        return 200, _mr(forge, project, pull)
    if rest == "" and method == "PUT":
        pull.title = data.get("title", pull.title)
        pull.body = data.get("description", pull.body)
        for label in (data.get("add_labels") or "").split(","):
            if label and label not in pull.labels:
                pull.labels.append(label)
        pull.reviewers += [str(r) for r in data.get("reviewer_ids", ())]
        if data.get("state_event") == "close":
            pull.state = "closed"
        return 200, _mr(forge, project, pull)
    if rest == "/merge" and method == "PUT":
        if pull.state != "open" or not pull.mergeable:
            return 405, {"message": "405 Method Not Allowed"}
        if data.get("sha") and data["sha"] != project.head_of(pull.head):
            return 409, {"message": "SHA does not match HEAD of source branch"}
        if data.get("auto_merge") and _pipeline_pending(project, pull):
            pull.auto_merge = True
            return 200, _mr(forge, project, pull)
        pull.merge_commit = project.merge(pull, "squash" if data.get("squash") else "merge")
        pull.state = "merged"
        return 200, _mr(forge, project, pull)
    if rest == "/pipelines" and method == "GET":
        sha = project.head_of(pull.head)
        runs = [_pipeline(forge, project, pid, status, sha, pull.head)
                for pid, status in project.pipelines.get(sha or "", [])]
        ci = project.ci_state(sha or "")
        if ci is not None and project.merged_results:
            runs.append(_merge_ref_pipeline(forge, project, pull, ci))
        elif ci is not None:
            runs.append(_pipeline(forge, project, 900, _status(ci), sha, pull.head))
        return 200, list(reversed(runs))
    if rest == "/notes" and method == "GET":
        return 200, [_note(cid, pull, body) for cid, (n, body) in sorted(project.comments.items())
                     if n == pull.number]
    if rest == "/notes" and method == "POST":
        cid = next(forge.ids)
        project.comments[cid] = (pull.number, data["body"])
        return 201, _note(cid, pull, data["body"])
    m = re.match(r"^/notes/(\d+)$", rest)
    if m is not None and method == "PUT":
        cid = int(m[1])
        project.comments[cid] = (pull.number, data["body"])
        return 200, _note(cid, pull, data["body"])
    return 404, {"message": "404 Not Found"}


def _status(ci: str) -> str:
    return {"pending": "running", "failure": "failed"}.get(ci, ci)


def _pipeline(forge: FakeForge, project: Project, pid: int, status: str, sha: str | None,
              ref: str) -> dict[str, Any]:
    return {"id": pid, "iid": pid, "project_id": 7, "sha": sha, "ref": ref, "status": status,
            "source": "push", "created_at": TS, "updated_at": TS,
            "web_url": f"{forge.gitlab_url}/{project.path}/-/pipelines/{pid}"}


def _merge_ref_pipeline(forge: FakeForge, project: Project, pull: Pull, ci: str
                        ) -> dict[str, Any]:
    """A merged-results pipeline: it runs on the commit GitLab makes by merging the head into
    the target, on ``refs/merge-requests/<iid>/merge``; that commit is not the head."""
    pipeline = _pipeline(forge, project, 950, _status(ci), "e" * 40,
                         f"refs/merge-requests/{pull.number}/merge")
    pipeline["source"] = "merge_request_event"
    return pipeline


def complete_auto_merges(project: Project) -> None:
    """What GitLab does when a pipeline passes: merge the MRs set to auto-merge."""
    for pull in project.pulls.values():
        if pull.auto_merge and pull.state == "open" and not _pipeline_pending(project, pull):
            pull.merge_commit = project.merge(pull, "merge")
            pull.state = "merged"


def _pipeline_pending(project: Project, pull: Pull) -> bool:
    runs = project.pipelines.get(project.head_of(pull.head) or "", [])
    return bool(runs) and runs[-1][1] not in ("success", "failed", "canceled")


def _state(p: Pull) -> str:
    return {"open": "opened"}.get(p.state, p.state)


def _mr(forge: FakeForge, project: Project, p: Pull) -> dict[str, Any]:
    head = project.head_of(p.head)
    ci = project.ci_state(head or "", look=False) if p.state == "open" else None
    head_pipeline = (None if ci is None else _merge_ref_pipeline(forge, project, p, ci)
                     if project.merged_results
                     else _pipeline(forge, project, 900, _status(ci), head, p.head))
    return {
        "head_pipeline": head_pipeline,
        "id": 5000 + p.number, "iid": p.number, "project_id": 7, "title": p.title,
        "description": p.body, "state": _state(p), "created_at": TS, "updated_at": TS,
        "source_branch": p.head, "target_branch": p.base, "author": USER,
        "reviewers": [dict(USER, id=int(r), username=f"user{r}") for r in p.reviewers],
        "assignees": [], "labels": list(p.labels), "draft": p.draft,
        "work_in_progress": p.draft, "merge_when_pipeline_succeeds": p.auto_merge,
        "merge_status": "can_be_merged" if p.mergeable else "cannot_be_merged",
        "detailed_merge_status": p.merge_status if p.state == "open" else "not_open",
        "sha": project.head_of(p.head), "merge_commit_sha": p.merge_commit,
        "squash_commit_sha": None, "source_project_id": 7, "target_project_id": 7,
        "web_url": f"{forge.gitlab_url}/{project.path}/-/merge_requests/{p.number}",
        "references": {"short": f"!{p.number}", "relative": f"!{p.number}",
                       "full": f"{project.path}!{p.number}"},
        "reference": f"!{p.number}",
    }


def _note(cid: int, pull: Pull, body: str) -> dict[str, Any]:
    return {"id": cid, "type": None, "body": body, "author": USER, "created_at": TS,
            "updated_at": TS, "system": False, "noteable_id": 5000 + pull.number,
            "noteable_type": "MergeRequest", "project_id": 7, "noteable_iid": pull.number,
            "resolvable": False, "confidential": False, "internal": False}

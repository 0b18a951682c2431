"""The GitHub half of the fake forge: REST routes over a ``Project``'s in-memory pulls.

Response bodies start from the OpenAPI description's own examples (which satisfy its schemas),
with URLs rewritten to the fake server and the fields wf reads set from the state.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fakeforge import FakeForge, Project, Pull

R = "/repos/{owner}/{repo}"


def answer(forge: FakeForge, method: str, path: str, query: dict[str, list[str]],
           data: Any) -> tuple[int, Any]:
    m = re.match(r"^/repos/([^/]+)/([^/]+)(/.*)?$", path)
    if m is None:
        return 404, _error("Not Found")
    project = forge.github.get(f"{m[1]}/{m[2]}")
    if project is None:
        return 404, _error("Not Found")
    rest = m[3] or ""
    t = _Templates(forge, project)
    if rest == "/pulls" and method == "GET":
        state = query.get("state", ["open"])[0]
        head = query.get("head", [""])[0].split(":", 1)[-1]
        base = query.get("base", [None])[0]
        found = [p for p in sorted(project.pulls.values(), key=lambda p: -p.number)
                 if (not head or p.head == head) and (base is None or p.base == base)
                 and (state == "all" or (p.state == "open") == (state == "open"))]
        return 200, [t.pull(p, R + "/pulls", "get", "200") for p in found]
    if rest == "/pulls" and method == "POST":
        if any(p.head == data["head"] and p.state == "open" for p in project.pulls.values()):
            return 422, {"message": "Validation Failed", "documentation_url": _DOCS,
                         "errors": [{"resource": "PullRequest", "code": "custom",
                                     "message": f"A pull request already exists for "
                                                f"{project.path.split('/')[0]}:{data['head']}."}]}
        if project.head_of(data["head"]) is None:
            return 422, {"message": "Validation Failed", "documentation_url": _DOCS,
                         "errors": [{"resource": "PullRequest", "field": "head",
                                     "code": "invalid"}]}
        number = max([*project.pulls, 0]) + 1
        pull = project.pulls[number] = _new_pull(number, data)
        pull.mergeable = project.mergeable_by_default
        return 201, t.pull(pull, R + "/pulls", "post", "201")
    m2 = re.match(r"^/pulls/(\d+)(/.*)?$", rest)
    if m2 is not None:
        pull = project.pulls.get(int(m2[1]))
        if pull is None:
            return 404, _error("Not Found")
        return _pull_route(forge, project, t, pull, method, m2[2] or "", data)
    m3 = re.match(r"^/issues/(\d+)/(comments|labels)$", rest)
    if m3 is not None:
        pull = project.pulls.get(int(m3[1]))
        if pull is None:
            return 404, _error("Not Found")
        return _issue_route(forge, project, t, pull, method, m3[2], data)
    m4 = re.match(r"^/issues/comments/(\d+)$", rest)
    if m4 is not None and method == "PATCH":
        cid = int(m4[1])
        number, _ = project.comments[cid]
        project.comments[cid] = (number, data["body"])
        return 200, t.comment(cid, R + "/issues/comments/{comment_id}", "patch", "200")
    m5 = re.match(r"^/commits/([^/]+)/(status|check-runs)$", rest)
    if m5 is not None and method == "GET":
        return 200, (t.combined_status(m5[1]) if m5[2] == "status" else t.check_runs(m5[1]))
    return 404, _error("Not Found")


def _pull_route(forge: FakeForge, project: Project, t: _Templates, pull: Pull, method: str,
                rest: str, data: Any) -> tuple[int, Any]:
    item = R + "/pulls/{pull_number}"
    if rest == "" and method == "GET":
        return 200, t.pull(pull, item, "get", "200")
    if rest == "" and method == "PATCH":
        pull.title = data.get("title", pull.title)
        pull.body = data.get("body", pull.body)
        if data.get("state") == "closed":
            pull.state = "closed"
        return 200, t.pull(pull, item, "patch", "200")
    if rest == "/requested_reviewers" and method == "POST":
        pull.reviewers += [*data.get("reviewers", ()),
                           *(f"team:{x}" for x in data.get("team_reviewers", ()))]
        return 201, t.pull(pull, item + "/requested_reviewers", "post", "201")
    if rest == "/merge" and method == "PUT":
        if pull.state != "open" or not pull.mergeable:
            return 405, _error("Pull Request is not mergeable")
        if data and data.get("sha") and data["sha"] != project.head_of(pull.head):
            return 409, _error("Head branch was modified. Review and try the merge again.")
        pull.merge_commit = project.merge(pull, (data or {}).get("merge_method", "merge"))
        pull.state = "merged"
        return 200, {"sha": pull.merge_commit, "merged": True,
                     "message": "Pull Request successfully merged"}
    return 404, _error("Not Found")


def _issue_route(forge: FakeForge, project: Project, t: _Templates, pull: Pull, method: str,
                 what: str, data: Any) -> tuple[int, Any]:
    base = R + "/issues/{issue_number}/" + what
    if what == "labels" and method == "POST":
        for label in data["labels"]:
            if label not in pull.labels:
                pull.labels.append(label)
        return 200, [t.label(name) for name in pull.labels]
    if what == "comments" and method == "GET":
        return 200, [t.comment(cid, base, "get", "200") for cid, (n, _) in
                     sorted(project.comments.items()) if n == pull.number]
    if what == "comments" and method == "POST":
        cid = next(forge.ids)
        project.comments[cid] = (pull.number, data["body"])
        return 201, t.comment(cid, base, "post", "201")
    return 404, _error("Not Found")


def _new_pull(number: int, data: dict[str, Any]) -> Pull:
    from fakeforge import Pull

    return Pull(number, data["head"], data["base"], data.get("title", ""),
                data.get("body") or "", bool(data.get("draft")))


_DOCS = "https://docs.github.com/rest"


def _error(message: str) -> dict[str, Any]:
    return {"message": message, "documentation_url": _DOCS}


class _Templates:
    """The description's examples, re-pointed at the fake and at ``project``."""

    def __init__(self, forge: FakeForge, project: Project) -> None:
        self.forge, self.project = forge, project

    def _example(self, path: str, method: str, status: str) -> Any:
        value = self.forge.specs.example(path, method, status)
        text = json.dumps(value)
        text = text.replace("https://api.github.com", self.forge.github_api)
        text = text.replace("https://github.com", self.forge.base)
        text = text.replace("octocat/Hello-World", self.project.path)
        return json.loads(text)

    def pull(self, p: Pull, path: str, method: str, status: str) -> dict[str, Any]:
        value = self._example(path, method, status)
        obj = value[0] if isinstance(value, list) else value
        api = f"{self.forge.github_api}/repos/{self.project.path}"
        web = f"{self.forge.base}/{self.project.path}/pull/{p.number}"
        owner = self.project.path.split("/")[0]
        obj.update(number=p.number, id=p.number, title=p.title, body=p.body, draft=p.draft,
                   state="open" if p.state == "open" else "closed", html_url=web,
                   url=f"{api}/pulls/{p.number}", issue_url=f"{api}/issues/{p.number}",
                   comments_url=f"{api}/issues/{p.number}/comments",
                   merge_commit_sha=p.merge_commit, labels=[self.label(x) for x in p.labels],
                   merged_at="2026-01-01T00:00:00Z" if p.state == "merged" else None,
                   closed_at="2026-01-01T00:00:00Z" if p.state != "open" else None)
        for key in ("merged", "mergeable"):
            if key in obj:
                obj[key] = (p.state == "merged") if key == "merged" else p.mergeable
        obj["head"].update(ref=p.head, sha=self.project.head_of(p.head) or "0" * 40,
                           label=f"{owner}:{p.head}")
        obj["base"].update(ref=p.base, sha=self.project.head_of(p.base) or "0" * 40,
                           label=f"{owner}:{p.base}")
        return obj

    def label(self, name: str) -> dict[str, Any]:
        obj = self._example(R + "/issues/{issue_number}/labels", "post", "200")[0]
        obj.update(name=name, id=abs(hash(name)) % 10**6)
        return obj

    def comment(self, cid: int, path: str, method: str, status: str) -> dict[str, Any]:
        value = self._example(path, method, status)
        obj = value[0] if isinstance(value, list) else value
        number, body = self.project.comments[cid]
        api = f"{self.forge.github_api}/repos/{self.project.path}"
        obj.update(id=cid, body=body, url=f"{api}/issues/comments/{cid}",
                   issue_url=f"{api}/issues/{number}")
        return obj

    def combined_status(self, sha: str) -> dict[str, Any]:
        obj = self._example(R + "/commits/{ref}/status", "get", "200")
        one = obj["statuses"][0]
        reported = list(self.project.statuses.get(sha, []))
        ci = self.project.ci_state(sha) if self.project.ci_as == "status" else None
        if ci is not None:
            reported.append(("ci/wf", ci))
        statuses = [dict(one, context=ctx, state=state, id=i + 1)
                    for i, (ctx, state) in enumerate(reported)]
        states = [s["state"] for s in statuses]
        overall = ("failure" if {"failure", "error"} & set(states) else
                   "pending" if "pending" in states or not states else "success")
        obj.update(sha=sha, statuses=statuses, total_count=len(statuses), state=overall)
        return obj

    def check_runs(self, sha: str) -> dict[str, Any]:
        obj = self._example(R + "/commits/{ref}/check-runs", "get", "200")
        one = obj["check_runs"][0]
        reported = list(self.project.check_runs.get(sha, []))
        ci = self.project.ci_state(sha) if self.project.ci_as == "check_run" else None
        # A running check run has conclusion null, which the description's enum does not
        # admit (openapi-core reads 3.0's nullable + enum strictly): "pending" shows nothing.
        if ci is not None and ci != "pending":
            reported.append(("ci/wf", "completed", ci))
        runs = [dict(one, id=i + 1, name=name, status=status, conclusion=conclusion,
                     head_sha=sha, completed_at=one["completed_at"] if conclusion else None)
                for i, (name, status, conclusion) in enumerate(reported)]
        obj.update(check_runs=runs, total_count=len(runs))
        return obj

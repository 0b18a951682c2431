"""Open-or-update a PR/MR for a branch, on any forge: the idempotent part of ``wf pr``.

The open PR/MR is looked up by head branch first (by the caller, before its push); only when
there is none is one created, and a create that loses a race ("already exists": GitHub 422,
GitLab 409) looks again. So running ``wf pr`` twice, or again after a crash, never makes a
second PR. The status comment carries a hidden marker, so it is found again and edited rather
than posted twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from wf.errors import ForgeError
from wf.providers.base import Forge, PullRequest, PullRequestExists

STATUS_MARKER = "<!-- wf:status -->"
TITLE_MAX = 72


@dataclass(frozen=True)
class PullRequestText:
    title: str
    body: str
    status: str  # the status comment, marker included


@dataclass(frozen=True)
class PullRequestRequest:
    head: str
    base: str
    text: PullRequestText
    draft: bool = False
    labels: Sequence[str] = field(default_factory=tuple)
    reviewers: Sequence[str] = field(default_factory=tuple)


def open_or_update(forge: Forge, req: PullRequestRequest,
                   existing: PullRequest | None) -> tuple[PullRequest, bool]:
    """(the PR/MR, whether it was created now). Blocking.

    ``existing`` is ``forge.find_open(head, base)``, which callers look up before they push the
    branch: that also proves the token works before anything leaves the machine."""
    pr = existing
    created = False
    if pr is None:
        try:
            pr = forge.create(req.head, req.base, title=req.text.title, body=req.text.body,
                              draft=req.draft)
            created = True
        except PullRequestExists:
            pr = forge.find_open(req.head, req.base)
            if pr is None:
                raise ForgeError(f"the forge says a PR/MR for {req.head} exists but lists none",
                                 hint="look at the forge's page for the branch") from None
    if not created:
        pr = forge.update(pr.number, title=req.text.title, body=req.text.body)
    forge.add_labels(pr.number, req.labels)
    forge.request_reviewers(pr.number, req.reviewers)
    forge.upsert_comment(pr.number, STATUS_MARKER, req.text.status)
    return pr, created


def describe(task: Mapping[str, Any] | None, branch: str, *, diff_stat: str,
             queue_row: Mapping[str, Any] | None = None,
             forge_checks: str | None = None) -> PullRequestText:
    """Title, body and status comment of a task's PR/MR: the prompt, the agent, the attempts,
    the diff stat and the checks. A plain branch (no task) gets its name as the title."""
    if task is None:
        title, body = branch, f"Branch `{branch}`, landed through the wf merge queue."
    else:
        prompt = (task.get("prompt") or "").strip()
        first = prompt.splitlines()[0] if prompt else task["id"]
        title = first if len(first) <= TITLE_MAX else first[:TITLE_MAX - 1] + "…"
        quoted = "\n".join(f"> {line}" for line in prompt.splitlines()) or "> (no prompt)"
        body = (f"{quoted}\n\n"
                f"| | |\n|---|---|\n| task | `{task['id']}` |\n| agent | `{task.get('agent')}` |\n"
                f"| attempts | {task.get('attempts') or 0} |\n| branch | `{branch}` |\n")
    if diff_stat.strip():
        body += f"\n```\n{diff_stat.rstrip()}\n```\n"
    body += "\n<sub>Opened by wf.</sub>\n"
    lines = [STATUS_MARKER, "**wf status**", ""]
    if task is not None:
        lines.append(f"- task: {task.get('state')} after {task.get('attempts') or 0} attempt(s)")
    if queue_row is not None:
        lines.append(f"- merge queue: {queue_row.get('state')}"
                     + (f", last check {queue_row['last_check']}"
                        if queue_row.get("last_check") else ""))
    if forge_checks:
        lines.append(f"- forge checks: {forge_checks}")
    return PullRequestText(title, body, "\n".join(lines) + "\n")

"""`wf demo`, the README's first command: the whole flow on its embedded defaults."""

from __future__ import annotations

import json

from runwf import wf


def test_demo_runs_every_task_and_shows_a_retry(tmp_path):
    proc = wf(tmp_path, "demo", "--path", str(tmp_path), "--json", timeout=120)
    assert proc.returncode == 0, proc.stderr
    events = [json.loads(line) for line in proc.stdout.splitlines()]
    done = {e["task"] for e in events if e["type"] == "task.succeeded"}
    assert done == {"docs-utils", "type-hints", "flaky-api", "tests-utils", "summary",
                    "release-notes"}
    retried = [e for e in events if e["type"] == "task.retry_scheduled"]
    assert [(e["task"], e["data"]["kind"]) for e in retried] == [("flaky-api", "transient")]
    repo = tmp_path / "demo-repo"
    status = {t["id"]: t for t in json.loads(wf(repo, "status", "--json").stdout)}
    assert status["summary"]["state"] == "done"
    diff = wf(repo, "diff", "summary").stdout  # started from the merge of two dependencies
    assert "notes/summary.md" in diff

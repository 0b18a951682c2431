"""The merge queue with ``land = "pr"``: real tasks, local checks, then push, PR/MR, the forge's
checks and a SHA-guarded merge on the fake GitHub and GitLab; and the failure cases."""

from __future__ import annotations

import json
import signal
import sys
import time
from pathlib import Path

import pytest
from fakeforge import TOKEN, FakeForge, Project
from helpers import git
from runwf import agent_cmd, events, fast_retry, wait_until, wf, wf_bg, write_tasks

NO_TOKENS = {name: "" for name in ("GH_TOKEN", "GITHUB_TOKEN", "GH_ENTERPRISE_TOKEN",
                                   "GITHUB_ENTERPRISE_TOKEN", "GITLAB_TOKEN", "CI_JOB_TOKEN")}


def setup(repo: Path, origin: Path, forge: FakeForge, kind: str, *, merge: str = "",
          timeout: str = "30s", grace: str = "200ms", ci_config: str | None = None
          ) -> tuple[Project, dict[str, str]]:
    if kind == "github":
        project = forge.add_github("octo/demo", origin)
        provider = f'kind = "github"\napi_url = "{forge.github_api}"\nrepo = "octo/demo"'
        env = {**NO_TOKENS, "GH_TOKEN": TOKEN}
    else:
        project = forge.add_gitlab("grp/sub/demo", origin)
        provider = f'kind = "gitlab"\napi_url = "{forge.gitlab_url}"\nrepo = "grp/sub/demo"'
        env = {**NO_TOKENS, "GITLAB_TOKEN": TOKEN}
    (repo / "wf.toml").write_text(
        f'[merge]\nauto = true\nland = "pr"\nforge_poll_interval = "50ms"\n'
        f'forge_check_timeout = "{timeout}"\nforge_checks_grace = "{grace}"\n{merge}\n'
        f'[provider]\n{provider}\n')
    git(repo, "add", "wf.toml")
    if ci_config is not None:  # the head then tells wf that the forge's CI will report
        (repo / ci_config).parent.mkdir(parents=True, exist_ok=True)
        (repo / ci_config).write_text("test:\n  script: [pytest]\n")
        git(repo, "add", ci_config)
    git(repo, "commit", "-qm", "queue through the forge")
    git(repo, "push", "-q", "origin", "main")
    git(repo, "remote", "set-url", "origin", forge.git_url(origin))  # from now on, the token
    return project, env


def tasks_file(repo: Path, ids: tuple[str, ...]) -> Path:
    text = fast_retry(1) + f"\n[agents.good]\ncommand = {agent_cmd('commit')}\n"
    for tid in ids:
        text += f'\n[[task]]\nid = "{tid}"\nprompt = "write notes for {tid}"\nagent = "good"\n'
    return write_tasks(repo, text)


def queue(repo: Path) -> dict[str, dict]:
    return {e["task_id"]: e for e in json.loads(wf(repo, "queue", "--json").stdout)}


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_entries_land_through_their_prs_after_the_forge_checks(
        repo: Path, origin: Path, forge: FakeForge, kind: str) -> None:
    check = json.dumps([sys.executable, "-c",
                        "import pathlib; assert pathlib.Path('notes').is_dir()"])
    project, env = setup(repo, origin, forge, kind, merge=f"check = {check}")
    project.ci = ["pending", "pending", "success"]
    before = git(origin, "rev-parse", "main")
    proc = wf(repo, "run", str(tasks_file(repo, ("a", "b"))), env=env)
    assert proc.returncode == 0, proc.stderr

    assert git(origin, "rev-parse", "main") != before
    assert set(git(origin, "ls-tree", "--name-only", "main", "notes/").split()) == {
        "notes/a.txt", "notes/b.txt"}
    assert sorted(p.head for p in project.pulls.values()) == ["wf/a", "wf/b"]  # one PR each
    assert all(p.state == "merged" for p in project.pulls.values())
    # every merge named the head it expected, and that head is what the forge's CI saw
    merges = forge.calls("PUT", r"/merge$")
    assert len(merges) == 2 and all(len(m[3]["sha"]) == 40 for m in merges)
    assert {m[3]["sha"] for m in merges} <= set(project.ci_polls)

    # the merged result was tested locally first, as with every other landing
    assert [e["data"]["result"] for e in events(repo, "queue.check_finished")][:1] == ["pass"]
    q = queue(repo)
    assert {t: e["state"] for t, e in q.items()} == {"a": "landed", "b": "landed"}
    for e in q.values():
        assert e["pr_url"].startswith(forge.base) and e["pr_state"] == "merged"
        assert e["forge_checks"].startswith("success")
    checks = [e["data"]["state"] for e in events(repo, "pr.checks")
              if e["stream"] == "task:a"]
    assert checks == ["pending", "success"]  # a change is recorded once, not every poll
    header = wf(repo, "queue").stdout.splitlines()[0].split()
    assert header == ["#", "task", "state", "last", "check", "pr", "reason"]


def test_a_failing_forge_check_evicts_the_entry_with_the_reason(
        repo: Path, origin: Path, forge: FakeForge) -> None:
    project, env = setup(repo, origin, forge, "github")
    project.ci = ["pending", "failure"]
    before = git(origin, "rev-parse", "main")
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    assert proc.returncode == 1
    entry = queue(repo)["a"]
    assert (entry["state"], entry["reason_kind"]) == ("evicted", "forge_check")
    assert "ci/wf" in entry["reason"] and "#1" in entry["reason"]
    assert git(origin, "rev-parse", "main") == before
    assert forge.calls("PUT", r"/merge$") == []


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_a_pr_the_forge_will_not_merge_is_evicted_not_crashed(
        repo: Path, origin: Path, forge: FakeForge, kind: str) -> None:
    project, env = setup(repo, origin, forge, kind)
    project.mergeable_by_default = False
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    assert proc.returncode == 1, proc.stderr
    assert "internal error" not in proc.stderr
    entry = queue(repo)["a"]
    assert (entry["state"], entry["reason_kind"]) == ("evicted", "not_mergeable")
    assert "will not merge" in entry["reason"]


def test_a_head_that_moved_is_retested_then_lands(repo: Path, origin: Path,
                                                  forge: FakeForge) -> None:
    project, env = setup(repo, origin, forge, "github")
    forge.fail("PUT", r"/merge$", 409, {"message": "Head branch was modified. Review and try "
                                                   "the merge again.",
                                        "documentation_url": "https://docs.github.com/rest"})
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    assert proc.returncode == 0, proc.stderr
    assert len(events(repo, "queue.land_aborted")) == 1
    assert len(project.pulls) == 1 and project.pulls[1].state == "merged"


def test_without_a_token_the_queue_pauses_with_the_reason(repo: Path, origin: Path,
                                                          forge: FakeForge) -> None:
    setup(repo, origin, forge, "gitlab")
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env={**NO_TOKENS,
                                                                "CI_JOB_TOKEN": "job"})
    assert proc.returncode == 1
    [paused] = events(repo, "queue.paused")
    assert "CI_JOB_TOKEN" in paused["data"]["reason"] and "GITLAB_TOKEN" in paused["data"]["reason"]


@pytest.mark.parametrize("crash_after", ["pr.opened", "pr.merged"])
def test_a_crash_between_push_pr_and_merge_makes_one_pr_and_one_merge(
        repo: Path, origin: Path, forge: FakeForge, crash_after: str) -> None:
    project, env = setup(repo, origin, forge, "github", merge='merge_method = "squash"')
    project.ci = ["pending", "success"]
    crashed = wf(repo, "run", str(tasks_file(repo, ("a",))),
                 env={**env, "WF_CRASH_AFTER": crash_after})
    assert crashed.returncode == -9
    resumed = wf(repo, "resume", env=env)
    assert resumed.returncode == 0, resumed.stderr
    assert len(project.pulls) == 1 and project.pulls[1].state == "merged"
    assert len([m for m in forge.calls("PUT", r"/merge$")]) == 1  # never merged twice
    assert queue(repo)["a"]["state"] == "landed"
    assert git(origin, "show", "main:notes/a.txt").startswith("a attempt 1")


# -- the forge's checks appear after the push (issue 12) --------------------------------------

def checks_of(repo: Path, task: str) -> list[tuple[str, str]]:
    return [(e["data"]["state"], e["data"]["detail"]) for e in events(repo, "pr.checks")
            if e["stream"] == f"task:{task}"]


def assert_evicted_unmerged(repo: Path, origin: Path, forge: FakeForge, before: str,
                            proc: object) -> dict:
    assert proc.returncode == 1, proc.stderr  # type: ignore[attr-defined]
    entry = queue(repo)["a"]
    assert (entry["state"], entry["reason_kind"]) == ("evicted", "forge_check"), entry
    assert git(origin, "rev-parse", "main") == before
    assert forge.calls("PUT", r"/merge$") == []
    return entry


def test_a_gitlab_pipeline_created_after_the_push_that_fails_is_not_merged(
        repo: Path, origin: Path, forge: FakeForge) -> None:
    """GitLab's default (pipelines need not succeed): right after the push the MR is
    `mergeable` with no pipeline; the pipeline appears 2 s later (the server's clock) and
    fails. wf used to merge on its first poll."""
    project, env = setup(repo, origin, forge, "gitlab", ci_config=".gitlab-ci.yml")
    project.ci, project.ci_delay = ["pending", "failure"], 2.0
    before = git(origin, "rev-parse", "main")
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    entry = assert_evicted_unmerged(repo, origin, forge, before, proc)
    assert "pipeline 900 failed" in entry["reason"]
    states = checks_of(repo, "a")
    assert states[0] == ("pending", "mergeable, no pipeline yet; .gitlab-ci.yml configures CI")
    assert states[-1] == ("failure", "pipeline 900 failed")


def test_a_github_check_run_created_after_the_push_that_fails_is_not_merged(
        repo: Path, origin: Path, forge: FakeForge) -> None:
    project, env = setup(repo, origin, forge, "github", ci_config=".github/workflows/ci.yaml")
    project.ci_as = "check_run"
    project.ci = [None, None, None, "failure"]  # nothing for three looks, then a failed run
    before = git(origin, "rev-parse", "main")
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    entry = assert_evicted_unmerged(repo, origin, forge, before, proc)
    assert "failed: ci/wf" in entry["reason"]
    assert checks_of(repo, "a") == [
        ("pending", "no checks reported yet; .github/workflows/ci.yaml configures CI"),
        ("failure", "failed: ci/wf")]


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_without_ci_configuration_a_head_lands_after_the_grace(
        repo: Path, origin: Path, forge: FakeForge, kind: str) -> None:
    project, env = setup(repo, origin, forge, kind, grace="300ms")
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    assert proc.returncode == 0, proc.stderr
    assert queue(repo)["a"]["state"] == "landed"
    assert [s for s, _ in checks_of(repo, "a")] == ["pending", "success"]
    assert "waiting 0.3s for checks to appear" in checks_of(repo, "a")[0][1]
    assert checks_of(repo, "a")[1][1].endswith("; no CI configured")


def test_without_ci_configuration_a_check_that_appears_within_the_grace_counts(
        repo: Path, origin: Path, forge: FakeForge) -> None:
    """An app or webhook may report on a head no workflow file describes."""
    project, env = setup(repo, origin, forge, "github", grace="30s")
    project.ci = [None, "failure"]
    before = git(origin, "rev-parse", "main")
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    assert_evicted_unmerged(repo, origin, forge, before, proc)


@pytest.mark.parametrize("result", ["success", "failure"])
def test_a_gitlab_merged_results_pipeline_is_seen_through_the_mrs_head_pipeline(
        repo: Path, origin: Path, forge: FakeForge, result: str) -> None:
    """A merged-results pipeline runs on refs/merge-requests/<iid>/merge, so no pipeline has
    the head's sha; the MR's head_pipeline is that pipeline. It decides, without a wait until
    forge_check_timeout."""
    project, env = setup(repo, origin, forge, "gitlab", ci_config=".gitlab-ci.yml",
                         timeout="60s")
    project.merged_results = True
    project.ci = ["pending", "pending", result]
    before = git(origin, "rev-parse", "main")
    started = time.monotonic()
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    took = time.monotonic() - started
    states = checks_of(repo, "a")
    assert states[0] == ("pending", "pipeline 950 running")
    if result == "success":
        assert proc.returncode == 0, proc.stderr
        assert queue(repo)["a"]["state"] == "landed"
        assert states[-1] == ("success", "pipeline 950 success")
        assert git(origin, "rev-parse", "main") != before
    else:
        assert_evicted_unmerged(repo, origin, forge, before, proc)
        assert states[-1] == ("failure", "pipeline 950 failed")
    assert took < 30, f"waited {took:.1f}s: the pipeline was not seen"


@pytest.mark.parametrize("kind", ["github", "gitlab"])
def test_ci_configured_but_never_reporting_evicts_at_the_forge_check_timeout(
        repo: Path, origin: Path, forge: FakeForge, kind: str) -> None:
    """As docs/merge-queue.md says: checks still pending at forge_check_timeout evict the
    entry (exit 1); "nothing reported" with CI configured is pending, never a pass."""
    ci_config = ".gitlab-ci.yml" if kind == "gitlab" else ".github/workflows/ci.yml"
    project, env = setup(repo, origin, forge, kind, ci_config=ci_config, timeout="1s",
                         grace="100ms")
    before = git(origin, "rev-parse", "main")
    proc = wf(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    entry = assert_evicted_unmerged(repo, origin, forge, before, proc)
    assert "still pending after 1s" in entry["reason"] and ci_config in entry["reason"]


def test_ctrl_c_while_a_forge_read_hangs_stops_wf_within_a_second(
        repo: Path, origin: Path, forge: FakeForge) -> None:
    """A read of the forge's checks is abandoned on cancel: wf does not wait for the HTTP
    answer (or its 30 s timeout) to honour Ctrl-C."""
    project, env = setup(repo, origin, forge, "github", ci_config=".github/workflows/ci.yml")
    forge.fail("GET", r"/status$", 200, delay=20.0)  # a normal answer, 20 s late
    run = wf_bg(repo, "run", str(tasks_file(repo, ("a",))), env=env)
    wait_until(lambda: forge.calls("GET", r"/status$"), what="wf to read the checks")
    sent = time.monotonic()
    run.send_signal(signal.SIGINT)
    _, err = run.communicate(timeout=30)
    took = time.monotonic() - sent
    assert run.returncode == 130, err
    assert "Traceback" not in err
    assert took < 1.0, f"wf took {took:.2f}s to stop"

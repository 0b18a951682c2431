"""The real Claude Code (installed from npm by .ci/run into .ci/node/) run as wf's ``claude``
agent against a stub Messages API on 127.0.0.1: ``wf run --agent claude`` with no agent
configuration, in real worktrees."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from helpers import git
from runwf import ci_cli, events, run_agent_tasks, status, wf
from stub_anthropic import StubAnthropic

CLAUDE_DIR = ci_cli("claude")
pytestmark = pytest.mark.skipif(CLAUDE_DIR is None,
                                reason="Claude Code not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def stub():
    with StubAnthropic() as server:
        yield server


@pytest.fixture
def claude_env(stub, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {
        "PATH": f"{CLAUDE_DIR}{os.pathsep}{os.environ['PATH']}",
        "HOME": str(home),
        "ANTHROPIC_BASE_URL": stub.url,
        "ANTHROPIC_API_KEY": "test",
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "CLAUDE_CODE_MAX_RETRIES": "1",
        "GH_TOKEN": "forge-secret-never-passed",
    }


def run_tasks(repo, env, prompts, *, attempts=3, extra=""):
    return run_agent_tasks(repo, env, "claude", *prompts, attempts=attempts, settings=extra)


def test_claude_writes_a_file_that_wf_commits_with_usage_and_session(repo, claude_env):
    proc = wf(repo, "run", "-p", "make a note", "--agent", "claude", env=claude_env,
              timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = status(repo)["make-a-note-1"]
    assert row["state"] == "done" and row["attempts"] == 1
    assert git(repo, "show", "wf/make-a-note-1:notes/make-a-note.txt") == \
        "written for: make a note"
    # The stub reports 120 in / 30 out per request, two requests: Claude Code's result sums them.
    assert row["tokens"] == 300 and row["cost_usd"] > 0
    [session] = events(repo, "agent.session")
    assert row["session_id"] == session["data"]["session_id"]
    tools = events(repo, "agent.tool")
    assert [t["data"]["name"] for t in tools] == ["Write"]
    assert "notes/make-a-note.txt" in tools[0]["data"]["input"]
    messages = [m["data"]["text"] for m in events(repo, "agent.message")]
    assert "Done: the file is written." in messages
    transcript = wf(repo, "logs", "make-a-note-1")
    assert transcript.returncode == 0, transcript.stderr
    assert "Write" in transcript.stdout and "Done: the file is written." in transcript.stdout
    assert '{"type"' not in transcript.stdout  # a transcript, not the raw JSON
    assert '"type":"result"' in wf(repo, "logs", "make-a-note-1", "--raw").stdout


def test_parallel_tasks_each_change_their_own_worktree(repo, claude_env):
    proc = run_tasks(repo, claude_env, ["alpha note", "beta note", "gamma note"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = status(repo)
    for tid, slug in (("t1", "alpha-note"), ("t2", "beta-note"), ("t3", "gamma-note")):
        assert rows[tid]["state"] == "done"
        assert git(repo, "ls-tree", "-r", "--name-only", f"wf/{tid}", "notes/") == \
            f"notes/{slug}.txt"
    assert len({rows[t]["session_id"] for t in rows}) == 3


def test_rate_limit_is_retried_after_the_reported_delay(repo, claude_env):
    # Two 429s with retry-after 1: Claude Code's own retry takes the second one, then gives up.
    proc = run_tasks(repo, claude_env, ["limited note [fail 429 x2 after 1]"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [retry] = events(repo, "task.retry_scheduled")
    assert retry["data"]["kind"] == "transient" and "429" in retry["data"]["error"]
    assert retry["data"]["retry_after"] == 1.0 and retry["data"]["delay"] >= 1.0
    started = [e["ts"] for e in events(repo, "attempt.started")]
    assert started[1] >= retry["ts"] + retry["data"]["delay"]  # the timer waited it all
    assert status(repo)["t1"]["state"] == "done"


def test_overloaded_529_is_transient(repo, claude_env):
    proc = run_tasks(repo, claude_env, ["busy note [fail 529 x2]"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [e["data"]["kind"] for e in events(repo, "task.retry_scheduled")] == ["transient"]


def test_auth_error_is_not_retried_and_says_what_to_set(repo, claude_env):
    proc = run_tasks(repo, claude_env, ["secret note [fail 401 x99]"])
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["state"], row["attempts"], row["last_failure_kind"]) == \
        ("failed", 1, "config_error")
    assert "ANTHROPIC_API_KEY" in row["last_error"] and "\n" not in row["last_error"]
    assert "forge-secret" not in json.dumps(events(repo))


def test_bad_request_is_an_agent_error(repo, claude_env):
    proc = run_tasks(repo, claude_env, ["broken note [fail 400 x99]"], attempts=2)
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["attempts"], row["last_failure_kind"]) == (2, "agent_error")
    assert "400" in row["last_error"]


def test_a_denied_tool_is_not_success(repo, claude_env):
    proc = run_tasks(repo, claude_env, ["shell note [deny]"])
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["state"], row["attempts"], row["last_failure_kind"]) == \
        ("failed", 1, "policy_denied")
    assert "Bash" in row["last_error"]


def test_a_retry_resumes_the_failed_attempts_session(repo, claude_env, stub):
    proc = run_tasks(repo, claude_env, ["resumed note [fail 400 x1]"],
                     extra="resume = true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sessions = [e["data"]["session_id"] for e in events(repo, "agent.session")
                if e["data"]["n"] == 1]
    spawned = {e["data"]["n"]: e["data"] for e in events(repo, "attempt.spawned")}
    assert spawned[1]["resumed_session"] is None
    assert spawned[2]["resumed_session"] == sessions[0]
    # What Claude Code sent on the second attempt carries the first attempt's conversation.
    resumed = [r for r in stub.message_requests()
               if "resumed note" in json.dumps(r["body"]["messages"])]
    assert sum(1 for m in resumed[-1]["body"]["messages"] if m["role"] == "user") > 1


def test_doctor_finds_claude_code_and_its_credentials(repo, claude_env):
    proc = wf(repo, "doctor", "--json", env=claude_env)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    claude = next(a for a in report["agents"] if a["name"] == "claude")
    assert claude["installed"] and "Claude Code" in claude["version"]
    assert claude["missing"] == [] and "ANTHROPIC_API_KEY" in claude["credentials"]
    assert report["forge_tokens"]["GH_TOKEN"] is True
    assert "forge-secret" not in proc.stdout
    assert shutil.which("git") and report["git"]["version"].startswith("git version")

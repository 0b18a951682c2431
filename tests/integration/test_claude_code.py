"""The real Claude Code (tests/real_clis.py: installed by .ci/run) run as wf's ``claude`` agent
against a stub Messages API on 127.0.0.1, in real worktrees: what only Claude Code is tested
for, `wf run --agent claude` with no agent configuration among it. What it shares with the
other CLIs (401, 429, resuming a session) is in test_agent_clis_real.py."""

from __future__ import annotations

import json
import shutil

import pytest
from helpers import git
from real_clis import cli_env, installed
from runwf import events, run_agent_tasks, status, wf
from stub_anthropic import StubAnthropic

pytestmark = installed("claude")


@pytest.fixture
def stub():
    with StubAnthropic() as server:
        yield server


@pytest.fixture
def claude_env(stub, tmp_path):
    return cli_env("claude", stub, tmp_path / "home")


def run_tasks(repo, env, prompts, *, attempts=3):
    return run_agent_tasks(repo, env, "claude", *prompts, attempts=attempts)


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


def test_overloaded_529_is_transient(repo, claude_env):
    proc = run_tasks(repo, claude_env, ["busy note [fail 529 x2]"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert [e["data"]["kind"] for e in events(repo, "task.retry_scheduled")] == ["transient"]


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

"""The real Codex CLI (installed from npm by .ci/run into .ci/node/) run as wf's ``codex``
agent against a stub Responses API on 127.0.0.1, in real worktrees."""

from __future__ import annotations

import json
import os

import pytest
from helpers import git
from runwf import ci_cli, events, run_agent_tasks, status
from stub_openai import StubOpenAI

CODEX_DIR = ci_cli("codex")
pytestmark = pytest.mark.skipif(CODEX_DIR is None,
                                reason="Codex CLI not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def stub():
    with StubOpenAI() as server:
        yield server


@pytest.fixture
def codex_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": f"{CODEX_DIR}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            "OPENAI_API_KEY": "test", "GH_TOKEN": "forge-secret-never-passed"}


def run(repo, env, stub, prompt, *, resume=False):
    settings = f'model = "gpt-5"\nargs = {json.dumps(stub.provider_args)}\n'
    return run_agent_tasks(repo, env, "codex", prompt,
                           settings=settings + f"resume = {str(resume).lower()}")


def test_codex_runs_a_command_that_wf_commits(repo, codex_env, stub):
    proc = run(repo, codex_env, stub, "codex note")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = status(repo)["t1"]
    assert row["state"] == "done" and row["tokens"] == 240  # two requests of 100 in, 20 out
    assert git(repo, "show", "wf/t1:notes/codex-note.txt") == "written for: codex-note"
    [session] = events(repo, "agent.session")
    assert row["session_id"] == session["data"]["session_id"]
    assert [t["data"]["name"] for t in events(repo, "agent.tool")] == ["shell"]
    assert "Done: the note is written." in [m["data"]["text"]
                                            for m in events(repo, "agent.message")]


def test_codex_rate_limited_is_transient_and_retried(repo, codex_env, stub):
    proc = run(repo, codex_env, stub, "limited codex note [fail 429 x1]")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [retry] = events(repo, "task.retry_scheduled")
    assert retry["data"]["kind"] == "transient" and "429" in retry["data"]["error"]


def test_codex_auth_error_is_not_retried(repo, codex_env, stub):
    proc = run(repo, codex_env, stub, "secret codex note [fail 401 x9]")
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["attempts"], row["last_failure_kind"]) == (1, "config_error")
    assert "OPENAI_API_KEY" in row["last_error"]


def test_codex_retry_resumes_the_thread(repo, codex_env, stub):
    proc = run(repo, codex_env, stub, "resumed codex note [fail 400 x1]", resume=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = [e["data"]["session_id"] for e in events(repo, "agent.session")
             if e["data"]["n"] == 1]
    spawned = {e["data"]["n"]: e["data"] for e in events(repo, "attempt.spawned")}
    assert spawned[2]["resumed_session"] == first[0]
    resumed = [r for r in stub.requests if "resumed codex note" in json.dumps(r["body"])]
    users = [i for i in resumed[-1]["body"]["input"] if i.get("role") == "user"]
    assert len(users) > 2  # the first attempt's conversation came back

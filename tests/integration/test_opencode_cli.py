"""The real opencode (installed from npm by .ci/run into .ci/node/) run as wf's ``opencode``
agent, its Anthropic provider pointed at the stub Messages API on 127.0.0.1."""

from __future__ import annotations

import json
import os

import pytest
from helpers import git
from runwf import ci_cli, events, run_agent_tasks, status
from stub_anthropic import StubAnthropic

OPENCODE_DIR = ci_cli("opencode")
pytestmark = pytest.mark.skipif(OPENCODE_DIR is None,
                                reason="opencode not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def stub():
    with StubAnthropic() as server:
        yield server


@pytest.fixture
def opencode_env(stub, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    config = {"autoupdate": False, "share": "disabled",
              "provider": {"anthropic": {"options": {"baseURL": f"{stub.url}/v1"}}}}
    return {"PATH": f"{OPENCODE_DIR}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            "ANTHROPIC_API_KEY": "test", "OPENCODE_CONFIG_CONTENT": json.dumps(config),
            "OPENCODE_DISABLE_AUTOUPDATE": "1", "OPENCODE_DISABLE_MODELS_FETCH": "1",
            "OPENCODE_DISABLE_LSP_DOWNLOAD": "1", "GH_TOKEN": "forge-secret-never-passed"}


def run(repo, env, prompt, *, resume=False):
    return run_agent_tasks(repo, env, "opencode", prompt,
                           settings=f'model = "anthropic/claude-sonnet-4-5"\n'
                           f"resume = {str(resume).lower()}")


def test_opencode_writes_a_file_that_wf_commits(repo, opencode_env):
    proc = run(repo, opencode_env, "opencode note")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = status(repo)["t1"]
    assert row["state"] == "done" and row["tokens"] > 0 and row["cost_usd"] > 0
    assert "written for:" in git(repo, "show", "wf/t1:notes/opencode-note.txt")
    [session] = events(repo, "agent.session")
    assert row["session_id"] == session["data"]["session_id"]
    assert "write" in [t["data"]["name"] for t in events(repo, "agent.tool")]


def test_opencode_auth_error_is_not_retried(repo, opencode_env):
    proc = run(repo, opencode_env, "secret opencode note [fail 401 x99]")
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["attempts"], row["last_failure_kind"]) == (1, "config_error")
    assert "API key" in row["last_error"]


def test_opencode_retry_resumes_the_session(repo, opencode_env, stub):
    proc = run(repo, opencode_env, "resumed opencode note [fail 400 x2]", resume=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = [e["data"]["session_id"] for e in events(repo, "agent.session")
             if e["data"]["n"] == 1]
    spawned = {e["data"]["n"]: e["data"] for e in events(repo, "attempt.spawned")}
    assert spawned[2]["resumed_session"] == first[0]
    resumed = [r for r in stub.message_requests() if r["body"].get("tools")
               and "resumed opencode note" in json.dumps(r["body"]["messages"])]
    assert sum(1 for m in resumed[-1]["body"]["messages"] if m["role"] == "user") > 1

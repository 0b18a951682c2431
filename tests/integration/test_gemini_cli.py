"""The real Gemini CLI (installed from npm by .ci/run into .ci/node/) run as wf's ``gemini``
agent against a stub Gemini API on 127.0.0.1, in real worktrees."""

from __future__ import annotations

import json
import os

import pytest
from helpers import git
from runwf import ci_cli, events, run_agent_tasks, status
from stub_gemini import StubGemini

GEMINI_DIR = ci_cli("gemini")
pytestmark = pytest.mark.skipif(GEMINI_DIR is None,
                                reason="Gemini CLI not installed (.ci/run installs it)")


@pytest.fixture(scope="module")
def stub():
    with StubGemini() as server:
        yield server


@pytest.fixture
def gemini_env(stub, tmp_path):
    home = tmp_path / "home"
    (home / ".gemini").mkdir(parents=True)
    # Headless runs need the auth type chosen once, as `gemini` asks on first use.
    (home / ".gemini" / "settings.json").write_text(
        json.dumps({"security": {"auth": {"selectedType": "gemini-api-key"}}}))
    return {"PATH": f"{GEMINI_DIR}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            "GEMINI_API_KEY": "test", "GOOGLE_GEMINI_BASE_URL": stub.url,
            "GH_TOKEN": "forge-secret-never-passed"}


def run(repo, env, prompt, *, resume=False):
    return run_agent_tasks(repo, env, "gemini", prompt, settings=f'model = "gemini-2.5-pro"\n'
                           f"resume = {str(resume).lower()}")


def test_gemini_writes_a_file_that_wf_commits(repo, gemini_env):
    proc = run(repo, gemini_env, "gemini note")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = status(repo)["t1"]
    assert row["state"] == "done" and row["tokens"] == 240  # two requests of 100 in, 20 out
    assert git(repo, "show", "wf/t1:notes/gemini-note.txt") == "written for: gemini note"
    [session] = events(repo, "agent.session")
    assert row["session_id"] == session["data"]["session_id"]
    assert [t["data"]["name"] for t in events(repo, "agent.tool")] == ["write_file"]


def test_gemini_auth_error_is_not_retried(repo, gemini_env):
    proc = run(repo, gemini_env, "secret gemini note [fail 401 x99]")
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["attempts"], row["last_failure_kind"]) == (1, "config_error")
    assert "GEMINI_API_KEY" in row["last_error"]


def test_gemini_retry_resumes_the_session(repo, gemini_env, stub):
    # The first attempt fails after its first turn, once Gemini CLI has saved the session.
    proc = run(repo, gemini_env, "resumed gemini note [fail 400 x1 late]", resume=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first = [e["data"]["session_id"] for e in events(repo, "agent.session")
             if e["data"]["n"] == 1]
    spawned = {e["data"]["n"]: e["data"] for e in events(repo, "attempt.spawned")}
    assert spawned[2]["resumed_session"] == first[0]
    resumed = [r for r in stub.requests if "resumed gemini note" in json.dumps(r["body"])]
    roles = [c.get("role") for c in resumed[-1]["body"]["contents"]]
    assert roles.count("user") > 2  # the first attempt's conversation came back


def test_a_session_that_was_never_saved_is_not_resumed_again(repo, gemini_env):
    # Failing on its first request, Gemini CLI saves no session: the resume fails, and wf
    # forgets the session so that the third attempt starts afresh.
    proc = run(repo, gemini_env, "unsaved gemini note [fail 400 x1]", resume=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    finished = [e["data"] for e in events(repo, "attempt.finished")]
    assert [f["state"] for f in finished] == ["failed", "failed", "succeeded"]
    assert "could not be resumed" in finished[1]["error"]
    spawned = {e["data"]["n"]: e["data"] for e in events(repo, "attempt.spawned")}
    assert spawned[2]["resumed_session"] and spawned[3]["resumed_session"] is None

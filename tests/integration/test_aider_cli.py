"""The real aider (installed from PyPI by .ci/run into the venv .ci/aider) run as wf's
``aider`` agent against a stub OpenAI chat-completions API on 127.0.0.1."""

from __future__ import annotations

import os

import pytest
from helpers import git
from runwf import ci_cli, events, run_agent_tasks, status, wf
from stub_openai import StubOpenAI

AIDER_DIR = ci_cli("aider")
pytestmark = pytest.mark.skipif(AIDER_DIR is None, reason="aider not installed (.ci/run does)")


@pytest.fixture(scope="module")
def stub():
    with StubOpenAI() as server:
        yield server


@pytest.fixture
def aider_env(stub, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    return {"PATH": f"{AIDER_DIR}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            "OPENAI_API_KEY": "test", "OPENAI_API_BASE": stub.api_url,
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",  # no fetch of litellm's price list
            "GH_TOKEN": "forge-secret-never-passed"}


def run(repo, env, prompt):
    return run_agent_tasks(repo, env, "aider", prompt, settings='model = "gpt-4o"\n'
                           'args = ["--edit-format", "whole", "--map-tokens", "0"]')


def test_aider_edits_a_file_that_wf_commits(repo, aider_env):
    proc = run(repo, aider_env, "aider note")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = status(repo)["t1"]
    assert row["state"] == "done"
    assert (row["tokens"], row["cost_usd"]) == (2450, pytest.approx(0.0073, abs=0.0001))
    assert git(repo, "show", "wf/t1:notes/aider-note.txt") == "written for: aider-note"
    assert [t["data"]["input"] for t in events(repo, "agent.tool")] == ["notes/aider-note.txt"]
    assert "Applied edit" not in wf(repo, "logs", "t1").stdout  # shown as → edit PATH


def test_aider_auth_error_is_not_retried(repo, aider_env):
    proc = run(repo, aider_env, "secret aider note [fail 401 x99]")
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["attempts"], row["last_failure_kind"]) == (1, "config_error")
    assert "AuthenticationError" in row["last_error"] and "API key" in row["last_error"]

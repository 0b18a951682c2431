"""``wf run --agent codex|gemini|opencode|aider`` with no agent configuration, each CLI a fake
on PATH that prints a recorded stream (tests/fixtures/agents/): the invocation wf builds, the
events it records and how it classifies the end. Plus crash safety: an adopted attempt's
events are recorded once."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from runwf import (
    assert_projections_rebuild, events, install_fake_clis, run_agent_tasks, status, wf, wf_bg,
    write_tasks,
)


@pytest.fixture
def cli_env(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    bin_dir = install_fake_clis(tmp_path / "bin")
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home),
            "GH_TOKEN": "forge-secret", "OPENAI_API_KEY": "sk-test"}


def argv_log(env, cli):
    path = Path(env["HOME"]) / f"{cli}-argv.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def run(repo, env, cli, scenarios, *, attempts=3, settings=""):
    return run_agent_tasks(repo, env, cli, f"write a note scenario={scenarios}",
                           attempts=attempts, settings=settings)


@pytest.mark.parametrize("cli, tokens", [("codex", 24885), ("gemini", 1480),
                                         ("opencode", 2600), ("aider", 2450)])
def test_a_cli_that_succeeds(repo, cli_env, cli, tokens):
    proc = run(repo, cli_env, cli, "ok")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    row = status(repo)["t1"]
    assert row["state"] == "done" and row["tokens"] == tokens
    assert events(repo, "agent.tool"), "the tool calls are recorded"
    [argv] = argv_log(cli_env, cli)
    assert "write a note scenario=ok" in " ".join(argv)
    transcript = wf(repo, "logs", "t1").stdout
    assert "→" in transcript and '{"type"' not in transcript
    table = wf(repo, "status").stdout
    assert "total" in table and f"{tokens:,}" in table


@pytest.mark.parametrize("cli, retry_after", [("codex", 1.2), ("gemini", 1.5),
                                              ("opencode", 1.0), ("aider", 1.0)])
def test_a_rate_limited_cli_is_retried_after_its_reported_delay(repo, cli_env, cli,
                                                                 retry_after):
    proc = run(repo, cli_env, cli, "rate_limit,ok")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    [retry] = events(repo, "task.retry_scheduled")
    assert retry["data"]["kind"] == "transient"
    assert retry["data"]["delay"] >= retry_after == retry["data"]["retry_after"]
    assert status(repo)["t1"]["attempts"] == 2


@pytest.mark.parametrize("cli, what", [("codex", "OPENAI_API_KEY"), ("gemini", "GEMINI_API_KEY"),
                                       ("opencode", "API key"), ("aider", "API key")])
def test_an_auth_error_is_not_retried(repo, cli_env, cli, what):
    proc = run(repo, cli_env, cli, "auth,ok")
    assert proc.returncode == 1
    row = status(repo)["t1"]
    assert (row["attempts"], row["last_failure_kind"]) == (1, "config_error")
    assert what in row["last_error"]


def test_gemini_turn_limit_is_its_own_kind(repo, cli_env):
    proc = run(repo, cli_env, "gemini", "turn_limit", attempts=1)
    assert proc.returncode == 1
    assert status(repo)["t1"]["last_failure_kind"] == "limit"


def test_codex_retry_resumes_the_thread(repo, cli_env):
    proc = run(repo, cli_env, "codex", "agent_error,ok", settings="resume = true")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    first, second = argv_log(cli_env, "codex")
    assert "resume" not in first
    thread = "0199a213-81c0-7800-8aa1-bbab2a035a56"
    assert second[second.index("resume") + 1] == thread


def test_forge_tokens_never_reach_the_agent(repo, cli_env, tmp_path):
    spy = tmp_path / "env.json"
    body = f"""
[retry]
maximum_attempts = 1
[agents.spy]
command = ["python3", "-c", "import json, os; json.dump(dict(os.environ), open({str(spy)!r}, 'w'))"]
pass_env = ["GH_TOKEN", "OPENAI_*"]
[[task]]
id = "t"
agent = "spy"
prompt = "x"
"""
    wf(repo, "run", str(write_tasks(repo, body)), env={**cli_env, "GITLAB_TOKEN": "g"})
    seen = json.loads(spy.read_text())
    assert "OPENAI_API_KEY" in seen
    assert not {"GH_TOKEN", "GITLAB_TOKEN"} & set(seen)


def test_an_adopted_attempts_events_are_recorded_once(repo, cli_env):
    # wf is killed right after the agent's session is recorded, while the (slow) agent keeps
    # printing; `wf resume` adopts it and reads its output again from the start.
    path = write_tasks(repo, '[[task]]\nid = "t1"\nagent = "claude"\nprompt = "scenario=slow"\n')
    crashed = wf_bg(repo, "run", str(path), env={**cli_env, "WF_CRASH_AFTER": "agent.session"})
    crashed.communicate(timeout=60)
    assert crashed.returncode == -9
    expected = ["agent.session", "agent.tool", "agent.message", "agent.usage"]
    before = [e["type"] for e in events(repo) if e["type"].startswith("agent.")]
    assert before == expected[:len(before)] and len(before) < len(expected)
    assert not events(repo, "attempt.finished")
    proc = wf(repo, "resume", env=cli_env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert events(repo, "attempt.adopted"), "the agent was still running when wf came back"
    agent_events = [e["type"] for e in events(repo) if e["type"].startswith("agent.")]
    assert agent_events == expected
    assert status(repo)["t1"]["tokens"] == 1050
    assert_projections_rebuild(repo)


def test_doctor_reports_clis_versions_and_what_is_missing(repo, cli_env, tmp_path):
    (repo / "wf.toml").write_text('[agents.fast]\nadapter = "codex"\nbinary = "no-such-codex"\n')
    proc = wf(repo, "doctor", "--json", env={**cli_env, "GEMINI_API_KEY": "", "GOOGLE_API_KEY": "",
                                             "GITHUB_TOKEN": "", "GITLAB_TOKEN": ""})
    assert proc.returncode == 1, proc.stderr  # "fast" of wf.toml cannot start
    report = json.loads(proc.stdout)
    agents = {a["name"]: a for a in report["agents"]}
    assert set(agents) == {"claude", "codex", "gemini", "opencode", "aider", "fast"}
    assert agents["codex"]["version"] == "codex 9.9.9 (fake)"
    assert (agents["codex"]["credentials"], agents["codex"]["missing"]) == (["OPENAI_API_KEY"], [])
    assert agents["gemini"]["missing"] == ["credentials"]
    assert "GEMINI_API_KEY" in agents["gemini"]["auth_hint"]
    assert agents["fast"]["missing"] == ["binary"] and not agents["fast"]["installed"]
    assert report["forge_tokens"] == {"GH_TOKEN": True, "GITHUB_TOKEN": False,
                                      "GITLAB_TOKEN": False}
    assert "forge-secret" not in proc.stdout and "sk-test" not in proc.stdout
    table = wf(repo, "doctor", env=cli_env)
    assert table.returncode == 1 and "codex 9.9.9 (fake)" in table.stdout
    assert "agent fast in wf.toml cannot start" in table.stdout
    assert "GH_TOKEN set" in table.stdout and "forge-secret" not in table.stdout
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    assert wf(outside, "doctor", "--json", env=cli_env).returncode == 0


def test_doctor_checks_the_program_of_every_command_agent_in_wf_toml(repo, cli_env):
    (repo / "run_me.sh").write_text("#!/bin/sh\n")
    (repo / "run_me.sh").chmod(0o755)
    (repo / "wf.toml").write_text('[agents.mine]\ncommand = ["no-such-agent-wf", "{prompt}"]\n'
                                  '[agents.script]\ncommand = ["./run_me.sh"]\n')
    proc = wf(repo, "doctor", "--json", env=cli_env)
    agents = {a["name"]: a for a in json.loads(proc.stdout)["agents"]}
    assert proc.returncode == 1
    assert agents["mine"]["configured"] and agents["mine"]["missing"] == ["binary"]
    assert agents["script"]["installed"] and agents["script"]["path"].endswith("run_me.sh")
    assert not agents["claude"]["configured"]  # the CLIs wf knows are reported, not required
    (repo / "wf.toml").write_text('[agents.script]\ncommand = ["./run_me.sh"]\n')
    assert wf(repo, "doctor", env=cli_env).returncode == 0

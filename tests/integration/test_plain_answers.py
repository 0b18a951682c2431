"""Input wf cannot act on gets one line that says what is wrong and a documented exit code:
a missing agent program, a folder outside any repository, `-h`, attempt 0, `wf events` with
no runs yet."""

from __future__ import annotations

import json

import pytest
from runwf import agent_cmd, wf, write_tasks


def test_dry_run_refuses_an_agent_whose_program_does_not_exist(repo):
    text = '[agents.ghost]\ncommand = ["no-such-agent-cli-wf", "{prompt}"]\n'
    text += '[[task]]\nid = "a"\nprompt = "x"\nagent = "ghost"\n'
    path = write_tasks(repo, text)
    for args in (["run", "--dry-run", str(path)], ["run", str(path)]):
        out = wf(repo, *args)
        assert out.returncode == 2, out.stderr
        assert "agent 'ghost'" in out.stderr and "'no-such-agent-cli-wf'" in out.stderr
        assert "not found on PATH" in out.stderr
    assert not (repo / ".git" / "wf" / "wf.db").exists()  # nothing was started or recorded


def test_dry_run_accepts_an_agent_given_by_a_path_in_the_repository(repo):
    script = repo / "my_agent.sh"
    script.write_text("#!/bin/sh\necho hi > out.txt\n")
    script.chmod(0o755)
    text = '[agents.mine]\ncommand = ["./my_agent.sh"]\n'
    text += '[[task]]\nid = "a"\nprompt = "x"\nagent = "mine"\n'
    out = wf(repo, "run", "--dry-run", str(write_tasks(repo, text)))
    assert out.returncode == 0, out.stderr


def test_outside_a_repository_says_so_with_the_folder_and_a_hint(tmp_path):
    out = wf(tmp_path, "status")
    assert out.returncode == 2
    assert f"not a git repository (or any parent folder): {tmp_path.resolve()}" in out.stderr
    assert "hint: " in out.stderr and "rev-parse" not in out.stderr


@pytest.mark.parametrize("args", [["-h"], ["run", "-h"], ["queue", "add", "-h"]])
def test_dash_h_is_help(tmp_path, args):
    out = wf(tmp_path, *args)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("Usage: ") and "-h, --help" in out.stdout


def test_events_with_no_runs_yet_prints_nothing_and_exits_0_as_status_does(repo):
    for args in (["events"], ["events", "--json"], ["status"]):
        out = wf(repo, *args)
        assert out.returncode == 0, (args, out.stderr)
    assert wf(repo, "events", "--json").stdout == ""


def test_logs_attempt_0_is_refused_not_read_as_the_latest(repo):
    text = f"[agents.quick]\ncommand = {agent_cmd('commit')}\n"
    text += '[[task]]\nid = "a"\nprompt = "x"\nagent = "quick"\n'
    assert wf(repo, "run", str(write_tasks(repo, text))).returncode == 0
    zero = wf(repo, "logs", "a", "--attempt", "0")
    assert zero.returncode == 2 and "numbered from 1" in zero.stderr
    beyond = wf(repo, "logs", "a", "--attempt", "2")
    assert beyond.returncode == 2 and "no attempt 2" in beyond.stderr
    assert wf(repo, "logs", "a", "--attempt", "1", "--json").returncode == 0
    assert json.loads(wf(repo, "status", "--json").stdout)[0]["attempts"] == 1


def test_status_shows_the_current_run_with_all_for_history_and_never_cuts_ids(repo):
    quick = f"[agents.quick]\ncommand = {agent_cmd('commit')}\n"
    first = quick + '[[task]]\nid = "old-1"\nprompt = "x"\nagent = "quick"\n'
    first += '[[task]]\nid = "old-2"\nprompt = "x"\nagent = "quick"\n'
    assert wf(repo, "run", str(write_tasks(repo, first, "first.toml"))).returncode == 0
    long_id = "a-task-whose-id-is-long-enough-to-be-cut-on-a-narrow-screen"
    failing = json.dumps(["sh", "-c", "echo 'fatal: " + "a long reason " * 12 + "' >&2; exit 3"])
    second = f"[agents.bad]\ncommand = {failing}\n[retry]\nmaximum_attempts = 1\n"
    second += f'[[task]]\nid = "{long_id}"\nprompt = "x"\nagent = "bad"\n'
    assert wf(repo, "run", str(write_tasks(repo, second, "second.toml"))).returncode == 1
    out = wf(repo, "status")  # into a pipe
    assert out.returncode == 0
    lines = [ln for ln in out.stdout.splitlines() if long_id in ln]
    assert len(lines) == 1 and ("a long reason " * 12).strip() in lines[0]  # one line, whole
    assert "old-1" not in out.stdout and "2 task(s) of earlier runs" in out.stderr
    assert {t["id"] for t in json.loads(wf(repo, "status", "--json").stdout)} == {long_id}
    every = wf(repo, "status", "--all")
    assert "old-1" in every.stdout and "old-2" in every.stdout and long_id in every.stdout


def test_a_heartbeat_interval_that_is_not_a_number_is_a_usage_error(repo):
    out = wf(repo, "run", "-p", "x", "--agent", "demo", env={"WF_HEARTBEAT": "soon"})
    assert out.returncode == 2 and "WF_HEARTBEAT='soon'" in out.stderr
    assert "internal error" not in out.stderr
    assert not (repo / ".git" / "wf" / "wf.db").exists()
